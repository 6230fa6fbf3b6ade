"""fwpipe.fmt: the one way numbers are written for people, on values whose text is known."""

import pytest

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


def test_one_rounding_per_quantity():
    from fwpipe.fmt import loss, params, parse_count, ratio, tokens

    assert [pct(x) for x in (0.005, 0.01, 0.000069, 0.0)] == [
        "0.5%",
        "1.0%",
        "0.0069%",
        "0.0%",
    ]  # 1% and 0.5% alike; tiny never 0.0%
    assert [tokens(n) for n in (7.6e9, 2_319_824, 14_660, 512)] == ["7.6B", "2.32M", "14.7K", "512"]
    assert [params(n) for n in (40_559_616, 124_439_808)] == ["40.56M", "124.4M"]
    assert [loss(x) for x in (3.61234, 10.8249, None)] == ["3.612", "10.825", "-"]
    assert [ratio(x) for x in (3274.4, 187.4, 25.33, 3.8, 0.00312, 0.0)] == [
        "3,274",
        "187",
        "25.3",
        "3.8",
        "0.00312",
        "0",
    ]
    assert [parse_count(t) for t in ("7.6e9", "7.6B", "7.6g", "100M", "2.5k", "1_000")] == [
        7.6e9,
        7.6e9,
        7.6e9,
        1e8,
        2500,
        1000,
    ]
    for bad in ("7.6 bn", "B", "1.2.3", "", "1e"):
        with pytest.raises(ValueError):
            parse_count(bad)
