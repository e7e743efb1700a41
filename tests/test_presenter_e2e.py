"""The presenter drives, the room watches, on a real server bound to 0.0.0.0 (issue 18, item 10).

A visitor's Chromium sees the runs but no Start, Stop or Continue; a forged rerun (the Start
button's widget message, sent over Streamlit's websocket by a session without the key) starts
nothing, while the same message from a session unlocked with `?key=` does start a run (so the
forged message is well-formed); the presenter's Chromium, opened with `?key=`, starts a run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time

import pytest

from optimus.bench.server import CHROMIUM_ARGS, chromium_path, serve
from tests.helpers import shipped_or_tiny_models

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
KEY = "presenter-e2e-key"
TIMEOUT_MS = 180_000


async def _rerun(ws, query: str, widgets=()) -> list:
    """Send one rerun of the Train page and return the elements drawn until the run ends."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = BackMsg()
    msg.rerun_script.query_string = query
    msg.rerun_script.page_name = "train"
    for widget in widgets:
        msg.rerun_script.widget_states.widgets.append(widget)
    await ws.send(msg.SerializeToString())
    elements = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        fm = ForwardMsg()
        fm.ParseFromString(await asyncio.wait_for(ws.recv(), TIMEOUT_MS / 1000))
        kind = fm.WhichOneof("type")
        if kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
            elements.append(fm.delta.new_element)
        if kind == "script_finished":
            return elements
    raise AssertionError("the script run did not finish")


def _texts(elements) -> str:
    out = []
    for e in elements:
        kind = e.WhichOneof("type")
        body = getattr(e, kind)
        out.append(getattr(body, "body", "") or getattr(body, "label", ""))
    return "\n".join(out)


async def _forge(url: str) -> dict:
    """Session A unlocks with ?key= and learns the form's widget ids; session B, without the key,
    sends A's Start click; then A sends the same click."""
    import websockets
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    stream = url.replace("http://", "ws://") + "/_stcore/stream"
    async with websockets.connect(stream, subprotocols=["streamlit"], max_size=2**26) as a, \
            websockets.connect(stream, subprotocols=["streamlit"], max_size=2**26) as b:
        drawn = await _rerun(a, f"key={KEY}")
        ids = {}
        for e in drawn:
            kind = e.WhichOneof("type")
            if kind == "button" and e.button.label == "Start training":
                ids["start"] = e.button.id
            if kind == "text_input" and e.text_input.label == "Model name (saved as)":
                ids["name"] = e.text_input.id
        assert set(ids) == {"start", "name"}, "the unlocked session shows the form"

        def click(name):
            return [WidgetState(id=ids["name"], string_value=name), WidgetState(id=ids["start"], trigger_value=True)]

        visitor_view = await _rerun(b, "")
        forged = await _rerun(b, "", click("forged-run"))
        presenter = await _rerun(a, "", click("unlocked-run"))
    return {"visitor": _texts(visitor_view), "forged": _texts(forged), "presenter": _texts(presenter)}


def test_visitor_watches_forged_start_refused_presenter_starts(tmp_path):
    from playwright.sync_api import sync_playwright

    root = shipped_or_tiny_models(tmp_path / "models")
    with serve(root, address="0.0.0.0", env={"OPTIMUS_PRESENTER_KEY": KEY},
               log_path=tmp_path / "streamlit.log") as server:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
            try:
                visitor = browser.new_context().new_page()
                visitor.set_default_timeout(TIMEOUT_MS)
                visitor.goto(server.url + "/train")
                visitor.get_by_text("Past runs").first.wait_for()
                visitor.get_by_test_id("stVegaLiteChart").first.wait_for()  # the runs are watched live
                # each element shows once its JavaScript chunk has loaded: the key box's may come
                # after the chart's (preloaded, optimus/app/serving.py), so wait for it
                visitor.get_by_label("Presenter key", exact=True).first.wait_for()
                for name in ("Start training", "Stop after the current step", "Continue"):
                    assert visitor.get_by_role("button", name=re.compile(name)).count() == 0, name
                visitor.goto(server.url + "/continual")
                visitor.get_by_text("Accuracy per task over time").first.wait_for()  # the shipped result
                assert visitor.get_by_role("button", name=re.compile("Run in the background")).count() == 0

                with concurrent.futures.ThreadPoolExecutor(1) as pool:  # sync Playwright holds this thread's loop
                    seen = pool.submit(asyncio.run, _forge(server.url)).result()
                assert "Start training" not in seen["visitor"]
                assert "Started training" not in seen["forged"]
                assert "Started training unlocked-run" in seen["presenter"], seen["presenter"][-2000:]
                assert not (root / "forged-run").exists()

                presenter = browser.new_context().new_page()
                presenter.set_default_timeout(TIMEOUT_MS)
                presenter.goto(server.url + f"/train?key={KEY}")
                start = presenter.get_by_role("button", name=re.compile("Start training"))
                start.wait_for()
                assert "key=" not in presenter.url  # the key leaves the address bar
                for label, value in (("Model name (saved as)", "presenter-run"), ("Batches", 1),
                                     ("Batch size", 64), ("Steps per batch", 1)):
                    field = presenter.get_by_label(label, exact=True).first
                    field.fill(str(value))
                    field.press("Tab")
                start.click()
                presenter.get_by_text(re.compile("Started training presenter-run")).wait_for()
            finally:
                browser.close()
    # Both starts made a model folder (the trainers were stopped with the server); the forgery none.
    assert (root / "presenter-run").is_dir() and (root / "unlocked-run").is_dir()
    assert not (root / "forged-run").exists()
