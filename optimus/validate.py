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
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from optimus import limits

_DIGITS = re.compile(r"[+-]?\d+")
_SEPARATORS = re.compile(r"[\s,]+")


def clip(text: str, chars: int = limits.ECHO_CHARS) -> str:
    """`text` for an error message: repr'd, at most about `chars` characters of it."""
    if len(text) <= chars:
        return repr(text)
    return f"{text[:chars]!r}... ({len(text):,} characters)"


def parse_int(text: str, lo: int | None = None, hi: int | None = None, what: str = "") -> int:
    """A whole number from `text`, within [lo, hi] (either end open if None).

    Accepts decimal digits with optional sign and `_` separators, scientific notation that is
    exactly an integer (`1e6`, `2.5e3`), and powers of two plain integers (`10**9`). Refuses
    2.5, nan, inf, negative exponents (`2**-1` would be 0.5), and anything longer than
    limits.MAX_INT_BITS bits, which it checks before computing the value. ValueError names
    `what` when given.
    """
    label = f"{what}: " if what else ""
    t = str(text).strip().replace("_", "")
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


def check_int(label: str, value, lo: int, hi: int) -> int:
    """A widget's `value` (int, float, None) as an int in [lo, hi], or ValueError saying which
    range to use."""
    if value is None:
        raise ValueError(f"{label}: enter a whole number between {lo:,} and {hi:,}.")
    if isinstance(value, bool):
        raise ValueError(f"{label} must be a whole number; you entered {value}.")
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value) or float(value) != int(value):
            raise ValueError(f"{label} must be a whole number; you entered {value}.")
        value = int(value)
    elif isinstance(value, (int, np.integer)):
        value = int(value)
    else:
        try:
            value = parse_int(str(value))
        except ValueError:
            raise ValueError(f"{label} must be a whole number; you entered {clip(str(value))}.") from None
    if not lo <= value <= hi:
        raise ValueError(f"{label} must be between {lo:,} and {hi:,}; you entered {value:,}.")
    return value


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
