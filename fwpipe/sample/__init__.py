"""The bundled FineWeb sample (see README.md here for its source and licence): two parquet files
that `--sample`, the tests and the benchmarks read. Data only; imports nothing from fwpipe."""

from pathlib import Path

SAMPLE_DIR = Path(__file__).parent
SAMPLE_FILES = [SAMPLE_DIR / "fineweb-first150.parquet", SAMPLE_DIR / "fineweb-sample10bt-1400.parquet"]
