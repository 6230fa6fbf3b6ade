"""GPT-2 BPE through tiktoken, built offline from the two files the package carries.

The files are checked against the sha256 hashes that tiktoken's own `gpt2` encoding expects,
so the ids are exactly `tiktoken.get_encoding("gpt2")`'s, with no network.
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
# r50k / gpt2 pre-tokenizer pattern (tiktoken_ext/openai_public.py)
_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def _checked_bytes(path: Path, sha256: str) -> bytes:
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise InputFormatError(
            f"{path}: sha256 {got[:12]}... is not the GPT-2 file tiktoken expects ({sha256[:12]}...)",
            "reinstall fwpipe; the packaged BPE file is damaged",
        )
    return data


def _decode_data_gym(value: str, byte_decoder: dict[str, int]) -> bytes:
    return bytes(byte_decoder[c] for c in value)


@functools.lru_cache(maxsize=1)
def get_encoding() -> tiktoken.Encoding:
    """The GPT-2 encoding, identical to tiktoken.get_encoding('gpt2'), loaded from package files."""
    import json

    vocab_bpe = _checked_bytes(ASSETS / "vocab.bpe", VOCAB_BPE_SHA256).decode()
    encoder_json = json.loads(_checked_bytes(ASSETS / "encoder.json", ENCODER_JSON_SHA256))
    # Same construction as tiktoken.load.data_gym_to_mergeable_bpe_ranks, fed from bytes we
    # already verified instead of URLs.
    rank_to_intbyte = [b for b in range(2**8) if chr(b).isprintable() and chr(b) != " "]
    data_gym_byte_to_byte = {chr(b): b for b in rank_to_intbyte}
    n = 0
    for b in range(2**8):
        if b not in rank_to_intbyte:
            rank_to_intbyte.append(b)
            data_gym_byte_to_byte[chr(2**8 + n)] = b
            n += 1
    bpe_merges = [tuple(line.split()) for line in vocab_bpe.split("\n")[1:-1]]
    ranks = {bytes([b]): i for i, b in enumerate(rank_to_intbyte)}
    n = len(ranks)
    for first, second in bpe_merges:
        ranks[_decode_data_gym(first, data_gym_byte_to_byte) + _decode_data_gym(second, data_gym_byte_to_byte)] = n
        n += 1
    # the encoder.json must agree with the ranks built from vocab.bpe (tiktoken checks the same)
    encoder_json_loaded = {_decode_data_gym(k, data_gym_byte_to_byte): v for k, v in encoder_json.items()}
    encoder_json_loaded.pop(b"<|endoftext|>", None)
    encoder_json_loaded.pop(b"<|startoftext|>", None)
    assert ranks == encoder_json_loaded, "vocab.bpe and encoder.json disagree"
    return tiktoken.Encoding(
        name=NAME,
        explicit_n_vocab=VOCAB_SIZE,
        pat_str=_PAT,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": EOT},
    )


def encode(text: str) -> np.ndarray:
    """Token ids of one document as uint32, special-token text treated as plain text."""
    # encode_to_numpy with nothing allowed and nothing disallowed == encode_ordinary, without
    # the list of Python ints; it releases the GIL, so threads tokenize in parallel.
    return get_encoding().encode_to_numpy(text, disallowed_special=())


def bpe_sha256() -> dict[str, str]:
    return {"vocab.bpe": VOCAB_BPE_SHA256, "encoder.json": ENCODER_JSON_SHA256}
