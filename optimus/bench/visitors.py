"""Many visitors at once on one server (issue 14), the scenario tests/test_visitors_e2e.py
checks: each samples, opens the Discriminator and Density pages; some press Start on one new
model name at the same moment. (Its figures: `bench app-load`, optimus/bench/app.py.)"""

from __future__ import annotations

import asyncio
import gc
import re
import time

import numpy as np

from optimus.bench import server as srv

VISITOR_SAMPLES = 10_000  # each visitor samples this many from the default model
RACE_MODEL = "race"  # the new model two visitors try to start at the same moment


async def _visitor(browser, url: str, index: int, samples: int, race: asyncio.Barrier | None) -> dict:
    """One visitor: the Sample page with `samples` samples, then the Discriminator and Density
    pages; with `race`, then Start on the Train page for RACE_MODEL in step with the others."""
    out: dict = {"visitor": index, "times": {}, "exceptions": [], "race": None}
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(300_000)

    async def settle():
        await page.wait_for_timeout(300)
        await page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")

    async def exceptions():
        for e in await page.locator('[data-testid="stException"]').all():
            out["exceptions"].append((await e.inner_text())[:300])

    try:
        start = time.perf_counter()
        await page.goto(url + "/sample")
        await page.get_by_role("heading", name="Sample primes").first.wait_for()
        await settle()
        out["times"]["sample_page"] = time.perf_counter() - start
        field = page.get_by_label("Samples", exact=True).first
        start = time.perf_counter()
        await field.fill(str(samples))
        await field.press("Tab")
        await page.get_by_text(f"from the {samples:,} samples above").first.wait_for()
        await settle()
        out["times"]["sample_answer"] = time.perf_counter() - start
        out["sampled"] = True
        await exceptions()
        for link, marker in (("Discriminator vs sympy", re.compile(r"^Disagreements")),
                             ("Prime density", "Primes in range")):
            start = time.perf_counter()
            await page.get_by_role("link", name=link).first.click()
            await page.get_by_text(marker).first.wait_for()
            await settle()
            out["times"][link] = time.perf_counter() - start
            await exceptions()
        if race is not None:
            await page.get_by_role("link", name="Train").first.click()
            await page.get_by_role("heading", name="Train").first.wait_for()
            await settle()
            for label, value in (("Model name (saved as)", RACE_MODEL), ("Batches", 1), ("Batch size", 64),
                                 ("Steps per batch", 1)):
                f = page.get_by_label(label, exact=True).first
                await f.fill(str(value))
                await f.press("Tab")
            await settle()
            await race.wait()
            await page.get_by_role("button", name=re.compile("Start training")).click()
            answer = page.get_by_text(re.compile(
                rf"Started training {RACE_MODEL}|already in progress|was just started|already exists")).first
            await answer.wait_for()
            out["race"] = await answer.inner_text()
            await exceptions()
    finally:
        await context.close()
    return out


async def _visitors(url: str, count: int, samples: int, racers: int) -> list[dict]:
    from playwright.async_api import async_playwright  # Playwright: the CLI imports optimus.bench

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=srv.chromium_path(), headless=True, args=srv.CHROMIUM_ARGS)
        try:
            race = asyncio.Barrier(racers) if racers else None
            return await asyncio.gather(*(_visitor(browser, url, i, samples, race if i < racers else None)
                                          for i in range(count)))
        finally:
            await browser.close()


def visit_app(url: str, pid: int, count: int = 10, samples: int = VISITOR_SAMPLES, racers: int = 2) -> dict:
    """`count` browser sessions at once on one server (each samples, opens the Discriminator
    and Density pages; the first `racers` press Start on one new model name together). Returns
    every session's outcome and page times, and the server's RSS before, at peak and after."""
    before, _ = srv.rss_bytes(pid)
    sessions = asyncio.run(_visitors(url, count, samples, racers))
    time.sleep(2.0)  # let the server drop the closed sessions

    gc.collect()
    after, peak = srv.rss_bytes(pid)
    times = sorted(t for s in sessions for t in s["times"].values())
    return {"sessions": sessions, "rss_before": before, "rss_peak": peak, "rss_after": after,
            "page_p50_s": float(np.percentile(times, 50)) if times else None,
            "page_p95_s": float(np.percentile(times, 95)) if times else None}
