"""Every page of the app under Streamlit's AppTest: set widgets, run, check what is drawn, and
check that a bad input is answered by st.error, never a traceback.

The app reads models from a temporary copy (OPTIMUS_MODELS_DIR), so nothing here writes into
the repository's models/. Starting a run spawns a stand-in trainer that takes the real lock
(the real trainer is exercised by tests/test_e2e_browser.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst
from streamlit.testing.v1 import AppTest

from optimus.app import charts_continual
from optimus.experiments import background
from optimus.store import checkpoint, runs, storage
from tests.helpers import (
    CONTENT,
    DEEP,
    FILES,
    MD,
    PAYLOADS,
    RECORD_DAMAGES,
    _damaged_record,
    _optimus,
    _plant,
    _record,
    _rendered_markup,
    damage,
    damaged_root,
    hashes,
)

REPO = Path(__file__).resolve().parent.parent
PAGES = REPO / "optimus" / "app" / "pages"
TIMEOUT = 180  # the first run of a page loads TensorFlow and the model


@pytest.fixture(scope="module")
def models_root(models_root):
    """conftest's models root, plus a model directory whose config.json is cut short."""
    damaged = models_root / "damaged"
    damaged.mkdir()
    (damaged / storage.CONFIG).write_text('{"preset": "default", "batch')
    return models_root


def page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=TIMEOUT)


def by_label(widgets, label):
    matches = [w for w in widgets if w.label == label]
    assert matches, f"no widget labelled {label!r}; have {[w.label for w in widgets]}"
    return matches[0]


def charts_of(at: AppTest):
    return [*at.get("vega_lite_chart"), *at.get("arrow_vega_lite_chart")]


def errors(at: AppTest) -> str:
    return " | ".join(e.value for e in at.error)


def assert_clean(at: AppTest):
    assert not at.exception, [e.value for e in at.exception]


# --- the app shell ----------------------------------------------------------------------


def test_app_declares_all_pages(models_root):
    if not (PAGES / "continual.py").exists():
        pytest.skip("optimus/app/pages/continual.py is not written yet")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    assert_clean(at)
    assert at.title[0].value.startswith("Optimus")  # the Overview is the landing page
    at.switch_page("optimus/app/pages/density.py").run()
    assert_clean(at)
    assert at.title[0].value == "Prime density"


# --- Train ------------------------------------------------------------------------------

FAKE_TRAINER = """
import sys, time
from optimus.store import storage
model_dir = sys.argv[sys.argv.index("--model-dir") + 1]
with storage.run_lock(model_dir):
    storage.write_json(model_dir + "/status.json", {"run": "run-001", "state": "running", "pid": __import__("os").getpid(),
                       "batches_done": 1, "batches_total": 3, "eta_seconds": 4.0, "message": ""})
    while not storage.stop_requested(model_dir):
        time.sleep(0.05)
"""


@pytest.fixture
def fake_trainer(monkeypatch):
    """Each launch's command and the config it was given (read from its --config file, which
    exists from before the command is built until the trainer has read it)."""
    real = runs.train_command
    launches = []

    def command(*args):
        cmd = real(*args)
        config = json.loads(Path(cmd[cmd.index("--config") + 1]).read_text())
        launches.append({"command": cmd, "config": config})
        return [sys.executable, "-c", FAKE_TRAINER, *cmd[4:]]

    monkeypatch.setattr(runs, "train_command", command)
    yield launches
    runs.forget_children()


@pytest.mark.slow
def test_train_page_starts_watches_and_refuses_a_second_run(models_root, fake_trainer):
    at = page("train").run()
    assert_clean(at)
    assert at.title[0].value == "Train"
    assert any("Limits: batches 1-10,000" in c.value for c in at.caption)
    by_label(at.text_input, "Model name (saved as)").set_value("ui-run")
    by_label(at.number_input, "Batches").set_value(3)
    by_label(at.number_input, "Batch size").set_value(64)
    by_label(at.number_input, "Steps per batch").set_value(2)
    by_label(at.number_input, "Latent lo").set_value(1)
    by_label(at.number_input, "Latent hi").set_value(10**6)
    by_label(at.selectbox, "Continual-learning method").set_value("online-ewc")
    at.button[0].click()  # the form's submit button
    at.run()
    assert_clean(at)
    assert not at.error, errors(at)
    assert any("Started training ui-run" in s.value for s in at.success)
    config = fake_trainer[-1]["config"]
    assert config["batches"] == 3 and config["batch_size"] == 64 and config["steps"] == 2
    assert (config["latent_lo"], config["latent_hi"]) == (1, 10**6)
    assert config["preset"] == "default" and config["method"] == "online-ewc"
    assert "--config" in fake_trainer[-1]["command"] and "--batches" not in fake_trainer[-1]["command"]

    # The page now watches the new model and finds its run from disk.
    assert at.selectbox(key="train_watch").value == "ui-run"
    model_dir = models_root / "ui-run"
    deadline = time.time() + 20  # the stand-in writes its status once it holds the lock
    while not (model_dir / storage.STATUS).exists() and time.time() < deadline:
        time.sleep(0.05)
    at.run()
    assert at.get("progress") and "batch 1 of 3" in at.get("progress")[0].proto.text
    assert len(charts_of(at)) == 5  # losses, hit rate, lift, accuracy, learned preferences

    # A second start for the same model is refused with a clear message.
    at.button[0].click()
    at.run()
    assert_clean(at)
    assert "already in progress" in errors(at) or "just started" in errors(at)

    # Stop ends it after the current step.
    stop = [b for b in at.button if b.key == "train_stop"]
    assert stop
    stop[0].click()
    at.run()
    deadline = time.time() + 10
    while storage.lock_holder(model_dir) is not None and time.time() < deadline:
        time.sleep(0.05)
    assert storage.lock_holder(model_dir) is None

    # Continue in one click: a new run in place for the batches the stopped run had left.
    at.run()
    assert_clean(at)
    resume = [b for b in at.button if b.key == "train_continue"]
    assert resume and "2 more batches" in resume[0].label
    resume[0].click()
    at.run()
    assert_clean(at)
    command, config = fake_trainer[-1]["command"], fake_trainer[-1]["config"]
    assert command[command.index("--model-dir") + 1] == str(model_dir)
    assert config["batches"] == 2
    assert "--from" not in command and "--preset" not in command


@pytest.mark.parametrize("field, value, message", [
    ("Model name (saved as)", "../evil", "'..'"),
    ("Model name (saved as)", "/etc/passwd", "not allowed"),
    ("Latent lo", 500, "lower end (500) is above its upper end (10)"),
    ("Batches", 0, "Batches must be between 1 and 10,000"),
])
def test_train_page_bad_input_shows_error(models_root, fake_trainer, field, value, message):
    at = page("train").run()
    widget = by_label(at.text_input if field.startswith("Model") else at.number_input, field)
    widget.set_value(value)
    if field == "Latent lo":
        by_label(at.number_input, "Latent hi").set_value(10)
    at.button[0].click()
    at.run()
    assert_clean(at)
    assert message in errors(at)
    assert not fake_trainer  # nothing was spawned


def test_train_page_refuses_existing_name_for_new_model(models_root, fake_trainer):
    at = page("train").run()
    by_label(at.text_input, "Model name (saved as)").set_value("default")
    at.button[0].click()
    at.run()
    assert_clean(at)
    assert "already exists" in errors(at)


@pytest.mark.parametrize("demonstrate, flag", [(False, "inert-regularizers"), (True, "apply-regularizers")])
def test_train_page_seed_preset_trains_as_the_original_or_demonstrates_divergence(
        models_root, fake_trainer, demonstrate, flag):
    at = page("train").run()
    at.radio(key="train_preset").set_value("seed").run()
    box = at.checkbox(key="train_regularizers")
    assert box.value is False  # the original code never applied its regularisers
    if demonstrate:
        box.check().run()
        assert any("Demonstration of the divergence" in w.value for w in at.warning)
    by_label(at.text_input, "Model name (saved as)").set_value(f"seed-{flag.strip('-')}")
    by_label(at.number_input, "Batches").set_value(1)
    at.button[0].click()
    at.run()
    assert_clean(at)
    assert not at.error, errors(at)
    assert fake_trainer[-1]["config"]["apply_regularizers"] is demonstrate
    assert fake_trainer[-1]["config"]["preset"] == "seed"


def test_train_page_shows_a_demonstrated_divergence_as_expected(models_root):
    model_dir = models_root / "seed-diverged"
    model_dir.mkdir()
    storage.write_json(model_dir / storage.CONFIG, {"preset": "seed", "apply_regularizers": True})
    storage.write_json(model_dir / storage.STATUS, {
        "run": "run-001", "state": "failed", "pid": 1, "batches_done": 0, "batches_total": 5,
        "message": "batch 1: losses became inf/NaN"})
    at = page("train")
    at.query_params["train_watch"] = "seed-diverged"
    at.run()
    assert_clean(at)
    assert at.selectbox(key="train_watch").value == "seed-diverged"
    assert any("Diverged, as the demonstration expects" in i.value for i in at.info)
    assert "inf/NaN" not in errors(at)


def test_train_page_inputs_round_trip_through_the_url(models_root, fake_trainer):
    at = page("train")
    at.query_params.update({"train_preset": "seed", "train_batches": "7", "train_ewc_mode": "online",
                            "train_ewc_lambda": "2.5"})
    at.run()
    assert_clean(at)
    assert at.radio(key="train_preset").value == "seed"
    assert by_label(at.number_input, "Batches").value == 7
    assert by_label(at.number_input, "Method lambda").value == 2.5  # train_ewc_lambda= links still read
    # a link made before the plugins (train_ewc_mode=online) still opens the same view
    assert by_label(at.selectbox, "Continual-learning method").value == "online-ewc"
    by_label(at.number_input, "Steps per batch").set_value(9)
    at.button[0].click()  # a form's values reach the URL when it is submitted
    at.run()
    assert at.query_params["train_steps"] in ("9", ["9"])
    assert at.query_params["train_batches"] in ("7", ["7"])


@pytest.mark.parametrize("name, param, value", [
    ("train", "train_batches", "0"), ("train", "train_batches", "many"), ("train", "train_method_lambda", "inf"),
    ("train", "train_preset", "bogus"), ("train", "train_watch", "../etc"),
    ("discriminator", "disc_model", "nope"), ("discriminator", "disc_count", "-5"),
    ("discriminator", "disc_hi", "1e99"), ("discriminator", "disc_source", "Everything")])
def test_bad_url_values_give_the_page_its_normal_error(models_root, name, param, value):
    at = page(name)
    at.query_params[param] = value
    at.run()
    assert_clean(at)
    assert f"`{param}=" in errors(at)


# --- Sample primes ----------------------------------------------------------------------


def test_sample_page(models_root):
    at = page("sample").run()
    assert_clean(at)
    at.selectbox(key="sample_model").set_value("default")
    by_label(at.number_input, "Samples").set_value(2_000)
    by_label(at.number_input, "Seed").set_value(3)
    at.run()
    assert_clean(at)
    assert not at.error, errors(at)
    labels = [m.label for m in at.metric]
    assert labels[:5] == ["Prime hit rate", "Distinct rate", "Distinct-prime rate", "Baseline", "Lift"]
    table = at.dataframe[0].value
    assert len(table) == 2_000 and list(table.columns) == ["latent", "n", "is_prime", "d_prob"]
    assert (table["n"] % 2 == 1).all()
    assert at.download_button and at.download_button[0].label == "Download CSV"
    assert len(charts_of(at)) >= 3  # histogram, residues, comparison
    comparison = at.dataframe[1].value
    assert set(comparison["model"]) == {"default", "seed"}


@pytest.mark.parametrize("value, message", [(0, "Samples must be between 1 and 100,000; you entered 0"),
                                            (100_001, "Samples must be between 1 and 100,000")])
def test_sample_page_bad_count_shows_error(models_root, value, message):
    at = page("sample").run()
    by_label(at.number_input, "Samples").set_value(value)
    at.run()
    assert_clean(at)
    assert message in errors(at)
    assert not at.dataframe


def test_damaged_model_shows_error(models_root):
    at = page("sample").run()
    at.selectbox(key="sample_model").set_value("damaged")
    at.run()
    assert_clean(at)
    assert "config.json" in errors(at)


# --- Discriminator vs sympy -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("source", ["Generator outputs", "Uniform odd integers", "Pasted list"])
def test_discriminator_page(models_root, source):
    at = page("discriminator").run()
    assert_clean(at)
    at.radio(key="disc_source").set_value(source)
    at.run()
    if source != "Pasted list":
        by_label(at.number_input, "How many").set_value(3_000)
        at.run()
    assert_clean(at)
    assert not at.error, errors(at)
    assert [m.label for m in at.metric] == ["Accuracy", "Balanced accuracy", "Precision", "Recall", "F1", "ROC AUC"]
    assert len(charts_of(at)) == 3  # confusion matrix, ROC, accuracy by magnitude
    assert any(h.value.startswith("Disagreements") for h in at.subheader)


@pytest.mark.parametrize("text, message", [
    ("1000003, abc, 7", "'abc' is not a whole number"),
    ("1000003 -5", "-5 is negative"),
    (f"3 {2**53}", f"{2**53} is too large"),
    ("", "no integers"),
])
def test_discriminator_page_bad_list_shows_error(models_root, text, message):
    at = page("discriminator").run()
    at.radio(key="disc_source").set_value("Pasted list").run()
    at.text_area[0].set_value(text).run()
    assert_clean(at)
    assert message in errors(at)


def test_discriminator_page_bad_range_shows_error(models_root):
    at = page("discriminator").run()
    at.radio(key="disc_source").set_value("Uniform odd integers").run()
    by_label(at.number_input, "lo").set_value(10**9)
    by_label(at.number_input, "hi").set_value(10**6)
    at.run()
    assert_clean(at)
    assert "above its upper end" in errors(at)


def test_discriminator_page_inputs_round_trip_through_the_url(models_root):
    at = page("discriminator")
    at.query_params.update({"disc_model": "seed", "disc_source": "Uniform odd integers", "disc_count": "300",
                            "disc_seed": "4", "disc_lo": "1001", "disc_hi": "99999"})
    at.run()
    assert_clean(at)
    assert not at.error, errors(at)
    assert at.selectbox(key="disc_model").value == "seed"
    assert by_label(at.number_input, "How many").value == 300
    assert by_label(at.number_input, "hi").value == 99_999
    assert any("300 integers" in c.value for c in at.caption)
    by_label(at.number_input, "Seed").set_value(7)
    at.run()
    assert at.query_params["disc_seed"] in ("7", ["7"])
    assert at.query_params["disc_model"] in ("seed", ["seed"])


# --- Overview ---------------------------------------------------------------------------


def test_overview_is_the_landing_page_with_live_figures_the_sieve_and_links(models_root):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    assert_clean(at)
    assert not at.error, errors(at)
    assert at.title[0].value.startswith("Optimus")
    metrics = {}
    for m in at.metric:
        metrics.setdefault(m.label, []).append(m.value)
    # The figures are the shipped models' own evaluation.json, not text in the page.
    import json

    for k, name in enumerate(("default", "seed")):
        report = json.loads((models_root / name / "evaluation.json").read_text())
        if report.get("batches_trained") != runs.list_models()[[m["name"] for m in runs.list_models()].index(name)]["batches"]:
            continue  # a retrained model without a fresh evaluation.json is evaluated live instead
        assert metrics["Lift over chance"][k] == f"{report['generator']['lift']:.2f}"
        assert metrics["Prime hit rate"][k] == f"{report['generator']['hit_rate']:.1%}"
        assert metrics["Discriminator"][k] == f"{report['discriminator_on_uniform']['balanced_accuracy']:.3f}"
    assert len(charts_of(at)) == 1  # the learned sieve
    links = [e for e in at.main if getattr(e, "type", None) == "page_link"] or at.get("page_link")
    assert len(links) == 5


@pytest.mark.slow
def test_overview_evaluates_a_model_without_evaluation_json(models_root):
    import shutil

    copy = models_root / "fresh-copy"
    shutil.copytree(models_root / "default", copy)
    (copy / "evaluation.json").unlink()
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["overview_model"] = "fresh-copy"
    at.run()
    assert_clean(at)
    assert not at.error, errors(at)
    assert any("an evaluation run now" in c.value for c in at.caption)
    assert at.query_params["overview_model"] in ("fresh-copy", ["fresh-copy"])
    shutil.rmtree(copy)


def test_overview_survives_a_model_that_cannot_be_loaded(models_root):
    import shutil

    broken = models_root / "broken-generator"
    shutil.copytree(models_root / "default", broken)
    (broken / storage.GENERATOR).write_bytes(b"not a keras file")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["overview_model"] = "broken-generator"
    at.run()
    assert_clean(at)
    # runs.list_models finds the damage up front: the link's model is refused by name and the
    # page goes on with the default model.
    assert any("broken-generator" in e.value for e in at.error)
    assert len(charts_of(at)) == 1  # the sieve chart is still drawn
    assert len(at.get("page_link")) == 5
    shutil.rmtree(broken)


def test_overview_generates_verified_primes_of_the_asked_size(models_root):
    import sympy

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update({"overview_digits": "40", "overview_count": "7"})
    at.run()
    assert_clean(at)
    assert not at.error, errors(at)
    listed = [int(line) for line in at.code[0].value.splitlines()]
    assert len(listed) == len(set(listed)) == 7
    assert all(len(str(n)) == 40 and sympy.isprime(n) for n in listed)
    assert any("probable prime (BPSW" in c.value for c in at.caption)  # 40 digits: beyond 2^64
    at.number_input(key="overview_digits").set_value(2).run()  # below the smallest size
    assert "Digits must be between 3" in errors(at)
    assert_clean(at)


def test_overview_bad_url_values_give_the_normal_error(models_root):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params.update({"overview_model": "../x", "overview_seed": "-1"})
    at.run()
    assert_clean(at)
    assert "`overview_model=" in errors(at) and "`overview_seed=" in errors(at)


# --- Prime density ----------------------------------------------------------------------


@pytest.mark.slow
def test_density_page(models_root):
    at = page("density").run()
    assert_clean(at)
    by_label(at.text_input, "lo").set_value("1000")
    by_label(at.text_input, "hi").set_value(str(10**6))
    by_label(at.number_input, "Bins").set_value(20)
    by_label(at.radio, "Spacing").set_value("log")
    at.run()
    assert_clean(at)
    assert not at.error, errors(at)
    assert at.metric[0].label == "Primes in range"
    assert at.metric[0].value == f"{78498 - 168:,}"  # pi(10**6) - pi(1000)
    assert len(at.dataframe[0].value) == 20
    assert len(charts_of(at)) == 1
    by_label(at.radio, "Show").set_value("density")
    by_label(at.selectbox, "Overlay a model's output density").set_value("default")
    at.run()
    assert_clean(at)
    assert not at.error, errors(at)


@pytest.mark.parametrize("lo, hi, bins, message", [
    (10**6, 1_000, 10, "above its upper end"),
    (2, 10**18 + 1, 10, "1,000,000,000,000,000,000"),
    (2, 1_000, 0, "Bins must be between 1 and 1,000"),
    (5, 5, 10, "do not fit"),
])
def test_density_page_bad_input_shows_error(models_root, lo, hi, bins, message):
    at = page("density").run()
    by_label(at.text_input, "lo").set_value(str(lo))
    by_label(at.text_input, "hi").set_value(str(hi))
    by_label(at.number_input, "Bins").set_value(bins)
    at.run()
    assert_clean(at)
    assert message in errors(at)


def test_density_page_does_not_import_tensorflow(models_root):
    code = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(PAGES / 'density.py')!r}, default_timeout=60).run()\n"
        "assert not at.exception, at.exception\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_density_overlay_counts_outputs_into_the_tables_bins():
    from optimus.app import overlays

    values = [1, 5, 10, 15, 100, 2**70]  # Python ints of any size, as the any-size sampler returns
    shares, outside = overlays.bin_shares(values, [0, 5, 10], 15)
    assert shares.tolist() == pytest.approx([1 / 6, 1 / 6, 2 / 6])  # the last bin includes its upper end
    assert outside == pytest.approx(2 / 6)
    assert overlays.share_inside(values, 5, 15) == pytest.approx(3 / 6)
    assert overlays.bin_shares([], [0, 5], 10)[1] == 0.0 and overlays.share_inside([], 0, 1) == 0.0


# --- issue 22: the seed everywhere, the model in every link, starting at once, progress ------


def test_overview_with_the_seed_keeps_its_selector_figures_chart_and_links(models_root):
    """Choosing the seed once replaced the page by "model seed has no learned sieve", selector
    included, and the link kept overview_model=default."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["overview_model"] = "seed"
    at.run()
    assert_clean(at)
    assert not at.error, errors(at)
    assert at.selectbox(key="overview_model").value == "seed"
    assert at.query_params["overview_model"] in ("seed", ["seed"])
    assert any("has no learned sieve" in i.value for i in at.info)
    assert {m.label for m in at.metric} >= {"Prime hit rate", "Lift over chance", "Discriminator"}
    assert len(charts_of(at)) == 1  # the sieve chart: the seed at chance beside the default
    links = at.get("page_link")
    assert len(links) == 5
    hrefs = " ".join(str(link.proto) for link in links)
    assert "sample_model=seed" in hrefs and "disc_model=seed" in hrefs and "train_watch=seed" in hrefs
    # the tests-per-prime figure of a sieve model has no delta arrow
    at.selectbox(key="overview_model").set_value("default").run()
    assert_clean(at)
    tests_per_prime = [m for m in at.metric if m.label == "Tests per prime"]
    assert tests_per_prime and not tests_per_prime[0].proto.delta
    assert any("Random odd numbers need" in c.value for c in at.caption)


def test_sample_page_link_carries_the_model_and_the_count_follows_the_size(models_root):
    at = page("sample")
    at.query_params.update({"sample_model": "seed"})
    at.run()
    assert_clean(at)
    assert at.selectbox(key="sample_model").value == "seed"
    assert at.query_params["sample_model"] in ("seed", ["seed"])
    at = page("sample")
    at.query_params.update({"sample_model": "default", "size": "digits", "digits": "200"})
    at.run()
    assert_clean(at)
    assert not at.error, errors(at)
    assert by_label(at.number_input, "Samples").value == 100  # 1,000 at 200 digits drew 23,860 px
    listed = at.code[0].value.splitlines()
    assert len(listed) == 100 and all(len(n) == 200 for n in listed)
    at.number_input(key="digits").set_value(20).run()
    assert by_label(at.number_input, "Samples").value == 1_000
    by_label(at.number_input, "Samples").set_value(37).run()  # the visitor's own count stays
    at.number_input(key="digits").set_value(300).run()
    assert by_label(at.number_input, "Samples").value == 37
    at = page("sample")  # a link that names its count keeps it
    at.query_params.update({"size": "digits", "digits": "200", "count": "12"})
    at.run()
    assert by_label(at.number_input, "Samples").value == 12


def test_train_progress_counts_the_models_batches_and_the_runs(models_root):
    model_dir = models_root / "continued"
    model_dir.mkdir()
    storage.write_json(model_dir / storage.CONFIG, {"preset": "default"})
    storage.write_json(model_dir / storage.STATUS, {
        "run": "run-002", "state": "stopped", "pid": 1, "batches_done": 26, "batches_total": 28,
        "model_batches": 58, "message": ""})
    at = page("train")
    at.query_params["train_watch"] = "continued"
    at.run()
    assert_clean(at)
    text = at.get("progress")[0].proto.text
    assert "batch 58 of 60 (run: 26 of 28)" in text, text
    assert [b for b in at.button if b.key == "train_continue"]


@pytest.fixture
def slow_fake_trainer(monkeypatch, fake_trainer):
    """The stand-in trainer, taking 5 s from its lock to its first status (the real one loads
    TensorFlow and the networks in between)."""
    real = runs.train_command

    def command(*args):
        cmd = real(*args)
        return [*cmd[:2], FAKE_TRAINER.replace("with storage.run_lock(model_dir):\n",
                                               "with storage.run_lock(model_dir):\n    time.sleep(5)\n"), *cmd[3:]]

    monkeypatch.setattr(runs, "train_command", command)
    yield fake_trainer


def test_train_page_says_starting_at_once_and_never_no_status(models_root, slow_fake_trainer):
    """Start: "starting" before the trainer reports, never "has not been trained from this app
    yet (no status file)"; Continue: "starting" and no Continue button while the run starts."""
    fake_trainer = slow_fake_trainer
    at = page("train").run()
    by_label(at.text_input, "Model name (saved as)").set_value("quick-start")
    at.button[0].click()
    at.run()
    assert_clean(at)
    texts = [p.proto.text for p in at.get("progress")]
    assert any("quick-start starting" in t for t in texts), texts
    everything = " ".join(str(e.value) for e in [*at.info, *at.caption, *at.markdown] if hasattr(e, "value"))
    assert "no status file" not in everything and "has not been trained" not in everything
    model_dir = models_root / "quick-start"
    runs.stop_training(model_dir)
    deadline = time.time() + 20
    while storage.lock_holder(model_dir) is not None and time.time() < deadline:
        time.sleep(0.05)
    storage.write_json(model_dir / storage.STATUS, {
        "run": "run-001", "state": "stopped", "pid": 1, "batches_done": 1, "batches_total": 3,
        "model_batches": 1, "message": ""})
    at.run()
    resume = [b for b in at.button if b.key == "train_continue"]
    assert resume
    resume[0].click()
    at.run()
    assert_clean(at)
    texts = [p.proto.text for p in at.get("progress")]
    assert any("quick-start starting" in t for t in texts), texts
    assert [b.disabled for b in at.button if b.key == "train_continue"] == [True]  # greyed out in place
    assert fake_trainer[-1]["config"]["batches"] == 2


@pytest.mark.slow
def test_train_page_shows_a_failure_after_the_start_up_wait(tmp_path, monkeypatch):
    """A real trainer that fails after runs.start_training has returned (it loads TensorFlow
    before it finds the damaged state.npz): before, the page said "Started training" and the
    error was only in train.log."""
    import time

    from streamlit.testing.v1 import AppTest


    root = tmp_path / "models"
    root.mkdir()
    model = root / "broken"
    code, _, err, _ = _optimus("train", "--model-dir", model, "--batches", "1", "--batch-size", "64",
                               "--steps", "1", "--quiet")
    assert code == 0, err[-2000:]
    (model / storage.STATE).write_bytes(b"PK\x03\x04 not a zip")
    (model / storage.LOG).unlink(missing_ok=True)
    try:
        runs.start_training(model, overrides={"batches": 1})
    except RuntimeError:
        pass  # it failed within the start-up wait on this machine: the page must show it anyway
    deadline = time.time() + 300
    while runs.live_child(model) is not None and time.time() < deadline:
        time.sleep(0.5)
    failure = runs.last_failure(model)
    assert failure is not None and "state.npz" in failure["message"], runs.tail_log(model)
    assert isinstance(checkpoint.CheckpointError("x"), ValueError)

    monkeypatch.setenv(runs.MODELS_ENV, str(root))
    at = AppTest.from_file(str(REPO / "optimus" / "app" / "pages" / "train.py"), default_timeout=120)
    at.session_state["train_watch"] = "broken"
    at.run()
    assert not at.exception
    shown = " | ".join(e.value for e in at.error)
    assert "state.npz" in shown, shown


@pytest.mark.slow
@pytest.mark.parametrize("page", ["sample", "discriminator", "density", "train"])
def test_no_page_crashes_on_damaged_models(tiny_model, tmp_path, monkeypatch, page):
    from streamlit.testing.v1 import AppTest

    root = damaged_root(tiny_model, tmp_path / "models")
    monkeypatch.setenv(runs.MODELS_ENV, str(root))
    at = AppTest.from_file(str(REPO / "optimus" / "app" / "pages" / f"{page}.py"), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    if page == "sample":
        at.selectbox(key="sample_model").set_value("config-list").run()
        assert not at.exception
        assert any("config.json" in e.value and "damaged" in e.value for e in at.error)
        at.selectbox(key="sample_model").set_value("history-not-utf8").run()
        assert not at.exception and not at.error
        assert any("history.jsonl" in w.value for w in at.warning)


def _page(name: str, params: dict | None = None, timeout: float = 120):
    from streamlit.testing.v1 import AppTest

    # The overview is the landing page: it runs as app.py (its page links need the navigation).
    path = REPO / "app.py" if name == "overview" else PAGES / f"{name}.py"
    at = AppTest.from_file(str(path), default_timeout=timeout)
    at.query_params.update(params or {})
    return at


@pytest.mark.slow
@pytest.mark.parametrize("page", ["overview", "sample", "train", "discriminator"])
def test_pages_list_a_model_with_deep_json_as_damaged(root, shipped, page):
    shutil.copytree(shipped, root / "default")
    for file in (storage.STATUS, storage.CONFIG):
        shutil.copytree(shipped, root / f"deep-{file}")
        (root / f"deep-{file}" / file).write_text(DEEP)
    at = _page(page).run()
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.slow
@pytest.mark.parametrize("field, value", [("batches_done", '"abc"'), ("batches_total", "1e400"), ("last", "[1]"),
                                          ("last", '{"hit_rate": "x"}')])
def test_train_page_shows_a_status_with_wrong_types(root, field, value):
    model = root / "m"
    model.mkdir()
    (model / storage.STATUS).write_text('{"run": "run-001", "state": "stopped", "batches_done": 2, '
                                        f'"batches_total": 5, "{field}": {value}}}')
    at = _page("train", {"train_watch": "m"}).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(c.value for c in at.caption) + " ".join(w.value for w in at.warning)
    assert "status" in shown and "damaged" in shown


def test_continual_page_lists_damaged_records_and_works(root):
    _record(root, "good", state="stopped", message="stopped at 50%")
    for k, name in enumerate(sorted(RECORD_DAMAGES)):
        _damaged_record(root, f"r{k}", RECORD_DAMAGES[name])
    at = _page("continual").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert (table["state"] == "damaged").sum() == len(RECORD_DAMAGES)
    assert table.loc[table["id"] == "good", "state"].item() == "stopped"
    assert all(f"r{k}.json" in m for k, m in zip(range(len(RECORD_DAMAGES)), table.set_index("id").loc[
        [f"r{k}" for k in range(len(RECORD_DAMAGES))], "message"], strict=True))


@pytest.fixture(scope="module")
def benchmark_result():
    """A real result of forgetting.run_seeds (two methods, two tasks, two seeds, a tiny budget)."""
    from optimus.experiments import forgetting

    return forgetting.run_seeds([0, 1], family="factor", tasks=forgetting.parse_tasks("factor", ["3 5"]),
                                methods=["none", "ewc"], steps_per_task=5, batch_size=32, test_size=200,
                                val_size=100, fisher_samples=64)


def _breakages(result: dict):
    """Copies of `result` with one field the page reads replaced by something of the wrong shape."""
    import copy

    paths = [("mean",), ("mean", "config"), ("mean", "config", "family"), ("mean", "tasks"), ("mean", "methods"),
             ("mean", "methods", "none", "R"), ("mean", "methods", "none", "acc"), ("mean", "seconds"),
             ("spread",), ("spread", "none", "acc"), ("runs",), ("seeds",), ("runs", 0, "methods", "ewc", "bwt")]
    for path in paths:
        for bad in (None, "x", [1], {"a": 1}, float("nan")):
            broken = copy.deepcopy(result)
            target = broken
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = bad
            yield path, bad, broken


@pytest.mark.slow
def test_a_done_record_with_a_broken_result_is_damaged_and_the_page_draws_the_good_one(root, benchmark_result):
    background.check_result(benchmark_result)  # a real result passes
    _record(root, "good", state="done", progress=1.0, result=benchmark_result)
    for path, bad, broken in _breakages(benchmark_result):
        if path[-1] == "family" and isinstance(bad, str):
            continue  # any text is a family name to show
        with pytest.raises(ValueError, match=r"result\.(runs|seeds|mean|spread)"):  # names the field
            background.check_result(broken)
    _, _, broken = next(_breakages(benchmark_result))
    _record(root, "broken", state="done", progress=1.0, result=broken, started=time.time() + 1)
    at = _page("continual").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="cl_result").value == "good"
    assert len(at.selectbox(key="cl_result").options) == 1  # the broken one is not offered


# Every page, with a value that fails its parser (the page echoes it) for each kind of parameter.
URL_CASES = {
    "density": ["hi", "lo", "spacing", "bins"],
    "sample": ["count", "digits", "lo", "size"],
    "discriminator": ["disc_count", "disc_source", "disc_list"],
    "train": ["train_batches", "train_preset", "train_watch", "train_method"],
    "overview": ["overview_seed", "overview_model", "overview_digits"],
    "continual": ["cl_methods", "cl_seeds", "cl_tasks", "cl_family"],
}


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(URL_CASES))
def test_every_page_shows_echoed_url_values_as_literal_text(root, shipped, page):
    shutil.copytree(shipped, root / "default")
    for payload in PAYLOADS[:2]:
        at = _page(page, {key: payload for key in URL_CASES[page]}).run()
        assert not at.exception, [e.value for e in at.exception]
        bodies = [e.value for e in at.error] + [w.value for w in at.warning]
        assert bodies, f"{page} echoed nothing for {payload!r}"
        for body in bodies:
            assert not _rendered_markup(body) - {"code_inline"}, (page, body)
            assert "<img" not in MD.render(body) and "<a " not in MD.render(body), (page, body)
        if page == "density":  # the parameter the issue showed: the value comes back, literally
            assert any(payload in MD.render(b).replace("&quot;", '"') or "hi.png" in b for b in bodies)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(file=hst.sampled_from(FILES), content=CONTENT,
       page=hst.sampled_from(["overview", "train", "continual", "sample"]))
def test_any_json_file_content_never_crashes_a_page(tmp_path_factory, shipped, file, content, page):
    root = tmp_path_factory.mktemp("prop-page")
    _plant(root, shipped, file, content)
    old = os.environ.get(runs.MODELS_ENV)
    os.environ[runs.MODELS_ENV] = str(root)
    try:
        at = _page(page, {"train_watch": "m"} if page == "train" else {}).run()
    finally:
        if old is None:
            os.environ.pop(runs.MODELS_ENV, None)
        else:
            os.environ[runs.MODELS_ENV] = old
    assert not at.exception, (file, content[:80], [e.value for e in at.exception])


@pytest.mark.slow
@pytest.mark.parametrize("name, how", [(storage.GENERATOR, "truncate"), (storage.STATE, "garble"),
                                       (storage.CONFIG, "swap"), (storage.HISTORY, "garble")])
def test_the_sample_page_names_the_damaged_file(tiny_model, tmp_path, monkeypatch, name, how):
    from streamlit.testing.v1 import AppTest

    root = tmp_path / "models"
    shutil.copytree(tiny_model, root / "good")
    shutil.copytree(tiny_model, root / "bad")
    damage(root / "bad", name, how, 0.5, 4, storage.STATUS)
    before = hashes(root / "bad")
    monkeypatch.setenv(runs.MODELS_ENV, str(root))
    at = AppTest.from_file(str(REPO / "optimus" / "app" / "pages" / "sample.py"), default_timeout=180).run()
    at.selectbox(key="sample_model").set_value("bad").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(e.value for e in [*at.error, *at.warning])
    assert name in shown or not at.error, shown  # a damaged file is named, or the model still works
    at.selectbox(key="sample_model").set_value("good").run()
    assert not at.exception and not at.error
    assert hashes(root / "bad") == before


def test_heap_freezes_once_per_new_import():
    """freeze_imports collects and freezes after new imports only (a later page run imports
    nothing new, so it does nothing)."""
    import gc
    import sys
    import types

    from optimus.app import heap

    try:
        heap.freeze_imports()
        assert heap.freeze_imports() is False  # nothing imported since
        sys.modules["optimus_heap_test_module"] = types.ModuleType("optimus_heap_test_module")
        assert heap.freeze_imports() is True and gc.get_freeze_count() > 0
        assert heap.freeze_imports() is False
    finally:
        sys.modules.pop("optimus_heap_test_module", None)
        gc.unfreeze()  # the rest of the test session collects as before


def test_continual_page_names_the_methods_of_a_benchmark_run_with_all_of_them(root):
    """The shipped benchmark ran every method (`forgetting --save` without --methods: its
    settings name none): the table and the result's label name them from its result."""
    shipped = json.loads((REPO / "models" / "continual" / "factor-standard-3seeds.json").read_text())
    assert "methods" not in shipped["settings"]
    _record(root, "shipped", **{k: v for k, v in shipped.items() if k != "id"})
    at = _page("continual").run()
    assert not at.exception, [e.value for e in at.exception]
    methods = ", ".join(charts_continual.method_order(shipped["result"]["mean"]))  # in the order run
    assert methods.startswith("none, ewc")
    assert at.dataframe[0].value.set_index("id").loc["shipped", "methods"] == methods
    assert methods in at.selectbox(key="cl_result").format_func("shipped")
