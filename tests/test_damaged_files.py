"""Damaged files, systematically (issue 14): truncate, garble or swap any file of a tiny model
directory; every command either works or says, in one line, which file is damaged; and
nothing else in the directory changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimus import cli
from optimus.store import runs, storage

REPO = Path(__file__).resolve().parent.parent
FILES = (storage.GENERATOR, storage.DISCRIMINATOR, storage.STATE, storage.CONFIG, storage.HISTORY,
         storage.RUNS, storage.STATUS)
COMMANDS = (
    ("sample", "-n", "5"),
    ("evaluate", "-n", "50", "--uniform-count", "50", "--json"),
    ("classify",),
)


def hashes(directory: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def damage(d: Path, name: str, how: str, where: float, count: int, other: str) -> None:
    path = d / name
    data = path.read_bytes()
    at = int(where * len(data))
    if how == "truncate":
        path.write_bytes(data[:at])
    elif how == "garble":  # flip bytes: never valid UTF-8 in a text file, a bad CRC in an archive
        data = bytearray(data)
        for i in range(count):
            data[(at + 97 * i) % len(data)] ^= 0xFF
        path.write_bytes(bytes(data))
    else:  # another file's content in its place
        path.write_bytes((d / other).read_bytes())


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
    name=st.sampled_from(FILES),
    how=st.sampled_from(["truncate", "garble", "swap"]),
    where=st.floats(0.0, 0.999),
    count=st.integers(1, 8),
    other=st.sampled_from(FILES),
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
