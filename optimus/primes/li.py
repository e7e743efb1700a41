"""The reference curves of prime density: li(x), Li(x) = li(x) - li(2), and x / ln x.

li is summed by Ramanujan's series, which converges for every x > 0: relative accuracy about
1e-13 up to 2**53 (checked against mpmath in tests/test_primes.py). Li(x) is what the density
page and the baselines fall back on where exact counts would take hours (above 10**10 its
relative error is far below 1e-3).
"""

from __future__ import annotations

import numpy as np

from optimus.validate import real_array

_EULER_GAMMA = 0.57721566490153286061
_LI2 = 1.0451637801174927848  # li(2)



def _li_raw(x: np.ndarray) -> np.ndarray:
    """li(x) for float64 x > 0, x != 1, by Ramanujan's series (converges for every x > 0):

    li(x) = gamma + ln|ln x| + sqrt(x) * sum_{n>=1} (-1)^(n-1) (ln x)^n / (n! 2^(n-1))
                                          * sum_{k=0}^{floor((n-1)/2)} 1 / (2k+1)
    """
    lnx = np.log(x)
    term = lnx.copy()  # (-1)^(n-1) (ln x)^n / (n! 2^(n-1)) at n = 1
    inner = np.ones_like(x)
    total = term * inner
    for n in range(2, 400):
        term *= -lnx / (2.0 * n)
        if n % 2:
            inner += 1.0 / n
        step = term * inner
        total += step
        if np.all(np.abs(step) <= 1e-17 * np.abs(total)):
            break
    return _EULER_GAMMA + np.log(np.abs(lnx)) + np.sqrt(x) * total


def li(x, offset: bool = False):
    """The logarithmic integral li(x) = PV integral_0^x dt / ln t, for real x >= 0.

    With offset=True, the offset integral Li(x) = li(x) - li(2) (zero at 2; its usual use as
    an estimate of pi(x)). li(0) = 0 and li(1) = -inf. Vectorised: float for a scalar, float64
    array otherwise. Relative accuracy about 1e-13 up to 2**53 (absolute near li's zero at
    x = 1.4513692...). ValueError for negative, NaN or infinite input.
    """
    arr, scalar = real_array(x, "li")
    out = np.zeros_like(arr)
    pos = arr > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out[pos] = _li_raw(arr[pos])
    out[arr == 1] = -np.inf
    if offset:
        out -= _LI2
    return float(out) if scalar else out


def x_over_ln_x(x):
    """The x / ln x estimate of pi(x), for real x >= 0: x / ln x for x >= 2 and 0 below 2.

    (pi(x) = 0 below 2, and x / ln x has a pole at 1.) Float for a scalar, else a float64 array.
    """
    arr, scalar = real_array(x, "x_over_ln_x")
    out = np.zeros_like(arr)
    big = arr >= 2
    out[big] = arr[big] / np.log(arr[big])
    return float(out) if scalar else out


def li_estimate(x: np.ndarray) -> np.ndarray:
    """The offset li(x) estimate of pi(x): Li(x) = li(x) - li(2) for x >= 2 and 0 below 2."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    big = x >= 2
    out[big] = _li_raw(x[big]) - _LI2
    return out

