"""Inputs that live elsewhere: `https://`, `s3://` and `hf://` parquet read through fsspec.

Nothing here downloads a whole file unless asked. A parquet file is read through `RangeFile`,
a seekable file object that pyarrow reads like a local one, backed by byte-range requests:

- the footer comes from one request for the file's last 64 KiB (more if the footer is larger),
  kept per URL so inspecting, estimating and streaming one file fetch it once;
- `--estimate` prefetches exactly the column chunks it reads (FineWeb's `token_count`: a few KB
  per 1,000-row row group), all in one concurrent batch;
- streaming prepare fetches one whole row group per request (FineWeb: ~1,000 rows, a few MB,
  so memory stays a few row groups), in file order, hashing the bytes as they pass: a file read
  from its first row group to its end gets its sha256 without a second read.

Transient failures (connection reset or dropped mid-body, timeout, HTTP 408/429/5xx) are retried
with exponential backoff, each retry logged as a warning with its count; a permanent one (404,
403, ...) is one error naming the URL. URLs are stripped of `user:password@` and query strings
before they are logged or recorded; tokens come from the environment (HF_TOKEN, AWS_*).

A source's identity is its URL, its size and its revision: the HTTP ETag, the S3 version id (or
ETag), or the Hub commit the path resolved to (reads are pinned to that commit).
"""

from __future__ import annotations

import bisect
import collections
import hashlib
import io
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fwpipe.errors import DependencyError, InputNotFoundError, OutputError, RemoteError

log = logging.getLogger(__name__)

SCHEMES = ("https", "http", "s3", "hf")
INSTALL_HINT = "pip install 'fwpipe[remote]'"
PIECES_BYTES = 64 << 20  # row groups held while streaming: a 1,024-row batch spans 2-3 of FineWeb's (~2 MB each)
TAIL_BYTES = 64 << 10  # pyarrow's own first footer read; a 2 GB FineWeb file's footer is larger
MAX_RETRIES = 6
RETRY_BASE_S = 0.5  # waits 0.5, 1, 2, 4, 8, 16 s: about half a minute before giving up
READ_TIMEOUT_S = 60  # a server silent this long mid-response is a transient failure, retried
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_url(spec: str) -> bool:
    """True for `scheme://...` with a scheme fwpipe reads."""
    head, sep, _ = str(spec).partition("://")
    return bool(sep) and head.lower() in SCHEMES


def public_url(url: str) -> str:
    """The URL without `user:password@`, query string or fragment: safe to log and record."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# ------------------------------------------------------------------------ accounting


@dataclass
class Stats:
    """What this process fetched: bytes, requests and retries (all threads)."""

    fetched_bytes: int = 0
    requests: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, nbytes: int = 0, requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.fetched_bytes += nbytes
            self.requests += requests
            self.retries += retries

    def snapshot(self) -> dict:
        with self._lock:
            return {"fetched_bytes": self.fetched_bytes, "requests": self.requests, "retries": self.retries}


STATS = Stats()


def since(before: dict) -> dict:
    """STATS minus an earlier snapshot."""
    now = STATS.snapshot()
    return {k: now[k] - before[k] for k in now}


# ------------------------------------------------------------------------ filesystems

_fs_cache: dict[tuple, object] = {}
_fs_lock = threading.Lock()
# a forked worker (prepare's process pool) makes its own: fsspec's async filesystems refuse to
# run in a child ("This class is not fork-safe"), and the parent may have held the lock
os.register_at_fork(after_in_child=lambda: (_fs_cache.clear(), globals().update(_fs_lock=threading.Lock())))


def filesystem(url: str):
    """The fsspec filesystem for `url`'s scheme (one per scheme and endpoint)."""
    scheme = url.partition("://")[0].lower()
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") if scheme == "s3" else None
    hf_endpoint = os.environ.get("HF_ENDPOINT") if scheme == "hf" else None
    key = (scheme, endpoint, hf_endpoint, READ_TIMEOUT_S)
    with _fs_lock:
        if key not in _fs_cache:
            _fs_cache[key] = _make_fs(scheme, endpoint, hf_endpoint, url)
        return _fs_cache[key]


def _make_fs(scheme: str, endpoint: str | None, hf_endpoint: str | None, url: str):
    try:
        if scheme in ("http", "https"):
            import aiohttp
            from fsspec.implementations.http import HTTPFileSystem

            # sock_read: a server that stops sending mid-body is a transient failure, retried
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=READ_TIMEOUT_S)
            return HTTPFileSystem(client_kwargs={"timeout": timeout}, skip_instance_cache=True)
        if scheme == "s3":
            import s3fs

            # AWS_ENDPOINT_URL (the variable botocore itself honours) points at a non-AWS S3
            # such as MinIO, R2 or a local test server; credentials come from the usual AWS_*.
            kwargs = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
            return s3fs.S3FileSystem(skip_instance_cache=True, **kwargs)
        from huggingface_hub import HfFileSystem

        # the token is read by huggingface_hub (HF_TOKEN or `huggingface-cli login`), never here
        return HfFileSystem(endpoint=hf_endpoint, skip_instance_cache=True)
    except ImportError as e:
        raise DependencyError(f"{public_url(url)}: reading {scheme}:// URLs needs {e.name or 'fsspec'}", INSTALL_HINT) from e


def _fs_path(url: str) -> str:
    """The path the filesystem expects: the whole URL over HTTP, no scheme for s3 and hf."""
    scheme, _, rest = url.partition("://")
    return url if scheme.lower() in ("http", "https") else rest


def _url(scheme: str, path: str) -> str:
    return path if "://" in path else f"{scheme}://{path}"


# ------------------------------------------------------------------------ errors and retries


def _status(e: BaseException) -> int | None:
    for attr in ("status", "status_code"):
        v = getattr(e, attr, None)
        if isinstance(v, int):
            return v
    resp = getattr(e, "response", None)
    v = getattr(resp, "status_code", None)
    if isinstance(v, int):
        return v
    if isinstance(resp, dict):  # botocore ClientError
        return resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


_TRANSIENT_MODULES = ("aiohttp", "httpx", "httpcore", "requests", "urllib3", "botocore", "aiobotocore", "fsspec", "s3fs", "huggingface_hub")


def _transient(e: BaseException) -> bool:
    """Network trouble worth another try; a bug (TypeError, ...) is not and surfaces as itself."""
    if isinstance(e, (OSError, TimeoutError, ConnectionError)):
        return True
    return any(type(e).__module__.startswith(m) for m in _TRANSIENT_MODULES)


def _permanent(e: BaseException) -> bool:
    st = _status(e)
    if st is not None:
        return st not in TRANSIENT_STATUS
    if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, ValueError)):
        return True
    name = type(e).__name__
    return name in ("RepositoryNotFoundError", "EntryNotFoundError", "RevisionNotFoundError", "GatedRepoError", "NoCredentialsError")


def _raise_permanent(e: BaseException, public: str) -> None:
    st = _status(e)
    if isinstance(e, FileNotFoundError) or st == 404 or type(e).__name__ in ("RepositoryNotFoundError", "EntryNotFoundError"):
        raise InputNotFoundError(f"{public}: not found (HTTP 404)", "check the URL (and the revision); a private Hub repo also needs HF_TOKEN") from None
    if isinstance(e, PermissionError) or st in (401, 403) or type(e).__name__ in ("GatedRepoError", "NoCredentialsError"):
        raise RemoteError(f"{public}: access denied (HTTP {st or 403})",
                          "set HF_TOKEN (or run huggingface-cli login) for the Hub, AWS credentials for S3, and check the URL") from None  # fmt: skip
    raise RemoteError(f"{public}: cannot be read ({_why(e)})", "check the URL") from None


def _why(e: BaseException) -> str:
    """A short reason that cannot carry a credential (exception text may hold the full URL)."""
    st = _status(e)
    return f"HTTP {st}" if st is not None else type(e).__name__


def retrying(fn, public: str, what: str):
    """fn() with up to MAX_RETRIES retries of transient failures; permanent ones raise at once."""
    for attempt in range(MAX_RETRIES + 1):
        try:
            return fn()
        except (RemoteError, InputNotFoundError, DependencyError):
            raise
        except Exception as e:  # noqa: BLE001 - fsspec backends raise many types; classified here
            if _permanent(e):
                _raise_permanent(e, public)
            if not _transient(e):
                raise
            if attempt == MAX_RETRIES:
                raise RemoteError(f"{public}: {what} failed {MAX_RETRIES + 1} times ({_why(e)})",
                                  "the server or network is failing; run the same command again later: it resumes") from None  # fmt: skip
            delay = RETRY_BASE_S * 2**attempt
            STATS.add(retries=1)
            log.warning("%s: %s failed (%s); retry %d of %d in %.1f s", public, what, _why(e), attempt + 1, MAX_RETRIES, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------ finding and stat


@dataclass(frozen=True)
class RemoteInfo:
    """One remote file: `url` opens it (may hold credentials), `public` names it."""

    url: str = field(repr=False)
    public: str
    size: int
    revision: str  # ETag, S3 version id, or Hub commit
    sha256: str = ""  # where the server states it (Hub LFS files)


def expand(spec: str) -> list[str]:
    """The URLs `spec` names: itself, or a glob's sorted matches (s3 and hf list; https cannot)."""
    public = public_url(spec)
    scheme = spec.partition("://")[0].lower()
    if not any(c in spec.partition("://")[2].split("?")[0] for c in "*?["):
        return [spec]
    if scheme in ("http", "https"):
        raise InputNotFoundError(f"{public}: HTTP servers cannot be listed, so a glob cannot be expanded", "pass each file's URL")
    fs = filesystem(spec)
    matches = retrying(lambda: fs.glob(_fs_path(spec), detail=True), public, "listing")
    files = sorted(_url(scheme, p) for p, d in matches.items() if d.get("type") == "file")
    if not files:
        raise InputNotFoundError(f"{public}: the glob matches no files", "check the pattern, and quote it so the shell does not expand it")
    return files


_info_cache: dict[str, RemoteInfo] = {}
_commits: dict[tuple, str] = {}  # (endpoint, repo type, repo, branch) -> commit


def stat(url: str) -> RemoteInfo:
    """Size and revision of one remote file (cached per URL for this process)."""
    if url in _info_cache:
        return _info_cache[url]
    public = public_url(url)
    scheme = url.partition("://")[0].lower()
    fs = filesystem(url)
    path = _fs_path(url)
    if scheme == "hf":
        path = _pin_hf(fs, path, public)
    d = retrying(lambda: _head(fs, path) if scheme in ("http", "https") else fs.info(path), public, "stat")
    if d.get("type", "file") != "file":
        raise InputNotFoundError(f"{public}: is a directory, not a file", "pass a parquet file or a glob such as .../*.parquet")
    size = d.get("size")
    if size is None:
        raise RemoteError(f"{public}: the server does not say the file's size", "a server must answer HEAD with Content-Length")
    sha = ""
    if scheme == "hf":
        revision = path.split("@", 1)[1].split("/", 1)[0]
        sha = (d.get("lfs") or {}).get("sha256", "")  # the Hub states an LFS file's sha256
    elif scheme == "s3":
        revision = d.get("VersionId") or str(d.get("ETag", "")).strip('"')
    else:
        revision = str(d.get("ETag", "")).strip()
    info = RemoteInfo(url=_url(scheme, path), public=public, size=int(size), revision=revision, sha256=sha)
    _info_cache[url] = info
    return info


def _head(fs, url: str) -> dict:
    """HEAD, raising the server's status (fs.info turns every failure, 503 too, into "not found")."""
    from fsspec.asyn import sync
    from fsspec.implementations.http import _file_info

    async def head() -> dict:
        session = await fs.set_session()
        return await _file_info(fs.encode_url(url), session=session, size_policy="head", **fs.kwargs)

    d = sync(fs.loop, head)
    STATS.add(requests=1)
    return d


def _pin_hf(fs, path: str, public: str) -> str:
    """`datasets/org/name[@rev]/file` -> `datasets/org/name@<commit>/file`, so every read is of one commit."""
    from huggingface_hub import HfApi

    r = retrying(lambda: fs.resolve_path(path), public, "resolve")
    key = (fs.endpoint, r.repo_type, r.repo_id, r.revision)
    if key not in _commits:  # one question per repo and branch per command, not one per file
        api = HfApi(endpoint=fs.endpoint)
        _commits[key] = retrying(lambda: api.repo_info(r.repo_id, repo_type=r.repo_type, revision=r.revision).sha, public, "revision")
    commit = _commits[key]
    prefix = {"dataset": "datasets/", "space": "spaces/"}.get(r.repo_type, "")
    return f"{prefix}{r.repo_id}@{commit}/{r.path_in_repo}"


# ------------------------------------------------------------------------ reading


_tail_cache: dict[str, tuple[int, bytes]] = {}


def forget() -> None:
    """Drop what this process learnt about remote files, so the next command looks afresh."""
    _info_cache.clear()
    _tail_cache.clear()
    _commits.clear()
    with _fs_lock:
        for fs in _fs_cache.values():
            fs.invalidate_cache()  # s3fs and HfFileSystem keep listings


def _fetch(info: RemoteInfo, start: int, end: int) -> bytes:
    fs = filesystem(info.url)
    path = _fs_path(info.url)
    scheme = info.url.partition("://")[0].lower()
    kwargs = {}
    if scheme in ("http", "https") and info.revision and not info.revision.startswith("W/"):
        kwargs["headers"] = {"If-Match": info.revision}  # a file replaced mid-run answers 412 (strong ETags only)

    def once() -> bytes:
        data = _cat_hf(fs, path, info.size, start, end) if scheme == "hf" else fs.cat_file(path, start=start, end=end, **kwargs)
        STATS.add(len(data), requests=1)
        if len(data) != end - start:
            raise ConnectionError(f"short read: {len(data)} of {end - start} bytes")  # retried
        return data

    return retrying(once, info.public, f"bytes {start:,}-{end:,}")


def _cat_hf(fs, path: str, size: int, start: int, end: int) -> bytes:
    """Exactly [start, end) through HfFileSystem's file: its default cache would read 5 MB ahead."""
    with fs.open(path, "rb", cache_type="none", size=size) as f:
        f.seek(start)
        return f.read(end - start)


def _changed(info: RemoteInfo) -> RemoteError:
    return RemoteError(f"{info.public}: changed on the server while being read (revision {info.revision[:20]} is gone)",
                       "run the same command again with --overwrite to prepare the new file")  # fmt: skip


def tail(info: RemoteInfo) -> tuple[int, bytes]:
    """(start, bytes) of the file's end, holding the whole parquet footer."""
    if info.url in _tail_cache:
        return _tail_cache[info.url]
    n = min(info.size, TAIL_BYTES)
    data = _guard(info, lambda: _fetch(info, info.size - n, info.size))
    if len(data) >= 8 and data[-4:] == b"PAR1":
        footer = int.from_bytes(data[-8:-4], "little") + 8
        if footer > n and footer <= info.size:
            data = _guard(info, lambda: _fetch(info, info.size - footer, info.size - n)) + data
    out = (info.size - len(data), data)
    _tail_cache[info.url] = out
    return out


def _guard(info: RemoteInfo, fn):
    try:
        return fn()
    except RemoteError as e:
        if "HTTP 412" in e.message:
            raise _changed(info) from None
        raise


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file for pyarrow, backed by range requests.

    After `stream(blocks)` (ascending offsets that cut the file before its footer into pieces,
    one per row group), a read outside the held piece fetches its whole piece, and the pieces
    fetched in order feed a sha256 of the file. Before it, reads fetch exactly what is asked,
    unless `prefetch` fetched it before.
    """

    def __init__(self, info: RemoteInfo):
        super().__init__()
        self.info = info
        self.size = info.size
        self._pos = 0
        self._tail_start, self._tail = tail(info)
        self._blocks: list[int] | None = None
        self._pieces: collections.OrderedDict[int, bytes] = collections.OrderedDict()  # start -> bytes, oldest first
        self._sparse: list[tuple[int, bytes]] = []
        self._hash = None
        self._hashed_to = 0
        self.sha256: str | None = None  # set once every byte has passed in order

    def stream(self, blocks: list[int]) -> None:
        """From now on fetch whole pieces cut at `blocks` (row-group starts), hashing them in order."""
        # the first row group starts after the 4-byte magic: its piece starts at 0, for the hash
        self._blocks = sorted({0, *(b for b in blocks[1:] if 0 < b < self._tail_start)})
        self._hash = hashlib.sha256()
        if self._tail_start == 0:  # the footer read held the whole file
            self._hash.update(self._tail)
            self.sha256 = self._hash.hexdigest()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b) -> int:
        data = self.read_at(self._pos, len(b))
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, n: int = -1) -> bytes:
        n = self.size - self._pos if n is None or n < 0 else n
        data = self.read_at(self._pos, n)
        self._pos += len(data)
        return data

    def read_at(self, pos: int, n: int) -> bytes:
        n = max(0, min(n, self.size - pos))
        if n == 0:
            return b""
        if pos >= self._tail_start:
            return self._tail[pos - self._tail_start : pos - self._tail_start + n]
        if pos + n > self._tail_start:  # straddles the footer read
            return self.read_at(pos, self._tail_start - pos) + self.read_at(self._tail_start, pos + n - self._tail_start)
        i = bisect.bisect_right(self._sparse, pos, key=lambda s: s[0]) - 1
        if i >= 0:
            s, data = self._sparse[i]
            if pos + n <= s + len(data):
                return data[pos - s : pos - s + n]
        if self._blocks is None:
            return _guard(self.info, lambda: _fetch(self.info, pos, pos + n))
        k = bisect.bisect_right(self._blocks, pos) - 1
        lo = self._blocks[k]
        hi = self._blocks[k + 1] if k + 1 < len(self._blocks) else self._tail_start
        if pos + n > hi:  # a read across row groups (not pyarrow's way): fetch it as asked
            return _guard(self.info, lambda: _fetch(self.info, pos, pos + n))
        piece = self._pieces.get(lo)
        if piece is None:
            piece = self._pieces[lo] = _guard(self.info, lambda: _fetch(self.info, lo, hi))
            while len(self._pieces) > 1 and sum(map(len, self._pieces.values())) > PIECES_BYTES:
                self._pieces.popitem(last=False)
            if self._hash is not None and lo == self._hashed_to:
                self._hash.update(piece)
                self._hashed_to = hi
                if hi == self._tail_start:
                    self._hash.update(self._tail)
                    self.sha256 = self._hash.hexdigest()
        return piece[pos - lo : pos - lo + n]

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Fetch these (start, end) ranges now, concurrently where the filesystem can."""
        ranges = sorted((s, e) for s, e in ranges if e > s and s < self._tail_start)
        if not ranges:
            return
        fs = filesystem(self.info.url)
        path = _fs_path(self.info.url)
        if self.info.url.startswith("hf://"):  # HfFileSystem has no concurrent cat_ranges: threads
            with ThreadPoolExecutor(max_workers=8) as pool:
                got = list(pool.map(lambda r: _fetch(self.info, *r), ranges))
            self._sparse = sorted(self._sparse + list(zip((s for s, _ in ranges), got)), key=lambda t: t[0])
            return

        def once() -> list[bytes]:
            got = fs.cat_ranges([path] * len(ranges), [s for s, _ in ranges], [e for _, e in ranges], on_error="raise")
            for (s, e), data in zip(ranges, got):
                if isinstance(data, BaseException):
                    raise data
                STATS.add(len(data), requests=1)
                if len(data) != e - s:
                    raise ConnectionError("short read")
            return got

        got = _guard(self.info, lambda: retrying(once, self.info.public, f"{len(ranges)} column chunks"))
        self._sparse = sorted(self._sparse + list(zip((s for s, _ in ranges), got)), key=lambda t: t[0])


def row_group_offsets(md) -> list[int]:
    """Where each row group's bytes begin (its first column chunk, dictionary page included)."""
    out = []
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        out.append(min(chunk_range(rg.column(j))[0] for j in range(rg.num_columns)) if rg.num_columns else 0)
    return out


def chunk_range(col) -> tuple[int, int]:
    """(start, end) of one column chunk, as pyarrow reads it."""
    start = col.data_page_offset
    if col.has_dictionary_page and col.dictionary_page_offset and col.dictionary_page_offset < start:
        start = col.dictionary_page_offset
    return start, start + col.total_compressed_size


# ------------------------------------------------------------------------ cache directory

_cache_dir: Path | None = None


def set_cache_dir(path: str | Path | None) -> None:
    """Keep whole copies of remote files in `path` (None: stream, keep nothing)."""
    global _cache_dir
    _cache_dir = Path(path) if path is not None else None


def cached_copy(info: RemoteInfo, *, download: bool) -> Path | None:
    """With a cache directory: the local copy of `info` if there is one, else (with `download`)
    a new one, fetched whole in 16 MB requests and checked against the server's sha256."""
    if _cache_dir is None:
        return None
    key = hashlib.sha256(f"{info.public}\0{info.revision}\0{info.size}".encode()).hexdigest()[:24]
    dest = _cache_dir / f"{key}-{Path(urlsplit(info.public).path).name or 'file'}"
    if dest.is_file() and dest.stat().st_size == info.size:
        return dest
    if not download:
        return None
    from fwpipe.atomic import atomic_file

    try:
        _cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create --cache-dir {_cache_dir}: {e.strerror or e}", "choose another --cache-dir") from e
    step = 16 << 20
    h = hashlib.sha256()
    with atomic_file(dest, hint="free some space or choose another --cache-dir") as f:
        for lo in range(0, info.size, step):
            data = _guard(info, lambda lo=lo: _fetch(info, lo, min(info.size, lo + step)))
            h.update(data)
            f.write(data)
        if info.sha256 and h.hexdigest() != info.sha256:  # raised inside: the copy never appears
            raise RemoteError(f"{info.public}: the downloaded bytes do not match the server's sha256", "run the same command again")
    log.info("cached %s as %s", info.public, dest)
    return dest
