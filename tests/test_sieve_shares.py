"""models/sieve-shares.json, the Overview's sieve chart of the shipped models computed once
(`python -m optimus sieve-shares`): it equals a fresh computation, and it is handed out only for
the model and request it was computed for."""

from __future__ import annotations

import json
import shutil

import pytest

from optimus.evaluation import report, sieve_shares
from optimus.primes import SIEVE_CHART_PRIMES
from optimus.store import runs, storage

SHIPPED_ROOT = runs.REPO_ROOT / "models"


def test_the_shipped_file_equals_a_fresh_computation():
    figure = json.loads(sieve_shares.FILE.read_text())
    assert figure["command"] == sieve_shares.COMMAND
    assert (figure["samples"], figure["seed"], figure["primes"]) == (
        sieve_shares.SAMPLES, sieve_shares.SEED, list(SIEVE_CHART_PRIMES))
    assert sorted(figure["models"]) == sorted(sieve_shares.SHIPPED)
    for name in sieve_shares.SHIPPED:
        model_dir = SHIPPED_ROOT / name
        entry = figure["models"][name]
        # of these models as they are shipped (run `python -m optimus sieve-shares` after retraining one)
        assert entry["fingerprint"] == sieve_shares.fingerprint(model_dir), name
        assert entry["divisible"] == sieve_shares.compute(model_dir), name
        assert sieve_shares.shipped(model_dir, sieve_shares.SAMPLES, sieve_shares.SEED,
                                    SIEVE_CHART_PRIMES) == entry["divisible"]


def test_the_shipped_counts_are_the_residue_zero_shares_the_page_would_compute():
    model_dir = SHIPPED_ROOT / "default"
    counts = sieve_shares.shipped(model_dir, sieve_shares.SAMPLES, sieve_shares.SEED, SIEVE_CHART_PRIMES)
    n = report.outputs(report.load_models(model_dir), sieve_shares.SAMPLES, seed=sieve_shares.SEED)
    shares = report.residue_distribution(n, list(SIEVE_CHART_PRIMES))
    zero = shares[shares["residue"] == 0]
    assert zero["p"].tolist() == list(SIEVE_CHART_PRIMES)
    assert zero["share"].tolist() == [c / sieve_shares.SAMPLES for c in counts]


def test_another_request_or_a_changed_model_is_not_answered_from_the_file(tmp_path):
    copy = tmp_path / "default"
    shutil.copytree(SHIPPED_ROOT / "default", copy, ignore=shutil.ignore_patterns("logs"))
    args = (sieve_shares.SAMPLES, sieve_shares.SEED, SIEVE_CHART_PRIMES)
    assert sieve_shares.shipped(copy, *args) is not None  # a copy is the same model
    assert sieve_shares.shipped(copy, sieve_shares.SAMPLES, 1, SIEVE_CHART_PRIMES) is None
    assert sieve_shares.shipped(copy, 5_000, sieve_shares.SEED, SIEVE_CHART_PRIMES) is None
    assert sieve_shares.shipped(copy, sieve_shares.SAMPLES, sieve_shares.SEED, (3, 5, 7)) is None
    config = json.loads((copy / storage.CONFIG).read_text())
    config["seed"] = config.get("seed", 0) + 1  # another model: its config differs
    (copy / storage.CONFIG).write_text(json.dumps(config))
    assert sieve_shares.shipped(copy, *args) is None


@pytest.mark.parametrize("content", ["", "{", "[]", '{"models": 3}', '{"samples": 10000, "seed": 0}'])
def test_a_damaged_file_is_ignored(tmp_path, content):
    path = tmp_path / "sieve-shares.json"
    path.write_text(content)
    assert sieve_shares.shipped(SHIPPED_ROOT / "default", sieve_shares.SAMPLES, sieve_shares.SEED,
                                SIEVE_CHART_PRIMES, path=path) is None


def test_write_produces_what_shipped_reads(tmp_path):
    path = tmp_path / "figure.json"
    figure = sieve_shares.write(SHIPPED_ROOT, names=("seed",), path=path)
    assert sieve_shares.shipped(SHIPPED_ROOT / "seed", sieve_shares.SAMPLES, sieve_shares.SEED,
                                SIEVE_CHART_PRIMES, path=path) == figure["models"]["seed"]["divisible"]
    assert sieve_shares.shipped(SHIPPED_ROOT / "default", sieve_shares.SAMPLES, sieve_shares.SEED,
                                SIEVE_CHART_PRIMES, path=path) is None
