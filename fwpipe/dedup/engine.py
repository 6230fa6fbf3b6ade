"""Near-duplicate clusters out of core: signatures, band buckets, verified pairs, union-find.

Stages, each on disk in the scratch directory (scratch.py), so that resident memory is a few
arrays of 1-8 bytes per document plus the budget, whatever the document count (document numbers
are int32 below 2**31 documents, docs.index_dtype):

1. sign: per unit of UNIT_DOCS documents, MinHash signatures (datasketch-exact, kernels.
   minhash_signatures) and from them the band keys and full-signature key, written per unit
   (80 bytes per document at 9 bands). The signatures themselves are not kept: verification
   recomputes the few it needs from the tokens.
2. group: documents with one signature are one group, banded once (its first member stands for
   it). Exact copies join their original's group. A document with few shingles
   (config.confirm_shingles) groups only with its exact copies: one colliding 32-bit hash
   would otherwise make two unrelated short documents one signature.
3. bucket: per band, per key range (as many ranges as the budget needs), the keys of the
   groups' first members are sorted and each run of equal keys gives its pairs
   (kernels.bucket_pairs), appended to a file per band.
4. verify: per range of left members, the distinct candidate pairs are counted, their
   signatures compared (estimated Jaccard >= threshold), and pairs with a few-shingle side
   confirmed by their exact shingle Jaccard; the kept pairs go to a file.
5. union-find over one parent array (4 bytes per member): the label of each member is the
   smallest member of its component.

The passes' sizes come from the memory budget only; their answers do not depend on it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fwpipe.atomic import atomic_file, write_bytes
from fwpipe.dedup.config import DedupConfig, permutations
from fwpipe.dedup.docs import Docs, doc_tokens, index_dtype, n_docs, unique
from fwpipe.dedup.exact import _first_of_runs, _repeated
from fwpipe.dedup.scratch import Scratch, read_array, trim_heap
from fwpipe.errors import ConfigError
from fwpipe.executors import INLINE, Executor, sized
from fwpipe.kernels import (
    bucket_pairs,
    minhash_signatures,
    signature_agreement,
    signature_keys,
    union_into,
    window_hashes,
)
from fwpipe.shards import open_tokens, release_pages, token_source

log = logging.getLogger(__name__)
UNIT_DOCS = 1 << 17  # documents per signature unit: 64 MB of signatures at 128 permutations, 10 MB of keys
PAIR_BYTES = 40  # memory per candidate pair while verifying: code, its sort, left, right, agreement
KEY_BYTES = 40  # memory per group while bucketing a band by key range: key, position, its sorted copy, the repeat test
CHUNK = 1 << 18  # members or pairs streamed at once: 2 MB of keys; 256 MB of signatures while verifying


def units(docs: Docs) -> list[tuple[int, int, int]]:
    """(shard, lo, hi): the signature units, at most UNIT_DOCS documents of one shard each."""
    out = []
    for k in range(len(docs.shards)):
        lo, hi = int(docs.shard_docs[k]), int(docs.shard_docs[k + 1])
        out += [(k, a, min(hi, a + UNIT_DOCS)) for a in range(lo, hi, UNIT_DOCS)]
    return out


def sign(
    sc: Scratch, docs: Docs, cfg: DedupConfig, copy_of: np.ndarray | None = None, executor: Executor = INLINE
) -> None:
    """Stage 1: band keys and full keys of every document not an exact copy (copies: zeros, unused).

    Each unit is a call of sign_unit, through `executor` (default: in this process): its
    arguments name the shard file and carry the unit's offsets (16 bytes a document), never the
    tokens, so a unit runs wherever the shard and the scratch directory are mounted.
    """
    all_units = units(docs)
    todo = [(u, *unit) for u, unit in enumerate(all_units) if not sc.unit_path(u).exists()]
    if len(todo) < len(all_units):
        log.info("dedup: %d of %d signature units already done", len(all_units) - len(todo), len(all_units))
    # under one unit's work (~0.3 s) a local pool's start-up (~1 s) costs more than it saves
    executor = sized(executor, len(todo), worth_a_pool=sum(hi - lo for _, _, lo, hi in todo) >= UNIT_DOCS)
    executor.check_storage([sc.root], sorted({token_source(docs.shards[k])[0] for _, k, _, _ in todo} - {None}))

    def calls():  # made as the executor asks for them: all at once they would be 24 bytes a document
        for u, k, lo, hi in todo:
            idx = np.arange(lo, hi)
            if copy_of is not None:
                idx = idx[copy_of[lo:hi] == idx]  # a copy's signature is its original's: not computed
            yield (
                token_source(docs.shards[k]),
                idx - lo,
                docs.starts[idx],
                docs.ends[idx],
                hi - lo,
                cfg,
                str(sc.unit_path(u)),
            )

    for n in executor.map(sign_unit, calls()):
        log.debug("dedup: signature unit of %d documents done", n)
    log.info("dedup: signature keys of %d documents in %s", n_docs(docs), sc.root)


def sign_unit(
    source, pos: np.ndarray, starts: np.ndarray, ends: np.ndarray, n: int, cfg: DedupConfig, path: str
) -> int:
    """One signature unit: the keys of its documents at positions `pos` of n (the others, exact
    copies, stay zero), from tokens [starts, ends) of the shard `source` names, to `path`.
    Returns n. A top-level function of picklable arguments: it may run in another process or node."""
    a, b = permutations(cfg.num_perm, cfg.seed)
    keys = np.zeros((cfg.bands + 1, n), dtype=np.uint64)
    if len(pos):
        tokens = open_tokens(source)
        sig = minhash_signatures(tokens, starts, ends, cfg.shingle, a, b)
        keys[:, pos] = signature_keys(sig, cfg.bands, cfg.rows)
        del sig
        release_pages(tokens)  # this unit's tokens: a shard (200 MB) need not stay resident
    write_bytes(Path(path), [keys])
    return n


def write_signatures(sc: Scratch, docs: Docs, sig: np.ndarray, cfg: DedupConfig) -> None:
    """Signatures given rather than computed (another tool's, or a test's): stored whole, with
    their keys, so that verification reads them instead of recomputing them from the tokens."""
    write_bytes(sc.sig_path, [np.ascontiguousarray(sig, dtype=np.uint32)])
    for u, (_, lo, hi) in enumerate(units(docs)):
        write_bytes(sc.unit_path(u), [signature_keys(np.ascontiguousarray(sig[lo:hi]), cfg.bands, cfg.rows)])


def _unit_bounds(docs: Docs) -> np.ndarray:
    us = units(docs)
    return np.array([lo for _, lo, _ in us] + [n_docs(docs)], dtype=np.int64)


def _read_keys(sc: Scratch, ub: np.ndarray, row: int, lo: int, hi: int) -> np.ndarray:
    """Key row `row` (a band, or bands for the full key) of documents [lo, hi)."""
    out = []
    u = int(np.searchsorted(ub, lo, side="right")) - 1
    while lo < hi:
        a, b = int(ub[u]), int(ub[u + 1])
        take = min(hi, b) - lo
        out.append(read_array(sc.unit_path(u), np.uint64, row * (b - a) + (lo - a), take))
        lo += take
        u += 1
    return np.concatenate(out) if out else np.zeros(0, np.uint64)


def _gather_keys(sc: Scratch, ub: np.ndarray, row: int, doc_ids: np.ndarray) -> np.ndarray:
    """Key row `row` of the given documents (any order), one read per unit they fall in."""
    out = np.empty(len(doc_ids), dtype=np.uint64)
    order = np.argsort(doc_ids, kind="stable")
    d = doc_ids[order]
    cuts = np.searchsorted(d, ub)
    for u in range(len(ub) - 1):
        i, j = cuts[u], cuts[u + 1]
        if i < j:
            a, b = int(ub[u]), int(ub[u + 1])
            out[order[i:j]] = read_array(sc.unit_path(u), np.uint64, row * (b - a), b - a)[d[i:j] - a]
    return out


def _signatures_of(sc: Scratch, docs: Docs, cfg: DedupConfig, doc_ids: np.ndarray) -> np.ndarray:
    """(len(doc_ids), num_perm) signatures: read when stored, else recomputed from the tokens."""
    if sc.sig_path.exists():
        return _gather(sc.sig_path, np.uint32, doc_ids, width=cfg.num_perm)
    a, b = permutations(cfg.num_perm, cfg.seed)
    out = np.empty((len(doc_ids), cfg.num_perm), dtype=np.uint32)
    shard = np.searchsorted(docs.shard_docs, doc_ids, side="right") - 1
    for k in np.unique(shard):
        in_k = np.flatnonzero(shard == k)
        for i in range(0, len(in_k), 64):
            sel = in_k[i : i + 64]
            ids = doc_ids[sel]
            out[sel] = minhash_signatures(docs.shards[k], docs.starts[ids], docs.ends[ids], cfg.shingle, a, b)
            # a page fault maps the pages around it too (measured: ~200 KB per document read
            # here), so 64 documents at a time (13 MB)
            release_pages(docs.shards[k])
    return out


@dataclass
class Components:
    root: np.ndarray  # (m,) int32 (int64 past 2**31 members): smallest member position of each member's component
    rep: np.ndarray  # (m,) the same dtype: first member position of each member's signature group
    stats: dict = field(default_factory=dict)  # candidate_pairs, kept_pairs, distinct_signatures, confirmed_rejects
    kept_path: Path | None = None  # the verified pairs (positions), for kept_pairs()

    def kept_pairs(self, chunk: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The verified pairs (left < right, member positions of group first members), in chunks."""
        m = len(self.root)
        size = self.kept_path.stat().st_size // 8
        for off in range(0, size, chunk):
            code = read_array(self.kept_path, np.int64, off, min(chunk, size - off))
            yield code // m, code % m


def _gather(path, dtype, rows: np.ndarray, *, width: int = 0, item_offset: int = 0) -> np.ndarray:
    """Rows of a file-backed array by plain reads: rows of `width` items when width, else single
    items from item_offset. Not through a memory map: page faults there map whole neighbourhoods
    of cached pages (measured: 700 random rows of a 1 GB signature file made 760 MB resident).
    """
    dtype = np.dtype(dtype)
    w = max(width, 1)
    row_bytes = w * dtype.itemsize
    out = np.empty((len(rows), w), dtype=dtype)
    if len(rows) == 0:
        return out if width else out[:, 0]
    order = np.argsort(rows, kind="stable")
    r = rows[order] + (0 if width else item_offset)
    block = max(1, (4 << 20) // row_bytes)  # rows per block read: 4 MB
    with open(path, "rb") as f:
        fd = f.fileno()
        i = 0
        while i < len(r):
            lo = int(r[i])
            j = int(np.searchsorted(r, lo + block, side="left"))
            if (j - i) * 64 >= block:  # dense: read the block once, pick the rows
                buf = np.frombuffer(os.pread(fd, block * row_bytes, lo * row_bytes), dtype=dtype)
                buf = buf[: len(buf) // w * w].reshape(-1, w)
                out[order[i:j]] = buf[r[i:j] - lo]
            else:  # sparse: one read per row
                for k in range(i, j):
                    out[order[k]] = np.frombuffer(os.pread(fd, row_bytes, int(r[k]) * row_bytes), dtype=dtype)
            i = j
    return out if width else out[:, 0]


def components(
    sc: Scratch,
    docs: Docs,
    cfg: DedupConfig,
    *,
    members: np.ndarray | None = None,
    copy_of: np.ndarray | None = None,
    tag: str = "all",
) -> Components:
    """Stages 2-5 over the members (document ids in the order that decides who is first; all
    documents in order when None). copy_of (member positions) joins exact copies to their originals.
    """
    m = n_docs(docs) if members is None else len(members)
    check_pair_codes(m)
    budget = max(sc.memory_bytes, 1 << 12)
    # members (or pairs) per streamed chunk: a few MB of keys; larger chunks save nothing, and
    # below the budget's cap their size would grow with the corpus (8-24 bytes a document)
    chunk = max(1 << 8, min(budget // 64, CHUNK))
    ub = _unit_bounds(docs)
    if members is None:

        def keys_of(row, p0, p1):
            return _read_keys(sc, ub, row, p0, p1)
    else:

        def keys_of(row, p0, p1):
            return _gather_keys(sc, ub, row, members[p0:p1])

    docs_of = (lambda p: p) if members is None else (lambda p: members[p])  # noqa: E731
    trim_heap()  # before each stage: the freed chunks of the one before would stay resident under its arrays
    rep, few = _groups(docs, cfg, keys_of, docs_of, m, chunk, copy_of)
    trim_heap()
    is_rep = rep == np.arange(m, dtype=rep.dtype)
    stats = {"distinct_signatures": int(is_rep.sum())}
    band_files = _bucket(sc, cfg, keys_of, is_rep, chunk, budget, tag, stats)
    del is_rep
    trim_heap()
    kept_path = _verify(sc, docs, cfg, band_files, few, docs_of, m, chunk, budget, tag, stats)
    trim_heap()
    # 5. union-find: group members hang off their group's first member; kept pairs join groups
    parent = rep.copy()
    comp = Components(parent, rep, stats, kept_path)
    for left, right in comp.kept_pairs():
        union_into(parent, left, right)
    log.info(
        "dedup %s: %d candidate pairs, %d kept (%d rejected by exact Jaccard)",
        tag,
        stats["candidate_pairs"],
        stats["kept_pairs"],
        stats["confirmed_rejects"],
    )
    return comp


def _groups(
    docs: Docs, cfg: DedupConfig, keys_of, docs_of, m: int, chunk: int, copy_of: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Stage 2: (rep, few): each member's group first member (its own position when alone), and
    whether it has few shingles. Originals with many shingles group by full signature key."""
    few = np.empty(m, dtype=bool)
    full = np.empty(m, dtype=np.uint64)
    for p0 in range(0, m, chunk):
        p1 = min(m, p0 + chunk)
        d = docs_of(np.arange(p0, p1))
        few[p0:p1] = (docs.ends[d] - docs.starts[d] - cfg.shingle + 1) <= cfg.confirm_shingles
        full[p0:p1] = keys_of(cfg.bands, p0, p1)
    rep = np.arange(m, dtype=index_dtype(m))
    sel = ~few if copy_of is None else (copy_of == rep) & ~few  # originals with many shingles
    # nearly every signature is unique: sort only the repeated ones. Their values come from the
    # selected keys sorted in place (one copy, not _repeated's two), and sel narrows in place to
    # the members that hold one (1 byte a member; their positions as int64 would be 8)
    kf = full[sel]
    kf.sort()
    twice = unique(kf[1:][kf[1:] == kf[:-1]])
    del kf
    for lo in range(0, m, chunk):
        f = full[lo : lo + chunk]
        sel[lo : lo + len(f)] &= (
            (twice[np.minimum(np.searchsorted(twice, f), len(twice) - 1)] == f) if len(twice) else False
        )
    cand = np.flatnonzero(sel)
    del sel
    order = cand[np.argsort(full[cand], kind="stable")]
    del cand
    _first_of_runs(full, order, rep)
    del order, full
    if copy_of is not None:
        copies = np.flatnonzero(copy_of != np.arange(m, dtype=copy_of.dtype))
        rep[copies] = rep[copy_of[copies]]  # copies point at originals, whose rep is final
    return rep, few


# A candidate pair (left, right) travels as one int64, left * m + right: exact while m * m fits
MAX_MEMBERS = 3_037_000_499  # floor(sqrt(2**63 - 1)); numpy would wrap silently above it


def check_pair_codes(m: int) -> None:
    """Refuse a run whose pair codes would overflow int64 (about 14% of FineWeb's 22B documents)."""
    if m > MAX_MEMBERS:
        raise ConfigError(
            f"near-duplicate search over {m:,} documents: more than the {MAX_MEMBERS:,} its pair codes "
            "(left * m + right, int64) can hold",
            "split the input into parts of at most 3e9 documents and deduplicate each (docs/scale.md)",
        )


def _bucket(
    sc: Scratch, cfg: DedupConfig, keys_of, is_rep: np.ndarray, chunk: int, budget: int, tag: str, stats: dict
) -> list[Path]:
    """Stage 3: per band, the candidate pairs of the group first members, to <tag>.cand.BB."""
    m, n_rep = len(is_rep), stats["distinct_signatures"]
    n_ranges = 1
    while KEY_BYTES * n_rep / n_ranges > budget:
        n_ranges *= 2
    shift = np.uint64(64 - int(np.log2(n_ranges))) if n_ranges > 1 else None
    rep_pos = None
    if shift is None:  # the group first members, ascending, as int32 (not flatnonzero's int64)
        rep_pos, filled = np.empty(n_rep, dtype=index_dtype(m)), 0
        for p0 in range(0, m, chunk):
            got = np.flatnonzero(is_rep[p0 : p0 + chunk]) + p0
            rep_pos[filled : filled + len(got)] = got
            filled += len(got)
    band_files = []
    for bnd in range(cfg.bands):
        path = sc.root / f"{tag}.cand.{bnd:02d}"
        band_files.append(path)
        if path.exists():
            continue  # done by an interrupted run
        with atomic_file(path) as f:
            for q in range(n_ranges):
                # only keys that occur twice make pairs, and nearly all occur once: a plain sort
                # finds the repeated ones, and only those are argsorted (3x a full argsort).
                # Tie order does not matter, bucket_pairs emits the same pairs for any of them
                if shift is None:  # every group in one pass
                    k, p = _repeated_keys(keys_of, bnd, is_rep, rep_pos, chunk)
                else:  # one key range of the band: the keys whose top bits are q
                    ks, ps = [], []
                    for p0 in range(0, m, chunk):
                        got = keys_of(bnd, p0, min(m, p0 + chunk))
                        sel = is_rep[p0 : p0 + chunk] & ((got >> shift) == np.uint64(q))
                        ks.append(got[sel])
                        ps.append(np.flatnonzero(sel) + p0)
                    k, p = np.concatenate(ks), np.concatenate(ps)
                    del ks, ps
                    sub = np.flatnonzero(_repeated(k))
                    k, p = k[sub], p[sub]
                o = np.argsort(k)
                left, right = bucket_pairs(k[o], p[o], cfg.max_bucket)
                del k, p, o
                f.write((left * np.int64(m) + right).tobytes())
    stats["bucket_passes"] = n_ranges
    log.info("dedup %s: %d groups bucketed in %d bands x %d key ranges", tag, n_rep, cfg.bands, n_ranges)
    return band_files


def _repeated_keys(
    keys_of, bnd: int, is_rep: np.ndarray, rep_pos: np.ndarray, chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """(keys, positions) of the group first members whose key in band `bnd` occurs more than
    once, in position order. The band's keys are sorted in place to find the repeated values,
    then read again to pick those out: 10 bytes a group, not the 17 of sorting a copy beside them."""
    m = len(is_rep)
    k, filled = np.empty(len(rep_pos), dtype=np.uint64), 0
    for p0 in range(0, m, chunk):
        got = keys_of(bnd, p0, min(m, p0 + chunk))[is_rep[p0 : p0 + chunk]]
        k[filled : filled + len(got)] = got
        filled += len(got)
    k.sort()
    dup = k[1:] == k[:-1]
    twice = unique(k[1:][dup])
    n_hit = int(dup.sum()) + len(twice)  # each run of r equal keys: r - 1 repeats, plus its first
    del k, dup
    # the answer's arrays made once at their size: pieces appended to lists would leave the
    # heap fragmented (measured: ~80 MB of freed but unreturned memory at 4M documents)
    keys, pos, filled, out = np.empty(n_hit, np.uint64), np.empty(n_hit, rep_pos.dtype), 0, 0
    for p0 in range(0, m, chunk):
        got = keys_of(bnd, p0, min(m, p0 + chunk))[is_rep[p0 : p0 + chunk]]
        if len(twice):
            hit = np.flatnonzero(twice[np.minimum(np.searchsorted(twice, got), len(twice) - 1)] == got)
            keys[out : out + len(hit)] = got[hit]
            pos[out : out + len(hit)] = rep_pos[filled + hit]
            out += len(hit)
        filled += len(got)
    assert out == n_hit
    return keys, pos


def _verify(
    sc: Scratch,
    docs: Docs,
    cfg: DedupConfig,
    band_files: list[Path],
    few: np.ndarray,
    docs_of,
    m: int,
    chunk: int,
    budget: int,
    tag: str,
    stats: dict,
) -> Path:
    """Stage 4: the distinct candidate pairs, counted; those at estimated Jaccard >= threshold
    (and, with a few-shingle side, exact Jaccard >= threshold) to <tag>.kept."""
    total = sum(p.stat().st_size // 8 for p in band_files)
    n_parts = max(1, -(-PAIR_BYTES * total // budget))
    bounds = np.linspace(0, m, n_parts + 1).astype(np.int64)
    stats.update(candidate_pairs=0, kept_pairs=0, confirmed_rejects=0, verify_passes=n_parts)
    kept_path = sc.root / f"{tag}.kept"
    with atomic_file(kept_path) as f:
        for q in range(n_parts):  # one range of left members at a time
            lo, hi = bounds[q] * np.int64(m), bounds[q + 1] * np.int64(m)
            codes = []
            for path in band_files:
                size = path.stat().st_size // 8
                for off in range(0, size, chunk):
                    c = read_array(path, np.int64, off, min(chunk, size - off))
                    codes.append(c[(c >= lo) & (c < hi)])
            code = unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
            del codes
            stats["candidate_pairs"] += len(code)
            for c0 in range(0, len(code), chunk):
                c = code[c0 : c0 + chunk]
                left, right = c // m, c % m
                ld, rd = docs_of(left), docs_of(right)
                uniq, inv = np.unique(np.concatenate([ld, rd]), return_inverse=True)
                sig = _signatures_of(sc, docs, cfg, uniq)
                agree = signature_agreement(sig, inv[: len(c)].astype(np.int64), inv[len(c) :].astype(np.int64))
                keep = agree >= cfg.min_agree
                check = np.flatnonzero(keep & (few[left] | few[right]))
                touched: set[int] = set()  # shards whose pages the checks since the last release mapped
                for j, i in enumerate(check):  # few shingles: the estimate may rest on one colliding 32-bit hash
                    if not exact_jaccard_at_least(docs, int(ld[i]), int(rd[i]), cfg.shingle, cfg.threshold):
                        keep[i] = False
                        stats["confirmed_rejects"] += 1
                    touched.update(np.searchsorted(docs.shard_docs, [ld[i], rd[i]], side="right").tolist())
                    if j % 16 == 15 or j == len(check) - 1:  # each check faults in ~200 KB around each document
                        for k in touched:
                            release_pages(docs.shards[k - 1])
                        touched.clear()
                stats["kept_pairs"] += int(keep.sum())
                f.write(c[keep].tobytes())
    return kept_path


def exact_jaccard_at_least(docs: Docs, x: int, y: int, shingle: int, threshold: float) -> bool:
    """Whether the shingle sets of documents x and y have Jaccard >= threshold."""
    return tokens_jaccard_at_least(doc_tokens(docs, x), doc_tokens(docs, y), shingle, threshold)


def tokens_jaccard_at_least(a: np.ndarray, b: np.ndarray, shingle: int, threshold: float) -> bool:
    """Whether the shingle sets of two token arrays have Jaccard >= threshold.

    The shingles are compared by their 64-bit window hashes (kernels.window_hashes; a false
    match has probability ~2**-64 per pair, against 2**-32 for the 32-bit hashes MinHash saw).
    """
    sets = []
    for t in (a, b):
        h, _ = window_hashes(t, np.zeros(1, np.int64), np.array([len(t)], np.int64), shingle, True)
        sets.append(unique(h))
    inter = len(np.intersect1d(sets[0], sets[1], assume_unique=True))
    union = len(sets[0]) + len(sets[1]) - inter
    return union > 0 and inter >= threshold * union - 1e-9
