"""Who may start, stop and delete: the presenter drives, the room watches (issue 18, item 10).

On a loopback address (the default `server.address = "127.0.0.1"`: one user on their own
machine) everyone may. Bound beyond it (a room on a network), starting, stopping, continuing
and deleting training runs and continual benchmarks need the presenter key: $OPTIMUS_PRESENTER_KEY,
or else a random key made once per server process and printed to the server's output the first
time the app runs. The presenter enters it once per browser session, in the page's "Presenter
key" box or as `?key=...` in the URL (removed from the address bar at once); it is kept in that
session's state. Every visitor can still watch runs live, sample, classify and chart.

Pages hide the buttons (`may_act`) and the code behind each button asks again (`require`), so a
rerun that reaches an action without the key (a forged widget message, a page edited later) is
refused on the server, not only hidden in the browser.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import sys
import threading

import streamlit as st

ENV = "OPTIMUS_PRESENTER_KEY"
URL_PARAM = "key"
_SESSION = "presenter_unlocked"
_lock = threading.Lock()
_generated: str | None = None


class Refused(ValueError):
    """An action only the presenter may take, asked for without the key (a ValueError, so the
    pages' `common.user_errors` shows it as an error)."""


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"; False for "" (Streamlit's default: every
    interface), 0.0.0.0 and any other address or name."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def bound_address() -> str:
    return str(st.get_option("server.address") or "")


def required() -> bool:
    """Does this server need the presenter key to act (bound beyond loopback)?"""
    return not is_loopback(bound_address())


def key() -> str:
    """The presenter key: $OPTIMUS_PRESENTER_KEY, else one random key for this process, printed
    once to the server's output (the terminal that ran `streamlit run`)."""
    global _generated
    configured = os.environ.get(ENV, "").strip()
    if configured:
        return configured
    with _lock:
        if _generated is None:
            _generated = secrets.token_urlsafe(12)
            print(f"\n  Optimus presenter key: {_generated}\n  (served beyond 127.0.0.1: starting, stopping and "
                  f"deleting runs need it; open the app once with ?{URL_PARAM}={_generated}, or type it in the "
                  f"Train or Continual learning page; set ${ENV} to choose it)\n", file=sys.stderr, flush=True)
        return _generated


def announce() -> None:
    """Make (and print) the key when the app runs on a non-loopback address, and take a `?key=`
    from the URL; call at the top of app.py."""
    if required():
        key()
        accept_url_key()


def _matches(candidate: str) -> bool:
    return bool(candidate) and hmac.compare_digest(candidate.strip().encode(), key().encode())


def accept_url_key() -> None:
    """`?key=...`: unlock this session if it is the key, and drop it from the address bar."""
    if URL_PARAM in st.query_params:
        if _matches(st.query_params[URL_PARAM]):
            st.session_state[_SESSION] = True
        del st.query_params[URL_PARAM]


def may_act() -> bool:
    """May this browser session start, stop or delete?"""
    return not required() or bool(st.session_state.get(_SESSION))


def require(what: str) -> None:
    """Refuse `what` (e.g. "start a training run") unless this session may act."""
    if not may_act():
        raise Refused(f"Only the presenter can {what} on this shared server: the presenter key unlocks it.")


def unlock_box(what: str) -> bool:
    """For a visitor without the key, a note saying what is locked and a box for the key; True
    when the session may act (then nothing is drawn)."""
    if may_act():
        return True
    accept_url_key()
    if may_act():
        return True
    st.info(f"This app is shared with a room: {what} are the presenter's. You can watch every run live, "
            "sample, classify and chart.", icon=":material/lock:")
    entered = st.text_input("Presenter key", type="password", key="presenter_key_entry",
                            help="Printed by the server at start-up (or set in $OPTIMUS_PRESENTER_KEY).")
    if entered:
        if _matches(entered):
            st.session_state[_SESSION] = True
            st.rerun()
        st.error("That is not the presenter key.", icon=":material/key_off:")
    return False
