"""runs.list_models reads no model file that has not changed (issue 18: every page lists
every model on every run; reading each state.npz in full cost about 0.17 s per page run).

Opens are counted with a Python audit hook (the "open" event fires for builtins.open, io.open,
os.open, numpy's and zipfile's opens alike)."""

from __future__ import annotations

import os
import sys

import pytest

from optimus.store import runs, storage
from tests.helpers import shipped_or_tiny_models

_recording: list | None = None


def _hook(event, args):
    if event == "open" and _recording is not None and isinstance(args[0], (str, os.PathLike)):
        _recording.append(str(args[0]))


sys.addaudithook(_hook)


def _opens_under(root, call):
    global _recording
    _recording = []
    try:
        result = call()
    finally:
        opened, _recording = _recording, None
    return result, [p for p in opened if p.startswith(str(root))]


@pytest.fixture()
def root(tmp_path):
    return shipped_or_tiny_models(tmp_path / "models")


def test_an_unchanged_model_is_listed_without_opening_its_files(root):
    first, opened_first = _opens_under(root, lambda: runs.list_models(root))
    assert {m["name"] for m in first} >= {"default", "seed"}
    assert any(p.endswith(storage.STATE) for p in opened_first), "the first listing reads the files"
    again, opened_again = _opens_under(root, lambda: runs.list_models(root))
    assert again == first
    assert opened_again == [], opened_again


def test_a_changed_file_is_read_again(root):
    runs.list_models(root)
    history = root / "seed" / storage.HISTORY
    with open(history, "a") as fh:
        fh.write("[1]\n")  # a damaged line (JSON, not an object): the listing must notice it
    listed, opened = _opens_under(root, lambda: runs.list_models(root))
    seed = next(m for m in listed if m["name"] == "seed")
    assert seed["problem"] and storage.HISTORY in seed["problem"]
    assert any(p.startswith(str(root / "seed")) for p in opened)
    assert not any(p.startswith(str(root / "default")) for p in opened), "an unchanged model was read again"


def test_a_replaced_file_with_the_same_size_and_mtime_is_read_again(root):
    """Atomic writes rename a new file over the old: a new inode, even with the same size and mtime."""
    runs.list_models(root)
    status = root / "default" / storage.STATUS
    st = status.stat()
    text = status.read_text()
    replacement = root / "default" / "status.json.tmp"
    replacement.write_text("[1]" + " " * (len(text) - 3))  # same size, a JSON array: damaged
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, status)
    listed = runs.list_models(root)
    default = next(m for m in listed if m["name"] == "default")
    assert default["problem"] and storage.STATUS in default["problem"]


def test_the_saved_evaluation_is_read_once_per_version(root):
    """The Overview reads each model's evaluation.json on every run: only when it changed."""
    model = root / "default"
    batches = runs.list_models(root)[[m["name"] for m in runs.list_models(root)].index("default")]["batches"]
    first, opened = _opens_under(root, lambda: runs.saved_evaluation(model, batches))
    again, opened_again = _opens_under(root, lambda: runs.saved_evaluation(model, batches))
    assert first is not None and again == first and opened_again == []
    (model / storage.EVALUATION).write_text('{"generator": {}, "batches_trained": -5}')
    assert runs.saved_evaluation(model, batches) is None  # a new version: read, and stale
