"""Issue 21, item 9, in a real browser: Markdown in a URL value is shown, never rendered.

`/density?hi=![p](http://127.0.0.1:PORT/hi.png)` made Chromium fetch that address (the error
echoed the value as Markdown). Every page is opened with such values in its parameters; a local
HTTP server counts the requests the browser makes to it: none, and the value is on the page as
text.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from optimus.bench import server as bench_server
from tests.helpers import shipped_or_tiny_models

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# page path -> parameters that echo their value in an error
PAGES = {
    "density": ["hi", "spacing"],
    "sample": ["count", "lo"],
    "discriminator": ["disc_count"],
    "train": ["train_batches", "train_preset"],
    "": ["overview_seed"],
    "continual": ["cl_methods", "cl_seeds"],
}


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        _Counter.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_markdown_in_url_values_is_shown_as_text_and_fetches_nothing(tmp_path: Path):
    from urllib.parse import quote

    from playwright.sync_api import sync_playwright

    root = shipped_or_tiny_models(tmp_path / "models")
    trap = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    bait = f"http://127.0.0.1:{trap.server_address[1]}"
    payloads = [f"![p]({bait}/img.png)", f"[click me]({bait}/link)", f"<img src={bait}/html.png>"]
    try:
        with bench_server.serve(root, log_path=tmp_path / "streamlit.log") as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.set_default_timeout(180_000)
            for path, params in PAGES.items():
                for payload in payloads:
                    query = "&".join(f"{key}={quote(payload)}" for key in params)
                    page.goto(f"{server.url}/{path}?{query}")
                    alert = page.get_by_test_id("stAlertContentError").first
                    alert.wait_for()
                    page.wait_for_timeout(500)
                    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
                    assert page.locator('[data-testid="stException"]').count() == 0
                    shown = " ".join(page.get_by_test_id("stAlertContentError").all_inner_texts())
                    assert bait in shown, (path, payload, shown)
                    alerts = page.locator('[data-testid="stAlert"]')
                    assert alerts.locator("img").count() == 0, (path, payload)
                    assert alerts.locator(f'a[href^="{bait}"]').count() == 0, (path, payload)
            page.wait_for_timeout(1_000)
            browser.close()
    finally:
        trap.shutdown()
    assert _Counter.hits == [], _Counter.hits
