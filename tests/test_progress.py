"""fwpipe.progress: the live line on a terminal, plain paced lines when piped, and the run clock."""

from __future__ import annotations

import io
import sys

import pytest

from fwpipe.progress import Progress, RunClock


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_piped_progress_is_plain_paced_lines(monkeypatch):
    err = _Stream(tty=False)
    monkeypatch.setattr(sys, "stderr", err)
    p = Progress(piped_every_s=0.0)
    for i in range(3):
        p.update(f"prepare: {i}/3 units", force=i == 1)
    p.close()
    assert err.getvalue() == "prepare: 0/3 units\nprepare: 1/3 units\nprepare: 2/3 units\n"  # no \r, no escape codes


def test_piped_progress_keeps_its_pace_and_a_short_run_prints_nothing(monkeypatch):
    err = _Stream(tty=False)
    monkeypatch.setattr(sys, "stderr", err)
    p = Progress(piped_every_s=60.0)
    for i in range(100):
        p.update(f"step {i}", force=True)
    p.close()
    assert err.getvalue() == ""
    q = Progress()  # piped and not asked for lines (audit): silent, as before
    q.update("audit: exact", force=True)
    assert err.getvalue() == ""


def test_a_terminal_keeps_the_live_line(monkeypatch):
    err = _Stream(tty=True)
    monkeypatch.setattr(sys, "stderr", err)
    p = Progress(piped_every_s=60.0)
    p.update("prepare: 1/3 units", force=True)
    p.update("prepare: 2/3 units", force=True)
    p.close()
    assert err.getvalue() == "\r\x1b[2Kprepare: 1/3 units\r\x1b[2Kprepare: 2/3 units\r\x1b[2K"


def test_run_clock_counts_from_the_start_or_the_resume():
    t = [100.0]
    c = RunClock(1000, now=lambda: t[0])
    assert c.text(0) == "0:00 elapsed, ETA ?"
    t[0] = 160.0  # 100 iterations in 60 s: 900 more take 540 s
    assert c.iteration(100) == "100/1,000" and c.text(100) == "1:00 elapsed, ETA 9:00"
    r = RunClock(1000, 400, now=lambda: t[0])  # resumed at 400: the pace counts from there
    t[0] = 190.0
    assert r.eta(500) == pytest.approx(30 * 500 / 100) and r.text(1000) == "0:30 elapsed, ETA 0:00"


def test_prepare_piped_writes_plain_progress_lines(tmp_path, first150, monkeypatch, capfd):
    from fwpipe.pipeline import passes
    from fwpipe.pipeline.prepare import prepare

    monkeypatch.setattr(passes, "PIPED_EVERY_S", 0.0)  # every update, so that a small input shows some
    prepare([first150], tmp_path / "out", workers=1)
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("prepare: ")]
    assert lines and "\r" not in err and "\x1b" not in err, err
    assert (
        any("units" in ln and "ETA" in ln for ln in lines) and "prepare: writing docs.parquet and the manifest" in lines
    ), lines
