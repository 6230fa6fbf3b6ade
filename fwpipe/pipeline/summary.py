"""The terminal text of `fwpipe prepare`'s summary and of `fwpipe estimate` (fits 100 columns).

Renderers only: each takes the dict its stage returns (prepare's summary, estimate's result,
schemas in fwpipe/pipeline/prepare.py and fwpipe/pipeline/estimate.py) and returns text; the CLI
prints it. Imports the ground floor only.
"""

from __future__ import annotations

from pathlib import Path

from fwpipe import budget
from fwpipe.fmt import params, pct, ratio, size, tokens


def format_prepare_summary(s: dict) -> str:
    """The terminal text of prepare's summary."""
    if not s.get("did_work"):
        return f"{s['out_dir']}: already prepared from these inputs, nothing to do ({s['docs']:,} documents, {tokens(s['tokens'])} tokens)"
    lines = [
        f"prepared {s['out_dir']} ({s['format']}) from {s['sources']} file(s)"
        + (" (resumed)" if s.get("resumed") else "")
    ]
    if s["docs"] == 0:
        lines.append("  warning: the dataset holds no documents: every row was null, empty or longer than a shard")
    for name, sp in s["splits"].items():
        lines.append(f"  {name:5s} {sp['docs']:>12,} docs {tokens(sp['tokens']):>15} tokens  {sp['shards']} shard(s)")
    dd = s.get("dedup") or {}
    if dd.get("mode", "none") != "none":
        lines.append(
            f"  dedup {dd['mode']}: removed {dd['removed_docs']:,} docs ({dd['removed_exact']:,} exact, {dd['removed_near']:,} near), "
            f"{tokens(dd['removed_tokens'])} tokens, in {dd['clusters']:,} clusters; see removed.parquet"
        )
    sk = s["skipped"]
    if sk["null_text"] or sk["empty_text"] or sk["too_long"]:
        lines.append(
            f"  skipped: {sk['null_text']:,} null text, {sk['empty_text']:,} empty text, {sk['too_long']:,} longer than a shard"
        )
    if sk.get("filtered"):
        lines.append(
            f"  --filter: removed {sk['filtered']:,} docs before tokenizing; see removed.parquet (reason quality:<rule>)"
        )
    tc = s.get("token_count_check")
    if tc:
        line = f"  token_count check: {tc['checked']:,} rows, {tc['differ']:,} differ ({tc['email_placeholder']:,} e-mail placeholders, expected; {tc['real']:,} real)"
        if tc["real"]:
            line += "; first: " + ", ".join(tc["first_real"])
        lines.append(line)
    z = s.get("sizing")
    if z:
        head = f"  budget {tokens(z['budget_tokens'])} tokens at <= {z['max_epochs']:g} epochs needs {tokens(z['target_train_tokens'])} train tokens: "
        if z["reached"]:
            unused = f"; {len(z['inputs_unused'])} input file(s) left untouched" if z["inputs_unused"] else ""
            lines.append(
                head + f"reached with {tokens(z['train_stream_tokens'])} ({ratio(z['epochs'])} epochs){unused}"
            )
        else:
            lines.append(
                head
                + f"inputs ran out at {tokens(z['train_stream_tokens'])}, {tokens(z['shortfall_tokens'])} short ({ratio(z['epochs'])} epochs)"
            )
            if z.get("more_files_needed"):
                lines.append(
                    f"  -> {z['more_files_needed']} more file(s) like these ({z['files_needed']} in all) reach <= {z['max_epochs']:g} epochs"
                )
    g = s.get("fetched")
    if g:
        lines.append(
            f"  fetched {size(g['fetched_bytes'])} in {g['requests']:,} requests"
            + (f", {g['retries']:,} retries" if g["retries"] else "")
        )
    lines.append(f"  {s['seconds']:.1f} s, {tokens(s['tokens_per_s'])} tokens/s on {s['workers']} worker(s)")
    return "\n".join(lines)


def _s(n: float) -> str:
    return "" if n == 1 else "s"


def _name(path: str, width: int) -> str:
    name = Path(path).name
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def format_estimate(d: dict) -> str:
    """The terminal text of an estimate (fits 100 columns)."""
    lines = [f"{'file':<34} {'docs':>11} {'est. tokens':>16}  method"]
    for f in d["files"]:
        if f["method"] == "token_count":
            method = "token_count (FineWeb's counts)"
        else:
            pm = (f["est_tokens_high"] - f["est_tokens_low"]) / 2 / max(f["est_tokens"], 1)
            method = f"sampled ratio +-{pct(pm)}, {'footer' if f['bytes_from'] == 'metadata' else 'exact'} bytes"
        lines.append(f"{_name(f['path'], 34):<34} {f['docs']:>11,} {tokens(f['est_tokens']):>16}  {method}")
        if f["note"]:
            lines.append(f"    {f['note']}")
    t = d["total"]
    label = f"total ({t['files']} file{_s(t['files'])})"
    lines.append(f"{label:<34} {t['docs']:>11,} {tokens(t['est_tokens']):>16}")
    if t["est_tokens_low"] != t["est_tokens_high"]:
        lines.append(
            f"    95% interval {tokens(t['est_tokens_low'])} - {tokens(t['est_tokens_high'])} tokens (sampling error only)"
        )
    lines.append(
        f"    split (val fraction {d['val_fraction']:g}): train ~{t['train_docs']:,} docs, {tokens(t['train_tokens'])} tokens; "
        f"val ~{t['val_docs']:,} docs, {tokens(t['val_tokens'])} tokens"
    )
    lines.append("    tokens include one EOT per document, as in prepare's shards")
    s = d["sample"]
    if s and s["bytes_per_token"] is None:  # nothing to sample: every file without token_count is empty
        lines.append("ratio: none measured (no documents to sample)")
    elif s:
        lines.append(
            f"ratio: {s['bytes_per_token']:.3f} bytes/token from {s['docs']:,} tokenized documents ({size(s['bytes'])})"
        )
        lines.append(f"    sample: {s['how']}")
        if s["rel_se"] is not None:
            lo, hi = s["bytes_per_token_ci95"]
            lines.append(f"    standard error {pct(s['rel_se'])}; 95% interval {lo:.3f} - {hi:.3f} bytes/token")
    b = d["budget"]
    if b:
        src = (
            f"Chinchilla {budget.CHINCHILLA_TOKENS_PER_PARAM:g} tokens x {params(b['params'])} params"
            if b["budget_from"] == "chinchilla"
            else "--budget-tokens"
        )
        lines.append(
            f"BUDGET  {tokens(b['budget_tokens'])} tokens ({src}) over ~{tokens(b['unique_tokens'])} train tokens"
        )
        lo, hi = b["epochs_range"]
        rng_e = f" (95%: {ratio(lo)} - {ratio(hi)})" if lo != hi else ""
        lines.append(f"    {ratio(b['epochs'])} epochs{rng_e}; verdict: {b['verdict']}")
        lines.append(f"    ({b['verdict_text']})")
        need, more = b["files_needed"], b["more_files_needed"]
        rng = b["files_needed_range"]
        lines.append(
            f"    for <= {b['max_epochs']:g} epoch{_s(b['max_epochs'])}: {need:,} file{_s(need)} like these "
            f"(~{tokens(b['tokens_per_file'])} train tokens each)"
            + (f", {more:,} more" if more else ": these are enough")
        )
        if rng[0] != rng[1]:
            lines.append(f"    (95%: {rng[0]:,} - {rng[1]:,} files)")
        if b.get("params"):
            lines.append(
                f"    {params(b['params'])} params: {ratio(b['tokens_per_param'])} tokens/param (Chinchilla ~{budget.CHINCHILLA_TOKENS_PER_PARAM:g})"
            )
    g = d.get("fetched")
    if g:
        lines.append(
            f"fetched {size(g['bytes'])} of {size(g['input_bytes'])} remote input ({pct(g['fraction'])}) "
            f"in {g['requests']:,} requests" + (f", {g['retries']:,} retries" if g["retries"] else "")
        )
    lines.append(
        f"({d['seconds']:.2f} s, no text tokenized beyond the sample)" if s else f"({d['seconds']:.2f} s, no text read)"
    )
    return "\n".join(lines)
