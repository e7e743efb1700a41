"""Keep Streamlit's garbage collection after each script run cheap.

Streamlit collects garbage over every tracked object after each script run and fragment
refresh (`runner.postScriptGC`): with the app's imports (pandas, Altair and its Vega-Lite schema,
NumPy, Streamlit's own) about 0.07 s of the server's CPU per run, half a bare Streamlit page's
whole load. `freeze_imports` moves what exists after a run that imported new modules into the
permanent generation (`gc.freeze`), out of those collections: at most once per page's first
visit in the server's life, since a later run of the page imports nothing new. That run's own
survivors are frozen with the modules (one session's state per page, a bounded few), and are
still freed by reference counting when they go.
"""

from __future__ import annotations

import gc
import sys
import threading

_lock = threading.Lock()
_modules_frozen = 0  # len(sys.modules) at the last freeze


def freeze_imports() -> bool:
    """Collect, then freeze every object, if modules were imported since the last freeze; True if it froze."""
    global _modules_frozen
    with _lock:
        if len(sys.modules) <= _modules_frozen:
            return False
        gc.collect()
        gc.freeze()
        _modules_frozen = len(sys.modules)
        return True
