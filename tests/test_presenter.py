"""The presenter drives, the room watches (issue 18, item 10): beyond 127.0.0.1 starting,
stopping and continuing need the presenter key; on 127.0.0.1 nothing changes.

Pages under AppTest with the bound address patched; the real server bound to 0.0.0.0 and two
browsers (a visitor and the presenter) in tests/test_presenter_e2e.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from optimus.app import presenter
from tests.helpers import models_env, shipped_or_tiny_models

PAGES = Path(__file__).resolve().parent.parent / "optimus" / "app" / "pages"
KEY = "room-key-123"


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("", False), ("::", False), ("10.0.0.5", False), ("optimus.lab.example", False)])
def test_loopback_addresses(address, loopback):
    assert presenter.is_loopback(address) is loopback


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    root = shipped_or_tiny_models(tmp_path_factory.mktemp("models"))
    with models_env(root):
        yield root


@pytest.fixture
def shared(monkeypatch):
    """The app as a room sees it: bound to every interface, the key from the environment."""
    monkeypatch.setattr(presenter, "bound_address", lambda: "0.0.0.0")
    monkeypatch.setenv(presenter.ENV, KEY)


def _page(name: str, params=None) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=180)
    at.query_params.update(params or {})
    return at


def _buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def test_loopback_changes_nothing(models_root, monkeypatch):
    monkeypatch.setattr(presenter, "bound_address", lambda: "127.0.0.1")
    at = _page("train").run()
    assert not at.exception
    assert "Start training" in _buttons(at)
    assert not [t for t in at.text_input if t.label == "Presenter key"]
    presenter.require("start a training run")  # no exception


def test_a_visitor_watches_but_cannot_start(models_root, shared):
    at = _page("train").run()
    assert not at.exception
    assert not any(label.startswith(("Start", "Stop", "Continue")) for label in _buttons(at)), _buttons(at)
    assert any("presenter" in i.value for i in at.info)
    assert at.get("vega_lite_chart") or at.get("arrow_vega_lite_chart")  # the runs are still drawn
    # A wrong key, in the box or in the URL, unlocks nothing.
    box = next(t for t in at.text_input if t.label == "Presenter key")
    box.set_value("guess").run()
    assert any("not the presenter key" in e.value for e in at.error)
    assert "Start training" not in _buttons(at)
    at = _page("train", {"key": "guess"}).run()
    assert "Start training" not in _buttons(at) and "key" not in at.query_params


def test_the_presenter_key_unlocks_one_session(models_root, shared):
    at = _page("train").run()
    next(t for t in at.text_input if t.label == "Presenter key").set_value(KEY).run()
    assert not at.exception and "Start training" in _buttons(at)
    other = _page("continual").run()  # another browser: still locked
    assert "Run in the background" not in _buttons(other)
    url = _page("continual", {"key": KEY}).run()  # ?key= unlocks, and leaves the address bar
    assert "Run in the background" in _buttons(url) and "key" not in url.query_params
