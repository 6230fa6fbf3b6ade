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

Over HTTP every response is checked against the first (HEAD): the same ETag and Last-Modified
where it gave them, a Content-Range of the bytes asked for in a file of the same size (a strong
ETag also goes in If-Match). A weak ETag or a Last-Modified alone cannot be sent as a condition,
so these checks are what catch a file replaced mid-run. A server that gives neither has no
revision at all: such a file is refused unless --cache-dir is set, and then it is read whole in
one request and that copy, named by its sha256, is the file for the rest of the command. Each
request has an overall deadline (REQUEST_DEADLINE_S), so a server trickling bytes is cut off and
retried; failures no retry can fix (a redirect off HTTP, a TLS handshake with a plain-HTTP
port, a server that ignores Range) fail at once with the reason.
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

from fwpipe.errors import DependencyError, InputFormatError, InputNotFoundError, OutputError, RemoteError

log = logging.getLogger(__name__)

SCHEMES = ("https", "http", "s3", "hf")
INSTALL_HINT = "pip install 'fwpipe[remote]'"
PIECES_BYTES = 64 << 20  # row groups held while streaming: a 1,024-row batch spans 2-3 of FineWeb's (~2 MB each)
TAIL_BYTES = 64 << 10  # pyarrow's own first footer read; a 2 GB FineWeb file's footer is larger
MAX_RETRIES = 6
RETRY_BASE_S = 0.5  # waits 0.5, 1, 2, 4, 8, 16 s: about half a minute before giving up
READ_TIMEOUT_S = 60  # a server silent this long mid-response is a transient failure, retried
# one range request from first to last byte (a row group is a few MB): a server trickling a byte
# every few seconds never trips READ_TIMEOUT_S, so this cuts it off, and the retry is counted
REQUEST_DEADLINE_S = 300
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_url(spec: str) -> bool:
    """True for `scheme://...` with a scheme fwpipe reads."""
    head, sep, _ = str(spec).partition("://")
    return bool(sep) and head.lower() in SCHEMES


def public_url(url: str) -> str:
    """The URL without `user:password@`, query string or fragment: safe to log and record."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host: cut by hand, never echo a password
        scheme, _, rest = url.partition("://")
        netloc, slash, path = rest.partition("/")
        return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path.split('?')[0].split('#')[0]}"
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
        raise DependencyError(
            f"{public_url(url)}: reading {scheme}:// URLs needs {e.name or 'fsspec'}", INSTALL_HINT
        ) from e


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


_TRANSIENT_MODULES = (
    "aiohttp",
    "httpx",
    "httpcore",
    "requests",
    "urllib3",
    "botocore",
    "aiobotocore",
    "fsspec",
    "s3fs",
    "huggingface_hub",
)


def _transient(e: BaseException) -> bool:
    """Network trouble worth another try; a bug (TypeError, ...) is not and surfaces as itself."""
    if isinstance(e, (OSError, TimeoutError, ConnectionError)):
        return True
    return any(type(e).__module__.startswith(m) for m in _TRANSIENT_MODULES)


def _hopeless(e: BaseException) -> str | None:
    """Why a failure that no retry can fix happened (a redirect off HTTP, a TLS handshake with
    a server that does not speak TLS or presents a bad certificate), else None."""
    import re
    import ssl

    names = {c.__name__ for c in type(e).__mro__}
    if names & {"NonHttpUrlClientError", "InvalidUrlClientError", "InvalidURL"}:
        return "redirected to a URL that is not http(s)" if "Redirect" in type(e).__name__ else "not a valid URL"
    if "TooManyRedirects" in names:
        return "too many redirects"
    if "ClientSSLError" in names or isinstance(e, ssl.SSLError):
        m = re.search(r"\[SSL: ([A-Z_]+)\]|(CERTIFICATE_VERIFY_FAILED)", str(e))
        why = (m.group(1) or m.group(2)) if m else type(e).__name__
        return f"the TLS handshake failed ({why}" + (
            "; the port may speak plain HTTP: try http://)" if why == "WRONG_VERSION_NUMBER" else ")"
        )
    return None


def _permanent(e: BaseException) -> bool:
    if _hopeless(e):
        return True
    st = _status(e)
    if st is not None:
        return st not in TRANSIENT_STATUS
    if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, ValueError)):
        return True
    name = type(e).__name__
    return name in (
        "RepositoryNotFoundError",
        "EntryNotFoundError",
        "RevisionNotFoundError",
        "GatedRepoError",
        "NoCredentialsError",
    )


def _raise_permanent(e: BaseException, public: str) -> None:
    if why := _hopeless(e):
        raise RemoteError(f"{public}: {why}", "check the URL; retrying will not help") from None
    st = _status(e)
    if (
        isinstance(e, FileNotFoundError)
        or st == 404
        or type(e).__name__ in ("RepositoryNotFoundError", "EntryNotFoundError")
    ):
        raise InputNotFoundError(
            f"{public}: not found (HTTP 404)",
            "check the URL (and the revision); a private Hub repo also needs HF_TOKEN",
        ) from None
    if (
        isinstance(e, PermissionError)
        or st in (401, 403)
        or type(e).__name__ in ("GatedRepoError", "NoCredentialsError")
    ):
        raise RemoteError(
            f"{public}: access denied (HTTP {st or 403})",
            "set HF_TOKEN (or run huggingface-cli login) for the Hub, AWS credentials for S3, and check the URL",
        ) from None
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
                raise RemoteError(
                    f"{public}: {what} failed {MAX_RETRIES + 1} times ({_why(e)})",
                    "the server or network is failing; run the same command again later: it resumes",
                ) from None
            delay = RETRY_BASE_S * 2**attempt
            STATS.add(retries=1)
            log.warning(
                "%s: %s failed (%s); retry %d of %d in %.1f s", public, what, _why(e), attempt + 1, MAX_RETRIES, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------ finding and stat


@dataclass(frozen=True)
class RemoteInfo:
    """One remote file: `url` opens it (may hold credentials), `public` names it."""

    url: str = field(repr=False)
    public: str
    size: int
    revision: str  # ETag, S3 version id, Hub commit; over HTTP without an ETag "last-modified:<date>", or
    #                "sha256:<hex>" of a --cache-dir copy when the server gives neither
    sha256: str = ""  # where the server states it (Hub LFS files), or of that copy
    etag: str = ""  # HTTP: the first response's ETag and Last-Modified, which every later response must repeat
    modified: str = ""


def expand(spec: str) -> list[str]:
    """The URLs `spec` names: itself, or a glob's sorted matches (s3 and hf list; https cannot)."""
    public = public_url(spec)
    try:
        urlsplit(spec).port  # noqa: B018 - parses host and port, as every later request would
    except ValueError as e:
        raise InputFormatError(
            f"{public}: not a valid URL ({e})", "check the URL (an IPv6 host goes in [brackets], a port is a number)"
        ) from None
    scheme = spec.partition("://")[0].lower()
    if not any(c in spec.partition("://")[2].split("?")[0] for c in "*?["):
        return [spec]
    if scheme in ("http", "https"):
        raise InputNotFoundError(
            f"{public}: HTTP servers cannot be listed, so a glob cannot be expanded", "pass each file's URL"
        )
    fs = filesystem(spec)
    matches = retrying(lambda: fs.glob(_fs_path(spec), detail=True), public, "listing")
    files = sorted(_url(scheme, p) for p, d in matches.items() if d.get("type") == "file")
    if not files:
        raise InputNotFoundError(
            f"{public}: the glob matches no files", "check the pattern, and quote it so the shell does not expand it"
        )
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
        raise InputNotFoundError(
            f"{public}: is a directory, not a file", "pass a parquet file or a glob such as .../*.parquet"
        )
    size = d.get("size")
    if size is None:
        raise RemoteError(
            f"{public}: the server does not say the file's size", "a server must answer HEAD with Content-Length"
        )
    sha = ""
    if scheme == "hf":
        revision = path.split("@", 1)[1].split("/", 1)[0]
        sha = (d.get("lfs") or {}).get("sha256", "")  # the Hub states an LFS file's sha256
    elif scheme == "s3":
        revision = d.get("VersionId") or str(d.get("ETag", "")).strip('"')
    else:
        etag, modified = str(d.get("ETag", "")).strip(), str(d.get("Last-Modified", "")).strip()
        revision = etag or (f"last-modified:{modified}" if modified else "")
        info = RemoteInfo(
            url=_url(scheme, path), public=public, size=int(size), revision=revision, etag=etag, modified=modified
        )
        if not revision:  # nothing would show a replacement mid-read: one whole copy, or nothing
            info = _whole_copy(info)
        _info_cache[url] = info
        return info
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
        _commits[key] = retrying(
            lambda: api.repo_info(r.repo_id, repo_type=r.repo_type, revision=r.revision).sha, public, "revision"
        )
    commit = _commits[key]
    prefix = {"dataset": "datasets/", "space": "spaces/"}.get(r.repo_type, "")
    return f"{prefix}{r.repo_id}@{commit}/{r.path_in_repo}"


# ------------------------------------------------------------------------ reading


_tail_cache: dict[str, tuple[int, bytes]] = {}


def drop_filesystems() -> None:
    """Drop the filesystems made so far: the next URL makes its own (importing its package again)."""
    with _fs_lock:
        _fs_cache.clear()


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
    if scheme in ("http", "https") and info.etag and not info.etag.startswith("W/"):
        kwargs["headers"] = {"If-Match": info.etag}  # a file replaced mid-run answers 412 (strong ETags only)

    def once() -> bytes:
        if scheme in ("http", "https"):
            data = _get_range(fs, info, start, end, kwargs.get("headers", {}))
        else:
            data = (
                _cat_hf(fs, path, info.size, start, end)
                if scheme == "hf"
                else fs.cat_file(path, start=start, end=end, **kwargs)
            )
        STATS.add(len(data), requests=1)
        if len(data) != end - start:
            raise ConnectionError(f"short read: {len(data)} of {end - start} bytes")  # retried
        return data

    return retrying(once, info.public, f"bytes {start:,}-{end:,}")


class RangeIgnored(RemoteError):
    """The server answers a range request with the whole file: with --cache-dir it is read whole."""


def _get_range(fs, info: RemoteInfo, start: int, end: int, headers: dict) -> bytes:
    """GET bytes [start, end) and check the response against the first one (HEAD): the same
    ETag and Last-Modified where that gave them, a Content-Range of these bytes of a file of the
    same size. A weak or missing ETag cannot go in If-Match, so this is what catches a file
    replaced mid-run; each check that fails is a permanent error, never a retry."""
    import asyncio

    from fsspec.asyn import sync

    kw = dict(fs.kwargs)
    hdrs = {**kw.pop("headers", {}), **headers, "Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}

    async def get():
        session = await fs.set_session()
        async with session.get(fs.encode_url(info.url), headers=hdrs, **kw) as r:
            if r.status == 412:
                raise _changed(info)
            r.raise_for_status()
            if r.status != 206 and not (start == 0 and end == info.size):
                return r.status, r.headers.copy(), b""  # the whole file to a range request: not read (it may be GBs)
            return r.status, r.headers.copy(), await r.read()

    async def bounded():
        try:
            return await asyncio.wait_for(get(), REQUEST_DEADLINE_S)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no whole answer within {REQUEST_DEADLINE_S} s") from None

    status, h, body = sync(fs.loop, bounded)
    if status != 206:
        if start == 0 and end == info.size and len(body) == info.size:
            return body  # the whole file asked for, the whole file sent
        raise RangeIgnored(
            f"{info.public}: the server does not honour Range requests (HTTP {status} to bytes {start:,}-{end - 1:,})",
            "pass --cache-dir DIR: fwpipe then reads the file whole, in one request",
        )
    got_etag, got_modified = h.get("ETag", "").strip(), h.get("Last-Modified", "").strip()
    if (info.etag and got_etag != info.etag) or (info.modified and got_modified != info.modified):
        raise _changed(info)
    crange = h.get("Content-Range", "")
    if crange.rpartition("/")[2] != str(info.size):
        if crange.rpartition("/")[2].isdigit():
            raise _changed(info)  # another length: another file
        raise RemoteError(
            f"{info.public}: the server's answer to a range request has no usable Content-Range ({crange[:40]!r})",
            "pass --cache-dir DIR: fwpipe then reads the file whole, in one request",
        )
    if crange.split()[-1].partition("/")[0] != f"{start}-{end - 1}":
        raise RemoteError(
            f"{info.public}: asked for bytes {start}-{end - 1}, the server sent {crange[:40]!r}",
            "pass --cache-dir DIR: fwpipe then reads the file whole, in one request",
        )
    return body


def _whole_copy(info: RemoteInfo) -> RemoteInfo:
    """A file whose server gives neither ETag nor Last-Modified: refused without --cache-dir;
    with it, read whole in one request into the cache, and from then on that copy is the file
    (its sha256 its revision), so no command mixes two versions of it."""
    if _cache_dir is None:
        raise RemoteError(
            f"{info.public}: the server gives no ETag or Last-Modified, so a change while reading it could not be seen",
            "pass --cache-dir DIR: fwpipe then reads it whole, in one request, and works from that copy",
        )
    _make_cache_dir()
    tmp = _cache_dir / f".whole-{os.getpid()}-{threading.get_ident()}"
    sha = _download(info, tmp)
    out = RemoteInfo(url=info.url, public=info.public, size=info.size, revision=f"sha256:{sha}", sha256=sha)
    os.replace(tmp, copy_path(out))
    log.info("%s: no revision from the server; read whole into %s (sha256 %s)", info.public, copy_path(out), sha)
    return out


def _download(info: RemoteInfo, tmp: Path) -> str:
    """One GET of the whole file (no Range: also right for a server that ignores Range) into
    `tmp`, checked against the first response; returns its sha256. Retried whole."""
    import asyncio

    from fsspec.asyn import sync

    fs = filesystem(info.url)
    h = hashlib.sha256()

    async def get(f) -> int:
        session = await fs.set_session()
        n = 0
        async with session.get(fs.encode_url(info.url), headers={"Accept-Encoding": "identity"}, **fs.kwargs) as r:
            r.raise_for_status()
            if (info.etag and r.headers.get("ETag", "").strip() != info.etag) or (
                info.modified and r.headers.get("Last-Modified", "").strip() != info.modified
            ):
                raise _changed(info)
            async for chunk in r.content.iter_chunked(1 << 20):
                h.update(chunk)
                try:
                    f.write(chunk)
                except OSError as e:  # the disk, not the network: no retry
                    raise OutputError(
                        f"cannot write {tmp}: {e.strerror or e}", "free some space or choose another --cache-dir"
                    ) from e
                n += len(chunk)
        return n

    def once() -> None:
        h.__init__()
        try:  # network errors must reach retrying() as themselves, so no atomic_file (it makes OSError a disk error)
            with open(tmp, "wb") as f:
                n = sync(fs.loop, lambda: asyncio.wait_for(get(f), max(REQUEST_DEADLINE_S, info.size / 1e6)))
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        STATS.add(n, requests=1)
        if n != info.size:
            tmp.unlink(missing_ok=True)
            raise ConnectionError(f"short read: {n} of {info.size} bytes")  # retried; the copy never appears

    retrying(once, info.public, "whole-file read")
    return h.hexdigest()


def _cat_hf(fs, path: str, size: int, start: int, end: int) -> bytes:
    """Exactly [start, end) through HfFileSystem's file: its default cache would read 5 MB ahead."""
    with fs.open(path, "rb", cache_type="none", size=size) as f:
        f.seek(start)
        return f.read(end - start)


def _changed(info: RemoteInfo) -> RemoteError:
    return RemoteError(
        f"{info.public}: changed on the server while being read (revision {info.revision[:20]} is gone)",
        "run the same command again with --overwrite to prepare the new file",
    )


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
            return self.read_at(pos, self._tail_start - pos) + self.read_at(
                self._tail_start, pos + n - self._tail_start
            )
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


def copy_path(info: RemoteInfo) -> Path:
    """Where the --cache-dir copy of this revision of the file lives."""
    assert _cache_dir is not None
    key = hashlib.sha256(f"{info.public}\0{info.revision}\0{info.size}".encode()).hexdigest()[:24]
    return _cache_dir / f"{key}-{Path(urlsplit(info.public).path).name or 'file'}"


def _make_cache_dir() -> None:
    try:
        _cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"cannot create --cache-dir {_cache_dir}: {e.strerror or e}", "choose another --cache-dir"
        ) from e


def cached_copy(info: RemoteInfo, *, download: bool) -> Path | None:
    """With a cache directory: the local copy of `info` if there is one, else (with `download`)
    a new one, fetched whole in 16 MB requests and checked against the server's sha256."""
    if _cache_dir is None:
        return None
    dest = copy_path(info)
    if dest.is_file() and dest.stat().st_size == info.size:
        return dest
    if info.revision.startswith("sha256:"):
        raise RemoteError(
            f"{info.public}: its --cache-dir copy {dest} is gone (the server gives no revision, so only that copy is trusted)",
            "run the same command again: it reads the file whole once more",
        )
    if not download:
        return None
    from fwpipe.atomic import atomic_file

    _make_cache_dir()
    if info.url.partition("://")[0].lower() in ("http", "https"):  # one request, checked against the first response
        tmp = _cache_dir / f".whole-{os.getpid()}-{threading.get_ident()}"
        _download(info, tmp)
        os.replace(tmp, dest)
        log.info("cached %s as %s", info.public, dest)
        return dest
    step = 16 << 20
    h = hashlib.sha256()
    with atomic_file(dest, hint="free some space or choose another --cache-dir") as f:
        for lo in range(0, info.size, step):
            data = _guard(info, lambda lo=lo: _fetch(info, lo, min(info.size, lo + step)))
            h.update(data)
            f.write(data)
        if info.sha256 and h.hexdigest() != info.sha256:  # raised inside: the copy never appears
            raise RemoteError(
                f"{info.public}: the downloaded bytes do not match the server's sha256", "run the same command again"
            )
    log.info("cached %s as %s", info.public, dest)
    return dest
