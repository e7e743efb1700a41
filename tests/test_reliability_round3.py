"""Reliability, round three (issue 21): items 5-9 and 11, and the property test over every JSON
file the app reads. Each test here failed on the code before its fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst
from markdown_it import MarkdownIt

from optimus.app import charts, charts_continual
from optimus.experiments import background
from optimus.store import checkpoint, runs, storage

REPO = Path(__file__).resolve().parent.parent
PAGES = REPO / "optimus" / "app" / "pages"
DEEP = "[" * 30000 + "]" * 30000
HUGE = "9" * 5000


def _page(name: str, params: dict | None = None, timeout: float = 120):
    from streamlit.testing.v1 import AppTest

    # The overview is the landing page: it runs as app.py (its page links need the navigation).
    path = REPO / "app.py" if name == "overview" else PAGES / f"{name}.py"
    at = AppTest.from_file(str(path), default_timeout=timeout)
    at.query_params.update(params or {})
    return at


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
    shutil.copytree(REPO / "models" / "default", dest,
                    ignore=shutil.ignore_patterns(storage.LOCK, storage.STOP, storage.LOG, "logs"))
    return dest


# --- 7. one safe JSON reader ------------------------------------------------------------------


@pytest.mark.parametrize("text, reason", [
    (DEEP, "nested more than"),
    ('{"a": ' + "[" * 70 + "]" * 70 + "}", "nested more than"),
    ('{"a": ' + HUGE + "}", "5,000 digits"),
    ('{"a": -' + HUGE + "}", "5,000 digits"),
    (b"\xff\xfe{}", "not UTF-8"),
    ("{", "Expecting"),
])
def test_loads_json_raises_only_value_error(text, reason):
    with pytest.raises(ValueError, match=reason):
        storage.loads_json(text)


def test_no_json_load_outside_storage():
    """Every JSON file is read through storage.loads_json: no other json.load(s) in the package
    (the trainer's TF_CONFIG, an environment variable, is not a file)."""
    offenders = []
    for path in (REPO / "optimus").rglob("*.py"):
        if path.name == "storage.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if ("json.load(" in line or "json.loads(" in line) and "TF_CONFIG" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}")
    assert not offenders, offenders


@pytest.mark.parametrize("file, write", [
    (storage.STATUS, lambda p: p.write_text(DEEP)),
    (storage.CONFIG, lambda p: p.write_text(DEEP)),
    (storage.HISTORY, lambda p: p.open("a").write(DEEP + "\n")),
    (storage.RUNS, lambda p: p.open("a").write(DEEP + "\n")),
    (storage.STATUS, lambda p: p.write_text('{"state": "done", "batches_done": ' + HUGE + "}")),
    (storage.CONFIG, lambda p: p.write_text('{"batches": ' + HUGE + "}")),
])
def test_deep_or_huge_json_is_a_damaged_file_not_a_crash(root, shipped, file, write):
    shutil.copytree(shipped, root / "good")
    shutil.copytree(shipped, root / "bad")
    write(root / "bad" / file)
    models = {m["name"]: m for m in runs.list_models(root)}
    assert models["good"]["problem"] is None
    assert file in (models["bad"]["problem"] or ""), models["bad"]
    runs.read_status(root / "bad")
    runs.read_runs(root / "bad")
    runs.read_history(root / "bad")
    runs.last_failure(root / "bad")


@pytest.mark.slow
@pytest.mark.parametrize("page", ["overview", "sample", "train", "discriminator"])
def test_pages_list_a_model_with_deep_json_as_damaged(root, shipped, page):
    shutil.copytree(shipped, root / "default")
    for file in (storage.STATUS, storage.CONFIG):
        shutil.copytree(shipped, root / f"deep-{file}")
        (root / f"deep-{file}" / file).write_text(DEEP)
    at = _page(page).run()
    assert not at.exception, [e.value for e in at.exception]


# --- 8. status.json fields of the wrong type --------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("batches_done", "abc"), ("batches_total", 1e400), ("last", [1]), ("last", {"hit_rate": "x"}),
    ("eta_seconds", "soon"), ("state", ["running"]), ("pid", "abc"), ("batches_done", -5),
    ("message", {"a": 1}), ("run", 7),
])
def test_status_fields_of_the_wrong_type_are_named_not_used(root, field, value):
    model = root / "m"
    model.mkdir()
    status = {"run": "run-001", "state": "done", "pid": 123, "batches_done": 3, "batches_total": 5,
              "eta_seconds": 0, "message": "done", "last": {"hit_rate": 0.5, "lift": 1.2}, field: value}
    (model / storage.STATUS).write_text(json.dumps(status).replace("Infinity", "1e400"))
    read = runs.read_status(model)
    assert read.get(field) != value or field == "message"
    assert f"{field} is not" in read["message"]
    assert f"{field} is not" in runs.model_problems(model)[0]


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


# --- 5. a benchmark is live while its child holds its lock -----------------------------------


def _record(root: Path, run_id: str, **fields) -> Path:
    folder = background.results_root(root)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"id": run_id, "state": "running", "pid": None, "progress": 0.5, "message": "", "settings": {},
              "seeds": [0], "started": time.time(), "updated": time.time(), "result": None, **fields}
    path = folder / f"{run_id}.json"
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("pid", [0, -1, 1, "me", "parent"])
def test_a_record_with_a_dead_or_reused_pid_is_not_live(root, pid):
    pid = {"me": os.getpid(), "parent": os.getppid()}.get(pid, pid)
    _record(root, "r1", pid=pid)
    record = background.read("r1", root)
    assert not record["live"] and record["state"] in ("interrupted", "damaged"), record
    assert not [r for r in background.list_runs(root) if r["live"]]
    assert background.stop("r1", root) is False
    assert not (background.results_root(root) / "r1.stop").exists()
    background.delete("r1", root)  # not "stop it first"
    assert not (background.results_root(root) / "r1.json").exists()


@pytest.mark.slow
def test_a_real_benchmark_is_live_until_killed_then_deletable(root):
    run_id = background.start({"family": "factor", "tasks": ["3 5 7 11 13"], "methods": ["none", "ewc"],
                               "steps_per_task": 100, "batch_size": 128}, seeds=range(3), root=root)
    record = background.read(run_id, root)
    assert record["live"] and record["state"] in background.LIVE
    with pytest.raises(storage.LockedError, match="already running"):
        background.start({"family": "factor", "methods": ["none"], "steps_per_task": 5}, seeds=[0], root=root)
    with pytest.raises(ValueError, match="stop it first"):
        background.delete(run_id, root)
    child = background._spawned[run_id]
    os.killpg(child.pid, signal.SIGKILL)  # a crash, an OOM kill, a reboot
    child.wait()
    deadline = time.time() + 30
    while background.read(run_id, root)["live"] and time.time() < deadline:
        time.sleep(0.1)
    record = background.read(run_id, root)
    assert not record["live"] and record["state"] == "interrupted"
    background.delete(run_id, root)
    assert not list(background.results_root(root).glob(f"{run_id}.*"))


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


@pytest.mark.parametrize("name", sorted(RECORD_DAMAGES))
def test_a_damaged_record_is_listed_as_damaged_naming_its_file(root, name):
    _record(root, "good", state="stopped", message="stopped at 50%")
    _damaged_record(root, "r1", RECORD_DAMAGES[name])
    records = {r["id"]: r for r in background.list_runs(root)}
    assert records["good"]["state"] == "stopped"
    assert records["r1"]["state"] == "damaged" and "r1.json" in records["r1"]["message"], records["r1"]
    background.delete("r1", root)


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


def test_literal_and_code_render_as_exactly_their_text():
    for payload in PAYLOADS + ["a\nb", "``` a", "` x `", "\\[x]"]:
        for body in (query_module().literal(payload), query_module().code(payload)):
            assert not _rendered_markup(body), (payload, body)
        html = MD.render(query_module().literal(payload))
        assert "<img" not in html and "<a " not in html


def query_module():
    from optimus.app import query

    return query


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


@pytest.mark.parametrize("text, expect", [('{"batches": ' + HUGE + "}", "batches holds a number of 5,000 digits"),
                                          (DEEP, "nested more than 64 levels deep")])
def test_a_models_listed_problem_names_the_file_and_field(root, shipped, text, expect):
    shutil.copytree(shipped, root / "m")
    (root / "m" / storage.CONFIG).write_text(text)
    entry = runs.list_models(root)[0]
    assert entry["status"] == "damaged"
    assert storage.CONFIG in entry["error"] and expect in entry["error"], entry["error"]
    with pytest.raises(checkpoint.CheckpointError, match=expect):
        checkpoint.load_config(root / "m")


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


def _read_everything(root: Path) -> list[str]:
    """What the pages and commands read, through the library; the problems they report."""
    model = root / "m"
    problems = [m["problem"] or "" for m in runs.list_models(root)] + [m["error"] or "" for m in runs.list_models(root)]
    if model.exists():
        runs.read_status(model)
        pyarrow.Table.from_pandas(runs.read_runs(model))  # what st.dataframe sends
        history = runs.read_history(model)
        for chart in (charts.losses_chart, charts.hit_rate_chart, charts.lift_chart, charts.balanced_accuracy_chart,
                      charts.sieve_heatmap):
            chart(history).to_dict()
        runs.last_failure(model)
        runs.saved_evaluation(model, 0)
        with __import__("contextlib").suppress(ValueError):
            checkpoint.load_config(model)
    for record in background.list_runs(root):
        if record["state"] == "damaged":
            problems.append(record["message"])
        elif record["state"] == "done":  # what the Continual page draws of it
            saved = record["result"]
            charts_continual.spread_chart(saved).to_dict()
            charts_continual.task_curves_chart(saved["mean"]).to_dict()
            charts_continual.accuracy_matrices_chart(saved["mean"]).to_dict()
            charts_continual.summary_frame(saved["mean"])
    return problems


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(file=hst.sampled_from(FILES), content=CONTENT)
def test_any_json_file_content_never_crashes_a_reader(tmp_path_factory, shipped, file, content):
    root = tmp_path_factory.mktemp("prop")
    path = _plant(root, shipped, file, content)
    problems = _read_everything(root)
    try:
        value = storage.loads_json(content)
    except ValueError:
        value = "damaged"
    # A file the app cannot parse is named wherever it is reported.
    if value == "damaged" and file in (storage.STATUS, storage.CONFIG, "bench"):
        assert any(path.name in p for p in problems), (file, content[:80], problems)


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
