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

import numpy as np
import pytest

from optimus.bench import server as server_harness
from optimus.bench.server import serve
from optimus.store import runs, storage
from tests.helpers import shipped_or_tiny_models

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = server_harness.CHROMIUM
CHROMIUM_ARGS = server_harness.CHROMIUM_ARGS
SHIPPED_BENCHMARK = "factor-standard-3seeds"  # models/continual/: the Continual page's default view
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
    # the warm trainer on, as a presenter's server has it (tests/conftest.py turns it off)
    with serve(root, log_path=work / "streamlit.log", env={runs.SPARE_ENV: "1"}) as running:  # stops the trainers on the way out
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


@pytest.fixture
def fresh_page(browser_page):
    """A page of its own (own session, own listeners) in the same browser, at the issue's 1400x900."""
    context = browser_page.context.browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    yield page
    context.close()


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


def _console_collector(page) -> list[str]:
    """Every console error, page error and failed request (status 400 and up) from now on, as
    text with its URL. None is excepted: a page opened from its own link used to log two 404s,
    Streamlit's client probing `/<page>/_stcore/health` and `/host-config` (upstream
    streamlit#7074), until the server's index.html named the app's root
    (optimus/app/serving.py)."""
    errors = []

    def on_console(msg):
        if msg.type == "error":
            errors.append(f"{msg.text} ({(msg.location or {}).get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    return errors


# Lines of the server's log that are not the app's: TensorFlow's start-up notes and Streamlit's
# banner. Anything else (a traceback, a Streamlit warning) fails the test that reads the log.
BENIGN_LOG = re.compile(
    r"^\s*$|^I0000 |^W0000 |^WARNING: All log messages before absl|^To enable the following instructions"
    r"|You can now view your Streamlit app|^\s*(Local |Network |External )?URL: |Uvicorn server started"
    r"|oneDNN custom operations|cpu_feature_guard")


def _server_log_problems(work: Path, since: int = 0) -> list[str]:
    text = (work / "streamlit.log").read_bytes()[since:].decode("utf-8", "replace")
    return [line for line in text.splitlines() if not BENIGN_LOG.search(line)]


# The data a rendered chart holds: Streamlit keeps each chart's Vega View in React state (the
# page exposes no vegaEmbed handle), so walk the chart element's React fiber to the hook that
# holds an object with the View API (data(), getState()) and read every named dataset from it.
# This is what the browser drew from, after Vega's own parsing, not the spec the server sent.
FIND_VIEW_JS = r"""
(index) => {
  const el = document.querySelectorAll('[data-testid="stVegaLiteChart"]')[index];
  if (!el) return null;
  const isView = c => c && typeof c === 'object' && typeof c.data === 'function'
                      && typeof c.getState === 'function' && typeof c.signal === 'function';
  for (const node of [el, ...el.querySelectorAll('*')]) {
    const key = Object.keys(node).find(k => k.startsWith('__reactFiber'));
    if (!key) continue;
    for (let f = node[key], depth = 0; f && depth < 60; f = f.return, depth++) {
      for (let h = f.memoizedState, i = 0; h && i < 60; h = h.next, i++) {
        const v = h.memoizedState;
        for (const c of [v, v && v.current, v && v.view, v && v.current && v.current.view]) {
          if (isView(c)) return c;
        }
      }
    }
  }
  return null;
}
"""
CHART_DATA_JS = "(index) => { const view = (" + FIND_VIEW_JS + r""")(index);
  if (!view) return null;
  const names = Object.keys(view.getState({data: () => true, signals: () => false}).data || {});
  const out = {};
  const plain = row => Object.fromEntries(Object.entries(row).filter(
    ([k, v]) => v === null || ['number', 'string', 'boolean'].includes(typeof v)));
  for (const name of names) {
    if (name === 'root' || name.endsWith('_marks')) continue;  // scenegraph, not data
    try { out[name] = view.data(name).map(plain); } catch (e) {}
  }
  return out;
}"""
CHART_SCALE_JS = "([index, scale]) => { const view = (" + FIND_VIEW_JS + r""")(index);
  if (!view) return null;
  try { return view.scale(scale).domain().map(v => (typeof v === 'object' ? String(v) : v)); }
  catch (e) { return null; }
}"""


def _chart_data(page, index: int) -> dict[str, list[dict]]:
    """{dataset name: rows} of the `index`-th chart on the page, read from its Vega View."""
    _wait_until(lambda: page.evaluate(CHART_DATA_JS, index) is not None,
                f"chart {index} has no Vega view", timeout=PAGE_TIMEOUT_MS / 1000)
    return page.evaluate(CHART_DATA_JS, index)


def _chart_scale(page, index: int, scale: str = "x") -> list:
    """The domain of a rendered chart's scale (e.g. the heatmap's columns), from its Vega View."""
    return page.evaluate(CHART_SCALE_JS, [index, scale])


def _rows_with(data: dict, field: str) -> list[dict]:
    """The rows holding `field` across a chart's datasets, each once (a layer's data is the
    source dataset and its own derived copy)."""
    unique = {}
    for rows in data.values():
        for row in rows:
            if field in row:
                unique.setdefault(tuple(sorted((k, repr(v)) for k, v in row.items())), row)
    return list(unique.values())


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


def _text_on_screen(page, text: str) -> bool:
    return page.get_by_text(text, exact=False).count() > 0


def _main_width(page) -> float:
    return page.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"]


def test_presenter_flow_and_screenshots(server, browser_page, artifacts):
    """The README's "Demo in five minutes", step by step, each claim checked on screen against
    docs/demo-figures.json (`python -m optimus demo-figures`); README pictures with
    OPTIMUS_SCREENSHOTS=docs."""
    from optimus.evaluation import demo

    figures = demo.load()["sections"]
    claims = demo.readme_claims(demo.load())
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    console = _console_collector(page)

    # 1. Overview: the seed at chance, the default's figures, the sieve chart above the fold.
    page.goto(server["url"])
    page.get_by_role("heading", name=re.compile("Optimus: a neural prime generator")).wait_for()
    page.get_by_text("Lift over chance").first.wait_for()
    _chart(page, 0).wait_for()
    _settle(page)
    _no_exception(page)
    metrics = page.get_by_test_id("stMetricValue").all_inner_texts()
    seed, default = figures["overview"]["seed"], figures["overview"]["default"]
    for shown in (f"{default['hit_rate']:.1%}", f"{default['lift']:.2f}", f"{default['distinct_rate']:.1%}",
                  f"{default['balanced_accuracy']:.3f}", f"{seed['lift']:.2f}", f"{seed['balanced_accuracy']:.3f}"):
        assert shown in metrics, (shown, metrics)
    sieve = _rows_with(_chart_data(page, 0), "vs_chance")
    by_model = {m: [r["vs_chance"] for r in sieve if r["model"] == m] for m in ("default", "seed")}
    assert f"at most {max(by_model['default']):.2f}x chance" == claims["default sieve"]
    assert f"between {min(by_model['seed']):.2f}x and {max(by_model['seed']):.2f}x" == claims["seed sieve"]
    box = _chart(page, 0).bounding_box()
    assert box["y"] + box["height"] <= 900, f"the sieve chart ends at {box['y'] + box['height']:.0f} px, below the fold"
    assert box["width"] >= 800, f"the sieve chart is {box['width']:.0f} px wide"
    assert not _text_on_screen(page, "random odd numbers need") or page.locator(
        '[data-testid="stMetricDelta"]').count() == 0  # no up-arrow delta on tests per prime
    _shot(page, artifacts / "1-overview.png")
    _doc_shot(page, "overview")
    _choose(page, "Model", re.compile(r"^seed$"))
    page.get_by_text(re.compile("has no learned sieve")).first.wait_for()
    _no_exception(page)
    assert page.get_by_test_id("stSelectbox").filter(has_text="Model").count() == 1  # the selector stays
    assert "overview_model=seed" in page.url
    links = page.locator('[data-testid="stPageLink"] a').evaluate_all("els => els.map(a => a.href)")
    assert any("sample_model=seed" in href for href in links), links
    _choose(page, "Model", re.compile(r"^default$"))

    # 2. Train: the demo preset; "starting" at once; a column per planned batch; the sieve
    # emerging; Stop, Continue ("starting" again, no Continue button while it starts).
    _goto(page, "Train")
    page.get_by_test_id("stRadio").filter(has_text="Preset").locator("label").filter(
        has_text=re.compile(r"^demo$")).first.click()
    _settle(page)
    _wait_until(lambda: page.get_by_label("Batches", exact=True).first.input_value() == str(figures["train"]["batches"]),
                "the demo preset did not set the form's batches", timeout=60)
    _fill(page, "Model name (saved as)", "demo1")
    model_dir = server["root"] / "demo1"
    page.get_by_role("button", name=re.compile("Start training")).click()
    page.get_by_text(re.compile(r"demo1 starting")).first.wait_for()
    status = runs.read_status(model_dir) or {}
    assert int(status.get("batches_done") or 0) == 0  # shown before the trainer's first batch
    assert not _text_on_screen(page, "has not been trained from this app yet")
    page.get_by_text(re.compile(r"Started training demo1")).wait_for()
    _wait_for_batches(model_dir, 3)
    trainer = storage.lock_holder(model_dir)["pid"]  # the warm trainer the Train page started took the run
    assert b"optimus.training.spare" in Path(f"/proc/{trainer}/cmdline").read_bytes()
    page.get_by_text(re.compile(r"running: batch \d+ of 20")).first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    heatmap = 4
    _wait_until(lambda: len(_chart_scale(page, heatmap) or []) == 20,
                "the heatmap does not hold a column for each of the 20 planned batches")
    _wait_for_batches(model_dir, 8)
    page.wait_for_timeout(2_500)  # the live view's next refresh
    cells = _rows_with(_chart_data(page, heatmap), "vs_chance")
    threes = {r["batch"]: r["vs_chance"] for r in cells if r["p"] == 3}
    assert threes[1] > 0.5 and threes[max(threes)] < threes[1], threes  # multiples of 3 sink
    lifts = {r["batch"]: r["value"] for r in _rows_with(_chart_data(page, 2), "value") if r.get("series") == "lift"}
    assert lifts[max(lifts)] > 2 * lifts[1], lifts  # the lift climbs on screen
    _shot(page, artifacts / "2-train-running.png")
    page.get_by_role("button", name=re.compile("Stop after the current step")).click()
    resume = page.get_by_role("button", name=re.compile(r"Continue: \d+ more batches"))
    resume.wait_for(timeout=TRAIN_TIMEOUT_MS)
    _no_exception(page)
    _shot(page, artifacts / "3-train-stopped.png")
    resume.click()
    page.get_by_text(re.compile(r"demo1 starting")).first.wait_for()
    page.locator("button:disabled").filter(has_text=re.compile(r"Continue: \d+ more batches")).first.wait_for()
    continues = page.get_by_role("button", name=re.compile(r"Continue: \d+ more batches"))
    _wait_until(lambda: continues.evaluate_all("els => els.every(e => e.disabled)"),  # the stopped view's
                "an enabled Continue while the continued run starts", timeout=10)  # button may linger a rerun
    page.get_by_text(re.compile(r"running: batch \d+ of 20 \(run: \d+ of \d+\)")).first.wait_for(
        timeout=TRAIN_TIMEOUT_MS)
    page.get_by_text(re.compile(r"done: batch 20 of 20 \(run: \d+ of \d+\)")).first.wait_for(
        timeout=TRAIN_TIMEOUT_MS)
    page.wait_for_timeout(2_500)
    _no_exception(page)
    _shot(page, artifacts / "4-train-done.png")
    _doc_shot(page, "train", scroll_to=_chart(page, 2))  # lift, accuracy and the heatmap
    table = runs.read_runs(model_dir)
    assert list(table["run"]) == ["run-002", "run-001"]
    assert list(table["status"]) == ["done", "stopped"]
    assert "run-001" in table["parent"].iloc[0]  # the continued run names the run it resumed
    launches = [line for line in (model_dir / "train.log").read_text().splitlines() if line.startswith("$ ")]
    assert len(launches) == 2 and all(" train --model-dir " in c and " --config " in c for c in launches)
    assert not list(model_dir.glob(runs.RUN_CONFIG_PREFIX + "*"))

    # 3. Sample primes at 200 digits (the count follows the size), then the discriminator's ROC.
    page.goto(f"{server['url']}/sample?sample_model=default&size=digits&digits=200")
    page.get_by_role("heading", name="Sample primes").first.wait_for()
    page.get_by_test_id("stCode").first.wait_for()
    _settle(page)
    _no_exception(page)
    assert page.get_by_label("Samples", exact=True).first.input_value() == "100"
    listed = page.get_by_test_id("stCode").first.inner_text().split()
    assert len(listed) == 100 and all(len(n) == 200 for n in listed)  # every number whole
    table_box = page.get_by_test_id("stDataFrame").first.bounding_box()
    assert table_box["height"] <= 300
    assert page.get_by_test_id("stCode").first.bounding_box()["height"] <= 400  # the list scrolls
    assert "sample_model=default" in page.url
    _shot(page, artifacts / "5-sample.png")
    _doc_shot(page, "sample")

    _goto(page, "Discriminator vs sympy")
    page.get_by_text(re.compile(r"^Disagreements")).first.wait_for()
    _no_exception(page)
    labels = {r.get("model") for r in _rows_with(_chart_data(page, 1), "fpr")} - {None}
    assert claims["discriminator default AUC"] in labels and claims["discriminator seed AUC"] in labels, labels
    _shot(page, artifacts / "6-discriminator.png")
    _doc_shot(page, "discriminator")

    _goto(page, "Prime density", heading=False)
    _no_exception(page)
    _shot(page, artifacts / "7-density.png")
    _doc_shot(page, "density")

    # 4. Continual learning: the page opens on the shipped benchmark
    # (models/continual/factor-standard-3seeds.json); the README's figures (demo-figures'
    # continual section) are what its chart draws: the means over the seeds, per method.
    page.goto(f"{server['url']}/continual")
    page.get_by_role("heading", name="Continual learning").first.wait_for()
    page.get_by_text(re.compile(r"Figures are means over the seeds")).first.wait_for()
    _settle(page)
    _no_exception(page)
    assert f"cl_result={SHIPPED_BENCHMARK}" in page.url, page.url  # the page opens on the shipped benchmark
    spread = {(r["method"], r["metric"], r["seed"]): r["value"] for r in _rows_with(_chart_data(page, 0), "seed")}
    methods = {method for method, _, _ in spread}
    shown = {metric: {m: float(np.mean([v for (method, name, _), v in spread.items()
                                         if method == m and name == metric.upper()])) for m in methods}
             for metric in ("acc", "bwt")}
    on_screen = demo.readme_claims({"sections": {"continual": {**figures["continual"], **shown}}})
    for claim in ("continual least", "continual most", "continual best ACC", "continual ewc"):
        assert on_screen[claim] == claims[claim], (claim, on_screen[claim], claims[claim])
        assert claims[claim] in " ".join(demo.demo_section((REPO / "README.md").read_text()).split()), claim
    seeds = figures["continual"]["seeds"]
    assert sorted({seed for _, _, seed in spread}) == seeds and len(spread) == 2 * len(methods) * len(seeds)
    page.get_by_text(re.compile(rf"seeds {', '.join(map(str, seeds))},")).first.wait_for()
    _shot(page, artifacts / "8-continual-shipped.png")

    # Then a tiny benchmark from a shared link (the defaults take minutes, not for this walk);
    # its charts fit the page's column.
    page.goto(f"{server['url']}/continual?cl_tasks=3+5&cl_methods=none,ewc,l2,online-ewc,si,replay,joint,gln"
              "&cl_budget=tiny&cl_tune=false&cl_seeds=2")
    page.get_by_role("heading", name="Continual learning").first.wait_for()
    _settle(page)
    _no_exception(page)
    page.get_by_role("button", name=re.compile("Run in the background")).click()
    page.get_by_text(re.compile(r"Benchmark \S+ (starting|running)")).first.wait_for()
    _shot(page, artifacts / "9-continual-running.png")
    page.get_by_role("heading", name="Accuracy per task over time").first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    _settle(page)
    _no_exception(page)
    assert "cl_result=" in page.url  # the result is part of the shareable view
    column = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    for k in range(page.get_by_test_id("stVegaLiteChart").count()):
        chart = page.get_by_test_id("stVegaLiteChart").nth(k)
        inner = chart.evaluate("e => Math.max(...Array.from(e.querySelectorAll('canvas, svg'))"
                               ".map(c => c.getBoundingClientRect().right), 0)")
        assert inner <= column["x"] + column["width"] + 1, f"continual chart {k} overflows its column"
    _shot(page, artifacts / "10-continual-result.png")
    _doc_shot(page, "continual", scroll_to=page.get_by_role("heading", name="Benchmarks").first)

    assert not console, console
    assert not _server_log_problems(server["work"]), _server_log_problems(server["work"])[:40]
    print(f"screenshots saved in {artifacts}")


# Every page, and the links a presenter shares (the seed model on every page that shows a model,
# a big sample, a bad value), opened from its URL as a fresh visitor would.
LINKS = [
    "/", "/?overview_model=seed", "/train", "/train?train_watch=seed", "/sample", "/sample?sample_model=seed",
    "/sample?sample_model=default&size=digits&digits=200", "/discriminator", "/discriminator?disc_model=seed",
    "/density", "/density?overlay=seed", "/continual", "/sample?count=banana",
]


def test_no_console_error_and_no_server_traceback_on_any_page_or_link(server, fresh_page):
    """Issue 22: a browser test that collects console errors and the server log for every page
    and link and fails on any (`?disc_model=seed` once logged a session-state warning with a
    stack trace; the favicon was fetched from fonts.gstatic.com)."""
    page = fresh_page
    errors = _console_collector(page)
    start = (server["work"] / "streamlit.log").stat().st_size
    seen = {}
    for link in LINKS:
        before = len(errors)
        page.goto(server["url"] + link)
        page.locator('[data-testid="stMain"]').wait_for()
        page.wait_for_timeout(1_500)
        _settle(page)
        _no_exception(page)
        seen[link] = errors[before:]
    problems = _server_log_problems(server["work"], start)
    assert not any(seen.values()), {k: v for k, v in seen.items() if v}
    assert not problems, problems[:40]


def test_rendered_charts_hold_the_right_data_for_a_degenerate_model(server, fresh_page):
    """The ROC and by-magnitude charts, read back from the Vega views the browser drew: the seed
    (one probability for every integer) is the chance diagonal with AUC 0.500, the default's
    curve is its own; the seed's balanced accuracy is never drawn as 0.0 in a one-class bin."""
    page = fresh_page
    page.goto(server["url"] + "/discriminator?disc_model=seed&disc_source=Uniform+odd+integers&disc_count=3000")
    page.get_by_text(re.compile(r"^Disagreements")).first.wait_for()
    _settle(page)
    _no_exception(page)
    roc = _chart_data(page, 1)
    rows = _rows_with(roc, "fpr")
    seed = sorted((r for r in rows if str(r.get("model", "")).startswith("seed")), key=lambda r: r["step"])
    assert seed and seed[0]["model"] == "seed (AUC 0.500)"
    assert [(r["fpr"], r["tpr"]) for r in seed] == [(0, 0), (1, 1)]  # the diagonal, not a corner
    default = [r for r in rows if str(r.get("model", "")).startswith("default")]
    assert default and any(r["tpr"] > r["fpr"] + 0.5 for r in default if r["fpr"] is not None)
    by_magnitude = _rows_with(_chart_data(page, 2), "balanced_accuracy")
    seed_bins = [r for r in by_magnitude if r.get("model") == "seed"]
    assert seed_bins
    gap = [r for r in seed_bins if r["balanced_accuracy"] is None or r["balanced_accuracy"] != r["balanced_accuracy"]]
    # 3,000 uniform odd integers from 10^6: the two lowest bins hold 4 and 12 composites only
    assert gap and all(r["prime_share"] in (0, 1) for r in gap)
    assert all(r["balanced_accuracy"] == 0.5 for r in seed_bins if r not in gap)  # constant: chance


def _run_elsewhere(model_dir: Path, **start) -> None:
    """A run started outside the page (as from another browser or the command line), to its end."""
    runs.start_training(model_dir, overrides={"batches": 1, "batch_size": 64, "steps": 1}, **start)
    _wait_until(lambda: (runs.read_status(model_dir) or {}).get("state") == "done" and storage.lock_holder(model_dir) is None,
                f"{model_dir.name}: the run started elsewhere did not finish")


def test_an_idle_train_page_notices_a_run_started_elsewhere(server, fresh_page):
    """The idle Train page only stats the run's files (a 2 s fragment) and draws itself again when
    they change: a run started from elsewhere shows without a reload, and nothing breaks."""
    model_dir = server["root"] / "elsewhere"
    _run_elsewhere(model_dir, preset="demo")
    page = fresh_page
    console = _console_collector(page)
    page.goto(f"{server['url']}/train?train_watch=elsewhere")
    page.get_by_text(re.compile(r"done: batch 1 of 1")).first.wait_for()
    _settle(page)
    _run_elsewhere(model_dir)  # continued in place: the model's batch 2
    page.get_by_text(re.compile(r"done: batch 2 of 2")).first.wait_for(timeout=TRAIN_TIMEOUT_MS)
    _no_exception(page)
    assert not console, console
