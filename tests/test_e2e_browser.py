"""End to end: `streamlit run app.py` driven by a real headless Chromium (Playwright).

Trains a tiny model from the Train page and watches it finish, samples primes from it and checks
the downloaded CSV against sympy, opens every other page, and saves a screenshot of each page
into a folder whose path is printed ($OPTIMUS_ARTIFACTS if set). The app reads and writes a
temporary copy of the shipped models, never the repository's models/.

Uses Debian's /usr/bin/chromium; run with `pytest -m e2e -s` to see the screenshot folder.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import sympy

from optimus import runs, storage
from tests.helpers import shipped_or_tiny_models

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TRAIN_TIMEOUT_MS = 300_000  # TensorFlow import + 2 tiny batches, on a busy 2-core machine
PAGE_TIMEOUT_MS = 120_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_trainers(root: Path) -> None:
    """Trainers are detached from the server on purpose, so stop them ourselves."""
    for model_dir in root.iterdir():
        holder = storage.lock_holder(model_dir) if model_dir.is_dir() else None
        if holder is None:
            continue
        storage.request_stop(model_dir)
        deadline = time.time() + 30
        while storage.lock_holder(model_dir) is not None and time.time() < deadline:
            time.sleep(0.2)
        if storage.lock_holder(model_dir) is not None:
            os.kill(int(holder["pid"]), signal.SIGKILL)


@pytest.fixture(scope="module")
def artifacts() -> Path:
    # Not under pytest's tmp_path: pytest keeps only its last 3 base folders, so a later run
    # (anyone's, on a shared machine) would delete the screenshots.
    folder = Path(os.environ["OPTIMUS_ARTIFACTS"]) if os.environ.get("OPTIMUS_ARTIFACTS") else \
        Path(tempfile.mkdtemp(prefix="optimus-e2e-screenshots-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    work = tmp_path_factory.mktemp("e2e")
    root = shipped_or_tiny_models(work / "models")
    port = _free_port()
    log = open(work / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=dict(os.environ, **{runs.MODELS_ENV: str(root)}),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def shut_down():
        _stop_trainers(root)
        runs.stop_process_group(proc)
        log.close()

    request.addfinalizer(shut_down)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"streamlit did not start:\n{(work / 'streamlit.log').read_text()[-3000:]}")
        time.sleep(0.3)
    return {"url": url, "root": root, "work": work}


@pytest.fixture(scope="module")
def browser_page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        yield page
        context.close()
        browser.close()


def _settle(page) -> None:
    """Wait until the script run is over (Streamlit's running indicator is gone)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=PAGE_TIMEOUT_MS)


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def _goto(page, title: str, heading: bool = True) -> None:
    page.get_by_role("link", name=title).first.click()
    if heading:
        page.get_by_role("heading", name=title).first.wait_for()
    else:
        page.wait_for_timeout(1_000)
    _settle(page)


def _choose(page, label: str, option: re.Pattern) -> None:
    box = page.get_by_test_id("stSelectbox").filter(has_text=label).first
    box.locator("input").first.click()
    page.get_by_role("option", name=option).first.click()
    _settle(page)


def _shot(page, path: Path) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main section, so grow the
    viewport to the content's height first (full_page=True alone stops at the window)."""
    size = page.viewport_size
    page.evaluate("() => document.activeElement && document.activeElement.blur()")  # no focus tooltips
    page.mouse.move(0, 0)
    height = page.evaluate(
        "() => Math.max(document.body.scrollHeight, ...Array.from(document.querySelectorAll("
        "'[data-testid=stMain], [data-testid=stAppViewContainer], [data-testid=stMainBlockContainer]'))"
        ".map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height) + 80, size["height"]), 8000)})
    page.wait_for_timeout(800)  # charts re-layout
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def _fill(page, label: str, value) -> None:
    field = page.get_by_label(label, exact=True).first
    field.fill(str(value))
    field.press("Tab")


def test_train_sample_download_and_every_page(server, browser_page, artifacts):
    page = browser_page
    page.goto(server["url"])
    page.get_by_role("heading", name="Train").first.wait_for()
    _settle(page)
    _no_exception(page)
    _shot(page, artifacts / "1-train.png")

    # Train a tiny model from the default preset: 2 batches of 64 latents, 2 steps each.
    _fill(page, "Model name (saved as)", "e2e-run")
    _fill(page, "Batches", 2)
    _fill(page, "Batch size", 64)
    _fill(page, "Steps per batch", 2)
    page.get_by_role("button", name=re.compile("Start training")).click()
    page.get_by_text(re.compile(r"Started training e2e-run")).wait_for()
    _shot(page, artifacts / "2-train-started.png")
    page.get_by_text(re.compile(r"done: batch 2 of 2")).first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    page.wait_for_timeout(2_000)  # one more refresh: charts and the runs table
    _no_exception(page)
    _shot(page, artifacts / "3-train-done.png")
    status = runs.read_status(server["root"] / "e2e-run")
    assert status["state"] == "done" and status["batches_done"] == 2
    assert len(runs.read_history(server["root"] / "e2e-run")) >= 2

    # Sample primes from the new model and check the CSV against sympy.
    _goto(page, "Sample primes")
    _choose(page, "Model", re.compile(r"^e2e-run"))
    _fill(page, "Samples", 500)
    page.get_by_text(re.compile(r"from the 500 samples above")).wait_for()
    _settle(page)
    _no_exception(page)
    _shot(page, artifacts / "4-sample.png")
    with page.expect_download() as download_info:
        page.get_by_role("button", name=re.compile("Download CSV")).click()
    download = download_info.value
    assert download.suggested_filename == "optimus-e2e-run-500-seed0.csv"
    target = server["work"] / download.suggested_filename
    download.save_as(target)
    with open(target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 500 and list(rows[0]) == ["latent", "n", "is_prime", "d_prob"]
    for row in rows:
        n = int(row["n"])
        assert n % 2 == 1
        assert (row["is_prime"] == "True") == sympy.isprime(n), row

    # Every other page renders without an exception.
    _goto(page, "Discriminator vs sympy")
    page.get_by_text(re.compile(r"^Disagreements")).first.wait_for()
    _no_exception(page)
    _shot(page, artifacts / "5-discriminator.png")

    _goto(page, "Prime density")
    page.get_by_text("Primes in range").wait_for()
    _no_exception(page)
    _shot(page, artifacts / "6-density.png")

    if (REPO / "optimus" / "pages" / "continual.py").exists():
        _goto(page, "Continual learning", heading=False)
        _no_exception(page)
        _shot(page, artifacts / "7-continual.png")
    print(f"screenshots saved in {artifacts}")
