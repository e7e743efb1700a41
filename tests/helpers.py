"""Small configs and model folders shared by the tests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import strategies as hst
from markdown_it import MarkdownIt

from optimus.config import preset
from optimus.experiments import background
from optimus.store import checkpoint, runs, storage

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

    old = os.environ.get(runs.MODELS_ENV)
    os.environ[runs.MODELS_ENV] = str(root)
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop(runs.MODELS_ENV, None)
        else:
            os.environ[runs.MODELS_ENV] = old


MB = 2**20


# Runs `python -m optimus` in a fresh process and reports its own peak RSS. Measured from
# pytest itself, ru_maxrss of a child includes pytest's resident size at fork time (Linux keeps
# the old mm's high-water mark across exec): after the heavy tests that read 2.2 GB for a 50 MB
# child. So a tiny wrapper, forked while small, starts the command and reads its rusage.
_WRAPPER = """
import os, resource, subprocess, sys
cpu, report = int(sys.argv[1]), sys.argv[2]
if cpu:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
proc = subprocess.Popen(sys.argv[3:])
_, status, usage = os.wait4(proc.pid, 0)
with open(report, "w") as fh:
    fh.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""


def _optimus(*args, stdin=None, cpu_seconds=None, env=None):
    """`python -m optimus ARGS` in a new process: (exit code, stdout, stderr, peak RSS bytes).

    cpu_seconds caps the process's CPU time (RLIMIT_CPU): a refusal that needs less is not a
    timing assertion, and the code before the fix (43 s of CPU for 7**30000000) is killed."""
    # Files, not pipes: the code before a fix may write 52 MB to stderr.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as report:
        subprocess.run([sys.executable, "-c", _WRAPPER, str(cpu_seconds or 0), report.name,
                        sys.executable, "-m", "optimus", *map(str, args)], cwd=REPO,
                       stdin=stdin if stdin is not None else subprocess.DEVNULL,
                       stdout=out, stderr=err, env=dict(os.environ, **(env or {})), check=True)
        code, maxrss = (int(v) for v in open(report.name).read().split())
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(errors="replace"), err.read().decode(errors="replace"), maxrss * 1024


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}


QUIET = {"progress": False, "log": lambda *_: None}


def hashes(directory: Path) -> dict:
    """Every file under `directory` (links not followed) and its content hash."""
    out = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(directory))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --- 1. readers never write ---------------------------------------------------------------


def _interrupted_commit(d: Path) -> None:
    """What a trainer killed between its commit point and its renames leaves behind."""
    for name in checkpoint.FILES:
        shutil.copyfile(d / name, d / f"{name}.new")
    storage.write_json(d / checkpoint.COMMIT, {"files": list(checkpoint.FILES), "batches_done": 1})
    (d / ".generator.keras.new.abc123.keras").write_bytes(b"half a temp file")


# --- 6. one damaged directory does not take the app down ----------------------------------

DAMAGES = {
    "history-not-utf8": (storage.HISTORY, lambda p: p.open("ab").write(b"\xff\xfe\x80 garbage\n"), "not UTF-8"),
    "history-not-object": (storage.HISTORY, lambda p: p.open("a").write("[1, 2]\n"), "not an object"),
    "config-list": (storage.CONFIG, lambda p: p.write_text("[]"), "not an object"),
    "lock-list": (storage.LOCK, lambda p: p.write_text("[]"), None),
    "lock-pid-abc": (storage.LOCK, lambda p: p.write_text('{"pid": "abc"}'), None),
    "status-list": (storage.STATUS, lambda p: p.write_text("[]"), "status.json"),
    "runs-not-object": (storage.RUNS, lambda p: p.open("a").write('"end"\n'), "not an object"),
}


def damaged_root(tiny_model: Path, root: Path) -> Path:
    """A models root with one good model and one copy per damage in DAMAGES."""
    shutil.copytree(tiny_model, root / "good")
    for name, (file, damage, _) in DAMAGES.items():
        shutil.copytree(tiny_model, root / name)
        damage(root / name / file)
    return root


DEEP = "[" * 30000 + "]" * 30000


HUGE = "9" * 5000


# --- 5. a benchmark is live while its child holds its lock -----------------------------------


def _record(root: Path, run_id: str, **fields) -> Path:
    folder = background.results_root(root)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"id": run_id, "state": "running", "pid": None, "progress": 0.5, "message": "", "settings": {},
              "seeds": [0], "started": time.time(), "updated": time.time(), "result": None, **fields}
    path = folder / f"{run_id}.json"
    path.write_text(json.dumps(record))
    return path


# --- 6. damaged benchmark records --------------------------------------------------------------


RECORD_DAMAGES = {
    "list": "[]",
    "deep": DEEP,
    "pid-abc": {"pid": "abc"},
    "pid-huge": {"pid": 10**30},
    "started-yesterday": {"started": "yesterday"},
    "done-null": {"state": "done", "result": None},
    "done-empty": {"state": "done", "result": {}},
    "progress-half": {"progress": "half"},
    "settings-list": {"settings": [1, 2]},
    "not-utf8": b"\xff{}",
    "state-bad": {"state": "sleeping"},
    "started-far": {"started": 1e300},
    "progress-negative": {"progress": -1},
    "seeds-text": {"seeds": "0,1"},
}


def _damaged_record(root: Path, run_id: str, damage) -> None:
    folder = background.results_root(root)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(damage, dict):
        _record(root, run_id, **{"state": "stopped", **damage})
    else:
        (folder / f"{run_id}.json").write_bytes(damage.encode() if isinstance(damage, str) else damage)


# --- 9. URL values are shown as literal text ---------------------------------------------------

MD = MarkdownIt("commonmark")


PAYLOADS = ["![p](http://127.0.0.1:9/hi.png)", "[click](http://127.0.0.1:9/)", "<img src=x>", "`x` **b** $x^2$",
            ":red[alarm] ``` ~~s~~"]


def _rendered_markup(body: str) -> set[str]:
    """The Markdown constructs (other than text, paragraphs, code spans, breaks) `body` renders as."""
    kinds = set()
    for token in MD.parse(body):
        for child in token.children or []:
            kinds.add(child.type)
        kinds.add(token.type)
    plain = {"paragraph_open", "paragraph_close", "inline", "text", "code_inline", "softbreak", "hardbreak"}
    return kinds - plain


# --- still untested (d): arbitrary content in every JSON file the app reads --------------------

JSON_VALUES = hst.recursive(
    hst.none() | hst.booleans() | hst.integers(-(10**30), 10**30) | hst.floats() | hst.text(max_size=20),
    lambda children: hst.lists(children, max_size=4) | hst.dictionaries(hst.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


FIELD_NAMES = ["state", "pid", "batches_done", "batches_total", "last", "run", "message", "progress", "settings",
               "seeds", "started", "result", "eta_seconds", "batch", "event", "config", "hit_rate", "preset",
               "time", "status", "final", "parent", "batches_planned", "divisible_share", "d_loss", "lift",
               "generator", "batches_trained", "updated", "model_batches"]


# Records shaped like the real ones (a run event, a history batch, a status, a benchmark), with
# any fields replaced: they reach the type checks, not only the parser.
SHAPES = hst.sampled_from([{}, {"run": "run-001", "event": "start"}, {"run": "run-001", "event": "end"},
                           {"batch": 1}, {"run": "run-001", "batch": 1, "divisible_share": {"3": 0.1}},
                           {"state": "done", "run": "run-001"}, {"state": "done", "progress": 1.0}])


RECORDS = hst.builds(lambda shape, fields: {**shape, **fields}, SHAPES,
                     hst.dictionaries(hst.sampled_from(FIELD_NAMES), JSON_VALUES, max_size=5))


CONTENT = (JSON_VALUES.map(lambda v: json.dumps(v).encode()) | RECORDS.map(lambda v: json.dumps(v).encode())
           | hst.binary(max_size=64) | hst.sampled_from([DEEP.encode(), ("[" + HUGE + "]").encode()]))


FILES = [storage.STATUS, storage.CONFIG, storage.HISTORY, storage.RUNS, storage.EVALUATION, storage.LOCK, "bench"]


def _plant(root: Path, shipped: Path, file: str, content: bytes) -> Path:
    if file == "bench":
        folder = background.results_root(root)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "r1.json"
        path.write_bytes(content)
        return path
    model = root / "m"
    if not model.exists():
        shutil.copytree(shipped, model)
    path = model / file
    if file in (storage.HISTORY, storage.RUNS):
        with path.open("ab") as fh:
            fh.write(b"\n" + content + b"\n")
    else:
        path.write_bytes(content)
    return path


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
