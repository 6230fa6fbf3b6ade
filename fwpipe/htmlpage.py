"""The house style of fwpipe's HTML pages (the audit page, a run's report): one file, no network.

Pages are built from small escaped pieces: every text that came from data or from a user goes
through `esc` (html.escape, quotes included: texts are web pages and may hold <script>), and
the only markup is what these helpers write. Charts are matplotlib PNGs embedded as base64
data URIs, so the file opens the same offline, from a mail attachment or a CI artefact. No
JavaScript at all.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable

# Verdict colours: background, border. "info" is a number shown without a verdict.
LEVELS = {
    "ok": ("#e7f5e9", "#2e7d32", "OK"),
    "warn": ("#fff4e0", "#e08a00", "WARN"),
    "bad": ("#fdecea", "#c62828", "BAD"),
    "info": ("#eaf1fb", "#1f5fa8", "INFO"),
}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;max-width:1100px;margin:1.5em auto;
  padding:0 1em;line-height:1.45;background:#fff}
h1{font-size:1.6em;margin-bottom:.1em} h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em;margin:1.2em 0 .4em}
.sub{color:#555;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{flex:1 1 230px;border-left:6px solid;border-radius:6px;padding:.6em .9em}
.card .lvl{font-weight:700;font-size:.8em;letter-spacing:.05em}
.card .sec{font-weight:600;text-transform:capitalize}
.card p{margin:.3em 0 0}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.92em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;vertical-align:top}
th{background:#f4f4f6} td.t,th.t{text-align:left}
.how{color:#444;font-size:.92em;background:#f7f7f9;border-radius:4px;padding:.35em .7em;margin:.3em 0 .8em}
.none{color:#555;font-style:italic}
.pair{display:flex;gap:.8em;margin:.4em 0 1.2em}
.pair>div{flex:1 1 0;min-width:0;border:1px solid #ddd;border-radius:5px;padding:.4em .6em;background:#fcfcfd}
.doc{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8em;white-space:pre-wrap;word-break:break-word;
  max-height:16em;overflow:auto;margin:.3em 0 0}
.label{font-size:.8em;color:#555}
mark{background:#ffe066;padding:0 1px}
img{max-width:100%}
pre.diag{background:#f7f7f9;padding:.7em;font-size:.85em;white-space:pre-wrap}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n<title>{esc(title)}</title>\n'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">\n<style>{CSS}</style></head>\n'
        f"<body>\n{body}\n</body></html>\n"
    )


def cards(items: Iterable[tuple[str, str, str]]) -> str:
    """(level, section, sentence) -> coloured cards; the sentence carries the deciding number."""
    out = []
    for level, section, text in items:
        bg, border, word = LEVELS.get(level, LEVELS["info"])
        out.append(
            f'<div class="card verdict-{esc(level)}" style="background:{bg};border-color:{border}">'
            f'<span class="lvl" style="color:{border}">{word}</span> <span class="sec">{esc(section)}</span>'
            f"<p>{esc(text)}</p></div>"
        )
    return f'<div class="cards">{"".join(out)}</div>'


def table(headers: list[str], rows: list[list[object]], *, text_cols: int = 1, cls: str = "") -> str:
    """An HTML table; the first text_cols columns are left-aligned text, the rest numbers.
    Cells are escaped unless they are Raw (already-built markup)."""

    def cell(tag: str, i: int, v: object) -> str:
        align = ' class="t"' if i < text_cols else ""
        return f"<{tag}{align}>{v if isinstance(v, Raw) else esc(v)}</{tag}>"

    head = (
        "".join(cell("th", i, h) for i, h in enumerate(headers)) if any(headers) else ""
    )  # a key/value table has no header row
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attr}>{f'<thead><tr>{head}</tr></thead>' if head else ''}<tbody>{body}</tbody></table>"


class Raw(str):
    """Markup built by these helpers, put into a table cell as is."""


def how(text: str) -> str:
    """The sentence under a chart that says how to read it."""
    return f'<p class="how"><b>How to read it:</b> {esc(text)}</p>'


def none(text: str) -> str:
    """A section with nothing to show says so, instead of drawing an empty chart."""
    return f'<p class="none">{esc(text)}</p>'


def figure(fig, alt: str) -> str:
    """A matplotlib figure as an embedded PNG; the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    finally:
        plt.close(fig)
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display; safe on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
