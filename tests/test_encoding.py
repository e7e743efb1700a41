"""The forgetting benchmark's Fourier encoding under its current and its old name."""

import numpy as np
import pytest

from optimus.nets.encoding import ENCODINGS, encode, encoding_name


def test_old_residue_name_reads_as_fourier_and_unknown_names_fail():
    n = np.array([3, 9, 15, 97, 10**12 + 39], dtype=np.int64)
    assert "fourier" in ENCODINGS and "residue" not in ENCODINGS  # saved as fourier from now on
    assert encoding_name("residue") == "fourier"
    assert np.array_equal(encode(n, "residue"), encode(n, "fourier"))
    assert encode(n, "fourier").shape == (5, 2 * 24 + 1)  # cos, sin per odd prime <= 97, log n
    with pytest.raises(ValueError, match="unknown encoding 'binary'; choose from scalar, fourier"):
        encode(n, "binary")


@pytest.mark.parametrize("magnitude", [10**4, 2**31, 2**40, 2**53])
def test_divisibility_by_inverse_equals_integer_remainder(magnitude):
    """Divisibility (a multiply by p^-1 mod 2^w and a compare) against NumPy's `%`, for n below
    2^32 (the 32-bit path) and beyond it, negative n, n equal to a prime, its square, 1."""
    from optimus.nets.encoding import Divisibility, factor_lists
    from optimus.primes import small_odd_primes

    primes = small_odd_primes(3000).astype(np.int64)
    rng = np.random.default_rng(magnitude % 1000)
    n = rng.integers(1, magnitude, 3000) | 1
    n = np.concatenate([n, -n[:50], primes[:20], primes[-5:], primes[-5:] ** 2, [1, -1, 3 * 5 * 7 * 2999]])
    n = n[np.abs(n) < magnitude]
    expected = (n[:, None] % primes == 0) & (n[:, None] != primes)
    assert np.array_equal(Divisibility(primes).matrix(n, chunk=97), expected)
    rows, cols = np.nonzero(expected)
    slots = 4
    got = factor_lists(n, primes, slots)
    for row in range(n.size):  # the layout: 1-based indices of the dividing primes, largest first
        want = (cols[rows == row][::-1] + 1)[:slots]
        assert list(got[row]) == list(want) + [0] * (slots - want.size)
