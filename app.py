"""Optimus in the browser: `streamlit run app.py`. This file declares the server and the pages
(and hands the memory each page run freed back to the system).

It is read two ways. `streamlit run app.py` finds the `st.App` at the bottom and serves it: the
server, with `optimus/app/serving.py` answering Streamlit's browser files from memory and the
pages' links without console errors. Streamlit then runs this same file as the script of every
page run (as `__main__`): `main()`, the navigation.
"""

import ctypes
from pathlib import Path

import streamlit as st

from optimus.app import heap, pages, presenter
from optimus.app.guard import check_host
from optimus.primes.sieve import release_sieve_pages

# glibc's malloc tuned for a long-lived server of short runs (mallopt, the C library's own knob;
# MALLOC_ARENA_MAX=2 in the environment does the same, but a presenter types `streamlit run
# app.py`). Every page run is a new thread, and each thread took an arena of its own (up to 8 per
# core) whose freed pages stayed fragmented. Measured with the visitor flow of `bench app` (three
# rounds of its eight pages): server RSS 516 MB with glibc's defaults, 366 MB with two arenas
# from the start (MALLOC_ARENA_MAX=2; set here, after Streamlit's own threads took theirs, it
# does less: 462 MB after `bench app`'s flow against 583 MB). Fixing the mmap threshold too
# (256 KiB: 289 MB with the mapped sieve below) cost 40% more CPU per 10,000-sample draw (page
# faults: every working array mapped afresh); at 32 MiB, 444 MB. README: "What a page costs".
_M_ARENA_MAX = -8
ARENA_MAX = 2


def _libc():
    libc = ctypes.CDLL(None)  # the C library's symbols, without find_library's subprocess
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None  # glibc only


def _tune_malloc() -> None:
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, ARENA_MAX)


def _release_freed_memory() -> None:
    """Hand the memory a page run freed back to the system: glibc keeps freed heap pages, and
    the big sieve's pages that a run's lookups mapped in stay resident (64 MiB at most, shared
    page cache), while the server lives for hours serving a room."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    release_sieve_pages()


def main() -> None:
    """One page run: the page's settings, the Host check, then the page the URL names."""
    # A file served by this server: a `:material/...:` page icon makes every browser fetch it
    # from fonts.gstatic.com, and an emoji icon from a CDN (a venue may be offline; issue 18).
    st.set_page_config(page_title="Optimus", page_icon=str(Path(__file__).parent / "optimus" / "app" / "icon.png"),
                       layout="wide")
    check_host()  # DNS rebinding: refuse sessions for other host names (optimus/app/guard.py)
    presenter.announce()  # beyond 127.0.0.1: the presenter key (optimus/app/presenter.py)
    _tune_malloc()  # before the page runs: idempotent, microseconds
    try:
        st.navigation([st.Page(pages.path(p), title=p.title, icon=p.icon, default=p == pages.DEFAULT)
                       for p in pages.PAGES]).run()
    finally:  # also when the page stops (st.stop) or reruns
        heap.freeze_imports()  # Streamlit's collection after each run skips what the imports made
        _release_freed_memory()


if __name__ == "__main__":  # a page run (Streamlit runs this file as the script)
    main()
else:  # imported by `streamlit run app.py`, which serves this st.App
    from starlette.middleware import Middleware

    from optimus.app import serving

    app = st.App(__file__, middleware=[Middleware(serving.StaticFromMemory)], lifespan=serving.lifespan)
