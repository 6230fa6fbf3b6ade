"""The prepare and estimate stage: FineWeb parquet in, a dataset directory out.

    prepare.py       the driver, top to bottom: claim -> room on disk -> tokenize or dedup -> finalize
    options.py       PrepareOptions (checked), the identity that decides the bytes, the Run
    workdir.py       every path under the dataset's .work
    space.py         the disk a prepare needs, estimated before it starts, and the refusal
    passes.py        unit tasks, lay-out (budget waves) with the shards written as it goes, the forced val document
    dedup_passes.py  --dedup: first pass per input, the plan (fwpipe.dedup, saved), the kept documents copied
    units.py, tokenize.py, split.py, inputs.py   a unit's work: read, tokenize, split, write
    layout.py, assemble.py, shardset.py, finalize.py   shards and the finished directory
    outputs.py       which files in an output directory are prepare's to replace (the only deleter)
    estimate.py      `fwpipe estimate`: tokens, epochs and files needed, before tokenizing

May import: the ground floor (fwpipe/*.py, fwpipe.dataset, fwpipe.executors) and the dedup
engine (fwpipe.dedup); never another stage (audit, train). Within: prepare imports the passes,
dedup_passes imports passes and finalize, finalize imports options; nothing imports prepare.
"""
