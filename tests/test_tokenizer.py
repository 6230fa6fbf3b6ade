import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

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

    ours = tokenizer.mergeable_ranks(
        tokenizer.checked_bytes(tokenizer.ASSETS / "vocab.bpe", tokenizer.VOCAB_BPE_SHA256).decode()
    )
    encoder_json = json.loads(tokenizer.checked_bytes(tokenizer.ASSETS / "encoder.json", tokenizer.ENCODER_JSON_SHA256))
    _, stand_in = tokenizer.data_gym_table()
    from_json = {
        bytes(stand_in[ord(c)] for c in k): v
        for k, v in encoder_json.items()
        if k not in ("<|endoftext|>", "<|startoftext|>")
    }
    assert ours == from_json and len(ours) == tokenizer.EOT
    theirs = data_gym_to_mergeable_bpe_ranks(
        str(tokenizer.ASSETS / "vocab.bpe"), str(tokenizer.ASSETS / "encoder.json")
    )
    assert ours == theirs


def test_token_byte_lengths_are_the_bytes_each_id_decodes_to(first150):
    enc = tokenizer.get_encoding()
    lengths = tokenizer.token_byte_lengths()
    assert lengths.dtype == np.uint8 and lengths[tokenizer.EOT] == 0
    assert lengths[: tokenizer.EOT].tolist() == [len(enc.decode_single_token_bytes(i)) for i in range(tokenizer.EOT)]
    for text in pq.read_table(first150, columns=["text"])["text"].to_pylist()[:50]:
        assert int(lengths[tokenizer.encode(text)].sum()) == len(text.encode("utf-8"))


# ------------------------------------------------------------------------- engines vs the oracle
# tiktoken's encode_ordinary defines the ids; every engine must give them on every string.

# code points from the scripts and classes that steer the GPT-2 pre-tokenizer: letters (\p{L}),
# numbers (\p{N}, incl. non-ASCII digits and fractions), marks, punctuation, symbols, every kind
# of whitespace, emoji with modifiers and joiners, the apostrophe of the contractions
_ALPHABET = (
    "abcXYZ'sdmtlvre "
    + "\t\n\r\x0b\x0c\u00a0\u1680\u2000\u2009\u200b\u2028\u3000\u0085"
    + "0123456789٣٤५½²"
    + "éüñçØßĳ"
    + "\u0301\u0308"
    + "Ωжשعहไ中文日本한"
    + '.,;:!?-_()[]{}<>|/\\"@#$%^&*~`+='
    + "😀👍🏽\u200d🇺"
    + "\U00010348\U0001d400"
)


def _random_strings(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.5:  # random unicode from the alphabet, runs included
            out.append(
                "".join(
                    rng.choice(_ALPHABET) * (1 if rng.random() < 0.8 else rng.randint(2, 9))
                    for _ in range(rng.randint(1, 60))
                )
            )
        elif kind < 0.65:  # whitespace runs between, before and after words
            ws = " \t\n\r\u00a0\u3000"
            out.append(
                "".join(
                    rng.choice(["word", "x", "'s", "12"]) + "".join(rng.choice(ws) for _ in range(rng.randint(0, 6)))
                    for _ in range(rng.randint(1, 8))
                )
            )
        elif kind < 0.8:  # contractions, in every case and after every kind of character
            out.append(
                "".join(
                    rng.choice(["", " ", "\t", "a", "1", "!", "é"])
                    + "'"
                    + rng.choice(["s", "t", "re", "ve", "m", "ll", "d", "S", "LL", "Re", "x", ""])
                    for _ in range(rng.randint(1, 8))
                )
            )
        else:  # digits: long runs, separators, signs
            out.append(
                "".join(
                    rng.choice(["", " ", ",", ".", "-", "+", "e"]) + str(rng.randint(0, 10 ** rng.randint(1, 30)))
                    for _ in range(rng.randint(1, 6))
                )
            )
    return out


@pytest.mark.parametrize("engine", tokenizer.ENGINES)
def test_engines_give_encode_ordinarys_ids_on_random_strings(engine):
    enc = tokenizer.get_encoding()
    texts = _random_strings(random.Random(23), 3000) + list(tokenizer.TRICKY)
    ids, offsets = tokenizer.encode_batch(texts, engine)
    assert len(offsets) == len(texts) + 1 and ids.dtype == np.uint32
    for i, t in enumerate(texts):
        assert ids[offsets[i] : offsets[i + 1]].tolist() == enc.encode_ordinary(t), repr(t)


@pytest.mark.slow  # ~4 s: tiktoken's own BPE on a 1 MB random word (the oracle side)
def test_gigatoken_on_a_1mb_word_and_the_special_tokens_text():
    engine = "gigatoken"
    enc = tokenizer.get_encoding()
    rng = random.Random(1)
    long_words = [
        "a" * (1 << 20),
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(1 << 20)),
        "é" * 300_000 + "x",
    ]
    special = [
        "<|endoftext|>",
        "a<|endoftext|>b",
        "hello <|endoftext|> world",
        "<|endoftext|><|endoftext|>",
        "<|endoftext",
        "<|startoftext|>",
    ]
    ids, offsets = tokenizer.encode_batch(long_words + special, engine)
    for i, t in enumerate(long_words + special):
        assert ids[offsets[i] : offsets[i + 1]].tolist() == enc.encode_ordinary(t), t[:30]
    assert tokenizer.EOT not in ids.tolist()  # the text <|endoftext|> is never the EOT id


@pytest.mark.parametrize("engine", tokenizer.ENGINES)
def test_lone_surrogates_are_repaired_as_encode_ordinary_does(engine):
    """A Python str may hold lone surrogates (parquet text cannot: it is valid UTF-8, and
    inputs.strings refuses what is not). encode_ordinary repairs them (U+FFFD, or a pair joined);
    gigatoken alone raises TypeError; the engines give encode_ordinary's ids."""
    enc = tokenizer.get_encoding()
    texts = ["a\ud800b", "\udfff", "x\ud83d", "\ud83d\ude00 pair", "fine"]
    with pytest.raises(TypeError):  # the bare library refuses such a str: the repair is ours
        tokenizer.gigatoken_engine().tok.encode_batch(texts[:1], parallel=False)
    ids, offsets = tokenizer.encode_batch(texts, engine)
    for i, t in enumerate(texts):
        assert ids[offsets[i] : offsets[i + 1]].tolist() == enc.encode_ordinary(t), repr(t)
    assert ids[offsets[0] : offsets[1]].tolist() == enc.encode_ordinary("a\ufffdb")


@pytest.fixture
def fresh_engine():
    """A test that builds its own gigatoken engine leaves none behind, passed or failed."""
    tokenizer.forget_engine()
    yield
    tokenizer.forget_engine()


def test_a_gigatoken_that_disagrees_with_tiktoken_is_refused(monkeypatch, fresh_engine):
    """The self-check can fail: a .tiktoken file with two ranks swapped builds a real gigatoken
    tokenizer whose ids differ, and the engine refuses to start."""
    real = tokenizer.write_tiktoken_file

    def swapped(path):
        real(path)
        lines = Path(path).read_bytes().split(b"\n")
        a, b = lines[995].split(b" "), lines[1000].split(b" ")  # " world" (995) and another token trade ranks
        lines[995], lines[1000] = b[0] + b" " + a[1], a[0] + b" " + b[1]
        Path(path).write_bytes(b"\n".join(lines))

    monkeypatch.setattr(tokenizer, "write_tiktoken_file", swapped)
    with pytest.raises(
        tokenizer.EngineMismatchError, match="other GPT-2 ids than tiktoken.*--tokenizer-engine tiktoken"
    ):
        tokenizer.check_engine("gigatoken")


def test_gigatoken_cache_is_reset_when_memory_grows_and_ids_stay_exact(monkeypatch, fresh_engine):
    enc = tokenizer.get_encoding()
    monkeypatch.setattr(tokenizer, "CACHE_RESET_BYTES", 4 << 20)
    monkeypatch.setattr(tokenizer, "CACHE_CHECK_BYTES", 512 << 10)
    g = tokenizer.gigatoken_engine()
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for _ in range(4):  # ~400K distinct random words: the cache keeps each one (~10 MB unless reset)
        texts = [" ".join("".join(rng.choices(letters, k=rng.randint(4, 12))) for _ in range(100)) for _ in range(1000)]
        ids, offsets = tokenizer.encode_batch(texts)
    assert g.resets >= 1 and tokenizer.gigatoken_engine() is g
    for i in (0, 500, 999):  # after the resets, still encode_ordinary's ids
        assert ids[offsets[i] : offsets[i + 1]].tolist() == enc.encode_ordinary(texts[i])


def test_unknown_engine_is_one_clear_error():
    from fwpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="--tokenizer-engine 'hf' is not one of gigatoken, tiktoken"):
        tokenizer.check_engine("hf")
