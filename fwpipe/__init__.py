"""fwpipe: FineWeb parquet -> audited GPT-2 token shards -> a GPT trained to a token budget."""

__version__ = "0.1.0"
