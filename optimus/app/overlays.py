"""A model's outputs counted into another table's bins: the Density page's overlay of where a
generator puts its numbers, next to where the primes are.

Pure NumPy/pandas (no Streamlit, no TensorFlow), so the page only draws what this returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from optimus.primes.bins import bin_index


def _as_floats(values: Iterable) -> np.ndarray:
    # Integers of any size (the any-size sampler returns Python ints beyond 2^63): float64 is
    # enough to place them in bins whose edges are themselves float64.
    return np.array([float(v) for v in values], dtype=np.float64)


def share_inside(values: Iterable, lo: int, hi: int) -> float:
    """The share of `values` in [lo, hi] (both inclusive); 0.0 for no values."""
    x = _as_floats(values)
    return float(np.mean((x >= lo) & (x <= hi))) if x.size else 0.0


def bin_shares(values: Iterable, bin_lo: Sequence, last_hi) -> tuple[pd.Series, float]:
    """(share of `values` in each bin, share outside every bin).

    Bins are [bin_lo[i], bin_lo[i+1]) with the last one [bin_lo[-1], last_hi]: density_table's
    rows, counted by `optimus.primes.bins.bin_index`, one share per row, in row order.
    """
    x = _as_floats(values)
    edges = np.append(_as_floats(bin_lo), float(last_hi))
    if not x.size:
        return pd.Series(np.zeros(len(edges) - 1)), 0.0
    inside = x[(x >= edges[0]) & (x <= edges[-1])]
    counts = np.bincount(bin_index(inside, edges), minlength=len(edges) - 1)
    shares = pd.Series(counts / x.size)
    return shares, float(1 - shares.sum())
