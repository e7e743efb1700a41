"""Exact prime counts to 10^18: primecount where it wins, the sieves where they win, a cost
model that refuses (or marks estimated bins) instead of running for hours."""

import json

import pytest
import sympy

from optimus import limits
from optimus import primes as P


@pytest.mark.parametrize("lo, hi, bins, log", [(0, 1000, 7, False), (1, 10**6, 9, True), (999_000, 1_000_000, 3, False)])
def test_counts_match_sympy_on_small_ranges(lo, hi, bins, log):
    t = P.density_table(lo, hi, bins, log)
    assert all(r["exact"] for r in t["rows"]) and t["estimated_bins"] == 0
    for r in t["rows"]:
        assert r["count"] == sympy.primepi(r["hi"]) - sympy.primepi(r["lo"] - 1)


def test_known_values_above_the_old_limit():
    assert P.prime_pi(10**12) == 37607912018
    assert P.count_primes(10**12 + 1, 10**12 + 10**5) == sum(
        sympy.isprime(n) for n in range(10**12 + 1, 10**12 + 10**5 + 1))


@pytest.mark.slow
def test_pi_10_15():
    assert P.prime_pi(10**15) == 29844570422669


@pytest.mark.slow
def test_pi_10_18():  # about 45 s on 2 cores: the largest count the project promises
    assert P.prime_pi(10**18) == 24739954287740860


@pytest.fixture(autouse=True)
def fresh_count_cache():
    """Each test counts from scratch: a count memoised by another test (pi(10^18) of
    test_pi_10_18) would cost nothing and change what an estimate or a refusal sees."""
    P.clear_count_cache()
    yield
    P.clear_count_cache()


def test_costly_requests_are_refused_up_front_with_an_estimate():
    with pytest.raises(ValueError, match=r"would take about [\d,]+ s \(limit 60 s\)"):
        P.density_table(1, 10**18, 100, True)
    with pytest.raises(ValueError, match=r"prime_pi: counting exactly would take about"):
        P.prime_pi(10**18, max_seconds=1)
    assert P.count_seconds([10**18]) > P.count_seconds([10**15]) > P.count_seconds([10**12])


def test_estimated_bins_are_marked_never_silent():
    t = P.density_table(1, 10**17, 17, True, max_seconds=0.5, estimate=True)
    flags = [r["exact"] for r in t["rows"]]
    assert t["estimated_bins"] == flags.count(False) > 0 and flags[0]
    exact_rows = [r for r in t["rows"] if r["exact"]]
    for r in exact_rows[:8]:  # the low bins are true counts
        if r["hi"] < 10**7:
            assert r["count"] == sympy.primepi(r["hi"]) - sympy.primepi(r["lo"] - 1)
    top = t["rows"][-1]
    assert not top["exact"] and top["count"] == pytest.approx(top["expected_li"], abs=1)


def test_cli_density_beyond_10_10(run_cli):
    code, out, _ = run_cli("density", "--lo", 10**11, "--hi", 10**12, "--bins", 3, "--json")
    assert code == 0
    t = json.loads(out)
    assert t["total"] == 37607912018 - 4118054813 and t["estimated_bins"] == 0


def test_cli_density_estimate_is_labelled(run_cli):
    code, out, _ = run_cli("density", "--lo", 1, "--hi", 10**17, "--bins", 10, "--log",
                       "--max-seconds", "0.3", "--estimate")
    assert code == 0 and "(est.)" in out and "li(x) estimates" in out


@pytest.mark.parametrize("argv, needle", [
    (["--lo", 1, "--hi", 10**18, "--bins", 200, "--log"], "would take about"),
    (["--lo", 1, "--hi", 10**18 + 1], f"<= {limits.MAX_DENSITY_HI}"),
    (["--lo", 5, "--hi", 1], "lo > hi"),
])
def test_cli_density_bad_input(run_cli, argv, needle):
    code, out, err = run_cli("density", *argv)
    assert code != 0 and out == "" and needle in err and len(err.strip().splitlines()) == 1


# --- the Prime density page ---------------------------------------------------------------------

def density_page(**params):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import REPO

    at = AppTest.from_file(str(REPO / "optimus" / "app" / "pages" / "density.py"), default_timeout=180)
    for k, v in params.items():
        at.query_params[k] = str(v)
    return at.run()


def test_density_page_to_10_12_from_the_link():
    at = density_page(lo=1, hi=10**12, bins=12, spacing="log")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.metric[0].value == f"{37607912018:,}"
    assert at.text_input(key="hi").value == str(10**12) and at.radio(key="spacing").value == "log"
    link = {k: v[0] if isinstance(v, list) else v for k, v in at.query_params.items()}
    assert link["hi"] == str(10**12) and link["bins"] == "12"


@pytest.mark.slow
def test_density_page_refuses_or_marks_estimates(monkeypatch):
    at = density_page(lo=1, hi="10**18", bins=200, spacing="log")
    assert not at.exception and "would take about" in " ".join(e.value for e in at.error)
    monkeypatch.setattr(limits, "MAX_COUNT_SECONDS", 0.5)  # a budget this test can afford
    at = density_page(lo=1, hi="1e17", bins=21, spacing="log", estimate="true")
    assert not at.exception and not at.error
    assert "li(x) estimates" in at.warning[0].value and at.metric[0].value.startswith("~")
    assert not at.dataframe[0].value["exact"].all()


@pytest.mark.slow
def test_density_page_overlays_a_model_beyond_its_band(tmp_path):
    import os

    from optimus.store import runs
    from tests.helpers import shipped_or_tiny_models

    root = shipped_or_tiny_models(tmp_path / "models")
    old = os.environ.get(runs.MODELS_ENV)
    os.environ[runs.MODELS_ENV] = str(root)
    try:
        at = density_page(lo="10**12", hi="10**15", bins=6, spacing="log")
        [s for s in at.selectbox if s.label.startswith("Overlay")][0].set_value("default")
        at.run()
    finally:
        if old is None:
            os.environ.pop(runs.MODELS_ENV, None)
        else:
            os.environ[runs.MODELS_ENV] = old
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("learned sieve sampling at this size" in c.value for c in at.caption)


def test_primecount_from_a_thread_in_a_new_process():
    import subprocess
    import sys

    from tests.helpers import REPO

    code = ("import threading\nfrom optimus import primes\nout = []\n"
            "t = threading.Thread(target=lambda: out.append(primes.prime_pi(10**12)))\n"
            "t.start(); t.join(); print(out)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.stdout.strip() == "[37607912018]", res.stderr


@pytest.mark.slow
def test_narrow_bins_near_the_top_are_counted_by_one_sieve_and_exactly():
    """1,000 bins of 100 integers below 10^18: one segmented sieve (vectorised for the 25
    million base primes above the segment's length), checked against gmpy2 prime by prime."""
    import gmpy2

    lo, hi = 10**18 - 10**5, 10**18
    table = P.density_table(lo, hi, 1000, False)
    assert len(table["rows"]) == 1000
    for row in table["rows"][:: 97]:
        expected = sum(1 for n in range(row["lo"] | 1, row["hi"] + 1, 2) if gmpy2.is_prime(n))
        assert row["count"] == expected, row
    assert sum(r["count"] for r in table["rows"]) == sum(1 for n in range(lo | 1, hi + 1, 2) if gmpy2.is_prime(n))
