"""End to end: `streamlit run app.py` driven by a real headless Chromium (Playwright).

The presenter's flow: the Overview, a tiny training run started from the Train page (the
learned-preference heatmap changes as batches arrive), Stop, Continue, then every other page,
and a continual-learning benchmark started in the background from a shared link until its
result is listed. No exception on any page and no console error from the app. A screenshot of
each step goes into a folder whose path is printed ($OPTIMUS_ARTIFACTS if set). The app reads
and writes a temporary copy of the shipped models, never the repository's models/.

The README's pictures come from this test: `OPTIMUS_SCREENSHOTS=docs python -m pytest -q
tests/test_e2e_browser.py -k screenshots` writes docs/{overview,train,sample,discriminator,
density,continual}.png (1280x800).

Uses Debian's /usr/bin/chromium; run with `pytest -m e2e -s` to see the screenshot folder.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import pytest

from optimus.bench import server as server_harness
from optimus.bench.server import serve
from optimus.store import runs, storage
from tests.helpers import shipped_or_tiny_models

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = server_harness.CHROMIUM
CHROMIUM_ARGS = server_harness.CHROMIUM_ARGS
TRAIN_TIMEOUT_MS = 300_000  # TensorFlow import + 2 tiny batches, on a busy 2-core machine
PAGE_TIMEOUT_MS = 120_000


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
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    root = shipped_or_tiny_models(work / "models")
    with serve(root, log_path=work / "streamlit.log") as running:  # stops the trainers on the way out
        yield {"url": running.url, "root": root, "work": work}


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


SCREENSHOT_SIZE = {"width": 1280, "height": 800}  # the README's pictures: one screen each


def _doc_shot(page, name: str, scroll_to=None) -> None:
    """With OPTIMUS_SCREENSHOTS=DIR, a one-screen picture of the current page for the README,
    scrolled so that `scroll_to` (a locator) is at the top."""
    folder = os.environ.get("OPTIMUS_SCREENSHOTS")
    if not folder:
        return
    target = REPO / folder if not os.path.isabs(folder) else Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size(SCREENSHOT_SIZE)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.mouse.move(0, 0)
    page.wait_for_timeout(1_500)  # charts re-layout to the new width
    if scroll_to is not None:
        scroll_to.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
    page.screenshot(path=str(target / f"{name}.png"))
    page.set_viewport_size(size)


def _own_console_errors(messages) -> list[str]:
    """Console errors, less the browser's own about resources it could not fetch in a sandbox
    without internet (no app code involved)."""
    benign = ("Failed to load resource", "net::ERR_", "favicon")
    return [m for m in messages if not any(b in m for b in benign)]


def _wait_for_batches(model_dir: Path, count: int) -> int:
    """Wait until the run has done `count` batches; return how many it has done. Reads only
    status.json (checkpoint readers finish pending commits, so polling them races the trainer)."""
    deadline = time.time() + TRAIN_TIMEOUT_MS / 1000
    while time.time() < deadline:
        try:
            done = int(storage.read_json(model_dir / storage.STATUS).get("batches_done") or 0)
        except (OSError, ValueError):
            done = 0
        if done >= count:
            return done
        time.sleep(0.3)
    raise AssertionError(f"{model_dir.name} did not reach {count} batches")


def _wait_until(condition, message: str, timeout: float = TRAIN_TIMEOUT_MS / 1000) -> None:
    """Poll `condition` (the page refreshes its live view every 1.5 s, later on a busy machine)."""
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(message)
        time.sleep(0.5)


def _chart(page, index: int):
    return page.get_by_test_id("stVegaLiteChart").nth(index)


def test_presenter_flow_and_screenshots(server, browser_page, artifacts):
    page = browser_page
    console = []
    page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: console.append(f"page error: {exc}"))

    # Overview: the landing page, its figures read from the shipped models, the learned sieve.
    page.goto(server["url"])
    page.get_by_role("heading", name=re.compile("Optimus: a neural prime generator")).wait_for()
    page.get_by_text("Lift over chance").first.wait_for()
    _chart(page, 0).wait_for()
    _settle(page)
    _no_exception(page)
    _shot(page, artifacts / "1-overview.png")
    _doc_shot(page, "overview")

    # Train: a tiny run from the form, the learned-preference heatmap filling, Stop, Continue.
    _goto(page, "Train")
    _fill(page, "Model name (saved as)", "e2e-run")
    _fill(page, "Batches", 60)
    _fill(page, "Batch size", 64)
    _fill(page, "Steps per batch", 2)
    page.get_by_role("button", name=re.compile("Start training")).click()
    page.get_by_text(re.compile(r"Started training e2e-run")).wait_for()
    model_dir = server["root"] / "e2e-run"
    batches = _wait_for_batches(model_dir, 2)
    page.get_by_text(re.compile(r"running: batch \d+ of 60")).first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    heatmap = _chart(page, 4)
    _wait_until(lambda: (heatmap.bounding_box() or {}).get("height", 0) > 150,
                "the learned-preference heatmap was not drawn")  # not the 'no batches yet' note
    early = heatmap.screenshot()
    _wait_for_batches(model_dir, batches + 3)
    _wait_until(lambda: heatmap.screenshot() != early,
                "the learned-preference heatmap did not change as batches arrived")
    _shot(page, artifacts / "2-train-running.png")
    page.get_by_role("button", name=re.compile("Stop after the current step")).click()
    resume = page.get_by_role("button", name=re.compile(r"Continue: \d+ more batches"))
    resume.wait_for(timeout=TRAIN_TIMEOUT_MS)
    _no_exception(page)
    _shot(page, artifacts / "3-train-stopped.png")
    _doc_shot(page, "train", scroll_to=_chart(page, 2))  # lift, accuracy and the learned preferences
    resume.click()
    page.get_by_text(re.compile(r"run-002 (starting|running)|starting: the trainer")).first.wait_for(
        timeout=TRAIN_TIMEOUT_MS)
    page.get_by_role("button", name=re.compile("Stop after the current step")).click()
    page.get_by_role("button", name=re.compile(r"Continue: \d+ more batches")).wait_for(timeout=TRAIN_TIMEOUT_MS)
    _no_exception(page)
    _shot(page, artifacts / "4-train-continued.png")
    table = runs.read_runs(model_dir)
    assert list(table["run"]) == ["run-002", "run-001"]
    assert list(table["status"]) == ["stopped", "stopped"]
    assert "run-001" in table["parent"].iloc[0]  # the continued run names the run it resumed
    # Both runs were started the one way: `train --config` with a file of the launch's own,
    # gone once the trainer read it.
    launches = [line for line in (model_dir / "train.log").read_text().splitlines() if line.startswith("$ ")]
    assert len(launches) == 2 and all(" train --model-dir " in c and " --config " in c for c in launches)
    assert "--batches" not in " ".join(launches)
    assert not list(model_dir.glob(runs.RUN_CONFIG_PREFIX + "*"))
    history = runs.read_history(model_dir)
    assert history["divisible_share"].map(lambda d: isinstance(d, dict) and "97" in d).all()

    # The other pages render from the shipped models without an exception.
    _goto(page, "Sample primes", heading=False)
    _no_exception(page)
    _shot(page, artifacts / "5-sample.png")
    _doc_shot(page, "sample")

    _goto(page, "Discriminator vs sympy")
    page.get_by_text(re.compile(r"^Disagreements")).first.wait_for()
    _no_exception(page)
    _shot(page, artifacts / "6-discriminator.png")
    _doc_shot(page, "discriminator")

    _goto(page, "Prime density", heading=False)
    _no_exception(page)
    _shot(page, artifacts / "7-density.png")
    _doc_shot(page, "density")

    # Continual learning, opened from a shared link: a tiny benchmark in the background.
    page.goto(f"{server['url']}/continual?cl_tasks=3+5&cl_methods=none,ewc,gln&cl_budget=tiny&cl_tune=false"
              "&cl_seeds=2")
    page.get_by_role("heading", name="Continual learning").first.wait_for()
    _settle(page)
    _no_exception(page)
    page.get_by_role("button", name=re.compile("Run in the background")).click()
    page.get_by_text(re.compile(r"Benchmark \S+ (starting|running)")).first.wait_for()
    _shot(page, artifacts / "8-continual-running.png")
    page.get_by_role("heading", name="Accuracy per task over time").first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    _settle(page)
    _no_exception(page)
    assert "cl_result=" in page.url  # the result is part of the shareable view
    _shot(page, artifacts / "9-continual-result.png")
    _doc_shot(page, "continual", scroll_to=page.get_by_role("heading", name="Benchmarks").first)

    assert not _own_console_errors(console), console
    print(f"screenshots saved in {artifacts}")
