"""GPT-2 BPE, built offline from the files the package carries; two engines, one set of ids.

tiktoken's `encode_ordinary` defines the ids. prepare and estimate tokenize with an engine:
"gigatoken" (the default; Rust BPE, ~2-3x tiktoken's tokens per CPU-second on FineWeb) or
"tiktoken" (the reference, `--tokenizer-engine tiktoken`). gigatoken is built from a `.tiktoken`
file written from the same checked merges, with the GPT-2 pre-tokenizer and *no* special tokens,
so a literal "<|endoftext|>" in a document is plain text, exactly as in `encode_ordinary`. Each
process checks once, before its first gigatoken encode, that both engines give the same ids on
TRICKY strings, and refuses with one line if not; the tests compare them on much more.

The merge file is checked against the sha256 that tiktoken's own `gpt2` encoding expects, so
the ids are exactly `tiktoken.get_encoding("gpt2")`'s, with no network. tiktoken also reads
encoder.json, only to check that it agrees with the merges: both files are pinned by hash, so
that agreement is a fact about two fixed files, checked once by tests/test_tokenizer.py rather
than on every start (parsing the 1 MB JSON cost ~0.15 s of a ~0.2 s build).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import tiktoken

from fwpipe.errors import DependencyError, InputFormatError

log = logging.getLogger(__name__)

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
    enc = tiktoken.Encoding(
        name=NAME, explicit_n_vocab=VOCAB_SIZE, pat_str=_PAT, mergeable_ranks=ranks, special_tokens={EOT_TEXT: EOT}
    )
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


# ------------------------------------------------------------------------------------ engines

Engine = Literal["gigatoken", "tiktoken"]
ENGINES: tuple[str, ...] = ("gigatoken", "tiktoken")
DEFAULT_ENGINE: Engine = "gigatoken"
# Strings where fast BPE tokenizers have gone wrong (contractions after whitespace, whitespace
# runs before a word or at the end, digit runs, mixed scripts, the special token's text, a long
# word), checked against tiktoken once per process before gigatoken tokenizes anything.
TRICKY = (
    "Hello world",
    "\t's",
    " 's 't 're 've 'm 'll 'd",
    "don't I'LL we'Re",
    "a  b   c    d\n\n\n e \t\t\r\n f   ",
    "   ",
    "\n",
    " \n \n",
    "x   ",
    "12345678901234567890 3.14159 1,000,000 ٣٤٥ ½",
    "héllo wörld naïve café",
    "日本語のテキスト 中文 한국어",
    "emoji 😀👍🏽 🇺🇸 zwj 👩‍👩‍👧",
    "a<|endoftext|>b",
    "hello <|endoftext|> world",
    "<|endoftext|>",
    "\u00a0nbsp\u2009thin\u3000ideographic",
    "x" * 5000,
    "word" * 700 + " tail",
    "\r\n\r\n",
    "?!... --- ***",
    "'s's's'",
)
# gigatoken 0.10.0 keeps every distinct piece of text it has encoded in a cache that never
# shrinks (bounded upstream only after 0.10.0): ~7 bytes of memory per byte of text made of
# distinct random words, far less on real text. A process drops its tokenizer and builds a fresh
# one (~0.1-0.3 s) once its memory has grown this much since the last build.
CACHE_RESET_BYTES = 512 << 20
CACHE_CHECK_BYTES = 32 << 20  # text encoded between two looks at the memory (/proc, ~10 us)


class EngineMismatchError(DependencyError):
    """The fast engine disagrees with tiktoken on the self-check."""


def check_engine(engine: str) -> None:
    """Raise unless `engine` is known and, for gigatoken, installed and exact on TRICKY (once per process)."""
    from fwpipe.errors import ConfigError

    if engine not in ENGINES:
        raise ConfigError(
            f"--tokenizer-engine {engine!r} is not one of {', '.join(ENGINES)}", "use gigatoken (default) or tiktoken"
        )
    if engine == "gigatoken":
        GigatokenEngine.get()


def gigatoken_engine() -> GigatokenEngine:
    """This process's gigatoken engine, built and self-checked on first use."""
    return GigatokenEngine.get()


def forget_engine() -> None:
    """Drop this process's gigatoken engine: the next use builds and checks a fresh one."""
    GigatokenEngine._one = None


def encode_batch(
    texts: list[str] | pa.Array, engine: str = DEFAULT_ENGINE, *, threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of each text as `encode_ordinary` gives them: (ids uint32, offsets int64 (n+1,)).

    texts may be a pa.string() array with no nulls (as parquet gives it): gigatoken then reads
    its UTF-8 buffer in place, with no Python str a text.

    Text i's ids are ids[offsets[i]:offsets[i+1]]. threads > 1 encodes on that many threads of
    this process (gigatoken: its own pool, sized to the cores at first use); prepare's workers
    pass 1, so CPU use stays within --workers.
    """
    if engine == "gigatoken":
        g = GigatokenEngine.get()
        return g.encode(texts, parallel=threads > 1 and not g.forked)
    check_engine(engine)
    if isinstance(texts, pa.Array):
        texts = texts.to_pylist()
    enc = get_encoding()
    docs = (
        enc.encode_ordinary_batch(texts, num_threads=threads)
        if threads > 1
        else [enc.encode_ordinary(t) for t in texts]
    )
    offsets = np.zeros(len(texts) + 1, np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    return np.fromiter((i for d in docs for i in d), np.uint32, int(offsets[-1])), offsets


def _awkward_strings(texts: pa.Array):
    """A pa.string() array with no nulls as an awkward array of strings over its UTF-8 buffer (not copied)."""
    import awkward as ak  # gigatoken's own dependency

    assert texts.null_count == 0 and pa.types.is_string(texts.type), "texts: pa.string(), no nulls"
    offsets = np.frombuffer(texts.buffers()[1], np.int32)[texts.offset : texts.offset + len(texts) + 1]
    data = np.frombuffer(texts.buffers()[2], np.uint8) if texts.buffers()[2] is not None else np.zeros(0, np.uint8)
    chars = ak.contents.NumpyArray(data, parameters={"__array__": "char"})
    # int64 offsets: gigatoken reads no other kind (an int32 copy is 4 bytes a text)
    return ak.Array(
        ak.contents.ListOffsetArray(
            ak.index.Index64(offsets.astype(np.int64)), chars, parameters={"__array__": "string"}
        )
    )


def _valid_unicode(text: str) -> str:
    """What encode_ordinary does with a str holding lone surrogates (never from parquet, whose
    text is valid UTF-8): a UTF-16 round trip that pairs what pairs and replaces the rest by
    U+FFFD. gigatoken refuses such a str, so the engine applies the same repair first."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def write_tiktoken_file(path: str) -> None:
    """Write GPT-2's ranks, from the checked vocab.bpe, as a .tiktoken file (base64 token, space, rank)."""
    ranks = get_encoding()._mergeable_ranks
    with open(path, "wb") as f:
        f.write(b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in sorted(ranks.items(), key=lambda kv: kv[1])))


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None  # not Linux: reset by text encoded instead


class GigatokenEngine:
    """gigatoken's GPT-2 tokenizer for this process: built from a temporary .tiktoken file,
    self-checked once, rebuilt whenever its cache has grown CACHE_RESET_BYTES."""

    _one: GigatokenEngine | None = None

    @classmethod
    def get(cls) -> GigatokenEngine:
        if cls._one is None:
            cls._one = cls()
        return cls._one

    @property
    def forked(self) -> bool:
        """Whether this process is a fork of the one that built the tokenizer (a LocalExecutor
        worker): it keeps the built, checked tokenizer (~0.2 s a worker saved) and encodes on
        the calling thread only, as gigatoken's pool threads do not survive a fork."""
        return self._pid != os.getpid()

    def __init__(self):
        try:
            import gigatoken
        except ImportError as e:
            raise DependencyError(
                "the gigatoken tokenizer engine is not installed",
                "pip install gigatoken==0.10.0, or pass --tokenizer-engine tiktoken",
            ) from e
        self._gigatoken = gigatoken
        self._pid = os.getpid()
        self.resets = 0
        self._build()
        self._self_check()

    def _build(self) -> None:
        fd, path = tempfile.mkstemp(
            prefix="fwpipe-gpt2-", suffix=".tiktoken"
        )  # private to this process: no one sees it half-written
        try:
            os.close(fd)
            write_tiktoken_file(path)
            self.tok = self._gigatoken.Tokenizer.from_tiktoken(path, pretokenizer="gpt2", special_tokens={})
        except (RuntimeError, ValueError, OSError) as e:  # gigatoken's loader: one line, not a Rust backtrace
            raise EngineMismatchError(
                f"gigatoken could not load GPT-2's ranks: {str(e).splitlines()[0]}",
                "pass --tokenizer-engine tiktoken, or pip install gigatoken==0.10.0",
            ) from e
        finally:
            os.unlink(path)
        self._since_check = 0
        self._since_build = 0
        self._base_rss = _rss_bytes()

    def _self_check(self) -> None:
        enc = get_encoding()
        ids, offsets = self.encode(list(TRICKY), parallel=False)
        for i, t in enumerate(TRICKY):
            if ids[offsets[i] : offsets[i + 1]].tolist() != enc.encode_ordinary(t):
                from importlib.metadata import version

                raise EngineMismatchError(
                    f"gigatoken {version('gigatoken')} gives other GPT-2 ids than tiktoken for {t[:40]!r}",
                    "pass --tokenizer-engine tiktoken, or pip install gigatoken==0.10.0 (the version fwpipe checks)",
                )

    def encode(self, texts: list[str] | pa.Array, *, parallel: bool) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(texts, pa.Array):  # valid UTF-8 (parquet's reader checked it): no surrogates to repair
            return self._counted(self.tok.encode_batch(_awkward_strings(texts), parallel=parallel))
        try:
            out = self.tok.encode_batch(texts, parallel=parallel)
        except TypeError:  # a str with lone surrogates (see _valid_unicode)
            out = self.tok.encode_batch([_valid_unicode(t) for t in texts], parallel=parallel)
        return self._counted(out)

    def _counted(self, out) -> tuple[np.ndarray, np.ndarray]:
        layout = out.layout  # ListOffsetArray: int64 offsets into one uint32 buffer, no copy
        offsets, ids = layout.offsets.data, layout.content.data
        if offsets[0] != 0:  # not seen; a view into a larger buffer would start elsewhere
            ids, offsets = ids[offsets[0] : offsets[-1]], offsets - offsets[0]
        self._since_check += int(offsets[-1])  # tokens, ~4 bytes each: a cheap proxy for text
        if self._since_check * 4 >= CACHE_CHECK_BYTES:
            self._maybe_reset()
        return ids, offsets

    def _maybe_reset(self) -> None:
        self._since_build += self._since_check
        self._since_check = 0
        rss = _rss_bytes()
        grown = (
            rss - self._base_rss if rss is not None and self._base_rss is not None else self._since_build * 4 // 2
        )  # ~2 B/byte
        if grown >= CACHE_RESET_BYTES:
            log.debug("gigatoken: memory grew %d MiB since its tokenizer was built; building a fresh one", grown >> 20)
            self.tok = None  # frees the cache before the new tokenizer is built
            self.resets += 1
            self._build()
