"""What in an output directory is prepare's, and the only code of prepare that deletes files.

A directory fwpipe did not make is never touched. prepare writes its manifest before any other
file, so a directory without a fwpipe manifest holds nothing of ours: unless it is empty it is
refused. With a manifest, what is ours is decided from it before anything is touched:

* complete: exactly the files its `outputs` list names (older manifests: the shard files,
  docs.parquet, token_counts.npy and removed.parquet they record), their temp names, `.work`,
  and audit's outputs (dataset.AUDIT_OUTPUTS, which the audit stage writes into a fwpipe dataset);
* in progress: the names prepare writes for the manifest's format (dataset.prepare_writes: strict
  patterns such as `train_000003.bin`; the manifest was there before any of them), plus the same
  fixed names;
* overwriting: the `outputs` an interrupted --overwrite listed before it started deleting.

Everything else (a user's notes beside the dataset, `train_extra.bin`) is left alone; where
such a file has a name the new run would write, prepare refuses instead. Symbolic links are
never followed: the output directory itself may be one (a data/ link to a bigger disk is
common), but a link among our names inside it is refused, never deleted through or written
through.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fwpipe import remote
from fwpipe.atomic import temp_name as tmp_name
from fwpipe.dataset import (
    AUDIT_OUTPUTS,
    MANIFEST,
    WORK,
    Manifest,
    prepare_writes,
    read_manifest,
    write_manifest,
    written_by_audit,
)
from fwpipe.dataset.manifest import LINK_HINT as _LINK_HINT
from fwpipe.errors import DatasetMismatchError, OutputError


def owned(out_dir: Path, manifest: Manifest) -> list[str]:
    """The entries of `out_dir` that are prepare's (or audit's) under `manifest`, sorted."""
    fixed = {
        WORK,
        MANIFEST,
        tmp_name(MANIFEST),
        *(n for n in AUDIT_OUTPUTS if (out_dir / n).is_symlink() or written_by_audit(out_dir / n)),
        *map(tmp_name, AUDIT_OUTPUTS),
    }
    listed = manifest.listed_outputs()
    if listed is not None:
        fixed |= set(listed) | {tmp_name(n) for n in listed}
    return sorted(
        n for n in os.listdir(out_dir) if n in fixed or (listed is None and prepare_writes(n, manifest.format))
    )


def refuse_links(out_dir: Path, names: list[str]) -> None:
    """Raise if any of `names` in `out_dir`, or anything under `.work`, is a symbolic link."""
    for name in names:
        p = out_dir / name
        if p.is_symlink():
            raise OutputError(f"{p}: is a symbolic link", _LINK_HINT)
        if name == WORK and p.is_dir():
            for root, dirs, files in os.walk(p):  # os.walk never descends into a linked directory
                for n in dirs + files:
                    if os.path.islink(os.path.join(root, n)):
                        raise OutputError(f"{os.path.join(root, n)}: is a symbolic link", _LINK_HINT)


def remove(out_dir: Path, names: list[str]) -> None:
    """Delete `names` (already checked by refuse_links): `.work` first, the manifest never.

    `.work` goes first because its sidecars are what makes a shard count as finished.
    """
    for name in sorted(names, key=lambda n: n != WORK):
        if name == MANIFEST:
            continue
        p = out_dir / name
        try:
            if p.is_symlink():  # checked before, but a deletion never goes through a link
                raise OutputError(f"{p}: is a symbolic link", _LINK_HINT)
            if p.is_dir():
                shutil.rmtree(p)  # removes links inside, never what they point to
            else:
                p.unlink(missing_ok=True)
        except OSError as e:
            raise OutputError(
                f"cannot remove {p}: {e.strerror or e}", "check the permissions of the output directory"
            ) from e


def claim(out_dir: Path, identity: dict, overwrite: bool) -> str:
    """'fresh', 'resume' or 'complete'; refuses, before touching anything, what is not ours.

    With --overwrite it deletes the previous dataset's files (and only those): it first marks
    the manifest "overwriting" with their list, so an interrupted deletion is finished by the
    next prepare instead of leaving files nobody owns.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetMismatchError(f"{out_dir}: exists and is not a directory", "choose another -o")
    if not out_dir.exists():
        try:
            out_dir.mkdir(parents=True)
        except OSError as e:
            raise OutputError(f"cannot create {out_dir}: {e.strerror or e}", "choose another -o") from e
        return "fresh"
    old = read_manifest(out_dir, strict=True)
    fmt = identity["format"]
    if old is None:
        # a run killed while writing its first manifest leaves only that manifest's temp file
        others = sorted(n for n in os.listdir(out_dir) if n != tmp_name(MANIFEST))
        if others:
            raise DatasetMismatchError(
                f"{out_dir}: not empty and not a fwpipe dataset (holds {', '.join(others[:3])})",
                "choose an empty or new -o directory; fwpipe never deletes files it did not write",
            )
        return "fresh"
    ours = owned(out_dir, old)
    if old.status == "overwriting":
        _check(out_dir, ours, fmt)
        remove(out_dir, ours)
        return "fresh"
    if same_identity(old, identity):
        if old.status == "complete":
            return "complete"
        refuse_links(out_dir, ours)
        return "resume"
    if not overwrite:
        _refuse_different(out_dir, old, identity)
    _check(out_dir, ours, fmt)
    write_manifest(
        out_dir, Manifest(status="overwriting", manifest_version=old.manifest_version, format=old.format, outputs=ours)
    )
    remove(out_dir, ours)
    return "fresh"


def _check(out_dir: Path, ours: list[str], fmt: str) -> None:
    """Refuse before deleting `ours` if a file that is not ours has a name the new run writes."""
    clash = [n for n in os.listdir(out_dir) if n not in ours and prepare_writes(n, fmt)]
    if clash:
        raise DatasetMismatchError(
            f"{out_dir / sorted(clash)[0]}: not written by fwpipe, but named like a file prepare writes",
            f"move it out of {out_dir} and run again; fwpipe deletes only files it wrote",
        )
    refuse_links(out_dir, ours)


def comparable(identity: dict) -> dict:
    """The identity without the sources' paths: an input is its bytes (size, rows, sha256), so
    `x.parquet`, `./x.parquet` and `/abs/x.parquet` (or a moved copy) are the same input."""
    # a URL is its identity with its revision (remote sources have no sha256 before streaming)
    return dict(
        identity,
        sources=[
            {k: v for k, v in s.items() if k != "path" or "revision" in s}
            for s in identity.get("sources") or []
            if isinstance(s, dict)
        ],
    )


def same_identity(old: Manifest, identity: dict) -> bool:
    return comparable(old.identity()) == comparable(identity)


def _refuse_different(out_dir: Path, old: Manifest, identity: dict) -> None:
    def key(path: str) -> str:  # a relative path in an old manifest resolves from here, best effort
        return path if remote.is_url(path) else os.path.realpath(path)

    old_sources = {
        key(s["path"]): s for s in old.sources or []
    }  # dataset.parse_manifest checked each has a string path
    for s in identity["sources"]:
        o = old_sources.get(key(s["path"]))
        if o is not None and (o.get("bytes"), o.get("sha256"), o.get("revision", "")) != (
            s["bytes"],
            s["sha256"],
            s.get("revision", ""),
        ):
            raise DatasetMismatchError(
                f"{s['path']}: changed since {out_dir} was prepared from it (size or content)",
                "pass --overwrite to prepare it again",
            )
    old_c, new_c = comparable(old.identity()), comparable(identity)
    diffs = [k for k in identity if old_c.get(k) != new_c[k]]
    raise DatasetMismatchError(
        f"{out_dir}: holds a different dataset (differs in {', '.join(diffs)})",
        "pass --overwrite to replace it, or choose another -o",
    )
