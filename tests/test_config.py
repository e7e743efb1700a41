"""optimus.config: one dataclass per run, its presets, the one type check, and the names it
read before (EWC was once the only continual-learning method)."""

import dataclasses
import json
import subprocess
import sys

import pytest

from optimus import cli, limits
from optimus.config import LEGACY_FIELDS, TrainConfig, check_types, preset
from optimus.primes import SIEVE_CHART_PRIMES, small_odd_primes
from optimus.store import checkpoint, storage


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
