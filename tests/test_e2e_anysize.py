"""End to end: a link to the Sample page with ?digits=50 opens 50-digit primes in a real
headless Chromium against `streamlit run app.py`; the downloaded CSV holds exactly those primes,
as decimal strings, each verified with sympy and labelled BPSW-probable.

Reuses the app server and browser fixtures of tests/test_e2e_browser.py (a temporary copy of
the shipped models; Debian's /usr/bin/chromium).
"""

from __future__ import annotations

import csv

import pytest
import sympy

from tests.test_e2e_browser import _no_exception, _settle, _shot, artifacts, browser_page, server  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_sample_page_link_with_digits_50(server, browser_page, artifacts):  # noqa: F811
    page = browser_page
    page.goto(f"{server['url']}/sample?digits=50&count=12&seed=3")
    page.get_by_role("heading", name="Sample primes").first.wait_for()
    _settle(page)
    page.get_by_text("Tests per prime").first.wait_for()
    _settle(page)
    _no_exception(page)
    assert page.locator('[data-testid="stAlert"]').filter(has_text="not valid").count() == 0
    # the list to copy: a code block with one 50-digit prime per line
    code = page.locator('[data-testid="stCode"]').first.inner_text().split()
    assert len(code) == 12 and all(len(n) == 50 and sympy.isprime(int(n)) for n in code)
    assert "seed=3" in page.url and "digits=50" in page.url
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download CSV").first.click()
    target = server["work"] / download_info.value.suggested_filename
    download_info.value.save_as(str(target))
    with open(target, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["n"] for r in rows] == code
    assert all(r["certainty"] == "probable prime (BPSW, no known counterexample)" and r["d_prob"] == "" for r in rows)
    _shot(page, artifacts / "sample-50-digits.png")
