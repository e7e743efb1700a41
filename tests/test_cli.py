"""The CLI: happy paths on a tiny model, and one-line errors for bad arguments."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst
from hypothesis import strategies as st

from optimus import cli, limits
from optimus.config import preset
from optimus.store import checkpoint, runs, storage
from optimus.training.loop import train
from tests.helpers import (
    CONTENT,
    ENV,
    MB,
    QUIET,
    REPO,
    _one_line_error,
    _optimus,
    _plant,
    damage,
    hashes,
    tiny,
)


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

    from optimus.store import runs

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


# --- classify's stdin (defect 11) -----------------------------------------------------------


def test_classify_stops_reading_at_the_limit(tmp_path):
    big = tmp_path / "many.txt"
    with open(big, "w") as fh:
        for _ in range(50):
            fh.write("7\n" * (MB // 2))  # 50 MB, 26 million integers
    with open(big) as stdin:
        code, out, err, rss = _optimus("classify", "--model-dir", "nowhere", stdin=stdin)
    assert code == cli.EXIT_FAILED and out == ""
    assert f"at most {limits.MAX_CLASSIFY:,} integers" in _one_line_error(err)
    # Before: the whole input read and split first (480 MB resident for 50 MB).
    assert rss < 200 * MB, rss / MB


def test_classify_refuses_a_huge_token_without_echoing_it(tmp_path):
    big = tmp_path / "token.txt"
    big.write_text("7\n" + "1" * (52 * MB) + "\n")
    with open(big) as stdin:
        code, _, err, rss = _optimus("classify", "--model-dir", "nowhere", stdin=stdin)
    assert code == cli.EXIT_FAILED
    line = _one_line_error(err)
    assert "too long" in line and len(line) < 200, len(line)  # before: a 52 MB error line
    assert rss < 200 * MB, rss / MB


KINDS = [("default", "gln"), ("default", "residue"), ("default", "dense"), ("seed", "dense")]


SAMPLE_EACH = """
import sys
from optimus.cli import main
sys.exit(max(main(["sample", "--model-dir", d, "-n", "20"]) for d in sys.argv[1:]))
"""


@pytest.mark.slow
def test_each_kind_trained_by_the_cli_samples_in_a_new_process(run_cli, tmp_path):
    dirs = []
    for preset_name, discriminator in KINDS:
        d = tmp_path / f"{preset_name}-{discriminator}"
        code, _, err = run_cli("train", "--model-dir", d, "--preset", preset_name, "--discriminator",
                               discriminator, "--batches", "1", "--batch-size", "16", "--steps", "1", "--quiet",
                               "--inert-regularizers")
        assert code == 0, err
        dirs.append(str(d))
    # One new process, the GLN model first: nothing but the loader can have registered its class.
    out = subprocess.run([sys.executable, "-c", SAMPLE_EACH, *dirs], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("latent,n,") == len(KINDS) and len(out.stdout.splitlines()) == 21 * len(KINDS)


# --- 8 and 12. targets that would be overwritten, or are no directory at all --------------


def test_from_into_an_existing_model_is_refused(run_cli, model, tiny_model, tmp_path):
    before = hashes(model)
    code, _, err = run_cli("train", "--model-dir", model, "--from", tiny_model, "--batches", "1", "--quiet")
    assert code != 0 and "already holds a model" in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(ValueError, match="already holds a model"):
        runs.start_training(model, from_dir=tiny_model, overrides={"batches": 1})
    with pytest.raises(ValueError, match="already holds a model"):
        train(tiny("default", batches=1), model, from_dir=tiny_model, **QUIET)
    assert hashes(model) == before


def test_a_refused_from_leaves_nothing_a_later_run_reuses(run_cli, tmp_path):
    """Issue 21.2: a `--from` refused for its method used to copy history.jsonl and runs.jsonl
    into the target first; the next `--from` then continued on those stale copies."""
    a, b = tmp_path / "A", tmp_path / "B"
    for _ in range(2):  # two runs: run-001 and run-002, batches 1..2
        train(tiny("default", batches=1), a, **QUIET)
    a_history, a_runs = storage.read_jsonl(a / storage.HISTORY), storage.read_jsonl(a / storage.RUNS)
    code, _, err = run_cli("train", "--model-dir", b, "--from", a, "--method", "si",
                           "--batches", "1", "--quiet")
    assert code != 0 and "only between ewc, online-ewc and none" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not b.exists(), sorted(p.name for p in b.iterdir())
    train(tiny("default", batches=1), a, **QUIET)  # A moves on: run-003, batch 3
    a_history, a_runs = storage.read_jsonl(a / storage.HISTORY), storage.read_jsonl(a / storage.RUNS)
    code, _, err = run_cli("train", "--model-dir", b, "--from", a, "--method", "ewc",
                           "--batches", "1", "--quiet")
    assert code == 0, err
    history, events = storage.read_jsonl(b / storage.HISTORY), storage.read_jsonl(b / storage.RUNS)
    assert history[:len(a_history)] == a_history
    assert [r["batch"] for r in history] == [1, 2, 3, 4]
    assert events[:len(a_runs)] == a_runs
    start = [e for e in events[len(a_runs):] if e.get("event") == "start"]
    assert [e["run"] for e in start] == ["run-004"]
    assert start[0]["parent"]["run"] == "run-003" and start[0]["parent"]["batches_done"] == 3


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_model_dir_is_refused(run_cli, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("train", "--model-dir", name, "--batches", "1", "--quiet")
    assert code != 0 and "--model-dir is empty" in err, err
    assert list(tmp_path.iterdir()) == []


# --- 13b. files the user names: devices and pipes written into, links and folders refused --


def _one_line_failure(code: int, err: str, expected: str) -> None:
    assert code != 0 and expected in err and len(err.strip().splitlines()) == 1, (code, err)
    assert "Traceback" not in err


def _device(tmp_path: Path, name: str, minor: int) -> Path:
    """A character device node of our own (1, minor): 3 is null, 7 is full. Never a real /dev file."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    node = tmp_path / name
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return node


def test_sample_output_to_a_character_device_writes_into_it(run_cli, tiny_model, tmp_path):
    """Issue 21.1: `--output /dev/full` became a regular file holding the CSV."""
    node = _device(tmp_path, "null", 3)
    code, out, err = run_cli("sample", "--model-dir", tiny_model, "-n", "3", "--output", node)
    assert code == 0 and out == "", err
    assert stat.S_ISCHR(os.lstat(node).st_mode) and os.lstat(node).st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temporary file left


def test_sample_output_to_a_full_device_fails_in_one_line(run_cli, tiny_model, tmp_path):
    node = _device(tmp_path, "full", 7)
    code, _, err = run_cli("sample", "--model-dir", tiny_model, "-n", "3", "--output", node)
    _one_line_failure(code, err, "No space left on device")
    assert str(node) in err
    assert stat.S_ISCHR(os.lstat(node).st_mode) and os.lstat(node).st_rdev == os.makedev(1, 7)


def test_sample_output_to_a_fifo_writes_into_it(run_cli, tiny_model, tmp_path):
    code, expected, err = run_cli("sample", "--model-dir", tiny_model, "-n", "3")
    assert code == 0, err
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        code, out, err = run_cli("sample", "--model-dir", tiny_model, "-n", "3", "--output", fifo)
    finally:
        if reader.is_alive():  # the command never opened the pipe: release the reader
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as exc:  # ENXIO: the reader closed the pipe already and is ending
                if exc.errno != errno.ENXIO:
                    raise
        reader.join(timeout=30)
    assert code == 0 and out == "", err
    assert got == [expected.encode()]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_sample_output_and_evaluate_save_refuse_links_and_directories(run_cli, model, tmp_path):
    target = tmp_path / "target.csv"
    target.write_text("keep\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    code, _, err = run_cli("sample", "--model-dir", model, "-n", "3", "--output", link)
    _one_line_failure(code, err, "symbolic link")
    assert link.is_symlink() and target.read_text() == "keep\n"
    folder = tmp_path / "folder"
    folder.mkdir()
    code, _, err = run_cli("sample", "--model-dir", model, "-n", "3", "--output", folder)
    _one_line_failure(code, err, "is a directory")
    assert list(folder.iterdir()) == []
    # evaluate --save writes evaluation.json by the same rule
    (model / storage.EVALUATION).symlink_to(target)
    before = hashes(model)
    code, _, err = run_cli("evaluate", "--model-dir", model, "-n", "10", "--save")
    _one_line_failure(code, err, "symbolic link")
    assert (model / storage.EVALUATION).is_symlink() and target.read_text() == "keep\n"
    assert hashes(model) == before
    # and the atomic write of a regular file is unchanged
    out = tmp_path / "out.csv"
    code, _, err = run_cli("sample", "--model-dir", model, "-n", "3", "--output", out)
    assert code == 0 and out.read_text().count("\n") == 4, err


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(file=hst.sampled_from([storage.STATUS, storage.CONFIG, storage.HISTORY, storage.RUNS, storage.EVALUATION]),
       content=CONTENT)
def test_any_json_file_content_never_crashes_a_command(tmp_path_factory, shipped, file, content):
    root = tmp_path_factory.mktemp("prop-cli")
    path = _plant(root, shipped, file, content)
    result = subprocess.run([sys.executable, "-m", "optimus", "sample", "--model-dir", str(root / "m"), "-n", "3"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    if result.returncode != 0:
        assert path.name in result.stderr or "config" in result.stderr, result.stderr[-500:]


MODEL_FILES = (storage.GENERATOR, storage.DISCRIMINATOR, storage.STATE, storage.CONFIG, storage.HISTORY,
         storage.RUNS, storage.STATUS)


COMMANDS = (
    ("sample", "-n", "5"),
    ("evaluate", "-n", "50", "--uniform-count", "50", "--json"),
    ("classify",),
)


def run(argv, stdin: str = "") -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli.main(argv)
    finally:
        sys.stdin = saved_stdin
    return code, err.getvalue()


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(MODEL_FILES),
    how=st.sampled_from(["truncate", "garble", "swap"]),
    where=st.floats(0.0, 0.999),
    count=st.integers(1, 8),
    other=st.sampled_from(MODEL_FILES),
)
def test_commands_work_or_name_the_damaged_file(tiny_model, name, how, where, count, other):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "m"
        shutil.copytree(tiny_model, d)
        damage(d, name, how, where, count, other)
        before = hashes(d)
        for command in COMMANDS:
            code, err = run([command[0], "--model-dir", str(d), *command[1:]], stdin="7\n9\n1000003\n")
            if code != 0:
                lines = err.strip().splitlines()
                assert len(lines) == 1 and "Traceback" not in err, err
                assert name in lines[0], (name, how, lines[0])
        entry = runs.list_models(d.parent)[0]  # the app's view: listed, never a crash
        if entry["status"] == "damaged":
            assert name in entry["error"] or name in (entry["problem"] or "")
        assert hashes(d) == before
