"""Every request a visitor can make is bounded by optimus.limits (issue 14, resource bounds):
each limit is accepted at its value and refused one past it, on the CLI and, where the request
exists, on its page. Refusals are one line (CLI) or one `st.error` (page), and write nothing.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from optimus import limits
from optimus.config import preset
from optimus.validate import parse_int
from tests.helpers import REPO

PAGES = REPO / "optimus" / "app" / "pages"


def _refused(code, err, *words):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for w in words:
        assert w.replace(",", "") in lines[0].replace(",", ""), lines[0]  # 10,000 or 10000


# --- the CLI ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_sample_count(models_root, run_cli, over):
    code, out, err = run_cli("sample", "--model-dir", models_root / "default", "-n", limits.MAX_SAMPLES + over)
    if over:
        _refused(code, err, f"{limits.MAX_SAMPLES:,}")
    else:
        assert code == 0 and len(out.splitlines()) == 1 + limits.MAX_SAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_classify_count(models_root, run_cli, monkeypatch, over):
    text = "7\n" * (limits.MAX_CLASSIFY + over)
    code, out, err = run_cli("classify", "--model-dir", models_root / "default", stdin=text)
    if over:
        _refused(code, err, f"at most {limits.MAX_CLASSIFY:,} integers")
    else:
        assert code == 0 and len(out.splitlines()) == limits.MAX_CLASSIFY


@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_classify_value(models_root, run_cli, monkeypatch, over):
    value = limits.EXACT_LIMIT - 1 + over
    code, out, err = run_cli("classify", "--model-dir", models_root / "default", stdin=f"{value}\n")
    if over:
        _refused(code, err, "too large")
    else:
        assert code == 0 and out.startswith(f"{value},")


@pytest.mark.slow
@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_evaluate_counts(models_root, run_cli, over):
    # -n at MAX_SAMPLES would sample 100,000 and classify 20,000 more: the uniform count is the
    # limit checked here (MAX_CLASSIFY), the sample count by test_sample_count.
    code, out, err = run_cli("evaluate", "--model-dir", models_root / "default", "-n", 100,
                          "--uniform-count", limits.MAX_CLASSIFY + over, "--json")
    if over:
        _refused(code, err, f"{limits.MAX_CLASSIFY:,}")
    else:
        assert code == 0 and '"count": 100000' in out


@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_density_bins(run_cli, over):
    code, out, err = run_cli("density", "--lo", 1, "--hi", 10**6, "--bins", limits.MAX_BINS + over, "--json")
    if over:
        _refused(code, err, f"{limits.MAX_BINS:,}")
    else:
        assert code == 0 and out.count('"count"') == limits.MAX_BINS


@pytest.mark.slow
@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_density_range(run_cli, over):
    hi = limits.MAX_DENSITY_HI + over
    code, out, err = run_cli("density", "--lo", hi - 1000, "--hi", hi, "--bins", 2, "--json")
    if over:
        _refused(code, err, f"{limits.MAX_DENSITY_HI:,}")
    else:
        assert code == 0 and '"rows"' in out


TRAIN_LIMITS = [
    ("--batches", "batches", limits.MAX_BATCHES),
    ("--batch-size", "batch_size", limits.MAX_BATCH_SIZE),
    ("--steps", "steps", limits.MAX_STEPS),
    ("--method-lambda", "method_lambda", limits.MAX_METHOD_LAMBDA),
]


@pytest.mark.parametrize("flag, field, limit", TRAIN_LIMITS, ids=[t[1] for t in TRAIN_LIMITS])
def test_train_settings(tmp_path, run_cli, flag, field, limit):
    # At the limit the run is accepted (the config the CLI builds; running 10,000 batches is
    # not a test); one past, the CLI refuses it in one line and writes nothing.
    assert getattr(preset("default", **{field: limit}), field) == limit
    past = limit * 2 if isinstance(limit, float) else limit + 1
    model = tmp_path / "m"
    code, _, err = run_cli("train", "--model-dir", model, flag, past)
    _refused(code, err)
    assert not model.exists()


def test_train_latent_range(tmp_path, run_cli):
    assert preset("default", latent_lo=1, latent_hi=limits.MAX_LATENT).latent_hi == limits.MAX_LATENT
    code, _, err = run_cli("train", "--model-dir", tmp_path / "m", "--latent-range", 1, limits.MAX_LATENT + 1)
    _refused(code, err, f"{limits.MAX_LATENT}")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_integer_size(over):
    text = f"2**{limits.MAX_INT_BITS - 1 + over}"
    if over:
        with pytest.raises(ValueError, match="too large"):
            parse_int(text)
    else:
        assert parse_int(text).bit_length() == limits.MAX_INT_BITS


@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_network_size(over):
    # gen_depth 2 and width w: 2w + w^2 parameters; the largest width within the cap, and one more.
    w = int((limits.MAX_PARAMETERS + 1) ** 0.5) - 1
    while 2 * (w + 1) + (w + 1) ** 2 <= limits.MAX_PARAMETERS:
        w += 1
    cfg = dict(gen_depth=2, gen_width=w + over)
    if over:
        with pytest.raises(ValueError, match="MAX_PARAMETERS"):
            preset("seed", **cfg)
    else:
        assert preset("seed", **cfg).parameter_counts()["generator"] <= limits.MAX_PARAMETERS


# --- the pages -------------------------------------------------------------------------


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=300)


def _number(at, label):
    return next(w for w in at.number_input if w.label == label)


def _errors(at) -> str:
    assert not at.exception, at.exception
    return " | ".join(e.value for e in at.error)


@pytest.mark.slow
@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_sample_page_count(models_root, over):
    at = _page("sample").run()
    _number(at, "Samples").set_value(limits.MAX_SAMPLES + over)
    at.run()
    if over:
        assert f"{limits.MAX_SAMPLES:,}" in _errors(at)
    else:
        assert not _errors(at) and len(at.dataframe[0].value) == limits.MAX_SAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_discriminator_page_pasted_list(models_root, over):
    at = _page("discriminator").run()
    at.radio(key="disc_source").set_value("Pasted list").run()
    at.text_area[0].set_value("1000003\n" * (limits.MAX_CLASSIFY + over)).run()
    if over:
        assert f"at most {limits.MAX_CLASSIFY:,} integers" in _errors(at)
    else:
        assert not _errors(at)
        assert f"{limits.MAX_CLASSIFY:,} integers" in " ".join(c.value for c in at.caption)


@pytest.mark.slow
@pytest.mark.parametrize("over", [False, True], ids=["at", "past"])
def test_density_page_bins_and_range(models_root, over):
    at = _page("density").run()
    at.text_input(key="lo").set_value(str(limits.MAX_DENSITY_HI - 10**6))
    at.text_input(key="hi").set_value(str(limits.MAX_DENSITY_HI + over))
    _number(at, "Bins").set_value(limits.MAX_BINS + over)
    at.run()
    if over:
        assert f"{limits.MAX_DENSITY_HI:,}" in _errors(at)
        at.text_input(key="hi").set_value(str(limits.MAX_DENSITY_HI))
        at.run()
        assert f"{limits.MAX_BINS:,}" in _errors(at)
    else:
        assert not _errors(at) and len(at.dataframe[0].value) == limits.MAX_BINS
