"""The forgetting benchmark: metrics on hand-computed matrices, task parsing, data, a tiny run,
the chart builders and the Streamlit page."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from optimus.app import charts_continual
from optimus.evaluation import metrics
from optimus.evaluation.metrics import acc, bwt
from optimus.experiments import forgetting
from optimus.experiments.forgetting import Task, parse_tasks

R3 = [[0.9, 0.5, 0.4],
      [0.7, 0.8, 0.5],
      [0.6, 0.9, 0.7]]


# --- metrics --------------------------------------------------------------------------------

def test_metrics_on_a_hand_computed_matrix():
    assert acc(R3) == pytest.approx((0.6 + 0.9 + 0.7) / 3)
    # BWT: ((0.6 - 0.9) + (0.9 - 0.8)) / 2
    assert bwt(R3) == pytest.approx(-0.1)
    # forgetting: task 0 peaked at 0.9 (row 0), ends 0.6; task 1 peaked at 0.8 (row 1, rows < T-1 only), ends 0.9
    assert metrics.forgetting(R3) == pytest.approx(((0.9 - 0.6) + (0.8 - 0.9)) / 2)


def test_metrics_without_forgetting_and_bad_shapes():
    perfect = np.triu(np.ones((4, 4))) * 0 + 1.0
    assert acc(perfect) == 1.0 and bwt(perfect) == 0.0 and metrics.forgetting(perfect) == 0.0
    two = [[1.0, 0.5], [0.75, 1.0]]
    assert bwt(two) == pytest.approx(-0.25) and metrics.forgetting(two) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="square"):
        acc([[1.0, 0.5]])
    with pytest.raises(ValueError, match="at least 2 tasks"):
        bwt([[1.0]])


# --- parse_tasks ----------------------------------------------------------------------------

def test_parse_tasks_accepts_primes_and_ranges():
    assert parse_tasks("factor", ["3", "5", "7"]) == [3, 5, 7]
    assert parse_tasks("factor", ["3,5 11"]) == [3, 5, 11]
    assert parse_tasks("range", ["10000:100000", "1e6:1_000_0000"]) == [(10_000, 100_000), (10**6, 10**7)]
    assert parse_tasks("factor", []) == list(forgetting.FACTOR_PRIMES)
    assert parse_tasks("range", []) == list(forgetting.DECADES)


@pytest.mark.parametrize("family, items, match", [
    ("factor", ["3", "9"], "'9' is not an odd prime"),
    ("factor", ["2", "3"], "'2' is not an odd prime"),
    ("factor", ["3", "x"], "'x' is not a whole number"),
    ("factor", ["3", "1009"], "above 997"),
    ("factor", ["3"], "at least 2 tasks"),
    ("factor", ["3", "3"], "distinct"),
    ("range", ["100:20000", "5000"], "not of the form LO:HI"),
    ("range", ["0:50000", "60000:90000"], "0 < LO < HI"),
    ("range", ["90000:50000", "1:20000"], "0 < LO < HI"),
    ("range", ["1:20000000000", "1:20000"], "0 < LO < HI <= 10\\*\\*10"),
    ("range", ["1000:10999", "1:20000"], "narrower than 10000"),
    ("range", ["1.5:20000", "1:20000"], "not a whole number"),
    ("cubes", ["1"], "unknown task family"),
    ("factor", [" ".join(["3"] * 21)], "at most 20 tasks"),
])
def test_parse_tasks_errors_are_one_line(family, items, match):
    with pytest.raises(ValueError, match=match) as info:
        parse_tasks(family, items)
    assert "\n" not in str(info.value)


# --- data -----------------------------------------------------------------------------------

def _smallest_factor(n: int) -> int:
    for p in range(3, math.isqrt(n) + 1, 2):
        if n % p == 0:
            return p
    return n


def test_task_samples_are_balanced_labelled_by_is_prime_and_split_disjointly():
    from optimus.primes import is_prime

    task = Task(10**6, 10**9, 7)
    rng = np.random.default_rng(0)
    n, y = forgetting.sample_task(task, 400, "test", rng)
    assert len(n) == 400 and y.sum() == 200
    np.testing.assert_array_equal(y, is_prime(n).astype(np.float32))
    assert np.all(n % 2 == 1) and np.all((n >= 10**6) & (n < 10**9))
    assert all(_smallest_factor(int(v)) == 7 for v in n[y == 0])
    train, _ = forgetting.sample_task(task, 400, "train", rng)
    val, _ = forgetting.sample_task(task, 400, "val", rng)
    assert not (set(n) & set(train)) and not (set(n) & set(val)) and not (set(train) & set(val))
    # a small range still yields both classes
    small, ys = forgetting.sample_task(Task(1, 10_001), 100, "test", rng)
    assert ys.sum() == 50 and small.min() >= 3 and small.max() < 10_001


def test_split_hash_does_not_bias_residues():
    n = np.arange(10**6 + 1, 10**6 + 2 * 60_000, 2, dtype=np.int64)
    test = n[forgetting.in_split(n, "test")]
    assert abs(len(test) / len(n) - 0.2) < 0.01
    for p in (3, 5, 7):  # each residue class keeps its share
        shares = np.bincount(test % p, minlength=p) / len(test)
        assert np.all(np.abs(shares - 1 / p) < 0.01)


# --- a tiny benchmark -----------------------------------------------------------------------

def test_tiny_run_returns_the_json_shape():
    calls = []
    result = forgetting.run_benchmark(
        family="factor", tasks=[3, 5], methods=["none", "ewc"], ewc_lambda=100.0, steps_per_task=5,
        batch_size=32, progress=lambda f, m: calls.append((f, m)), test_size=64, val_size=32, fisher_samples=32,
    )
    json.dumps(result, allow_nan=False)
    assert result["tasks"] == ["spf 3", "spf 5"]
    assert result["config"]["tasks"] == [3, 5] and result["config"]["steps_per_task"] == 5
    assert set(result["methods"]) == {"none", "ewc"}
    for r in result["methods"].values():
        assert np.asarray(r["R"]).shape == (2, 2)
        assert set(r) >= {"R", "acc", "bwt", "forgetting", "seconds"}
        assert r["acc"] == pytest.approx(np.mean(r["R"][-1]), abs=1e-3)
    assert result["methods"]["ewc"]["lambda"] == 100.0 and result["method_lambda"] == {"ewc": 100.0}
    assert result["tuning"] == {}
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert "none" in forgetting.format_table(result)


@pytest.mark.slow
def test_tiny_run_with_tuning_joint_gln_and_ranges():
    result = forgetting.run_benchmark(
        family="range", tasks=[(10**4, 10**5), (10**6, 10**7)], methods=["l2", "joint", "gln"],
        encoding="scalar", steps_per_task=3, batch_size=16, test_size=32, val_size=32, fisher_samples=16,
    )
    json.dumps(result, allow_nan=False)
    assert result["tuning"]["l2"]["grid"] == list(forgetting.LAMBDA_GRIDS["l2"])
    assert result["methods"]["l2"]["lambda"] == result["tuning"]["l2"]["best"]
    joint = result["methods"]["joint"]
    assert joint["R"][0] == joint["R"][1] and joint["bwt"] == 0.0


@pytest.mark.parametrize("kwargs, match", [
    ({"methods": ["none", "magic"]}, "unknown methods"),
    ({"encoding": "binary"}, "unknown encoding"),
    ({"batch_size": 33}, "even"),
    ({"ewc_lambda": {"none": 1.0}}, "no penalty"),
    ({"tasks": [3]}, "at least 2 tasks"),
    ({"tasks": [3, 9]}, "not an odd prime"),
    ({"epochs": 3}, "unknown benchmark options"),
])
def test_run_benchmark_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        forgetting.run_benchmark(**{"steps_per_task": 1, "batch_size": 16, **kwargs})


@pytest.mark.slow
def test_default_factor_benchmark_shows_forgetting_and_ewc_reduces_it():
    result = forgetting.run_benchmark(methods=["none", "ewc", "gln"])
    none, ewc = result["methods"]["none"], result["methods"]["ewc"]
    assert none["bwt"] < -0.2  # fine-tuning forgets
    assert ewc["bwt"] > none["bwt"] + 0.1 and ewc["acc"] > none["acc"] + 0.05
    assert result["methods"]["gln"]["acc"] > none["acc"]


# --- charts and the page --------------------------------------------------------------------

RESULT = {
    "config": {"family": "factor", "encoding": "residue", "seed": 0, "steps_per_task": 5, "batch_size": 32},
    "tasks": ["spf 3", "spf 5", "spf 7"],
    "methods": {
        "none": {"R": R3, "acc": acc(R3), "bwt": bwt(R3), "forgetting": metrics.forgetting(R3), "seconds": 1.0},
        "ewc": {"R": R3, "acc": acc(R3), "bwt": bwt(R3), "forgetting": 0.1, "seconds": 2.0, "lambda": 300.0},
    },
    "ewc_lambda": {"ewc": 300.0},
    "tuning": {},
    "seconds": {"total": 3.0, "tuning": 0.0},
}


def test_chart_builders_make_valid_specs():
    frame = charts_continual.matrix_frame(R3, RESULT["tasks"])
    assert len(frame) == 9 and frame["seen"].sum() == 6
    assert frame.loc[(frame.i == 2) & (frame.j == 0), "accuracy"].item() == 0.6
    spec = charts_continual.accuracy_matrices_chart(RESULT).to_dict()
    assert len(spec["concat"]) == 2 and "λ 300" in json.dumps(spec, ensure_ascii=False)
    summary = charts_continual.summary_chart(RESULT).to_dict()
    assert len(summary["hconcat"]) == 2
    table = charts_continual.summary_frame(RESULT)
    assert list(table["method"]) == ["none", "ewc"] and table["lambda"].iloc[1] == 300.0


def test_task_curves_and_spread_charts():
    curves = charts_continual.task_curves_frame(RESULT)
    # a task appears from the moment it is trained: 1 + 2 + 3 points per method
    assert len(curves) == 12 and curves[curves.after == 3]["task"].nunique() == 3
    forgotten = curves[(curves.method == "none") & (curves.task == "1. spf 3")]["accuracy"].tolist()
    assert forgotten == [0.9, 0.7, 0.6]
    spec = charts_continual.task_curves_chart(RESULT).to_dict()
    assert spec["facet"]["field"] == "method"
    saved = {"seeds": [0, 1], "runs": [RESULT, {**RESULT, "methods": {
        m: {**r, "acc": r["acc"] + 0.1} for m, r in RESULT["methods"].items()}}]}
    frame = charts_continual.spread_frame(saved)
    assert len(frame) == 2 * 2 * 2 and set(frame["metric"]) == {"ACC", "BWT"}
    spread = charts_continual.spread_chart(saved).to_dict()
    assert len(spread["hconcat"]) == 2 and "over 2 seed(s)" in json.dumps(spread)


def test_run_seeds_averages_and_spreads_over_seeds():
    calls = []
    saved = forgetting.run_seeds([0, 1], family="factor", tasks=[3, 5], methods=["none"], steps_per_task=3,
                                 batch_size=16, test_size=32, val_size=16, fisher_samples=16,
                                 progress=lambda f, m: calls.append((f, m)))
    json.dumps(saved, allow_nan=False)
    assert saved["seeds"] == [0, 1] and [r["config"]["seed"] for r in saved["runs"]] == [0, 1]
    accs = [r["methods"]["none"]["acc"] for r in saved["runs"]]
    assert saved["spread"]["none"]["acc"]["min"] == min(accs) and saved["spread"]["none"]["acc"]["max"] == max(accs)
    assert saved["mean"]["methods"]["none"]["acc"] == pytest.approx(np.mean(accs), abs=1e-4)
    R = np.mean([r["methods"]["none"]["R"] for r in saved["runs"]], axis=0)
    assert np.allclose(saved["mean"]["methods"]["none"]["R"], R, atol=1e-4)
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert "seed 1 (2/2)" in calls[-1][1]
    with pytest.raises(ValueError, match="distinct seeds"):
        forgetting.run_seeds([0, 0], methods=["none"])


PAGE = Path(__file__).resolve().parent.parent / "optimus" / "app" / "pages" / "continual.py"
TINY = {"cl_tasks": "3 5", "cl_methods": "none,ewc", "cl_budget": "tiny", "cl_tune": "false", "cl_seeds": "2"}


@pytest.fixture
def results_root(tmp_path, monkeypatch):
    from optimus.experiments import background
    from optimus.store import runs

    monkeypatch.setenv(runs.MODELS_ENV, str(tmp_path))
    monkeypatch.setattr(background, "SHIPPED", tmp_path / "no-shipped")  # this root's records only
    yield tmp_path
    from optimus.experiments import background as benchmark_runs

    for record in benchmark_runs.list_runs():
        if record["live"]:
            import os
            import signal

            os.killpg(int(record["pid"]), signal.SIGKILL)


def _page(params=None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.query_params.update(params or {})
    return at


def _wait_until_finished(timeout=240):
    import time

    from optimus.experiments import background as benchmark_runs

    deadline = time.time() + timeout
    while any(r["live"] for r in benchmark_runs.list_runs()) and time.time() < deadline:
        time.sleep(0.2)
    return benchmark_runs.list_runs()


@pytest.mark.slow
def test_page_shows_its_widgets_and_answers_bad_input_with_an_error(results_root):
    at = _page().run()
    assert not at.exception and at.title[0].value == "Continual learning"
    at.text_input(key="cl_tasks").set_value("3 9").run()
    at.button[0].click().run()
    assert not at.exception
    assert any("'9' is not an odd prime" in e.value for e in at.error)
    assert not list((results_root / "_continual").glob("*.json"))  # nothing started, nothing written


@pytest.mark.parametrize("param, value", [("cl_methods", "none,magic"), ("cl_seeds", "0"), ("cl_budget", "huge"),
                                          ("cl_lambda", "nan"), ("cl_result", "../../etc/passwd")])
def test_page_bad_url_values_give_the_normal_error(results_root, param, value):
    at = _page({param: value}).run()
    assert not at.exception
    if param != "cl_result":  # no result listed yet: the parameter is not read
        assert any(f"`{param}=" in e.value for e in at.error)


def test_page_inputs_round_trip_through_the_url(results_root):
    at = _page({"cl_family": "range", "cl_methods": "gln,none", "cl_seeds": "4", "cl_tune": "false",
                "cl_lambda": "250"}).run()
    assert not at.exception and not at.error
    assert at.radio(key="cl_family").value == "range"
    assert at.text_input(key="cl_tasks").value == " ".join(f"{lo}:{hi}" for lo, hi in forgetting.DECADES)
    assert at.multiselect(key="cl_methods").value == ["gln", "none"]
    assert at.number_input(key="cl_lambda").value == 250.0
    at.radio(key="cl_family").set_value("factor").run()  # a new family brings its default tasks
    assert at.text_input(key="cl_tasks").value == "3 5 7 11 13"
    assert at.query_params["cl_family"] in ("factor", ["factor"])
    assert at.query_params["cl_methods"] in ("gln,none", ["gln,none"])


@pytest.mark.slow
def test_page_runs_the_benchmark_in_the_background_and_lists_its_result(results_root):
    at = _page(TINY).run()
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Started benchmark" in s.value for s in at.success)
    assert at.get("progress"), "a running benchmark shows its progress"
    # A second start while it runs is refused with a clear message.
    at.button[0].click().run()
    assert any("already running" in e.value for e in at.error)
    records = _wait_until_finished()
    assert [r["state"] for r in records] == ["done"], records
    saved = records[0]["result"]
    assert saved["seeds"] == [0, 1] and set(saved["mean"]["methods"]) == {"none", "ewc"}
    assert saved["spread"]["ewc"]["acc"]["min"] <= saved["mean"]["methods"]["ewc"]["acc"] <= saved["spread"]["ewc"]["acc"]["max"]

    # A second visitor (a new session) finds the result listed and opens it from disk.
    other = _page().run()
    assert not other.exception and not other.error
    assert other.selectbox(key="cl_result").value == records[0]["id"]
    assert len(other.dataframe) == 2  # the list of benchmarks, the summary
    assert other.query_params["cl_result"] in (records[0]["id"], [records[0]["id"]])


@pytest.mark.slow
def test_stop_ends_a_running_benchmark_and_records_it(results_root):
    from optimus.experiments import background as benchmark_runs

    # Minutes of work if it were not stopped, so it cannot finish first on a busy machine.
    run_id = benchmark_runs.start({"family": "factor", "tasks": ["3 5 7 11 13"], "methods": ["none", "ewc", "gln"],
                                   "steps_per_task": 100, "batch_size": 128},
                                  seeds=range(forgetting.MAX_SEEDS))
    at = _page().run()
    stop = [b for b in at.button if b.key == "cl_stop"]
    assert stop, "a live benchmark offers Stop"
    stop[0].click().run()
    records = _wait_until_finished()
    assert records[0]["id"] == run_id and records[0]["state"] == "stopped", records[0]
    assert records[0]["result"] is None
    assert not (results_root / "_continual" / f"{run_id}.stop").exists()


def test_a_record_whose_process_died_reads_as_interrupted(results_root):
    from optimus.experiments import background as benchmark_runs
    from optimus.store import storage

    folder = benchmark_runs.results_root()
    folder.mkdir()
    storage.write_json(folder / "old.json", {"id": "old", "state": "running", "pid": 2**22 + 12345,
                                             "progress": 0.5, "message": "", "settings": {}, "seeds": [0],
                                             "started": 1.0})
    record = benchmark_runs.read("old")
    assert record["state"] == "interrupted" and not record["live"]
    with pytest.raises(ValueError, match="not a benchmark id"):
        benchmark_runs.read("../x")
