"""Small configs and model folders shared by the tests."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from optimus.config import preset
from optimus.store import storage

REPO = Path(__file__).resolve().parent.parent


def tiny(name: str = "default", **overrides):
    """A preset shrunk so a whole online batch takes well under a second."""
    small = dict(batches=2, batch_size=64, steps=3, fisher_samples=16, min_batch=16)
    if name == "default":
        small.update(window=8, disc_prime_max=200, disc_hidden=8)
    else:
        small.update(gen_depth=2, gen_width=8, disc_widths=[16, 8], opposite_l2=0.0)
    small.update(overrides)
    return preset(name, **small)


def shipped_or_tiny_models(dest: Path) -> Path:
    """Copy models/default and models/seed into `dest`; train tiny ones where none are shipped."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("default", "seed"):
        source = REPO / "models" / name
        if (source / storage.CONFIG).exists() and storage.lock_holder(source) is None:  # not mid-training
            shutil.copytree(source, dest / name,
                            ignore=shutil.ignore_patterns(storage.LOCK, storage.STOP, storage.LOG, "logs"))
        else:
            subprocess.run([sys.executable, "-m", "optimus", "train", "--model-dir", str(dest / name),
                            "--preset", name, "--batches", "1", "--batch-size", "64", "--steps", "1",
                            "--quiet"], cwd=REPO, check=True, capture_output=True, timeout=600)
    return dest


@contextlib.contextmanager
def models_env(root: Path):
    """$OPTIMUS_MODELS_DIR pointing at `root` for the block (the app's models root), restored after."""
    from optimus.store import runs

    old = os.environ.get(runs.MODELS_ENV)
    os.environ[runs.MODELS_ENV] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop(runs.MODELS_ENV, None)
        else:
            os.environ[runs.MODELS_ENV] = old
