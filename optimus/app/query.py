"""Shareable views: every page keeps its inputs in the URL (`st.query_params`).

A page seeds each widget once per session from the URL with `init(key, default, parse)` and
gives the widget that `key` (no `value=`), then calls `publish(*keys)` after its widgets, so
the address bar always reproduces the view: a presenter bookmarks "Sample 20 primes of 50
digits, seed 3" and the link opens exactly that. A value in the URL that does not parse is the
page's normal error (`st.error` naming the parameter), and the default is used instead.

    query.init("count", 20, query.int_in(1, limits.MAX_SAMPLES))
    st.number_input("Count", key="count", ...)
    query.publish("count")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import streamlit as st

from optimus import validate

MAX_TEXT = 200  # longest URL value echoed back in an error message

# Streamlit renders st.error's text as Markdown (CommonMark + GFM + directives + math), so
# `![p](http://host/x.png)` in a URL value echoed back unescaped made the visitor's browser fetch
# that address (issue 21). These characters start markup anywhere in a line; escaped, each is
# shown as itself. (Quotes, commas, periods and parentheses start nothing on their own: left
# as they are, messages read the same in tests and logs.)
_INLINE_MARKUP = frozenset("\\`*[]<&$~|@{}")
# Also escaped where they could start markup: `_` at a word's edge (emphasis; snake_case is
# plain), `:` before a letter, digit or `/` (a directive `:red[..]`, an emoji code, http://),
# `-+=#>` and `1.` at a line's start (a list, heading, rule or quote).
_CONTEXT_MARKUP = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|:(?=[A-Za-z0-9/+:])")
_BLOCK_START = re.compile(r"^(\s*)([-+=#>]|\d+[.)])")
_WWW = re.compile(r"(?i)\bwww\.")  # GFM turns a bare www.host into a link


def _printable(text: str) -> str:
    """Control characters (a newline would end a Markdown paragraph) as their escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# A URL or an address in plain text: Streamlit's GFM turns it into a link after parsing, whatever
# escapes it holds; a word holding one is shown as a code span instead (never a link).
_LINKABLE = re.compile(r"(?i)://|www\.|@")


def _escape_line(line: str) -> str:
    line = _printable(line)
    if _LINKABLE.search(line):
        return "".join(code(word) if _LINKABLE.search(word) else _escape_line(word)
                       for word in re.split(r"(\s+)", line) if word)
    marked = {m.start() for m in _CONTEXT_MARKUP.finditer(line)}
    line = "".join("\\" + c if c in _INLINE_MARKUP or i in marked else c for i, c in enumerate(line))
    line = _WWW.sub(lambda m: m.group(0)[:3] + "\\.", line)
    return _BLOCK_START.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], line)


def literal(text) -> str:
    """`text` as Markdown that shows exactly `text`: every character that could start Markdown
    escaped, so no link, image, HTML, code, emphasis, heading, list, LaTeX or directive can be made
    of it. Lines stay lines (hard breaks within one paragraph)."""
    lines = str(text).replace("\r\n", "\n").split("\n")
    return "  \n".join(_escape_line(line) for line in lines)


def code(text) -> str:
    """`text` as a Markdown code span (shown literally, in a fixed font), whatever backticks it holds."""
    text = _printable(str(text))
    fence = "`" * (max((len(ticks) for ticks in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _default_parser(default) -> Callable[[str], object]:
    if isinstance(default, bool):
        return boolean
    if isinstance(default, int):
        return int_in(None, None)
    if isinstance(default, float):
        return float_in(None, None)  # plain float() would let "nan" and "inf" into a widget
    return str


def init(key: str, default, parse: Callable[[str], object] | None = None) -> None:
    """Seed `st.session_state[key]` from the URL's `key` (parsed), else `default`; once."""
    if key in st.session_state:
        return
    value = default
    raw = st.query_params.get(key)
    if raw is not None:
        try:
            value = (parse or _default_parser(default))(raw)
        except (TypeError, ValueError) as exc:
            shown = raw if len(raw) <= MAX_TEXT else raw[:MAX_TEXT] + "..."
            st.error(f"The link's {code(f'{key}={shown}')} is not valid: {literal(exc)}. "
                     f"Using {literal(repr(default))} instead.", icon=":material/link_off:")
    st.session_state[key] = value


def publish(*keys: str) -> None:
    """Write the current values of the widgets `keys` into the URL."""
    values = {k: _text(st.session_state[k]) for k in keys if k in st.session_state}
    if any(st.query_params.get(k) != v for k, v in values.items()):
        st.query_params.update(values)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):  # a multiselect: "a,b" (str() would give "['a', 'b']")
        return ",".join(map(str, value))
    return str(value)


# --- parsers: each raises ValueError with what is wrong ---------------------------------------


def boolean(raw: str) -> bool:
    if raw.lower() in ("true", "1", "yes", "on"):
        return True
    if raw.lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


def int_in(lo: int | None, hi: int | None) -> Callable[[str], int]:
    """A parser of whole numbers (optimus.validate.parse_int) within [lo, hi] (either end open if None)."""

    def parse(raw: str) -> int:
        return validate.parse_int(raw, lo, hi)

    return parse


def float_in(lo: float | None, hi: float | None) -> Callable[[str], float]:
    """A parser of finite decimal numbers within [lo, hi] (either end open if None)."""

    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError("expected a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("expected a finite number")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"must be between {lo if lo is not None else '-inf'} and {hi if hi is not None else 'inf'}")
        return value

    return parse


def list_of(options: Sequence[str]) -> Callable[[str], list[str]]:
    """A parser of comma-separated choices among `options` (a multiselect's value)."""

    def parse(raw: str) -> list[str]:
        items = [item.strip() for item in raw.split(",") if item.strip()]
        wrong = [item for item in items if item not in options]
        if wrong:
            raise ValueError(f"{wrong[0]!r} is not one of {', '.join(map(str, options))}")
        return list(dict.fromkeys(items))

    return parse


def one_of(options: Sequence[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"expected one of {', '.join(map(str, options))}")
        return raw

    return parse


# --- the model in every page's link ----------------------------------------------------------

# The URL parameter that names the model on each page that shows one: a link from one page to
# another carries the model being looked at (a shared view of the seed opens on the seed).
MODEL_PARAMS = {
    "optimus/app/pages/overview.py": "overview_model",
    "optimus/app/pages/train.py": "train_watch",
    "optimus/app/pages/sample.py": "sample_model",
    "optimus/app/pages/discriminator.py": "disc_model",
}


def model_link(page: str, model: str | None) -> dict[str, str] | None:
    """The query parameters of a link to `page` showing `model` (None: the page has no model)."""
    key = MODEL_PARAMS.get(page)
    return {key: model} if key and model else None
