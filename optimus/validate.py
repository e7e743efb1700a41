"""Integers from text, and archive sizes: the one place every input is checked.

The CLI's integer flags, the pages' number widgets and URL parameters, pasted lists and
`classify`'s stdin all go through here, so they accept the same spellings (`1000003`,
`1_000_000`, `1e6`, `10**9`) and refuse the same things with the same one-line messages.
Every size is bounded (optimus.limits) *before* the work it would cost: a power's bit length
before the power, a token's length before it is parsed, an archive's uncompressed size before
it is inflated.
"""

from __future__ import annotations

import decimal
import math
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from optimus import limits

_DIGITS = re.compile(r"[+-]?\d+")
# digit groups a person types: 1,000,000 / 1 000 000 / 1_000_000 (groups of three after the first)
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:([,\s_])\d{3})(?:\1\d{3})*")
_SEPARATORS = re.compile(r"[\s,]+")


def clip(text: str, chars: int = limits.ECHO_CHARS) -> str:
    """`text` for an error message: repr'd, at most about `chars` characters of it."""
    if len(text) <= chars:
        return repr(text)
    return f"{text[:chars]!r}... ({len(text):,} characters)"


def parse_int(text: str, lo: int | None = None, hi: int | None = None, what: str = "") -> int:
    """A whole number from `text`, within [lo, hi] (either end open if None): the one integer
    dialect of the CLI, the pages and the URL parameters.

    Accepts decimal digits with an optional sign, digit groups of three separated by one kind of
    `,`, `_` or space (`1,000,000`, `1 000 000`), scientific notation that is exactly an
    integer (`1e6`, `2.5e3`), and powers of plain integers (`10**9`, `10^9`). Refuses 2.5,
    nan, inf, `1,00` (not groups of three), negative exponents (`2**-1` would be 0.5), and
    anything longer than limits.MAX_INT_BITS bits, which it checks before computing the value.
    ValueError names `what` when given.
    """
    label = f"{what}: " if what else ""
    t = str(text).strip()
    if len(t) <= limits.MAX_INT_DIGITS * 2 and _GROUPED.fullmatch(t):
        t = re.sub(r"[,\s_]", "", t)
    t = t.replace("_", "").replace("^", "**")
    if len(t) > limits.MAX_INT_DIGITS + 2:
        raise ValueError(f"{label}{clip(t)} is too long for a whole number (at most {limits.MAX_INT_DIGITS:,} digits)")
    if "**" in t:
        base, _, exponent = t.partition("**")
        if not _DIGITS.fullmatch(base.strip()) or not _DIGITS.fullmatch(exponent.strip()):
            raise ValueError(f"{label}{clip(text)} is not a whole number (a power is INTEGER**INTEGER)")
        b, e = int(base), int(exponent)
        if e < 0:
            raise ValueError(f"{label}{clip(text)} is not a whole number (negative exponent)")
        # |b**e| has at most bit_length(b) * e bits: bound it before computing it.
        if abs(b) > 1 and (abs(b).bit_length() - 1) * e >= limits.MAX_INT_BITS:
            raise ValueError(f"{label}{clip(text)} is too large (more than {limits.MAX_INT_BITS:,} bits)")
        value = b**e
    elif _DIGITS.fullmatch(t):
        value = int(t)
    else:
        try:
            d = decimal.Decimal(t)
        except decimal.InvalidOperation:
            raise ValueError(f"{label}{clip(text)} is not a whole number") from None
        if not d.is_finite():
            raise ValueError(f"{label}{clip(text)} is not a whole number")
        if d.adjusted() >= limits.MAX_INT_DIGITS:
            raise ValueError(f"{label}{clip(text)} is too large (more than {limits.MAX_INT_BITS:,} bits)")
        if d != d.to_integral_value():
            raise ValueError(f"{label}{clip(text)} is not a whole number")
        value = int(d)
    if value.bit_length() > limits.MAX_INT_BITS:
        raise ValueError(f"{label}{clip(text)} is too large (more than {limits.MAX_INT_BITS:,} bits)")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        lo_s = f"{lo:,}" if lo is not None else "-inf"
        hi_s = f"{hi:,}" if hi is not None else "inf"
        raise ValueError(f"{label}must be between {lo_s} and {hi_s}, got {value:,}")
    return value


def as_whole(value) -> int | None:
    """`value` as a Python int if it is one (a bool is not) or an integral finite float (CLI and
    app values often arrive as 1e9), else None: the one rule behind every checker below."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value):
        return int(value)
    return None


def check_int(label: str, value, lo: int, hi: int) -> int:
    """A widget's `value` (int, float, None) as an int in [lo, hi], or ValueError saying which
    range to use."""
    if value is None:
        raise ValueError(f"{label}: enter a whole number between {lo:,} and {hi:,}.")
    whole = as_whole(value)
    if whole is None:
        if isinstance(value, bool | float | np.floating):
            raise ValueError(f"{label} must be a whole number; you entered {value}.")
        try:
            whole = parse_int(str(value))
        except ValueError:
            raise ValueError(f"{label} must be a whole number; you entered {clip(str(value))}.") from None
    if not lo <= whole <= hi:
        raise ValueError(f"{label} must be between {lo:,} and {hi:,}; you entered {whole:,}.")
    return whole


def check_range(lo, hi, *, lo_min: int = 0, hi_max: int, what: str = "range", func: str = "") -> tuple[int, int]:
    """(lo, hi) as ints with lo_min <= lo <= hi <= hi_max, or ValueError saying what to change:
    the one range check. A library function passes `func` (its messages name it: "count_primes:
    lo > hi (5 > 3)"); a page passes `what` (sentences for a visitor)."""
    if func:
        lo = require_int(func, "lo", lo, lo_min, hi_max)
        hi = require_int(func, "hi", hi, lo_min, hi_max)
        if lo > hi:
            raise ValueError(f"{func}: lo > hi ({lo} > {hi})")
        return lo, hi
    lo = check_int(f"The {what}'s lower end", lo, lo_min, hi_max)
    hi = check_int(f"The {what}'s upper end", hi, lo_min, hi_max)
    if lo > hi:
        raise ValueError(f"The {what}'s lower end ({lo:,}) is above its upper end ({hi:,}): swap them or lower lo.")
    return lo, hi


def require_int(func: str, name: str, value, lo: int | None = 0, hi: int | None = None) -> int:
    """A library argument `value` as a Python int in [lo, hi] (inclusive; None: that end open),
    or ValueError "func: name must be ..." (the number theory's messages name the function
    called; with func "" they start at the name)."""
    label = f"{func}: {name}" if func else name
    whole = as_whole(value)
    if whole is None:
        raise ValueError(f"{label} must be an integer, got {value!r}")
    if lo is not None and whole < lo:
        raise ValueError(f"{label} must be >= {lo}, got {whole}")
    if hi is not None and whole > hi:
        raise ValueError(f"{label} must be <= {hi}, got {whole}")
    return whole


def fail(func: str, value, why: str) -> None:
    """Raise ValueError "func: value why", showing a NumPy scalar as the plain number."""
    if isinstance(value, np.generic):
        value = value.item()  # show 7, not np.int64(7)
    raise ValueError(f"{func}: {value!r} {why}")


def first_where(arr: np.ndarray, bad: np.ndarray):
    """The first element of `arr` (C order) where `bad` holds: the value an error message names."""
    return arr.ravel()[int(np.argmax(bad.ravel()))]


def _check_exact(func: str, v) -> None:
    """ValueError unless v is an integer (or integral float) in [0, 2**53)."""
    if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
        fail(func, v, "is not an integer")
    if isinstance(v, float | np.floating):
        if not math.isfinite(v):
            fail(func, v, "is not a finite number")
        if v != math.floor(v):
            fail(func, v, "is not an integer")
    if v < 0:
        fail(func, v, "is negative")
    if v >= limits.EXACT_LIMIT:
        fail(func, v, "is >= 2**53")


def _flatten(values):
    for v in values:
        if isinstance(v, list | tuple | np.ndarray):
            yield from _flatten(v)
        else:
            yield v


def exact_int_array(values, func: str) -> tuple[np.ndarray, bool]:
    """Validate integers in [0, 2**53) and return them as an int64 array, plus "was a scalar".

    Integral floats (7.0) are accepted because float64 is exact below 2**53; non-integral or
    non-finite floats, bools, strings and anything else raise ValueError naming `func` and the
    first offending value (in C order).
    """
    scalar = not isinstance(values, np.ndarray | list | tuple)
    if scalar:
        _check_exact(func, values)
        return np.array([int(values)], dtype=np.int64).reshape(()), True
    try:
        arr = np.asarray(values)
    except (OverflowError, ValueError):  # ragged lists, or ints beyond 64 bits
        arr = np.asarray(values, dtype=object)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        # something in there is not a number of a supported kind: find and name it, element
        # by element on the original items (NumPy may have turned them all into strings)
        items = _flatten(values) if isinstance(values, list | tuple) else arr.ravel().tolist()
        for v in items:
            _check_exact(func, v)
        flat = [int(v) for v in _flatten(arr.tolist())]
        if len(flat) != arr.size:
            raise ValueError(f"{func}: nested lists must be rectangular")
        return np.array(flat, dtype=np.int64).reshape(arr.shape), False
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            fail(func, first_where(arr, ~finite), "is not a finite number")
        frac = arr != np.floor(arr)
        if frac.any():
            fail(func, first_where(arr, frac), "is not an integer")
    if arr.size:
        if arr.min() < 0:
            fail(func, first_where(arr, arr < 0), "is negative")
        if arr.max() >= limits.EXACT_LIMIT:
            fail(func, first_where(arr, arr >= limits.EXACT_LIMIT), "is >= 2**53")
    return arr.astype(np.int64, copy=False), False


def real_array(x, func: str) -> tuple[np.ndarray, bool]:
    """Non-negative finite reals as float64, plus "was a scalar"; ValueError naming `func`."""
    scalar = np.ndim(x) == 0 and not isinstance(x, np.ndarray)
    if isinstance(x, bool | np.bool_ | str | bytes):
        fail(func, x, "is not a number")
    arr = np.asarray(x)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        fail(func, x if scalar else arr.dtype, "is not a number")
    arr = arr.astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        fail(func, first_where(arr, ~finite), "is not a finite number")
    if (arr < 0).any():
        fail(func, first_where(arr, arr < 0), "is negative")
    return arr, scalar


def tokens(stream, chunk: int = limits.READ_CHUNK, max_chars: int = limits.MAX_INT_DIGITS + 2) -> Iterator[str]:
    """The tokens of a text stream separated by whitespace or commas, read `chunk` characters at
    a time: memory stays bounded by `chunk` + `max_chars` whatever the input's size. A token
    longer than `max_chars` is refused (ValueError) without being read whole."""
    carry = ""
    while True:
        block = stream.read(chunk)
        if not block:
            break
        parts = _SEPARATORS.split(carry + block)
        carry = parts.pop()  # may continue in the next block
        for part in parts:
            if part:
                yield part
        if len(carry) > max_chars:
            raise ValueError(f"{clip(carry)} is too long for a whole number (at most {limits.MAX_INT_DIGITS:,} digits)")
    if carry:
        yield carry


def read_integers(stream, limit: int = limits.MAX_CLASSIFY, hi: int = limits.EXACT_LIMIT - 1) -> np.ndarray:
    """Integers 0 <= n <= hi from a text stream (one per line, or separated by commas/spaces),
    at most `limit` of them; stops reading at the first bad token or the (limit+1)-th."""
    values = []
    for token in tokens(stream):
        if len(values) == limit:
            raise ValueError(f"at most {limit:,} integers per request, got more")
        try:
            v = parse_int(token)
        except ValueError as exc:
            if "too" in str(exc):
                raise
            raise ValueError(f"{clip(token)} is not a whole number") from None
        if v < 0:
            raise ValueError(f"{v} is negative")
        if v > hi:
            shown = str(v) if v.bit_length() <= 64 else clip(token)
            below = "2**53" if hi == limits.EXACT_LIMIT - 1 else f"{hi + 1:,}"
            raise ValueError(f"{shown} is too large (must be below {below})")
        values.append(v)
    if not values:
        raise ValueError("no integers given")
    return np.asarray(values, dtype=np.int64 if hi < 2**63 else object)


def check_archive(path, max_bytes: int) -> None:
    """Refuse a zip archive (.keras, .npz) whose members would inflate to more than `max_bytes`,
    from the sizes in its central directory (nothing is inflated; zipfile then stops every
    member at its recorded size). ValueError names the file and the cap; an archive too damaged
    to list is left to its loader, which names the damage."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        return  # not a readable archive: its loader says how it is damaged
    if total > max_bytes:
        raise ValueError(f"{path} would inflate to {total:,} bytes, more than this model's cap of "
                         f"{max_bytes:,} (optimus.limits); refusing to load it")
