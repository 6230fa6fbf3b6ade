"""GPT-2 BPE through tiktoken, built offline from the files the package carries.

The merge file is checked against the sha256 that tiktoken's own `gpt2` encoding expects, so
the ids are exactly `tiktoken.get_encoding("gpt2")`'s, with no network. tiktoken also reads
encoder.json, only to check that it agrees with the merges: both files are pinned by hash, so
that agreement is a fact about two fixed files, checked once by tests/test_tokenizer.py rather
than on every start (parsing the 1 MB JSON cost ~0.15 s of a ~0.2 s build).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import tiktoken

from fwpipe.errors import InputFormatError

ASSETS = Path(__file__).parent / "assets" / "gpt2"
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
NAME = "gpt2"
VOCAB_SIZE = 50257
EOT = 50256  # <|endoftext|>; encode_ordinary never emits it inside a document
EOT_TEXT = "<|endoftext|>"
# r50k / gpt2 pre-tokenizer pattern (tiktoken_ext/openai_public.py)
_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def checked_bytes(path: Path, sha256: str) -> bytes:
    """The bytes of a pinned file, or InputFormatError if its sha256 is not the pinned one."""
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise InputFormatError(
            f"{path}: sha256 {got[:12]}... is not the GPT-2 file tiktoken expects ({sha256[:12]}...)",
            "reinstall fwpipe; the packaged BPE file is damaged",
        )
    return data


def data_gym_table() -> tuple[list[int], dict[int, int]]:
    """GPT-2's byte order (rank of each single byte) and its printable stand-in for each byte."""
    # As tiktoken.load.data_gym_to_mergeable_bpe_ranks: printable bytes stand for themselves,
    # the others (and space) for chr(256 + n) in byte order.
    rank_to_intbyte = [b for b in range(2**8) if chr(b).isprintable() and chr(b) != " "]
    table = {b: b for b in rank_to_intbyte}
    n = 0
    for b in range(2**8):
        if b not in rank_to_intbyte:
            rank_to_intbyte.append(b)
            table[2**8 + n] = b
            n += 1
    return rank_to_intbyte, table


def mergeable_ranks(vocab_bpe: str) -> dict[bytes, int]:
    """tiktoken's ranks from vocab.bpe's text: the 256 bytes, then one token per merge line."""
    rank_to_intbyte, table = data_gym_table()
    # one str.translate per merged token maps stand-ins to latin-1 code points, whose latin-1
    # encoding is the token's bytes (~20x faster than a generator over characters)
    words = vocab_bpe.split("\n", 1)[1].split()  # first line is a version comment
    merged = [(a + b).translate(table).encode("latin-1") for a, b in zip(words[0::2], words[1::2])]
    return dict(zip([bytes([b]) for b in rank_to_intbyte] + merged, range(len(rank_to_intbyte) + len(merged))))


@functools.lru_cache(maxsize=1)
def _load() -> tuple[tiktoken.Encoding, np.ndarray]:
    ranks = mergeable_ranks(checked_bytes(ASSETS / "vocab.bpe", VOCAB_BPE_SHA256).decode())
    enc = tiktoken.Encoding(name=NAME, explicit_n_vocab=VOCAB_SIZE, pat_str=_PAT, mergeable_ranks=ranks, special_tokens={EOT_TEXT: EOT})
    byte_lengths = np.zeros(VOCAB_SIZE, np.uint8)  # EOT stands for no bytes of a document
    byte_lengths[list(ranks.values())] = np.fromiter(map(len, ranks), np.uint8, len(ranks))
    byte_lengths.flags.writeable = False
    return enc, byte_lengths


def get_encoding() -> tiktoken.Encoding:
    """The GPT-2 encoding, identical to tiktoken.get_encoding('gpt2'), loaded from package files."""
    return _load()[0]


def token_byte_lengths() -> np.ndarray:
    """uint8 (VOCAB_SIZE,): how many bytes of text each id stands for (EOT: 0)."""
    return _load()[1]


def encode(text: str) -> np.ndarray:
    """Token ids of one document as uint32, special-token text treated as plain text."""
    # encode_to_numpy with nothing allowed and nothing disallowed == encode_ordinary, without
    # the list of Python ints; it releases the GIL, so threads tokenize in parallel.
    return get_encoding().encode_to_numpy(text, disallowed_special=())


def bpe_sha256() -> dict[str, str]:
    return {"vocab.bpe": VOCAB_BPE_SHA256, "encoder.json": ENCODER_JSON_SHA256}
