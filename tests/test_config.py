"""optimus.config: one dataclass per run, its presets, the one type check, and the names it
read before (EWC was once the only continual-learning method)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest

from optimus import cli, limits
from optimus.config import LEGACY_FIELDS, TrainConfig, check_types, preset
from optimus.primes import SIEVE_CHART_PRIMES, small_odd_primes
from optimus.store import checkpoint, storage
from tests.helpers import DEEP, HUGE, REPO, _one_line_error, _optimus


def test_older_field_names_are_read_and_only_the_new_ones_written():
    old = json.loads(preset("default").to_json())
    old["ewc_lambda"], old["ewc_gamma"] = old.pop("method_lambda"), old.pop("method_gamma")
    old["ewc_lambda"] = 2.5
    cfg = TrainConfig.from_dict(old)
    assert cfg.method_lambda == 2.5 and cfg.method_gamma == preset("default").method_gamma
    written = json.loads(cfg.to_json())
    assert "method_lambda" in written and not set(LEGACY_FIELDS) & set(written)
    assert preset("seed", ewc_lambda=3.0).method_lambda == 3.0  # scripts calling preset(...) too
    with pytest.raises(ValueError, match="both ewc_lambda and method_lambda"):
        TrainConfig.from_dict({**old, "method_lambda": 1.0})


def test_one_type_check_for_files_and_configs():
    """TrainConfig.validate and the config.json reader name the same field the same way."""
    with pytest.raises(ValueError, match="batches must be a whole number"):
        check_types({"batches": "3"})
    with pytest.raises(ValueError, match="batches must be a whole number"):
        dataclasses.replace(preset("default"), batches="3").validate()
    with pytest.raises(ValueError, match="ewc_lambda must be a finite number"):  # an old file's own key
        check_types({"ewc_lambda": float("inf")})
    check_types({"unknown": object(), "method_lambda": 1})  # unknown keys are from_dict's to refuse


def test_an_old_config_json_is_read_by_the_store(tmp_path):
    data = json.loads(preset("default").to_json())
    data["ewc_lambda"] = data.pop("method_lambda")
    (tmp_path / storage.CONFIG).write_text(json.dumps(data))
    assert checkpoint.load_config(tmp_path).method_lambda == preset("default").method_lambda


def test_older_flags_are_read():
    parser = cli.build_parser()
    assert parser.parse_args(["train", "--model-dir", "m", "--ewc-lambda", "3"]).method_lambda == 3.0
    assert parser.parse_args(["train", "--model-dir", "m", "--method-lambda", "4"]).method_lambda == 4.0
    assert parser.parse_args(["forgetting", "--ewc-lambda", "5"]).method_lambda == 5.0


def test_history_records_read_with_the_current_names(tmp_path):
    storage.append_jsonl(tmp_path / storage.HISTORY, {"batch": 1, "ewc_penalty_g": 0.5, "ewc_penalty_d": 0.25})
    (record,) = checkpoint.read_history(tmp_path)
    assert record == {"batch": 1, "method_penalty_g": 0.5, "method_penalty_d": 0.25}


def test_the_sieve_chart_primes_are_the_odd_primes_below_100():
    assert SIEVE_CHART_PRIMES == tuple(int(p) for p in small_odd_primes(99))


def test_exact_reals_is_the_one_bound_of_to_odd():
    assert limits.exact_reals([]) and limits.exact_reals([0.5, limits.EXACT_REAL_LIMIT - 1])
    assert not limits.exact_reals([limits.EXACT_REAL_LIMIT]) and not limits.exact_reals([1.0, float("nan")])
    assert 2 * limits.EXACT_REAL_LIMIT == limits.EXACT_LIMIT


def test_config_cli_and_training_names_import_without_tensorflow():
    """No cycle (config -> continual registry -> ewc -> config) and no TensorFlow: the pages
    import the config, the CLI builds its parser (every method listed) without it."""
    code = ("import sys\nimport optimus.continual.ewc, optimus.config, optimus.cli, optimus.training\n"
            "from optimus.training import SIEVE_CHART_PRIMES\n"
            "optimus.cli.build_parser()\nassert 'tensorflow' not in sys.modules, 'tensorflow'\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_forgetting_help_lists_every_method(capsys):
    from optimus import continual
    from optimus.experiments import forgetting

    with pytest.raises(SystemExit):
        cli.main(["forgetting", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for method in (*continual.names(), "joint", "gln"):
        assert f"{method}: {' '.join(forgetting.method_summary(method).split())}" in text, method


# --- config fields (defect 10) --------------------------------------------------------------

BAD_FIELDS = [
    ("disc_hidden", 10**9), ("disc_hidden", 0), ("gen_width", 10**6), ("gen_width", 0),
    ("gen_depth", 0), ("gen_depth", 10**4), ("disc_widths", []), ("disc_widths", [10**6]),
    ("disc_widths", [0, 5]), ("disc_widths", "wide"), ("temperature", 0.0), ("temperature", math.nan),
    ("temperature", math.inf), ("lr_generator", 0.0), ("lr_generator", -1e-3), ("lr_discriminator", math.nan),
    ("lr_discriminator", 1e6), ("disc_dropout", 1.0), ("disc_dropout", -0.1), ("leaky_slope", -1.0),
    ("leaky_slope", math.nan), ("opposite_l2", 1e300), ("opposite_l2", math.inf), ("disc_l2", -1.0),
    ("entropy_weight", -1.0), ("entropy_weight", math.nan), ("focal_alpha", 1.5), ("focal_gamma", -1.0),
    ("focal_gamma", math.nan), ("fisher_samples", 0), ("fisher_samples", 10**7), ("method_lambda", math.nan),
    ("method_gamma", math.nan), ("prime_ratio", math.nan), ("out_lo", math.nan), ("min_batch", 0),
    ("batches", "abc"), ("seed", 1.5), ("apply_regularizers", "yes"), ("batch_size", True),
]


def _stand_in_model(model):
    """A model directory whose every file is present (so loaders read config.json first)."""
    model.mkdir()
    for name in (storage.GENERATOR, storage.DISCRIMINATOR, storage.STATE):
        (model / name).write_bytes(b"stand-in: config.json is read and refused before this")
    return model


@pytest.mark.parametrize("field, value", BAD_FIELDS, ids=[f"{f}={v!r}"[:40] for f, v in BAD_FIELDS])
def test_bad_config_field_is_refused_by_name(field, value):
    data = json.loads(preset("default").to_json())
    data[field] = value
    with pytest.raises(ValueError) as info:
        TrainConfig.from_dict(data)
    assert field in str(info.value) or field.replace("_", " ") in str(info.value), str(info.value)


def test_oversized_networks_are_refused_before_any_allocation():
    with pytest.raises(ValueError, match="discriminator would have .* parameters.*disc_widths"):
        preset("seed", disc_widths=[10_000, 10_000, 10_000])
    with pytest.raises(ValueError, match="generator would have .* parameters.*gen_width"):
        preset("seed", gen_width=5_000, gen_depth=10)
    for name in ("default", "seed"):
        counts = preset(name).parameter_counts()
        assert max(counts.values()) < limits.MAX_PARAMETERS


def test_config_json_never_holds_nan():
    cfg = preset("default")
    cfg.temperature = math.nan
    with pytest.raises(ValueError):
        cfg.to_json()


@pytest.mark.parametrize("field, value", BAD_FIELDS, ids=[f"{f}={v!r}"[:40] for f, v in BAD_FIELDS])
@pytest.mark.parametrize("verb", ["sample", "train"])
def test_bad_config_json_is_one_line_on_the_cli(tmp_path, capsys, verb, field, value):
    model = _stand_in_model(tmp_path / "m")
    data = json.loads(preset("default").to_json())
    data[field] = value
    (model / storage.CONFIG).write_text(json.dumps(data))  # NaN/Infinity as Python writes them
    code = cli.main([verb, "--model-dir", str(model), "--batches", "1"] if verb == "train" else
                    [verb, "--model-dir", str(model)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    line = _one_line_error(err)
    assert "config.json" in line and field in line, line


def test_disc_hidden_of_a_billion_is_one_line_in_a_new_process(tmp_path):
    """Before: a ResourceExhaustedError traceback on every verb."""
    model = _stand_in_model(tmp_path / "m")
    data = json.loads(preset("default").to_json())
    data["disc_hidden"] = 10**9
    (model / storage.CONFIG).write_text(json.dumps(data))
    code, _, err, _ = _optimus("evaluate", "--model-dir", model, "-n", "10")
    assert code == cli.EXIT_FAILED
    assert "disc_hidden" in _one_line_error(err)


# --- 11. errors name the file and the field -----------------------------------------------------


@pytest.mark.parametrize("text, expect", [
    ('{"batches": ' + HUGE + "}", "batches holds a number of 5,000 digits"),
    ('{"preset": "default", "sizes": [' + HUGE + "]}", "sizes holds a number of 5,000 digits"),
    (DEEP, "nested more than 64 levels deep"),
    ('{"batches": ' + DEEP + "}", "nested more than 64 levels deep"),
])
def test_config_file_errors_name_the_file_and_field(tmp_path, text, expect):
    config = tmp_path / "run.json"
    config.write_text(text)
    result = subprocess.run([sys.executable, "-m", "optimus", "train", "--model-dir", str(tmp_path / "m"),
                             "--config", str(config)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert str(config) in result.stderr and expect in result.stderr, result.stderr
    assert "Exceeds the limit" not in result.stderr and "maximum recursion" not in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()
