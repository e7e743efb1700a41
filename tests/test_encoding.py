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
