"""The split rule, pinned by fixed vectors worked out from its definition (DESIGN.md, Split):

    h = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8,
                                       key=seed.to_bytes(8, "little")).digest(), "little")
    split = "val" if h < int(val_fraction * 2**64) else "train"

where key is the FineWeb `id`, else the text. The numbers below were computed once with exactly
those two lines (hashlib, nothing from fwpipe); a change to the hash, its key, its byte order or
the comparison moves documents between train and val in every existing dataset, and fails here.
prepare is run through the CLI and its docs.parquet read back, so the whole path is checked.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from fwpipe.cli import main

IDS = [
    "<urn:uuid:2cb3abbd-7305-4de9-8d53-6b9b8e8641a0>",  # real FineWeb sample-10BT ids
    "<urn:uuid:d29f7bfa-4b74-4e17-932e-e5b8de2daf9c>",
    "<urn:uuid:03bd4b6a-4cfb-44de-b72f-69c96a61743f>",
    "<urn:uuid:23b54ab8-1fe8-4482-a6e2-d2ae5e51b564>",
    "<urn:uuid:ccd4e05c-1c4c-4ab8-b22c-9e731eb7803f>",
    "<urn:uuid:6e0108f5-2711-45f5-bd87-13d2a2015905>",
]
TEXTS = ["The cat sat on the mat.", "Ein Haus am See."]  # keys themselves when there is no id column

# key -> blake2b-64 hash, by seed (from the derivation in the module docstring)
HASH = {
    0: dict(
        zip(
            IDS + TEXTS,
            [
                9467573948577880980,
                15364825697434298444,
                1655676639044164222,
                7110329572435401962,
                523087529182568191,
                7011782625277628546,
                6604211358938237669,
                14460715557718424070,
            ],
        )
    ),
    7: dict(
        zip(
            IDS + TEXTS,
            [
                4780961507253569865,
                5244870262205339749,
                15425845716854920908,
                4527345828928945840,
                5361977343382706412,
                11770460564323549182,
                9150868298640840415,
                8960977130524153380,
            ],
        )
    ),
}
# the split of each key, by (seed, val_fraction): h < 2**63 (0.5) or h < 2**62 (0.25) is val
SPLIT = {
    (0, 0.5): dict(zip(IDS + TEXTS, ["train", "train", "val", "val", "val", "val", "val", "train"])),
    (7, 0.5): dict(zip(IDS + TEXTS, ["val", "val", "train", "val", "val", "train", "val", "val"])),
    # 4527345828928945840 < 2**62 = 4611686018427387904 < 4780961507253569865: one id each side of the line
    (7, 0.25): dict(zip(IDS, ["train", "train", "train", "val", "train", "train"])),
}


def _prepare(tmp_path, table: pa.Table, seed: int, val_fraction: float) -> dict[str, tuple[int, str]]:
    src = tmp_path / f"in_{seed}_{val_fraction}_{table.num_columns}.parquet"
    pq.write_table(table, src)
    out = tmp_path / f"ds_{seed}_{val_fraction}_{table.num_columns}"
    r = CliRunner().invoke(
        main,
        [
            "prepare",
            str(src),
            "-o",
            str(out),
            "--seed",
            str(seed),
            "--val-fraction",
            str(val_fraction),
            "--dedup",
            "none",
            "--workers",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = pq.read_table(out / "docs.parquet").to_pylist()
    key = "id" if "id" in table.column_names else None
    texts = table.column("text").to_pylist()
    return {(row["id"] if key else texts[row["source_row"]]): (row["key_hash"], row["split"]) for row in rows}


def test_ids_split_as_the_hand_computed_vectors(tmp_path):
    docs = [f"Document {i}: a few words of text that belong to {k}." for i, k in enumerate(IDS)]
    table = pa.table({"id": IDS, "text": docs})
    for seed, val_fraction in SPLIT:
        got = _prepare(tmp_path, table, seed, val_fraction)
        assert got == {k: (HASH[seed][k], SPLIT[seed, val_fraction][k]) for k in IDS}, (seed, val_fraction)


def test_without_ids_the_text_is_the_key(tmp_path):
    table = pa.table({"text": TEXTS})
    for seed in (0, 7):
        got = _prepare(tmp_path, table, seed, 0.5)
        assert got == {k: (HASH[seed][k], SPLIT[seed, 0.5][k]) for k in TEXTS}, seed
