"""Integer bin edges over [lo, hi], linear or log-spaced: the one place bins are laid out.

The density page, `density_table`, the lift's magnitude-matched baseline and the discriminator's
accuracy-by-magnitude rows all bin integers with these edges, so a "log bin" means the same
thing everywhere. Bin i is [edges[i], edges[i+1]) and the last one also includes edges[-1] = hi.
"""

from __future__ import annotations

import math

import numpy as np

from optimus import limits
from optimus.primes.counting import check_count_range
from optimus.validate import require_int


def linear_edges(lo: int, hi: int, bins: int) -> list[int]:
    """Edges splitting the integers of [lo, hi] into `bins` runs of near-equal length."""
    n = hi - lo + 1
    return [lo + i * n // bins for i in range(bins)] + [hi]


def log_edges(lo: int, hi: int, bins: int) -> list[int]:
    """Geometric edges from lo >= 1 to hi, rounded to integers and nudged to stay strictly
    increasing (so at the low end, where bins would be narrower than 1, they are exactly 1 wide).
    """
    ratio = math.log(hi) - math.log(lo)
    edges = [lo]
    for i in range(1, bins):
        edges.append(max(round(math.exp(math.log(lo) + ratio * i / bins)), edges[-1] + 1))
    # leave room for the bins above: bin i can start no later than hi - (bins - 1 - i)
    edges = [min(e, hi - (bins - 1 - i)) for i, e in enumerate(edges)]
    edges[0] = lo
    return edges + [hi]


def bin_layout(func: str, lo, hi, bins, log) -> tuple[int, int, int, bool]:
    """(lo, hi, bins, log) checked for `func` (0 <= lo <= hi <= 10**18, 1 <= bins <= MAX_BINS
    and no more bins than integers) and as used: log spacing moves a lo of 0 to 1."""
    lo, hi = check_count_range(func, lo, hi)
    bins = require_int(func, "bins", bins, 1, limits.MAX_BINS)
    if not isinstance(log, bool | np.bool_):
        raise ValueError(f"{func}: log must be True or False, got {log!r}")
    log = bool(log)
    if log and hi == 0:
        raise ValueError(f"{func}: log spacing needs hi >= 1")
    if log and lo == 0:
        lo = 1  # log spacing starts at 1; 0 is not prime, so no count changes
    if bins > hi - lo + 1:
        raise ValueError(
            f"{func}: {bins} bins do not fit in [{lo}, {hi}]; use at most {hi - lo + 1}"
        )
    return lo, hi, bins, log


def bin_index(values, edges) -> np.ndarray:
    """The bin of each value under `edges` (bin i is [edges[i], edges[i+1]), the last one closed
    at edges[-1]); values below the first edge count in the first bin, above the last in the last."""
    k = len(edges) - 1
    return np.clip(np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, k - 1)


def magnitude_bins(values, bins: int) -> tuple[list[int], np.ndarray]:
    """Log-spaced edges over the magnitudes of `values` (non-empty integers in [0, 2**53)) and
    the bin of each value: edges from max(min, 1) to max(max, 1), `bins` bins or as many as that
    range holds integers (0 counts in the first bin). The lift's baseline and the
    discriminator's accuracy by magnitude bin this way."""
    v = np.asarray(values).ravel()
    lo, hi = max(int(v.min()), 1), max(int(v.max()), 1)
    edges = log_edges(lo, hi, min(bins, hi - lo + 1))
    return edges, bin_index(v, edges)
