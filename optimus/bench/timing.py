"""What every bench section shares: the fixed seed and the ways to time side by side.

Ratios are measured interleaved in one run, so that they survive a busy machine.
"""

from __future__ import annotations

import time

import numpy as np

SEED = 20240501  # fixed, so every run times the same integers


def best_time(func, repeats: int) -> tuple[float, object]:
    """The fastest of `repeats` calls, in seconds, and the last result.

    The minimum is the figure least disturbed by other processes on this shared 2-core box.
    """
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result



def median_time(fn, repeat: int) -> float:
    """Median wall time of `repeat` calls, after one warm-up call (tracing, caches)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved(a, b, repeat: int) -> tuple[float, float]:
    """Median times of `a` and `b`, measured alternately after one warm-up call of each."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return float(np.median(ta)), float(np.median(tb))


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"
