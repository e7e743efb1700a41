"""optimus.evaluation: vetting by the discriminator, pasted lists, the shipped default model's figures."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from optimus.evaluation import report as evaluation
from optimus.evaluation.report import load_models, sample, vetting_report
from optimus.training.loop import train
from tests.helpers import REPO, tiny


@pytest.mark.parametrize("text, message", [
    ("7 abc", "'abc' is not a whole number"),
    ("-3", "-3 is negative"),
    (str(2**53), "too large (must be below 2**53)"),
    ("x" * 100, "... (100 characters)"),
    ("", "no integers given"),
])
def test_pasted_lists(text, message):
    from optimus.evaluation.report import parse_integers

    with pytest.raises(ValueError) as info:
        parse_integers(text)
    assert message in str(info.value) and len(str(info.value)) < 120


@pytest.mark.slow
def test_discriminator_rejection_sampling_vets_candidates(tmp_path):
    """vet=True keeps the generator's draws the discriminator accepts (with its probability),
    counts the candidates it looked at per output, and is reported apart from the generator."""
    cfg = tiny("default", batches=3, batch_size=256, steps=10, window=32, out_lo=1e4, out_hi=1e6,
               gen_wide_prime_max=1000, disc_prime_max=1000, disc_hidden=16, lr_generator=1e-9)
    train(cfg, tmp_path / "m", progress=False, log=lambda *_: None)  # the discriminator learns, the generator barely
    models = load_models(tmp_path / "m")
    plain = sample(models, 3000, seed=2)
    vetted = sample(models, 3000, seed=2, vet=True)
    assert "candidates" not in plain.columns
    assert vetted["candidates"].min() >= 1 and vetted["accepted"].all()
    assert vetted["candidates"].mean() > 2  # a chance-level generator: most candidates rejected
    assert vetted["is_prime"].mean() > plain["is_prime"].mean() + 0.3, (vetted["is_prime"].mean(), plain["is_prime"].mean())
    rep = vetting_report(vetted)
    assert rep["candidates_per_output"] == pytest.approx(vetted["candidates"].mean())
    assert rep["acceptance_rate"] == pytest.approx(1 / vetted["candidates"].mean())


@pytest.fixture(scope="module")
def tiny_models(tiny_model):
    return load_models(tiny_model)


def test_rejection_sampling_gives_up_with_a_mark(tiny_models, monkeypatch):
    monkeypatch.setattr(evaluation, "discriminate_reals", lambda m, reals: np.zeros(len(np.ravel(reals))))
    monkeypatch.setattr(evaluation, "MAX_VET_CANDIDATES", 5)
    vetted = sample(tiny_models, 40, seed=0, vet=True)
    assert (vetted["candidates"] == 5).all() and not vetted["accepted"].any()
    assert vetting_report(vetted)["gave_up"] == 40


@pytest.mark.parametrize("band", [(10, 5), (0, 100), (1e6, 2.0**53)])
def test_bad_bands_are_refused_in_one_line(tiny_models, band):
    with pytest.raises(ValueError, match="band must satisfy"):
        sample(tiny_models, 10, out_lo=band[0], out_hi=band[1])


def _evaluate_json(*args) -> dict:
    out = subprocess.run([sys.executable, "-m", "optimus", "evaluate", "--model-dir", str(REPO / "models" / "default"),
                          "--json", *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_shipped_default_model_meets_its_figures():
    """The README's figures for models/default, with fewer samples and a small margin, measured
    the way a user measures them: `python -m optimus evaluate` in a new process."""
    res = _evaluate_json("-n", "4000", "--uniform-range", "1000000", "1000000000", "--uniform-count", "10000")
    gen, vetted = res["generator"], res["generator_vetted"]
    assert gen["lift"] >= 7.8 and gen["hit_rate"] >= 0.93, gen
    assert gen["distinct_rate"] >= 0.998 and np.log10(gen["hi"] / gen["lo"]) >= 2.99, gen
    assert vetted["hit_rate"] >= 0.985 and 1.0 <= vetted["candidates_per_output"] < 1.2, vetted
    assert res["discriminator_on_uniform"]["balanced_accuracy"] >= 0.993, res["discriminator_on_uniform"]
    far = _evaluate_json("-n", "4000", "--no-vet", "--band", str(10**12), str(10**15),
                         "--uniform-range", str(10**10), str(10**12), "--uniform-count", "10000")
    assert far["generator"]["lift"] >= 5.8 and far["generator"]["lo"] >= 10**12, far["generator"]
    assert far["discriminator_on_uniform"]["balanced_accuracy"] >= 0.965, far["discriminator_on_uniform"]


@pytest.mark.parametrize("model", ["default", "seed"])
def test_report_from_a_samples_columns_is_the_report_computed_afresh(model):
    """The Discriminator page hands a sample's is_prime and d_prob to discriminator_report: they
    are exactly what it computes from the integers (both shipped models, dense and sieve
    generators), so the report is the same."""
    models = load_models(REPO / "models" / model)
    table = sample(models, 600, seed=3)
    n = table["n"].to_numpy()
    fresh = evaluation.discriminator_report(models, n)
    given = evaluation.discriminator_report(models, n, truth=table["is_prime"].to_numpy(),
                                            prob=table["d_prob"].to_numpy())
    assert np.array_equal(fresh["prob"], given["prob"]) and np.array_equal(fresh["truth"], given["truth"])
    figures = ("confusion", "roc", "roc_auc", "accuracy", "balanced_accuracy", "by_magnitude")
    assert json.dumps([fresh[k] for k in figures]) == json.dumps([given[k] for k in figures])  # NaN == NaN
    with pytest.raises(ValueError, match="given for 600"):
        evaluation.discriminator_report(models, n, truth=np.zeros(5, bool))
