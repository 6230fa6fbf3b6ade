"""fwpipe.fmt: the one way numbers are written for people, on values whose text is known."""

from fwpipe.fmt import clock, count, duration, num, pct, size


def test_counts_sizes_durations_and_fractions():
    assert [count(n) for n in (999, 1234, 3.8e8, 7.6e9, 2.5e12, None)] == ["999", "1.23K", "380M", "7.6B", "2.5T", "-"]
    assert count(40_560_000, 4) == "40.56M"  # the seed's non-embedding parameters, as the plan prints them
    assert [size(n) for n in (512, 8e7, 1.69e9)] == ["512 B", "80 MB", "1.69 GB"]
    assert size(12 * 2**30, binary=True) == "12 GiB" and size(None) == "-"
    assert [clock(s) for s in (0, 75, 3725, None)] == ["0:00", "1:15", "1:02:05", "?"]
    assert [duration(s) for s in (45, 600, 9000)] == ["45s", "10min", "2.5h"]
    assert [pct(x) for x in (0.123, 1, "n/a", None, True)] == ["12.3%", "100.0%", "-", "-", "-"]
    assert [num(x) for x in (1234, 1234.5, None)] == ["1,234", "1,234.5", "-"]
