"""Odd integers: the seed's map from reals to odd integers, and uniform odd draws.

Every generator output is `to_odd(x) = 2*floor(x) + 1`, and every "random odd integer"
reference (the discriminator's uniform test set, the bench's primality inputs, the forgetting
benchmark's tasks) is `uniform_odd`, so all of them share one range convention: [lo, hi],
both ends included. The odd primes themselves come from the sieve (`small_odd_primes`).
"""

from __future__ import annotations

import numpy as np

from optimus import limits
from optimus.validate import fail, first_where, require_int


def to_odd(x):
    """The seed's map from a real x >= 0 to an odd integer: 2*floor(x) + 1.

    Accepts a scalar or an array-like of ints or floats. Returns a Python int for a scalar, else
    an int64 array of the same shape. Exact: floor is exact in float64, and results must be below
    2**53 (floor(x) < 2**52). ValueError for negative, NaN or infinite x or too large a result.
    """
    scalar = not isinstance(x, np.ndarray | list | tuple)
    if isinstance(x, bool | np.bool_ | str | bytes) or (
        scalar and not isinstance(x, int | float | np.integer | np.floating)
    ):
        fail("to_odd", x, "is not a number")
    if scalar and isinstance(x, int):
        arr = np.array(min(max(x, -1), 2**52), dtype=np.int64)  # clamped only to be checked
        shown = np.array(x, dtype=object)
    else:
        arr = np.asarray(x)
        if arr.dtype == bool or arr.dtype.kind not in "iuf":
            fail("to_odd", arr.dtype, "is not a numeric dtype")
        shown = arr
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            fail("to_odd", first_where(shown, ~finite), "is not a finite number")
    negative = arr < 0
    if negative.any():
        fail("to_odd", first_where(shown, negative), "is negative")
    floors = np.floor(arr) if arr.dtype.kind == "f" else arr
    too_big = floors >= 2**52
    if too_big.any():
        fail("to_odd", first_where(shown, too_big), "gives 2*floor(x)+1 >= 2**53")
    odd = 2 * floors.astype(np.int64) + 1
    return int(odd) if scalar else odd


def odd_count(lo: int, hi: int) -> int:
    """Number of odd integers in [lo, hi] (both ends included; 0 when hi < lo). Python ints, so
    any size (anysize's ranges reach 2**4096)."""
    return max((hi + 1) // 2 - lo // 2, 0)


def uniform_odd(lo: int, hi: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` odd integers drawn uniformly from [lo, hi] (both ends included), as int64.

    1 <= lo <= hi < 2**53 and the range must hold an odd integer. The draw is one
    `rng.integers(0, odd integers in the range)` call, so a seeded `rng` gives the same
    numbers as the draws this replaced (evaluation's `default_rng([seed, 104729])`, the bench's
    and the forgetting benchmark's `rng.integers(lo // 2, hi // 2) * 2 + 1` over [lo, hi)):
    figures measured before the move do not change.
    """
    lo = require_int("uniform_odd", "lo", lo, 1, limits.EXACT_LIMIT - 1)
    hi = require_int("uniform_odd", "hi", hi, lo, limits.EXACT_LIMIT - 1)
    count = require_int("uniform_odd", "count", count, 0)
    odd = odd_count(lo, hi)
    if odd == 0:
        raise ValueError(f"uniform_odd: [{lo}, {hi}] contains no odd integer")
    return (lo | 1) + 2 * rng.integers(0, odd, size=count, dtype=np.int64)
