"""`python -m optimus bench`: JSON on stdout only, the shape of each section, and the table."""

import json

import pytest

from optimus import bench
from optimus.cli import main


@pytest.mark.slow
def test_bench_quick_json_is_valid_and_complete(capfd, monkeypatch):
    monkeypatch.setitem(bench.SAMPLE_SIZES, True, 20_000)  # the shape, not the figure
    code = main(["bench", "primes", "density", "sample", "--quick", "--json"])
    out, err = capfd.readouterr()
    assert code == 0, err
    results = json.loads(out)  # nothing but JSON on stdout
    assert list(results) == ["primes", "density", "sample"]
    primes_, density, sample = results["primes"], results["density"], results["sample"]
    assert primes_["below_1e9"]["identical"] and primes_["2p40_to_2p53"]["identical"]
    for state in ("memory", "disk", "no_sieve"):
        for hi in ("1e9", "1e10"):
            assert density[f"{state}_{hi}_s"] > 0
    assert density["target_s"] == 2.0 and isinstance(density["met"], bool)
    assert sample["identical"] is True
    assert sample["latents"] == 20_000 and sample["target_per_s"] == 1_000_000
    assert sample["speedup"] == pytest.approx(sample["reference_s"] / sample["fast_s"])
    assert sample["fast_per_s"] > sample["reference_per_s"] > 0
    assert isinstance(sample["met"], bool)
    assert "running bench sample" in err


def test_bench_rejects_unknown_names(capsys):
    assert main(["bench", "sample", "nonsense"]) != 0
    assert "unknown benchmark 'nonsense'" in capsys.readouterr().err


FAKE = {
    "primes": {"quick": True, "sieve_setup": "memory", "sieve_setup_s": 0.0, "sieve_cache": "/c",
               **{k: {"n": 10, "ours_per_s": 1e6, "sympy_per_s": 1e4, "speedup": 100.0, "identical": True}
                  for k in ("below_1e9", "2p40_to_2p53")}},
    "density": {"quick": False, "bins": 100, "target_s": 2.0, "sieve_setup": "loaded", "sieve_setup_s": 0.04,
                "memory_1e9_s": 0.001, "disk_1e9_s": 0.04, "no_sieve_1e9_s": 0.25,
                "memory_1e10_s": 0.6, "disk_1e10_s": 0.7, "no_sieve_1e10_s": 0.8, "met": True},
    "sample": {"quick": False, "latents": 1_000_000, "target_per_s": 1_000_000, "sieve_setup": "memory",
               "sieve_setup_s": 0.0, "tables": 14, "tables_setup_s": 0.003, "identical": True, "fast_s": 0.4,
               "reference_s": 6.0, "fast_per_s": 2.5e6, "reference_per_s": 1.67e5, "speedup": 15.0, "met": True,
               "generate_per_s": 2.7e6, "verify_per_s": 1.2e8, "prime_share": 0.09},
    "train": {"online_batch_seed_s": 2.0, "bare_loop_seed_s": 1.0, "online_vs_bare_seed": 2.0,
              "checkpoint_save_seed_s": 0.1, "batch_shape_seed": "2000 latents x 1 candidates, 75 steps",
              "fisher_1000_general_path_s": 0.1, "fisher_1000_s": 0.01, "batched_gradient_1000_s": 0.005,
              "fisher_vs_gradient": 2.0},
    "app": {"quick": False, "target_s": 2.0, "models": ["default", "seed"], "met": False,
            "pages": {"train": {"first_s": 0.4, "warm_s": 0.1, "met": True, "problems": []},
                      "sample": {"first_s": 3.0, "warm_s": 2.5, "met": False, "problems": ["No models"]}},
            "cold_start": {"health_s": 1.2, "root_s": 1.3, "browser_launch_s": 0.2, "page_heading_s": 2.6,
                           "page_done_s": 3.1, "page_exceptions": 0, "reload_heading_s": 0.9, "cold_to_page_s": 3.9}},
}


def test_format_table_shows_every_section_with_ratios_and_targets():
    text = bench.format_table(FAKE)
    for name in ("primes (quick)", "density", "sample", "train", "app"):
        assert any(line.startswith(name) for line in text.splitlines()), name
    assert "= 100.0x, identical" in text  # primes against sympy
    assert "fast 2,500,000/s vs reference 167,000/s = 15.0x, identical outputs" in text
    assert "target >= 1,000,000/s: met (2.50x the target)" in text
    assert "target <= 2 s over [1, 10**9]: met" in text and "(worst case 8.0x under the target)" in text
    assert "online batch (2000 latents x 1 candidates, 75 steps): 2.000 s vs bare loop 1.000 s = 2.00x" in text
    assert "met (20.0x under)" in text and "MISSED (1.2x over)" in text and "[page shows: No models]" in text
    assert "3.90 s from launch to a served page" in text
    assert "every page warm within 2 s: MISSED" in text


def test_format_table_survives_partial_results():
    assert "met" not in bench.format_table({"sample": {"quick": True, "latents": 5}})
    assert bench.format_table(FAKE["primes"]).startswith("primes (quick)")  # a bare bench_primes() result
    missing = {**FAKE["sample"], "identical": False, "met": False, "fast_per_s": 5e5}
    text = bench.format_table({"sample": missing})
    assert "OUTPUTS DIFFER" in text and "MISSED (0.50x the target)" in text


@pytest.mark.slow
def test_bench_app_quick_renders_every_page():
    r = bench.bench_app(quick=True)
    assert set(r["pages"]) >= {"train", "sample", "discriminator", "density"}
    for name, page in r["pages"].items():
        assert page["warm_s"] > 0 and not [p for p in page["problems"] if "Traceback" in p], name
    assert r["cold_start"].get("health_s", 0) > 0, r["cold_start"]
    assert "every page warm within 2 s" in bench.format_table({"app": r})
