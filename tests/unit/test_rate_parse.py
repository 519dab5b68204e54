"""`Rate.parse`: the spelling of `CMSRAG_RATE_*` and `cmsrag keys create --rate`."""

from __future__ import annotations

import pytest

from shared.query_settings import Rate


@pytest.mark.parametrize(("raw", "expected"), [
    ("30/min", Rate(30, 6)),
    ("30/min,burst=10", Rate(30, 10)),
    ("30 / min , burst = 10", Rate(30, 10)),
    ("60/minute,burst=1", Rate(60, 1)),
    ("2/s", Rate(120, 24)),
    ("1/sec,burst=3", Rate(60, 3)),
    ("120/hour", Rate(2, 1)),
    ("3/min", Rate(3, 1)),
])
def test_rates_parse_with_burst_defaulting_to_a_fifth_at_least_one(raw: str, expected: Rate):
    assert Rate.parse(raw) == expected


@pytest.mark.parametrize("raw", [
    "", "30", "30/day", "x/min", "-1/min", "0/min", "30/min,burst=0", "30/min,burst=x", "30/min,size=3",
    "30/min,burst=", "1/hour", "1.5/min",
])
def test_bad_rates_raise_value_error(raw: str):
    with pytest.raises(ValueError):
        Rate.parse(raw)
