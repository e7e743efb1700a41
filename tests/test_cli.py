"""The CLI: happy paths on a tiny model, and one-line errors for bad arguments."""

import json
import subprocess
import sys

import pytest


def test_sample_csv_and_json(run_cli, tiny_model):
    import sympy

    code, out, _ = run_cli("sample", "--model-dir", str(tiny_model), "-n", "50", "--seed", "3")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "latent,n,is_prime,d_prob" and len(lines) == 51
    for line in lines[1:]:
        _, n, flag, _ = line.split(",")
        assert (flag == "True") == sympy.isprime(int(n)) and int(n) % 2 == 1
    code, out, _ = run_cli("sample", "--model-dir", str(tiny_model), "-n", "5", "--format", "json")
    assert code == 0 and len(json.loads(out)) == 5


def test_classify_reads_stdin(run_cli, tiny_model, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("7\n9\n1000003\n"))
    code, out, _ = run_cli("classify", "--model-dir", str(tiny_model))
    assert code == 0
    rows = [line.split(",") for line in out.strip().splitlines()]
    assert [r[0] for r in rows] == ["7", "9", "1000003"] and all(0 <= float(r[1]) <= 1 for r in rows)


def test_evaluate_json(run_cli, tiny_model):
    code, out, _ = run_cli("evaluate", "--model-dir", str(tiny_model), "-n", "300", "--uniform-count", "300", "--json")
    assert code == 0
    res = json.loads(out)
    g = res["generator"]
    for key in ("hit_rate", "distinct_rate", "distinct_prime_rate", "same_range_probability", "baseline", "lift"):
        assert key in g
    for part in ("discriminator_on_outputs", "discriminator_on_uniform"):
        for key in ("confusion", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc"):
            assert key in res[part]


def test_density_json(run_cli):
    code, out, _ = run_cli("density", "--lo", "1", "--hi", "1000", "--bins", "4", "--json")
    assert code == 0
    assert sum(r["count"] for r in json.loads(out)["rows"]) == 168


@pytest.mark.parametrize("argv,needle", [
    (["density", "--lo", "10", "--hi", "5"], "lo"),
    (["density", "--lo", "-5", "--hi", "5"], ">= 0"),
    (["density", "--lo", "1", "--hi", "1e19"], "10"),
    (["density", "--lo", "1", "--hi", "100", "--bins", "0"], "bins"),
    (["density", "--lo", "abc", "--hi", "100"], "not a whole number"),
    (["density", "--lo", "2.5", "--hi", "100"], "not a whole number"),
    (["train", "--model-dir", "X", "--preset", "nope"], "invalid choice"),
    (["train", "--model-dir", "X", "--batches", "0"], "batches"),
    (["train", "--model-dir", "X", "--batches", "nan"], "not a whole number"),
    (["train", "--model-dir", "X", "--ewc-lambda", "inf"], "finite"),
    (["train", "--model-dir", "X", "--ewc-lambda", "-1"], "lambda"),
    (["train", "--model-dir", "X", "--latent-range", "10", "5"], "latent range"),
    (["train", "--model-dir", "X", "--ewc-mode", "sometimes"], "invalid choice"),
    (["train", "--model-dir", "X", "--from", "/no/such/dir"], "no such model directory"),
    (["sample", "--model-dir", "/no/such/dir"], "does not exist"),
    (["sample", "--model-dir", "MODEL", "-n", "0"], "between 1 and"),
    (["sample", "--model-dir", "MODEL", "-n", "1000001"], "between 1 and"),
    (["sample", "--model-dir", "MODEL", "-n", "2.5"], "not a whole number"),
    (["sample", "--model-dir", "MODEL", "--format", "xml"], "invalid choice"),
    (["train", "--model-dir", "X", "--batch-size", "3"], "batch size"),
    (["train", "--model-dir", "X", "--batch-size", "10**9"], "batch size"),
    (["train", "--model-dir", "X", "--steps", "0"], "steps"),
    (["train", "--model-dir", "X", "--seed", "-1"], "seed"),
    (["train", "--model-dir", "X", "--latent-range", "1", "10**12"], "latent range"),
    (["train", "--model-dir", "X", "--discriminator", "oracle"], "invalid choice"),
    (["density", "--lo", "1", "--hi", "100", "--bins", "100000"], "bins"),
    (["density", "--lo", "1", "--hi", "inf"], "not a whole number"),
    (["evaluate", "--model-dir", "/no/such/dir"], "does not exist"),
    (["forgetting", "--family", "factor", "--tasks", "3", "4"], "4"),
    (["forgetting", "--family", "range", "--tasks", "10:100000", "9:3"], "9"),
    (["forgetting", "--encoding", "binary"], "invalid choice"),
    (["bench", "nonsense"], "unknown benchmark"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_give_one_line_and_nonzero_exit(run_cli, tiny_model, argv, needle):
    argv = [str(tiny_model) if a == "MODEL" else a for a in argv]
    code, _, err = run_cli(*argv)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("stdin,needle", [
    ("7\nseven\n", "'seven' is not a whole number"),
    ("-7\n", "negative"),
    ("9007199254740993\n", "2**53"),
    ("8\n", "even"),
    ("", "no integers"),
])
def test_classify_bad_stdin(run_cli, tiny_model, monkeypatch, stdin, needle):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code, _, err = run_cli("classify", "--model-dir", str(tiny_model))
    assert code != 0 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_damaged_model_dir_is_reported_not_overwritten(run_cli, tiny_model, tmp_path):
    import shutil

    d = tmp_path / "damaged"
    shutil.copytree(tiny_model, d)
    (d / "discriminator.keras").write_bytes(b"garbage")
    before = (d / "discriminator.keras").read_bytes()
    for argv in (["sample", "--model-dir", str(d)], ["train", "--model-dir", str(d), "--batches", "1", "--quiet"]):
        code, _, err = run_cli(*argv)
        assert code != 0 and "discriminator.keras" in err and len(err.strip().splitlines()) == 1, err
    assert (d / "discriminator.keras").read_bytes() == before


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "optimus", "density", "--lo", "1", "--hi", "100", "--bins", "2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "odd-prime density" in out.stdout


@pytest.mark.parametrize("flags, applied", [
    ([], False),  # the seed preset trains as the original code did: regularisers inert
    (["--apply-regularizers"], True),
    (["--inert-regularizers"], False),
])
def test_seed_preset_regularizers_flags(run_cli, monkeypatch, tmp_path, flags, applied):
    import optimus.training.loop

    seen = {}

    def fake_train(cfg, tiny_model, **kwargs):
        seen["cfg"] = cfg
        return {"run": "run-001", "state": "done", "batches_done": 0, "model_batches": 0, "message": ""}

    monkeypatch.setattr(optimus.training.loop, "train", fake_train)
    code, _, _ = run_cli("train", "--model-dir", str(tmp_path / "s"), "--preset", "seed", "--quiet", *flags)
    assert code == 0 and seen["cfg"].apply_regularizers is applied


def test_regularizer_flags_are_exclusive(run_cli, tmp_path):
    code, _, err = run_cli("train", "--model-dir", str(tmp_path / "s"), "--apply-regularizers",
                       "--inert-regularizers")
    assert code != 0 and "not allowed with" in err and len(err.strip().splitlines()) <= 2


# --- train --config FILE, and the one rule for which config runs (checkpoint.run_config) ------


@pytest.fixture
def trained_config(monkeypatch):
    """The config `optimus train` hands the trainer, recorded instead of training."""
    import optimus.training.loop

    seen = {}

    def fake_train(cfg, tiny_model, **kwargs):
        seen["cfg"], seen["from_dir"] = cfg, kwargs.get("from_dir")
        return {"run": "run-001", "state": "done", "batches_done": 0, "model_batches": 0, "message": ""}

    monkeypatch.setattr(optimus.training.loop, "train", fake_train)
    return seen


def test_config_written_by_one_process_is_trained_by_another(run_cli, tmp_path, trained_config):
    from optimus.config import preset
    from optimus.store import runs

    model = tmp_path / "m"
    model.mkdir()
    # The app's process writes the run's config (runs.write_run_config); the trainer's reads it.
    writer = ("import sys; from pathlib import Path; from optimus import runs; from optimus.config import preset; "
              "print(runs.write_run_config(Path(sys.argv[1]), preset('seed', batches=3, seed=11, method='l2')))")
    out = subprocess.run([sys.executable, "-c", writer, str(model)], capture_output=True, text=True, timeout=60,
                         check=True)
    path = out.stdout.strip()
    assert path.startswith(str(model / runs.RUN_CONFIG_PREFIX))
    code, _, err = run_cli("train", "--model-dir", str(model), "--config", path, "--quiet")
    assert code == 0, err
    assert trained_config["cfg"] == preset("seed", batches=3, seed=11, method="l2")
    # Flags given with --config override the file's fields.
    code, _, err = run_cli("train", "--model-dir", str(model), "--config", path, "--seed", "5", "--quiet")
    assert code == 0, err
    assert trained_config["cfg"] == preset("seed", batches=3, seed=5, method="l2")


@pytest.mark.parametrize("content, needle", [
    ('{"batches": "3"}', "batches must be a whole number"),
    ('{"batches": 0}', "batches must be in"),
    ('{"learning_rate": 0.1}', "unknown keys ['learning_rate']"),
    ('{"ewc_lambda": 1e999}', "ewc_lambda must be a finite number"),
    ('{"version": 9}', "version 9"),
    ('{"preset": "default", "batch', "not valid JSON"),
    ("[1, 2]", "does not hold a JSON object"),
    ("{}" + " " * (70 << 10), "larger than"),
])
def test_bad_config_file_is_refused_naming_file_and_field(run_cli, tmp_path, trained_config, content, needle):
    path = tmp_path / "run.json"
    path.write_text(content)
    code, _, err = run_cli("train", "--model-dir", str(tmp_path / "m"), "--config", str(path), "--quiet")
    assert code != 0 and "cfg" not in trained_config
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and needle in lines[0], err


def test_config_file_refuses_preset_and_missing_file(run_cli, tmp_path, trained_config):
    path = tmp_path / "run.json"
    path.write_text("{}")
    code, _, err = run_cli("train", "--model-dir", str(tmp_path / "m"), "--config", str(path), "--preset", "seed")
    assert code != 0 and "--preset does not combine with --config" in err
    code, _, err = run_cli("train", "--model-dir", str(tmp_path / "m"), "--config", str(tmp_path / "none.json"))
    assert code != 0 and "none.json cannot be read" in err and "cfg" not in trained_config


def test_run_config_new_resumed_and_copied(tiny_model, tmp_path):
    import shutil

    from optimus.config import preset
    from optimus.store import checkpoint

    # A new model: the preset with the overrides.
    assert checkpoint.run_config(tmp_path / "new", None, "seed", {"batches": 2}) == preset("seed", batches=2)
    assert checkpoint.run_config(tmp_path / "new") == preset("default")
    saved = checkpoint.load_config(tiny_model)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    for target, source in ((copy, None), (tmp_path / "child", tiny_model)):
        # Resumed in place or started --from: the saved config; batches back to the preset's.
        cfg = checkpoint.run_config(target, source, None, {"seed": 9})
        assert cfg == saved.replace(seed=9, batches=preset(saved.preset).batches)
        assert checkpoint.run_config(target, source, None, {"batches": 4}).batches == 4
        # The preset is fixed by the saved model; architecture fields cannot change.
        with pytest.raises(checkpoint.CheckpointError, match="was trained with preset 'default', not 'seed'"):
            checkpoint.run_config(target, source, "seed")
        with pytest.raises(checkpoint.CheckpointError, match="cannot continue it with discriminator='gln'"):
            checkpoint.run_config(target, source, None, {"discriminator": "gln"})
    with pytest.raises(ValueError, match="unknown training settings"):
        checkpoint.run_config(copy, None, None, {"learning_rate": 1})
    # A partial directory is refused, never silently started over.
    (copy / "state.npz").unlink()
    with pytest.raises(checkpoint.CheckpointError, match="partial model directory"):
        checkpoint.run_config(copy)


def test_cli_and_app_resume_with_the_same_config(run_cli, tiny_model, tmp_path, trained_config, monkeypatch):
    import shutil

    from optimus.store import checkpoint, runs

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    code, _, err = run_cli("train", "--model-dir", str(copy), "--steps", "3", "--quiet")
    assert code == 0, err
    assert trained_config["cfg"] == checkpoint.run_config(copy, None, None, {"steps": 3})
    # The app writes that same config for its trainer.
    written = []
    monkeypatch.setattr(runs, "train_command", lambda model, config_file, *a: written.append(
        checkpoint.read_config_file(config_file)) or [sys.executable, "-c", "pass"])
    runs.start_training(copy, overrides={"steps": 3})
    runs.forget_children()
    assert written == [trained_config["cfg"]]
