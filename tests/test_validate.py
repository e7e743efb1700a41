"""optimus.validate: the one integer parser (CLI and pages) and its limits."""

from __future__ import annotations

import pytest

from optimus import cli
from tests.helpers import _one_line_error, _optimus

# --- integer arguments (defects 10 and 11) ------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("2**-1", "negative exponent"),  # before: the parser returned 0.5, a traceback later
    ("7**30000000", "too large"),  # before: 43 s of CPU computing the power, then refused
    ("10**5000", "too large"),
    ("1e2000", "too large"),
    ("9" * 5000, "too long"),
    ("1e23", None),  # before: float rounding gave 99999999999999991611392
])
def test_integer_parser(text, message):
    from optimus.validate import parse_int

    if message is None:
        assert parse_int(text) == 10**23
        return
    with pytest.raises(ValueError, match=message):
        parse_int(text)


def test_sample_seed_with_negative_exponent_is_one_line():
    code, _, err, _ = _optimus("sample", "--model-dir", "nowhere", "--seed", "2**-1")
    assert code == cli.EXIT_USAGE
    assert "negative exponent" in _one_line_error(err)


def test_huge_power_is_refused_before_it_is_computed():
    code, _, err, _ = _optimus("density", "--lo", "1", "--hi", "7**30000000", cpu_seconds=10)
    assert code == cli.EXIT_USAGE, (code, err[-500:])
    line = _one_line_error(err)
    assert "too large" in line and len(line) < 200


def test_pages_and_cli_share_one_integer_parser():
    from optimus.app import common, query
    from optimus.validate import check_int, parse_int

    assert common.check_int is check_int
    assert query.int_in(1, 10)("10**1") == 10
    with pytest.raises(ValueError, match="negative exponent"):
        query.int_in(None, None)("2**-1")
    # The CLI's integer arguments are read by the same parser.
    assert cli.build_parser().parse_args(["density", "--lo", "10**9", "--hi", "2e9"]).lo == parse_int("10**9") == 10**9
