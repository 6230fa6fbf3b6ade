"""A self-contained HTML audit report: the terminal summary plus four plots as inline PNGs.

Plots: document-length histogram per split, near-duplicate cluster sizes, leakage shares,
and epochs against budget with the verdict bands. matplotlib's Agg backend, no files beside
the HTML, no scripts, no network.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from fwpipe.audit.report import terminal
from fwpipe.atomic import write_bytes


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figures(report: dict) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, L in report["lengths"].items():
        if L["docs"]:
            edges = np.array(L["histogram"]["bin_lower_edges"][1:], dtype=float)  # bin 0 (length 0) is always empty
            counts = np.array(L["histogram"]["counts"][1:], dtype=float)
            keep = counts > 0
            ax.step(edges[keep], counts[keep] / L["docs"], where="post", label=f"{name} ({L['docs']:,} docs)")
    ax.axvline(report["options"]["block_size"], color="grey", ls=":", label="block size")
    ax.set(xscale="log", xlabel="document length (tokens, log2 bins)", ylabel="share of documents", title="Document lengths")
    ax.legend()
    out.append(("Document lengths", _png(fig)))

    nd = report["near_duplicates"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if nd["clusters"]:
        ax.bar([str(s) for s in nd["cluster_sizes"]["size"][:30]], nd["cluster_sizes"]["clusters"][:30], color="tab:orange")
    ax.set(xlabel="documents per cluster", ylabel="clusters", yscale="log" if nd["clusters"] else "linear",
           title=f"Near-duplicate clusters (Jaccard >= {nd['threshold']}): {nd['clusters']:,}")
    out.append(("Cluster sizes", _png(fig)))

    lk = report["leakage"]
    fig, ax = plt.subplots(figsize=(7, 2.6))
    if lk.get("ngram_fraction") is not None:
        labels = ["exact copy in train", "near copy in train", f"shares a {lk['ngram_n']}-gram", f"{lk['ngram_n']}-grams in train"]
        values = [lk["exact_fraction"], lk["near_fraction"], lk["ngram_docs_fraction"], lk["ngram_fraction"]]
        ax.barh(labels, values, color=["tab:red", "tab:orange", "tab:olive", "tab:grey"])
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.1%}", va="center")
        ax.set(xlim=(0, max(max(values) * 1.25, 0.01)))
    else:
        ax.text(0.5, 0.5, lk["note"], ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="share of val documents (last bar: of val n-grams)", title=f"Train/val leakage ({lk['val_docs']:,} val docs)")
    out.append(("Leakage", _png(fig)))

    b = report.get("budget")
    if b:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        u = b["unique_tokens"]
        budgets = np.logspace(np.log10(u / 10), np.log10(max(b["budget_tokens"] * 10, u * 100)), 200)
        ax.plot(budgets, budgets / u, color="black")
        for lo, hi, color, name in ((0, 1, "tab:green", "fresh"), (1, 4, "yellowgreen", "nearly free"), (4, 16, "orange", "diminishing"),
                                    (16, 1e12, "tab:red", "wasted")):
            ax.axhspan(max(lo, 1e-3), hi, color=color, alpha=0.15, label=name)
        ax.plot([b["budget_tokens"]], [b["epochs"]], "o", color="black")
        ax.annotate(f" {b['epochs']:.1f} epochs", (b["budget_tokens"], b["epochs"]))
        ax.set(xscale="log", yscale="log", ylim=(budgets[0] / u, budgets[-1] / u), xlabel="training budget (tokens)",
               ylabel="epochs over train", title="Epochs against budget")
        ax.legend(loc="upper left", fontsize=8)
        out.append(("Budget", _png(fig)))
    return out


def render(report: dict) -> str:
    imgs = "\n".join(f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="{src}">' for t, src in _figures(report))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>fwpipe audit: {html.escape(report['dataset'])}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}} pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}
img{{max-width:100%}}</style></head>
<body><h1>fwpipe audit</h1>
<pre>{html.escape(terminal(report))}</pre>
{imgs}
</body></html>
"""


def write_html(report: dict, path: str | Path) -> None:
    write_bytes(path, [render(report).encode()])
