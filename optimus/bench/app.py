"""`bench app` and `bench app-load`: what a page load costs the server, against a bare
Streamlit page, and how many visitors two cores can serve.

`bench app`: three servers side by side, the app (over a temporary copy of the shipped models),
the bare page (`bare_page.py`, same Streamlit, same .streamlit/config.toml, its own process) and
the same bare page served the way app.py serves the app (`bare_page_served.py`). Each page of
`PAGES` is loaded in a new browser context (a new Streamlit session), after one warm-up load of
each, alternately with a load of each bare page; a load is over when the page's
last element is drawn and Streamlit's running indicator is gone. For each load: the server's
own CPU seconds (all threads, /proc/<pid>/stat) and its peak RSS. Reported: the median CPU per
page, its ratio to each bare page's median from the loads interleaved with it, the spread, the
peak RSS per page, the server's RSS after the whole flow, the server's CPU per static file
(Streamlit's handler against the serving layer's memory), and the cold start (from `streamlit
run app.py` to the Overview's figures drawn in Chromium, the browser already open).

`bench app-load`: the server's CPU per visitor flow (the eight loads of `PAGES`, one visitor,
median of several flows), the flows per minute that two cores could serve at that cost
(60 * 2 / CPU per flow), and the page answers (p50, p95) of `SESSIONS` browser sessions running
the flow at once; the browsers run on the same machine as the server and take CPU from it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from optimus.bench import server as srv
from optimus.store import storage

RATIO_TARGET = 2.0  # issue 18: every page's load at most 2x the bare page's server CPU
COLD_START_TARGET_S = 3.0
FLOW_CPU_TARGET_S = 2.0
P95_TARGET_S = 5.0
SESSIONS = 10
PAGE_TIMEOUT_MS = 180_000


@dataclasses.dataclass(frozen=True)
class PageLoad:
    name: str
    path: str  # "{seed}" is replaced by a new seed on each load, so no cached answer is timed
    ready: str | re.Pattern  # text drawn late in the page's script
    charts: int = 0  # and at least this many charts drawn


PAGES = (
    PageLoad("overview", "/", "Lift over chance", charts=1),
    PageLoad("sample 10,000 in band", "/sample?count=10000&seed={seed}", "What the network learned", charts=1),
    PageLoad("sample 100 primes of 100 digits", "/sample?size=digits&digits=100&count=100&primes=true&seed={seed}",
             "Download CSV", charts=1),
    PageLoad("discriminator", "/discriminator?disc_seed={seed}", re.compile(r"^Disagreements"), charts=1),
    PageLoad("density", "/density", "Primes in range", charts=1),
    PageLoad("density to 1e15, 100 log bins", "/density?lo=2&hi=1000000000000000&bins=100&spacing=log",
             "Primes in range", charts=1),
    PageLoad("train", "/train", "Past runs", charts=1),
    PageLoad("continual", "/continual", re.compile(r"Accuracy per task over time|No benchmark yet|No finished benchmark")),
)
BARE = PageLoad("bare page", "/", "A bare page")
QUICK_PAGES = ("overview", "sample 10,000 in band", "train")


def copy_models(dest: Path) -> list[str]:
    """The repository's shipped models (not mid-training), without logs and locks."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    models = srv.REPO / "models"
    for source in sorted(models.iterdir()) if models.is_dir() else []:
        if (source / storage.CONFIG).exists() and storage.lock_holder(source) is None:
            shutil.copytree(source, dest / source.name,
                            ignore=shutil.ignore_patterns(storage.LOCK, storage.STOP, storage.LOG, "logs"))
            copied.append(source.name)
    return copied


async def load(page, url: str, spec: PageLoad, timeout_ms: int = PAGE_TIMEOUT_MS) -> list[str]:
    """Open `url` in `page` and wait until `spec`'s page is drawn and its script run is over;
    returns the exceptions the page shows."""
    await page.goto(url, timeout=timeout_ms)
    await page.get_by_text(spec.ready).first.wait_for(timeout=timeout_ms)
    if spec.charts:
        await page.locator('[data-testid="stVegaLiteChart"]').nth(spec.charts - 1).wait_for(timeout=timeout_ms)
    await srv.settle(page, timeout_ms)
    return [(await e.inner_text())[:300] for e in await page.locator(srv.EXCEPTION).all()]


async def measured_load(browser, server, spec: PageLoad, seed: int) -> dict:
    """One load of `spec` in a new browser context: server CPU, peak RSS, wall time."""
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    try:
        with srv.PeakRss(server.pid) as peak:
            cpu0, t0 = srv.cpu_seconds(server.pid), time.perf_counter()
            problems = await load(page, server.url + spec.path.format(seed=seed), spec)
            wall, cpu = time.perf_counter() - t0, srv.cpu_seconds(server.pid) - cpu0
    finally:
        await context.close()
    await asyncio.sleep(0.3)  # the server drops the closed session before the next load
    return {"cpu_s": cpu, "wall_s": wall, "peak_rss": peak.peak, "exceptions": problems}


def static_file_cpu_ms(server, names: list[str]) -> float:
    """The server's CPU milliseconds per static file: `names` (paths under Streamlit's static
    folder) fetched in turn over one keep-alive connection, as a browser fetches a page's chunks."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        cpu0 = srv.cpu_seconds(server.pid)
        for name in names:
            conn.request("GET", f"/{name}")
            conn.getresponse().read()
        return (srv.cpu_seconds(server.pid) - cpu0) * 1000 / len(names)
    finally:
        conn.close()


def _static_files_cost(stock, served, rounds: int = 5, files: int = 130) -> dict:
    """Server CPU per static file through Streamlit's own handler (`stock`) and from memory
    (`served`, optimus/app/serving.py): the first `files` JavaScript chunks, once to warm up,
    then `rounds` interleaved rounds; median and spread."""
    from streamlit import file_util  # Streamlit: the CLI imports optimus.bench without it

    js = os.path.join(file_util.get_static_dir(), "static", "js")
    names = [f"static/js/{n}" for n in sorted(os.listdir(js))[:files]]
    out: dict = {"files": len(names)}
    for server in (stock, served):  # warm-up: the memory cache filled, the connection paths run once
        static_file_cpu_ms(server, names)
    runs = {"stock": [], "from_memory": []}
    for _ in range(rounds):
        runs["stock"].append(static_file_cpu_ms(stock, names))
        runs["from_memory"].append(static_file_cpu_ms(served, names))
    out.update({key: _summary(v) for key, v in runs.items()})
    return out


def _summary(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


# Python writes each module's bytecode on its first import (__pycache__), so a server starts from
# it every time but the first after a clone; an environment that sets PYTHONDONTWRITEBYTECODE
# (as some sandboxes do) would compile every module of the app on every start instead.
_WRITE_BYTECODE = {"PYTHONDONTWRITEBYTECODE": ""}


async def _first_overview(browser, models_root: Path) -> dict:
    """A new server (`streamlit run app.py`) and the Overview opened in a new browser context (the
    browser already running): when the server answered /_stcore/health, when the page opened its
    websocket (Streamlit's front end loaded), when the first figure was drawn and when the script
    run was over, in seconds after the launch; and the server's CPU."""
    out: dict = {}
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    opened: list[float] = []
    page.on("websocket", lambda ws: opened.append(time.perf_counter()))
    try:
        with srv.serve(models_root, env=_WRITE_BYTECODE) as server:
            out["health_s"] = server.healthy - server.launched
            out["health_cpu_s"] = srv.cpu_seconds(server.pid)
            await page.goto(server.url + PAGES[0].path, timeout=PAGE_TIMEOUT_MS)
            await page.get_by_text(PAGES[0].ready).first.wait_for(timeout=PAGE_TIMEOUT_MS)
            await page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=PAGE_TIMEOUT_MS)
            out["overview_drawn_s"] = time.perf_counter() - server.launched
            await srv.settle(page, PAGE_TIMEOUT_MS)
            out["script_done_s"] = time.perf_counter() - server.launched
            out["websocket_s"] = (opened[0] - server.launched) if opened else None
            out["server_cpu_s"] = srv.cpu_seconds(server.pid)
            out["rss_mb"] = srv.rss_bytes(server.pid)[0] / 2**20
    finally:
        await context.close()
    return out


async def _cold_start(browser, models_root: Path) -> dict:
    """The cold start: a new server to the Overview's figures drawn in Chromium (browser open).
    Measured on the second start of the app's code: the first (reported as `first_start`) is a
    new clone's, which also writes the modules' bytecode."""
    first = await _first_overview(browser, models_root)
    out = await _first_overview(browser, models_root)
    out["first_start"] = first
    out["met"] = out["overview_drawn_s"] <= COLD_START_TARGET_S
    return out


async def _bench_app(models_root: Path, pages, repeat: int) -> dict:
    from playwright.async_api import async_playwright  # Playwright: the CLI imports optimus.bench

    results: dict = {"pages": {}}
    async with async_playwright() as p:
        browser = await srv.launch_chromium(p)
        try:
            results["cold_start"] = await _cold_start(browser, models_root)
            with (srv.serve(models_root) as app, srv.serve(script=srv.BARE_PAGE) as bare,
                  srv.serve(script=srv.BARE_PAGE_SERVED) as served):
                loads = {spec.name: [] for spec in pages}
                paired = {spec.name: [] for spec in pages}
                paired_served = {spec.name: [] for spec in pages}
                for spec in pages:  # warm-up: imports, caches, the models
                    await measured_load(browser, app, spec, seed=1)
                    await measured_load(browser, bare, BARE, seed=1)
                    await measured_load(browser, served, BARE, seed=1)
                results["rss_warm_mb"] = srv.rss_bytes(app.pid)[0] / 2**20
                for r in range(repeat):
                    for i, spec in enumerate(pages):
                        paired[spec.name].append(await measured_load(browser, bare, BARE, seed=0))
                        paired_served[spec.name].append(await measured_load(browser, served, BARE, seed=0))
                        loads[spec.name].append(await measured_load(browser, app, spec, seed=100 + 10 * r + i))
                results["rss_after_mb"] = srv.rss_bytes(app.pid)[0] / 2**20
                results["bare_rss_mb"] = srv.rss_bytes(bare.pid)[0] / 2**20
                results["static_file_ms"] = _static_files_cost(bare, served)
        finally:
            await browser.close()
    results["bare_cpu_s"] = _summary([x["cpu_s"] for runs in paired.values() for x in runs])
    results["bare_served_cpu_s"] = _summary([x["cpu_s"] for runs in paired_served.values() for x in runs])
    for spec in pages:
        cpu = [x["cpu_s"] for x in loads[spec.name]]
        bare_cpu = float(np.median([x["cpu_s"] for x in paired[spec.name]]))
        served_cpu = float(np.median([x["cpu_s"] for x in paired_served[spec.name]]))
        results["pages"][spec.name] = {
            "path": spec.path, "cpu_s": _summary(cpu), "bare_cpu_s": bare_cpu, "bare_served_cpu_s": served_cpu,
            "ratio": float(np.median(cpu)) / max(bare_cpu, 1e-3),
            "ratio_served": float(np.median(cpu)) / max(served_cpu, 1e-3),
            "wall_s": float(np.median([x["wall_s"] for x in loads[spec.name]])),
            "peak_rss_mb": max(x["peak_rss"] for x in loads[spec.name]) / 2**20,
            "exceptions": sorted({e for x in loads[spec.name] for e in x["exceptions"]}),
        }
    # (VmHWM is reset before each load, so the flow's peak is the largest of the loads' peaks)
    results["rss_peak_mb"] = max(p["peak_rss_mb"] for p in results["pages"].values())
    results["met"] = all(p["ratio"] <= RATIO_TARGET for p in results["pages"].values())
    return results


def bench_app(quick: bool = False) -> dict:
    """Each page's server CPU per load against the bare page's, peak RSS, RSS after the flow,
    cold start. quick: three pages, one timed round (full: eight pages, three rounds)."""
    missing = srv.browser_missing()
    results: dict = {"quick": quick, "target_ratio": RATIO_TARGET, "cold_start_target_s": COLD_START_TARGET_S}
    if missing:
        return {**results, "error": missing}
    pages = [p for p in PAGES if p.name in QUICK_PAGES] if quick else list(PAGES)
    repeat = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        results["models"] = copy_models(root)
        results["rounds"] = repeat
        results.update(asyncio.run(_bench_app(root, pages, repeat)))
    return results


def format_app(r: dict) -> list[str]:
    if "error" in r:
        return [f"  {r['error']}"]
    b, s = r["bare_cpu_s"], r["bare_served_cpu_s"]
    lines = [f"  models: {', '.join(r['models']) or 'none shipped'}; {r['rounds']} timed round(s) after a warm-up, "
             f"each page in a new browser session, interleaved with the bare page",
             f"  bare Streamlit page: {b['median']:.3f} s of server CPU per load (min {b['min']:.3f}, max {b['max']:.3f}, "
             f"{b['n']} loads)",
             f"  the same bare page served like the app (optimus/app/serving.py): {s['median']:.3f} s "
             f"(min {s['min']:.3f}, max {s['max']:.3f})",
             f"  {'page':<34} {'server CPU':>10} {'min-max':>13} {'vs bare':>8} {'vs served':>9} {'wall':>7} "
             f"{'peak RSS':>9}"]
    for name, p in r["pages"].items():
        c = p["cpu_s"]
        line = (f"  {name:<34} {c['median']:8.3f} s {c['min']:6.2f}-{c['max']:<5.2f}s {p['ratio']:7.2f}x "
                f"{p['ratio_served']:8.2f}x {p['wall_s']:6.2f}s {p['peak_rss_mb']:6.0f} MB")
        if p["exceptions"]:
            line += f"  [page shows: {p['exceptions'][0][:80]}]"
        lines.append(line)
    lines.append(f"  every page within {r['target_ratio']:g}x the bare page: {'met' if r['met'] else 'MISSED'}")
    if "static_file_ms" in r:
        f = r["static_file_ms"]
        lines.append(f"  server CPU per static file ({f['files']} JavaScript chunks in turn, {f['stock']['n']} rounds): "
                     f"Streamlit's handler {f['stock']['median']:.2f} ms ({f['stock']['min']:.2f}-{f['stock']['max']:.2f}), "
                     f"from memory {f['from_memory']['median']:.2f} ms ({f['from_memory']['min']:.2f}-"
                     f"{f['from_memory']['max']:.2f})")
    lines.append(f"  server RSS: {r['rss_warm_mb']:.0f} MB after the warm-up, {r['rss_after_mb']:.0f} MB after the "
                 f"flow (peak during the timed loads {r['rss_peak_mb']:.0f} MB); the bare page's server {r['bare_rss_mb']:.0f} MB")
    c = r["cold_start"]
    lines.append(f"  cold start: `streamlit run app.py` to /_stcore/health {c['health_s']:.2f} s, to the Overview's "
                 f"figures drawn in Chromium {c['overview_drawn_s']:.2f} s ({c['server_cpu_s']:.2f} s of server CPU, "
                 f"{c['rss_mb']:.0f} MB); target <= {r['cold_start_target_s']:g} s: {'met' if c['met'] else 'MISSED'}")
    if "script_done_s" in c:
        f = c["first_start"]
        ws = f"{c['websocket_s']:.2f} s" if c.get("websocket_s") is not None else "-"
        lines.append(f"    after the launch: health {c['health_s']:.2f} s ({c['health_cpu_s']:.2f} s of server CPU), the "
                     f"page's websocket {ws}, first figure {c['overview_drawn_s']:.2f} s, script over "
                     f"{c['script_done_s']:.2f} s; a new clone's first start (writing the bytecode) "
                     f"{f['overview_drawn_s']:.2f} s ({f['server_cpu_s']:.2f} s of server CPU)")
    return lines


# --- app-load: a room of visitors ------------------------------------------------------------


async def _flow(browser, server, pages, seed: int, times: list | None = None) -> list[str]:
    """One visitor: every page of `pages` in turn, in one browser context (each load a new
    Streamlit session, as a page opened from a link is)."""
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    from playwright.async_api import (
        TimeoutError as PlaywrightTimeout,  # Playwright: the CLI imports optimus.bench
    )

    problems = []
    try:
        for i, spec in enumerate(pages):
            t0 = time.perf_counter()
            try:
                problems += await load(page, server.url + spec.path.format(seed=seed * 100 + i), spec)
            except PlaywrightTimeout:  # counted as an answer at the time limit, and reported
                problems.append(f"no answer within {PAGE_TIMEOUT_MS / 1000:.0f} s: {spec.name}")
            if times is not None:
                times.append(time.perf_counter() - t0)
    finally:
        await context.close()
    return problems


async def _bench_app_load(models_root: Path, pages, flows: int, sessions: int) -> dict:
    from playwright.async_api import async_playwright  # Playwright: the CLI imports optimus.bench

    out: dict = {}
    async with async_playwright() as p:
        browser = await srv.launch_chromium(p)
        try:
            with srv.serve(models_root) as server:
                await _flow(browser, server, pages, seed=1)  # warm-up
                cpu, alone = [], []
                for k in range(flows):
                    start = srv.cpu_seconds(server.pid)
                    await _flow(browser, server, pages, seed=10 + k, times=alone)
                    await asyncio.sleep(0.3)
                    cpu.append(srv.cpu_seconds(server.pid) - start)
                times: list[float] = []
                rss_before = srv.rss_bytes(server.pid)[0]
                me = os.getpid()
                with srv.PeakRss(server.pid) as peak:
                    start, t0 = srv.cpu_seconds(server.pid), time.perf_counter()
                    browsers0, machine0 = srv.descendants_cpu_seconds(me, [server.pid]), srv.machine_cpu_seconds()
                    bench0 = srv.cpu_seconds(me)
                    problems = await asyncio.gather(*(_flow(browser, server, pages, seed=1000 + s, times=times)
                                                      for s in range(sessions)))
                    out["concurrent_wall_s"] = time.perf_counter() - t0
                    out["concurrent_server_cpu_s"] = srv.cpu_seconds(server.pid) - start
                    # Where the cores went meanwhile: the browsers (Chromium's processes and
                    # Playwright's driver), this process, and the whole machine (other work too).
                    out["concurrent_browsers_cpu_s"] = srv.descendants_cpu_seconds(me, [server.pid]) - browsers0
                    out["concurrent_machine_cpu_s"] = srv.machine_cpu_seconds() - machine0
                    out["concurrent_bench_cpu_s"] = srv.cpu_seconds(me) - bench0
                    # the rest: every other process on the machine (other users' work, the kernel's)
                    out["concurrent_others_cpu_s"] = max(0.0, out["concurrent_machine_cpu_s"] - out["concurrent_server_cpu_s"]
                                                         - out["concurrent_browsers_cpu_s"] - out["concurrent_bench_cpu_s"])
                    out["load_average"] = os.getloadavg()[0]
                    out["cores"] = os.cpu_count()
                await asyncio.sleep(2.0)
                out["rss_before_mb"] = rss_before / 2**20
                out["rss_peak_mb"] = peak.peak / 2**20
                out["rss_after_mb"] = srv.rss_bytes(server.pid)[0] / 2**20
        finally:
            await browser.close()
    out["cpu_per_flow_s"] = _summary(cpu)
    out["flows_per_minute_2_cores"] = 60 * 2 / out["cpu_per_flow_s"]["median"]
    out["alone_p50_s"] = float(np.percentile(alone, 50))
    out["page_p50_s"], out["page_p95_s"] = (float(np.percentile(times, q)) for q in (50, 95))
    out["page_answers"] = len(times)
    out["exceptions"] = sorted({e for s in problems for e in s})
    out["met"] = out["cpu_per_flow_s"]["median"] <= FLOW_CPU_TARGET_S and out["page_p95_s"] <= P95_TARGET_S
    return out


def bench_app_load(quick: bool = False) -> dict:
    """Server CPU per visitor flow, flows per minute on two cores, and page answers of SESSIONS
    concurrent browser sessions. quick: three pages, one measured flow, three sessions."""
    missing = srv.browser_missing()
    sessions = 3 if quick else SESSIONS
    results: dict = {"quick": quick, "sessions": sessions, "cpu_target_s": FLOW_CPU_TARGET_S,
                     "p95_target_s": P95_TARGET_S}
    if missing:
        return {**results, "error": missing}
    pages = [p for p in PAGES if p.name in QUICK_PAGES] if quick else list(PAGES)
    results["pages_per_flow"] = len(pages)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        results["models"] = copy_models(root)
        results.update(asyncio.run(_bench_app_load(root, pages, 1 if quick else 3, sessions)))
    return results


def format_app_load(r: dict) -> list[str]:
    if "error" in r:
        return [f"  {r['error']}"]
    c = r["cpu_per_flow_s"]
    return [
        f"  one visitor's flow ({r['pages_per_flow']} page loads): {c['median']:.2f} s of server CPU "
        f"(min {c['min']:.2f}, max {c['max']:.2f}, {c['n']} flows; target <= {r['cpu_target_s']:g} s) -> two cores "
        f"serve about {r['flows_per_minute_2_cores']:.1f} flows per minute",
        f"  {r['sessions']} browser sessions at once running the flow (the browsers share this machine with the "
        f"server): page answer p50 {r['page_p50_s']:.2f} s, p95 {r['page_p95_s']:.2f} s over {r['page_answers']} "
        f"answers (target p95 <= {r['p95_target_s']:g} s; one visitor alone: p50 {r['alone_p50_s']:.2f} s); "
        f"{r['concurrent_server_cpu_s']:.1f} s of server CPU in {r['concurrent_wall_s']:.1f} s"
        + (f" ({r['concurrent_server_cpu_s'] / r['concurrent_wall_s']:.2f} cores); meanwhile the browsers (Chromium and "
           f"Playwright) used {r['concurrent_browsers_cpu_s']:.1f} s and the whole machine {r['concurrent_machine_cpu_s']:.1f} s "
           f"of CPU ({r['concurrent_machine_cpu_s'] / r['concurrent_wall_s']:.2f} of {r['cores']} cores busy)"
           if "concurrent_browsers_cpu_s" in r else ""),
        *([f"  where the machine's CPU went during the sessions: server {r['concurrent_server_cpu_s']:.1f} s, browsers "
           f"{r['concurrent_browsers_cpu_s']:.1f} s, this bench {r['concurrent_bench_cpu_s']:.1f} s, everything else "
           f"{r['concurrent_others_cpu_s']:.1f} s (load average {r['load_average']:.1f} at the end)"]
          if "concurrent_others_cpu_s" in r else []),
        f"  server RSS: {r['rss_before_mb']:.0f} MB before the sessions, {r['rss_after_mb']:.0f} MB after "
        f"(peak {r['rss_peak_mb']:.0f} MB); exceptions shown: {len(r['exceptions'])}"
        + (f" [{r['exceptions'][0][:80]}]" if r["exceptions"] else ""),
        f"  goals (CPU per flow, p95): {'met' if r['met'] else 'MISSED'}",
    ]
