"""What issue 21 found untested: one run seen from two places at once, and a server killed.

- The Train page in two browser tabs of one server, and on two app servers over one models
  folder (as behind a load balancer): a run started from one is watched, stopped and continued
  from the other, and the live view follows in both. Two simultaneous Starts of one new model
  name, one from each: exactly one run starts and the other page says why.
- Two launchers (two server processes) starting one model at the same moment, without a browser.
- The server killed (SIGKILL) during a background continual benchmark, and restarted.

Browser tests drive Debian's /usr/bin/chromium through Playwright; training is tiny (batch size 64,
one step per batch).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimus.bench import server as bench_server
from optimus.experiments import background
from optimus.store import runs, storage
from tests.helpers import shipped_or_tiny_models

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 300_000  # TensorFlow import + a few tiny batches on a busy 2-core machine
ANSWER = re.compile(r"Started training \S+|already in progress|was just started|already exists")


# --- two launchers, no browser -----------------------------------------------------------------

_HOLD = """
import sys, time
from optimus.store import storage
fd = storage.launch_lock(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_launch_in_progress_elsewhere_refuses_a_second_start(tmp_path):
    """Another process (another app server) is launching model m: a start here is refused with
    why, and writes nothing."""
    model = tmp_path / "models" / "m"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(model), "60"], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(storage.LockedError, match="was just started"):
            runs.start_training(model, preset="default", overrides={"batches": 1, "batch_size": 64, "steps": 1})
        assert not model.exists()
    finally:
        runs.forget_children()
        holder.kill()
        holder.wait()
    # Released with its holder (killed): the next launcher may go.
    os.close(storage.launch_lock(model))


_RACER = """
import json, sys, time
from optimus.store import runs, storage
at = float(sys.argv[2])
time.sleep(max(0.0, at - time.time()))
try:
    pid = runs.start_training(sys.argv[1], preset="default", overrides={"batches": 1, "batch_size": 64, "steps": 1})
    print(json.dumps({"started": pid}), flush=True)
    runs._spawned.clear()  # the trainer is detached: leave it running when this launcher exits
except storage.LockedError as exc:
    print(json.dumps({"refused": str(exc)}), flush=True)
"""


@pytest.mark.slow
def test_two_launchers_at_the_same_moment_start_one_run(tmp_path):
    """Two app servers' launchers press Start for one new model at the same moment: exactly one
    trainer starts, the other is told why, and the model has one run."""
    model = tmp_path / "models" / "race"
    at = time.time() + 3.0  # both interpreters have imported optimus by then
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, str(model), str(at)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO) for _ in range(2)]
    answers = []
    for racer in racers:
        out, err = racer.communicate(timeout=300)
        answers.append(json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-2000:]})
    started = [a for a in answers if "started" in a]
    refused = [a for a in answers if "refused" in a]
    assert len(started) == 1 and len(refused) == 1, answers
    assert re.search("was just started|already in progress", refused[0]["refused"]), refused
    deadline = time.time() + 300
    while time.time() < deadline:
        status = runs.read_status(model)
        if status is not None and not status["live"] and status.get("state") not in ("starting", None):
            break
        time.sleep(0.5)
    assert status["state"] == "done", (status, runs.tail_log(model))
    starts = [e for e in storage.read_jsonl(model / storage.RUNS) if e.get("event") == "start"]
    assert len(starts) == 1, starts


# --- the Train page from two places ----------------------------------------------------------


async def _settle(page) -> None:
    await page.wait_for_timeout(300)
    await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=TIMEOUT_MS)


async def _no_exception(page) -> None:
    count = await page.locator('[data-testid="stException"]').count()
    assert count == 0, await page.locator('[data-testid="stException"]').first.inner_text()


async def _open_train(page, url: str, watch: str | None = None) -> None:
    await page.goto(url + "/train" + (f"?train_watch={watch}" if watch else ""))
    await page.get_by_role("heading", name="Train").first.wait_for()
    await _settle(page)


async def _fill_form(page, name: str, batches: int) -> None:
    for label, value in (("Model name (saved as)", name), ("Batches", batches), ("Batch size", 64),
                         ("Steps per batch", 1)):
        field = page.get_by_label(label, exact=True).first
        await field.fill(str(value))
        await field.press("Tab")
    await _settle(page)


async def _start(page) -> str:
    await page.get_by_role("button", name=re.compile("Start training")).click()
    answer = page.get_by_text(ANSWER).first
    await answer.wait_for(timeout=TIMEOUT_MS)
    return await answer.inner_text()


def _wait_for(condition, message: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(message)
        time.sleep(0.3)


def _batches(model: Path) -> int:
    status = runs.read_status(model) or {}
    return int(status.get("batches_done") or 0) if status.get("state") == "running" else 0


async def _watch_stop_continue(first, second, root: Path) -> None:
    """Start from `first`; watch, Stop and Continue from `second`; the live view in both."""
    model = root / "shared"
    await _fill_form(first, "shared", 400)
    assert (await _start(first)).startswith("Started training shared")
    _wait_for(lambda: _batches(model) >= 1, "the run did not start")
    await second.goto(second.url.split("?")[0] + "?train_watch=shared")
    await _settle(second)
    for page in (first, second):  # the live view, in both
        await page.get_by_text(re.compile(r"run-001 running: batch \d+ of 400")).first.wait_for(timeout=TIMEOUT_MS)
    await second.get_by_role("button", name=re.compile("Stop after the current step")).click()
    for page in (first, second):  # the first sees the stop the second asked for
        await page.get_by_role("button", name=re.compile(r"Continue: \d+ more batches")).wait_for(timeout=TIMEOUT_MS)
    await second.get_by_role("button", name=re.compile(r"Continue: \d+ more batches")).click()
    for page in (first, second):
        await page.get_by_text(re.compile(r"run-002 running: batch \d+ of \d+")).first.wait_for(timeout=TIMEOUT_MS)
    await first.get_by_role("button", name=re.compile("Stop after the current step")).click()
    for page in (first, second):
        await page.get_by_role("button", name=re.compile(r"Continue: \d+ more batches")).wait_for(timeout=TIMEOUT_MS)
        await _no_exception(page)
    table = runs.read_runs(model)
    assert list(table["run"]) == ["run-002", "run-001"] and list(table["status"]) == ["stopped", "stopped"], table
    assert "run-001" in table["parent"].iloc[0]


async def _race(first, second, root: Path) -> list[str]:
    """Both pages press Start for one new model name at the same moment."""
    for page in (first, second):
        await page.goto(page.url.split("?")[0])
        await _settle(page)
        await _fill_form(page, "race", 1)
    answers = await asyncio.gather(_start(first), _start(second))
    for page in (first, second):
        await _no_exception(page)
    return list(answers)


async def _two_places(urls: list[str], root: Path, tabs: bool) -> list[str]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            one = await browser.new_context(viewport={"width": 1300, "height": 1000})
            other = one if tabs else await browser.new_context(viewport={"width": 1300, "height": 1000})
            first, second = await one.new_page(), await other.new_page()
            for page in (first, second):
                page.set_default_timeout(TIMEOUT_MS)
            await _open_train(first, urls[0])
            await _open_train(second, urls[-1])
            await _watch_stop_continue(first, second, root)
            return await _race(first, second, root)
        finally:
            await browser.close()


def _check_race(answers: list[str], root: Path) -> None:
    started = [a for a in answers if a.startswith("Started training race")]
    assert len(started) == 1, answers
    assert re.search("was just started|already in progress|already exists", [a for a in answers if a not in started][0])
    _wait_for(lambda: (runs.read_status(root / "race") or {}).get("state") == "done", "the race run did not finish")
    starts = [e for e in storage.read_jsonl(root / "race" / storage.RUNS) if e.get("event") == "start"]
    assert len(starts) == 1, starts


@pytest.mark.slow
@pytest.mark.e2e
def test_train_page_in_two_tabs_of_one_server(tmp_path):
    root = shipped_or_tiny_models(tmp_path / "models")
    with bench_server.serve(root, log_path=tmp_path / "streamlit.log") as server:
        answers = asyncio.run(_two_places([server.url], root, tabs=True))
        _check_race(answers, root)


@pytest.mark.slow
@pytest.mark.e2e
def test_two_app_servers_on_one_models_folder(tmp_path):
    root = shipped_or_tiny_models(tmp_path / "models")
    with bench_server.serve(root, log_path=tmp_path / "a.log") as a, \
            bench_server.serve(root, log_path=tmp_path / "b.log") as b:
        answers = asyncio.run(_two_places([a.url, b.url], root, tabs=False))
        _check_race(answers, root)


# --- the server killed during a background benchmark --------------------------------------------


def _serve(root: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = bench_server.free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=dict(os.environ, **{runs.MODELS_ENV: str(root)}), stdin=subprocess.DEVNULL,
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _wait_for(lambda: bench_server.http_status(url + "/_stcore/health") == 200 or proc.poll() is not None, "no server", 120)
    assert proc.poll() is None, log.read_text()[-2000:]
    return proc, url


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "_continual" not in p.parts}


async def _benchmark_page(url: str, start: bool) -> tuple[str, list[str]]:
    """Open the Continual page (a long benchmark's settings); press Run if `start`. Returns the
    page's text and its error messages."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1300, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(url + "/continual?cl_tasks=3+5+7+11+13&cl_methods=none,ewc&cl_budget=standard"
                            "&cl_tune=false&cl_seeds=5")
            await page.get_by_role("heading", name="Continual learning").first.wait_for()
            await _settle(page)
            if start:
                await page.get_by_role("button", name=re.compile("Run in the background")).click()
                await page.get_by_text(re.compile(r"Benchmark \S+ running")).first.wait_for()
            await _no_exception(page)
            errors = [await e.inner_text() for e in await page.locator('[data-testid="stAlertContentError"]').all()]
            return await page.locator("body").inner_text(), errors
        finally:
            await browser.close()


@pytest.mark.slow
@pytest.mark.e2e
def test_server_killed_during_a_background_benchmark(tmp_path):
    root = shipped_or_tiny_models(tmp_path / "models")
    before = _hashes(root)
    proc, url = _serve(root, tmp_path / "streamlit.log")
    try:
        asyncio.run(_benchmark_page(url, start=True))
        [record] = background.list_runs(root, shipped=False)
        assert record["live"], record
        # The machine goes down: the server and the benchmark it started, both killed at once.
        os.killpg(proc.pid, signal.SIGKILL)
        os.killpg(record["pid"], signal.SIGKILL)
        proc.wait()
        _wait_for(lambda: not background.read(record["id"], root)["live"], "the benchmark's lock was not released", 30)
        proc, url = _serve(root, tmp_path / "streamlit.log")
        text, errors = asyncio.run(_benchmark_page(url, start=False))
        after = background.read(record["id"], root)
        assert after["state"] == "interrupted" and not after["live"], after
        assert "Stop after the current task" not in text, text[-2000:]  # (the table is a canvas: no text)
        assert not errors, errors
        assert _hashes(root) == before  # the models are untouched
        # A new benchmark is not refused by the dead one.
        asyncio.run(_benchmark_page(url, start=True))
        assert [r["live"] for r in background.list_runs(root, shipped=False)].count(True) == 1
    finally:
        for r in background.list_runs(root, shipped=False):
            if r["live"] and isinstance(r.get("pid"), int) and r["pid"] > 1:
                os.killpg(r["pid"], signal.SIGKILL)
        runs.stop_process_group(proc)
