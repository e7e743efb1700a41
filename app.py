"""Optimus in the browser: `streamlit run app.py`. This file only declares the pages (and hands
the memory each page run freed back to the system)."""

import ctypes
from pathlib import Path

import streamlit as st

from optimus.app import heap, presenter
from optimus.app.guard import check_host

# A file served by this server: a `:material/...:` page icon makes every browser fetch it from
# fonts.gstatic.com, and an emoji icon from a CDN (a venue may be offline; issue 18).
st.set_page_config(page_title="Optimus", page_icon=str(Path(__file__).parent / "optimus" / "app" / "icon.png"),
                   layout="wide")
check_host()  # DNS rebinding: refuse sessions for other host names (optimus/app/guard.py)
presenter.announce()  # beyond 127.0.0.1: the presenter key (optimus/app/presenter.py)


def _release_freed_memory() -> None:
    """Hand the memory a page run freed back to the system: glibc keeps freed heap pages (NumPy's
    working arrays below its mmap threshold, which grows as large arrays are freed) and the
    server lives for hours serving a room. Measured with tests/test_server_e2e.py's visitor
    flow: RSS after every page 375 MB with this, 404 MB without (issue 18's goal: 400 MB)."""
    process = ctypes.CDLL(None)  # the C library's symbols, without find_library's subprocess
    if hasattr(process, "malloc_trim"):  # glibc only
        process.malloc_trim(0)


try:
    st.navigation(
        [
            st.Page("optimus/app/pages/overview.py", title="Overview", icon=":material/home:", default=True),
            st.Page("optimus/app/pages/train.py", title="Train", icon=":material/model_training:"),
            st.Page("optimus/app/pages/sample.py", title="Sample primes", icon=":material/casino:"),
            st.Page("optimus/app/pages/discriminator.py", title="Discriminator vs sympy", icon=":material/rule:"),
            st.Page("optimus/app/pages/density.py", title="Prime density", icon=":material/show_chart:"),
            st.Page("optimus/app/pages/continual.py", title="Continual learning", icon=":material/history:"),
        ]
    ).run()
finally:  # also when the page stops (st.stop) or reruns
    heap.freeze_imports()  # Streamlit's collection after each run skips what the imports made
    _release_freed_memory()
