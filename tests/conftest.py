"""Fixtures shared by the test modules: one definition each.

- `tiny_model`: a default-preset model trained for one tiny online batch, once per session
  (read only; `tiny_model_copy` for a test that changes it);
- `models_root`: $OPTIMUS_MODELS_DIR pointing at copies of the shipped models, per module;
- `run_cli`: `python -m optimus ...` in this process, returning (exit code, stdout, stderr);
- `model`: `tiny_model_copy` by a shorter name; `root`: an empty models root ($OPTIMUS_MODELS_DIR);
  `shipped`: a copy of the shipped default model, per module.
"""

import io
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No warm trainer (optimus/training/spare.py) by default: AppTest runs the Train page in this
# process, and each test's page would start one that imports TensorFlow. The tests of the warm
# trainer, the presenter's walk and `bench start` turn it on for their own processes and servers.
os.environ.setdefault("OPTIMUS_WARM_TRAINER", "0")

from optimus import cli  # noqa: E402  (after the path and TensorFlow's log level are set)
from optimus.experiments import background  # noqa: E402
from optimus.store import runs, storage  # noqa: E402
from tests.helpers import models_env, shipped_or_tiny_models, tiny  # noqa: E402


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory) -> Path:
    """Where tests leave things a person may want to look at (screenshots)."""
    path = Path(os.environ["OPTIMUS_ARTIFACTS"]) if os.environ.get("OPTIMUS_ARTIFACTS") else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\n[optimus] test artifacts in {path}")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A model directory trained for one tiny batch of the default preset (`tests.helpers.tiny`),
    shared by every test of the session: read it, never write it (use `tiny_model_copy`)."""
    # TensorFlow only for the tests that ask for a model: the collection of the others stays light.
    from optimus.training.loop import train

    d = tmp_path_factory.mktemp("tiny-model") / "m"
    train(tiny("default", batches=1), d, progress=False, log=lambda *_: None)
    return d


@pytest.fixture
def tiny_model_copy(tiny_model, tmp_path) -> Path:
    """A private copy of `tiny_model`, for a test that changes or damages it."""
    d = tmp_path / "m"
    shutil.copytree(tiny_model, d)
    return d


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    """The app's models root ($OPTIMUS_MODELS_DIR) for one test module: copies of models/default
    and models/seed (tiny ones trained where none are shipped)."""
    root = shipped_or_tiny_models(tmp_path_factory.mktemp("models"))
    with models_env(root):
        yield root


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """`run_cli(*args, stdin=None)` -> (exit code, stdout, stderr) of `python -m optimus args`,
    run in this process; a traceback on stderr fails the test (the CLI answers in one line)."""
    def run(*args, stdin: str | None = None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return code, out, err

    return run


@pytest.fixture
def model(tiny_model_copy) -> Path:
    """`tiny_model_copy` under the short name the storage, checkpoint and CLI tests use."""
    return tiny_model_copy


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty models root the app and the library use."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv(runs.MODELS_ENV, str(folder))
    monkeypatch.setattr(background, "SHIPPED", tmp_path / "no-shipped")  # this root's records only
    yield folder
    # Only the children this test spawned: a record's pid is what these tests forge (0, -1, ours).
    for child in list(background._spawned.values()):
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """A copy of the shipped default model (a complete model directory)."""
    dest = tmp_path_factory.mktemp("shipped") / "default"
    shutil.copytree(ROOT / "models" / "default", dest,
                    ignore=shutil.ignore_patterns(storage.LOCK, storage.STOP, storage.LOG, "logs"))
    return dest
