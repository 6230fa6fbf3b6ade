"""fwpipe: FineWeb parquet -> audited GPT-2 token shards -> a GPT trained to a token budget.

Three floors; imports go down only (tests/test_imports.py checks it):
    cli/                         the `fwpipe` command; may import everything, nothing imports it
    pipeline/ audit/ train/      the stages; each imports the ground floor, never another stage
    the ground floor             the rest: dataset/ (the directory the stages share), shards,
                                 tokenizer, kernels, budget, dedup/, executors/ (inline, local,
                                 ray), remote, atomic, errors, fmt, progress, htmlpage, sample/
                                 (data), configs/ (TOML presets, read by train.config); it
                                 imports no stage
"""

__version__ = "0.1.0"
