import numpy as np
import pyarrow.parquet as pq

from fwpipe import tokenizer
from fwpipe.pipeline.tokenize import EMAIL_PLACEHOLDERS


def test_hello_world_and_eot():
    enc = tokenizer.get_encoding()
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    assert tokenizer.EOT == 50256 == enc.eot_token
    assert enc.n_vocab == tokenizer.VOCAB_SIZE == 50257


def test_encode_treats_special_text_as_plain_text():
    enc = tokenizer.get_encoding()
    text = "a <|endoftext|> b"
    assert tokenizer.encode(text).tolist() == enc.encode_ordinary(text)
    assert tokenizer.EOT not in tokenizer.encode(text).tolist()


def test_fineweb_token_count_matches_except_email_placeholders(first150):
    t = pq.read_table(first150, columns=["text", "token_count"]).to_pylist()
    mismatched_plain, mismatched_placeholder = [], []
    for i, row in enumerate(t):
        if len(tokenizer.encode(row["text"])) != row["token_count"]:
            has_placeholder = any(p in row["text"] for p in EMAIL_PLACEHOLDERS)
            (mismatched_placeholder if has_placeholder else mismatched_plain).append(i)
    assert mismatched_plain == []
    assert len(mismatched_placeholder) == 5  # the shared data's README: five rows differ for that reason


def test_damaged_bpe_file_is_refused(tmp_path, monkeypatch):
    import pytest

    from fwpipe.errors import InputFormatError

    (tmp_path / "vocab.bpe").write_bytes((tokenizer.ASSETS / "vocab.bpe").read_bytes() + b"x")
    with pytest.raises(InputFormatError, match="sha256"):
        tokenizer.checked_bytes(tmp_path / "vocab.bpe", tokenizer.VOCAB_BPE_SHA256)


def test_merges_agree_with_encoder_json_and_tiktokens_own_loader():
    """The check tiktoken makes on every load, made here once: the two pinned files agree, and
    the ranks built from vocab.bpe are exactly what tiktoken's own data-gym loader builds."""
    import json

    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    ours = tokenizer.mergeable_ranks(tokenizer.checked_bytes(tokenizer.ASSETS / "vocab.bpe", tokenizer.VOCAB_BPE_SHA256).decode())
    encoder_json = json.loads(tokenizer.checked_bytes(tokenizer.ASSETS / "encoder.json", tokenizer.ENCODER_JSON_SHA256))
    _, stand_in = tokenizer.data_gym_table()
    from_json = {bytes(stand_in[ord(c)] for c in k): v for k, v in encoder_json.items() if k not in ("<|endoftext|>", "<|startoftext|>")}
    assert ours == from_json and len(ours) == tokenizer.EOT
    theirs = data_gym_to_mergeable_bpe_ranks(str(tokenizer.ASSETS / "vocab.bpe"), str(tokenizer.ASSETS / "encoder.json"))
    assert ours == theirs


def test_token_byte_lengths_are_the_bytes_each_id_decodes_to(first150):
    enc = tokenizer.get_encoding()
    lengths = tokenizer.token_byte_lengths()
    assert lengths.dtype == np.uint8 and lengths[tokenizer.EOT] == 0
    assert lengths[: tokenizer.EOT].tolist() == [len(enc.decode_single_token_bytes(i)) for i in range(tokenizer.EOT)]
    for text in pq.read_table(first150, columns=["text"])["text"].to_pylist()[:50]:
        assert int(lengths[tokenizer.encode(text)].sum()) == len(text.encode("utf-8"))
