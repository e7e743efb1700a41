"""The app's pages, in the order of its navigation: one module each (widgets, one library call,
a chart). `app.py` declares them to Streamlit from this list, and the server's index.html is
served at each page's path (`optimus/app/serving.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).parent


class PageSpec(NamedTuple):
    module: str  # file name in this folder, without .py: also the page's URL path
    title: str
    icon: str


PAGES = (
    PageSpec("overview", "Overview", ":material/home:"),  # the default: served at /
    PageSpec("train", "Train", ":material/model_training:"),
    PageSpec("sample", "Sample primes", ":material/casino:"),
    PageSpec("discriminator", "Discriminator vs sympy", ":material/rule:"),
    PageSpec("density", "Prime density", ":material/show_chart:"),
    PageSpec("continual", "Continual learning", ":material/history:"),
)
DEFAULT = PAGES[0]
URL_PATHS = tuple(p.module for p in PAGES)  # the paths index.html is served at (and /)


def path(page: PageSpec) -> Path:
    return HERE / f"{page.module}.py"
