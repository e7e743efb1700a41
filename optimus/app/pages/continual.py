"""Continual learning: does a primality classifier forget old tasks, and what stops it?

The benchmark runs in a process of its own (`optimus.experiments.background`), over several seeds; this
page starts it, watches its record on disk (progress, Stop) and draws the saved results, so a
refresh or a second visitor sees the same runs, and a finished result opens by reading one file.
"""

import hashlib
import json

import pandas as pd
import streamlit as st

from optimus.app import charts, charts_continual, common, presenter, query
from optimus.evaluation import demo
from optimus.experiments import background as benchmark_runs
from optimus.experiments import forgetting
from optimus.store import storage

REFRESH_SECONDS = 1.5
# Training budgets per task (defined with the demo figures, which measure the page's defaults).
BUDGETS = demo.CONTINUAL_BUDGETS
DEFAULT_TASKS = {
    "factor": " ".join(str(p) for p in forgetting.FACTOR_PRIMES),
    "range": " ".join(f"{lo}:{hi}" for lo, hi in forgetting.DECADES),
}
ENCODINGS = ("fourier", "scalar")
INPUTS = ("cl_family", "cl_tasks", "cl_methods", "cl_encoding", "cl_seed", "cl_seeds", "cl_budget", "cl_tune",
          "cl_lambda")

st.title("Continual learning")
st.caption(
    "Tasks arrive one after another; after each, every task's held-out set is scored (balanced "
    "accuracy, 0.5 = chance). **factor**: task j contrasts primes with composites whose smallest "
    "prime factor is p_j, so each task teaches a new rule. **range**: primes against odd "
    "composites in one range per task (a control: divisibility rules hold everywhere). "
    "ACC = mean final accuracy; BWT = how much old tasks lost (negative = forgetting)."
)

# --- settings (all in the URL) -------------------------------------------------------------

query.init("cl_family", "factor", query.one_of(forgetting.FAMILIES))
query.init("cl_tasks", DEFAULT_TASKS[st.session_state["cl_family"]], str)
query.init("cl_methods", list(forgetting.METHODS), query.list_of(forgetting.METHODS))
query.init("cl_encoding", "fourier", query.one_of(ENCODINGS))
query.init("cl_seed", 0, query.int_in(0, 2**32 - forgetting.MAX_SEEDS))
query.init("cl_seeds", demo.CONTINUAL_DEFAULT_SEEDS, query.int_in(1, forgetting.MAX_SEEDS))
query.init("cl_budget", demo.CONTINUAL_DEFAULT_BUDGET, query.one_of(tuple(BUDGETS)))
query.init("cl_tune", True, query.boolean)
query.init("cl_lambda", 1000.0, query.float_in(0.0, 1e9))


def _family_changed() -> None:
    st.session_state["cl_tasks"] = DEFAULT_TASKS[st.session_state["cl_family"]]


c = st.columns([1, 3])
family = c[0].radio("Task family", forgetting.FAMILIES, horizontal=True, key="cl_family", on_change=_family_changed)
tasks_text = c[1].text_input(
    "Tasks", key="cl_tasks",
    help=("Odd primes p (at most 997), one task each." if family == "factor" else
          "LO:HI pairs, 0 < LO < HI <= 10,000,000,000, HI - LO >= 10,000 (odd n with LO <= n < HI).")
    + f" 2 to {forgetting.MAX_TASKS} tasks, separated by spaces or commas.",
)
methods = st.multiselect("Methods", forgetting.METHODS, key="cl_methods",
                         format_func=lambda m: f"{m}: {forgetting.method_summary(m)}")
c = st.columns(5)
encoding = c[0].radio("Encoding", ENCODINGS, horizontal=True, key="cl_encoding",
                      help="fourier: cos/sin of n mod each odd prime <= 97 plus log n; scalar: the seed's n / 1e9.")
seed = c[1].number_input("First seed", key="cl_seed", step=1, help="Seeds first, first + 1, ...")
seed_count = c[2].number_input("Seeds", key="cl_seeds", step=1,
                               help=f"1 to {forgetting.MAX_SEEDS}: the spread of ACC and BWT over seeds.")
budget = c[3].radio("Budget", tuple(BUDGETS), horizontal=True, key="cl_budget",
                    help="tiny: 5 steps of 32 per task (a smoke test, seconds); quick: 40 steps of 128 "
                         "(under a minute per seed); standard: 150 steps of 256.")
tune = c[4].toggle("Tune λ", key="cl_tune", help="Pick each penalty's λ on a validation split (never the test sets).")
ewc_lambda = None
if not tune:
    ewc_lambda = st.number_input("EWC λ (ewc and online-ewc; l2 is still tuned)", key="cl_lambda",
                                 step=100.0, format="%g")
query.publish(*INPUTS)

# Starting and stopping are the presenter's on a shared server (optimus/app/presenter.py).
if presenter.unlock_box("starting and stopping benchmarks") and st.button(
        "Run in the background", type="primary", icon=":material/play_arrow:"):
    with common.user_errors():
        presenter.require("start a benchmark")
        first = common.check_int("First seed", seed, 0, 2**32 - forgetting.MAX_SEEDS)
        count = common.check_int("Seeds", seed_count, 1, forgetting.MAX_SEEDS)
        if not methods:
            raise ValueError("Pick at least one method.")
        settings = {"family": family, "tasks": [tasks_text], "methods": list(methods), "encoding": encoding,
                    "method_lambda": None if ewc_lambda is None else float(ewc_lambda), **BUDGETS[budget]}
        try:
            run_id = benchmark_runs.start(settings, range(first, first + count))
        except storage.LockedError as exc:
            common.error(str(exc), icon=":material/lock:")
        except RuntimeError as exc:
            common.error(f"The benchmark did not start: {exc}")
        else:
            st.success(f"Started benchmark {run_id} over {count} seed(s).", icon=":material/rocket_launch:")

# --- runs and results ----------------------------------------------------------------------

st.divider()
records = benchmark_runs.list_runs()


@st.fragment(run_every=REFRESH_SECONDS)
def live_panel(run_id: str) -> None:
    record = benchmark_runs.read(run_id)
    if record is None or not record["live"]:
        st.rerun()  # finished: redraw the page with its result listed
    st.progress(min(float(record.get("progress") or 0.0), 1.0),
                text=f"Benchmark {run_id} {record['state']}: {record.get('message', '')}")
    if presenter.may_act() and st.button("Stop after the current task", icon=":material/stop:", key="cl_stop"):
        with common.user_errors():
            presenter.require("stop a benchmark")
        benchmark_runs.stop(run_id)
        st.toast(f"Asked {run_id} to stop after its current task.")


for record in records:
    if record["live"]:
        live_panel(record["id"])

if not records:
    st.info("No benchmark yet: pick the tasks and methods, then run it.", icon=":material/info:")
    st.stop()


def _methods(record: dict) -> list[str]:
    """The methods a benchmark compares: as asked (its settings), else, for a run of every method
    (`forgetting --save` without --methods, like the shipped one), those its result holds."""
    asked = (record.get("settings") or {}).get("methods")
    mean = (record.get("result") or {}).get("mean") or {}
    return list(asked or (charts_continual.method_order(mean) if mean.get("methods") else []))


def _label(record: dict) -> str:
    s = record.get("settings") or {}
    seeds = record.get("seeds") or []
    return (f"{record['id']} · {s.get('family', '?')} · {', '.join(_methods(record)) or 'all methods'} · "
            f"{len(seeds)} seed(s) · {record['state']}")


st.subheader("Benchmarks")
st.dataframe(pd.DataFrame([{
    "id": r["id"], "state": r["state"], "family": (r.get("settings") or {}).get("family"),
    "methods": ", ".join(_methods(r)) or "all", "seeds": len(r.get("seeds") or []),
    "steps per task": (r.get("settings") or {}).get("steps_per_task"),
    "started": pd.to_datetime(r.get("started"), unit="s").floor("s") if r.get("started") else None,
    "message": r.get("message"),
} for r in records]), hide_index=True, width="stretch")

done = [r for r in records if r["state"] == "done"]
if not done:
    st.info("No finished benchmark yet.", icon=":material/hourglass_top:")
    st.stop()
ids = [r["id"] for r in done]
query.init("cl_result", ids[0], query.one_of(ids))
if st.session_state["cl_result"] not in ids:
    st.session_state["cl_result"] = ids[0]
chosen = st.selectbox("Result", ids, key="cl_result", format_func={r["id"]: _label(r) for r in done}.get)
query.publish("cl_result")



def result_digest(saved: dict) -> str:
    return hashlib.sha1(json.dumps(saved, sort_keys=True, default=str).encode()).hexdigest()


@st.cache_data(max_entries=8, show_spinner=False)
def figures(run_id: str, digest: str, _saved: dict) -> tuple[dict, dict, dict]:
    """The result's three charts as Vega-Lite dicts, built once per result (its content's digest):
    building them took 0.6 s of the server's CPU on every page run."""
    result = _saved["mean"]
    return (charts.spec(charts_continual.spread_chart(_saved)), charts.spec(charts_continual.task_curves_chart(result)),
            charts.spec(charts_continual.accuracy_matrices_chart(result)))


saved = next(r for r in done if r["id"] == chosen)["result"]
result = saved["mean"]
cfg = result["config"]
st.caption(
    f"{cfg['family']} tasks ({', '.join(result['tasks'])}), {cfg['encoding']} encoding, seeds "
    f"{', '.join(map(str, saved['seeds']))}, {cfg['steps_per_task']} steps of {cfg['batch_size']} per task; "
    f"{common.format_seconds(result['seconds']['total'])} in all. Figures are means over the seeds."
)
spread, curves, matrices = figures(chosen, result_digest(saved), saved)
st.vega_lite_chart(spread)
table = charts_continual.summary_frame(result)
for key, column in (("acc", "ACC"), ("bwt", "BWT")):
    table[f"{column} min"] = [saved["spread"][m][key]["min"] for m in table["method"]]
    table[f"{column} max"] = [saved["spread"][m][key]["max"] for m in table["method"]]
st.dataframe(table, hide_index=True)
st.subheader("Accuracy per task over time")
st.vega_lite_chart(curves)
st.subheader("Accuracy matrices")
st.caption("Row i: after training on task i; column j: scored on task j (mean over seeds). Faded cells: tasks not "
           "trained yet.")
st.vega_lite_chart(matrices)
tuning = [run.get("tuning") for run in saved["runs"] if run.get("tuning")]
if tuning:
    with st.expander("λ tuning (validation ACC per λ, per seed)"):
        for seed_value, run in zip(saved["seeds"], saved["runs"], strict=True):
            for method, t in (run.get("tuning") or {}).items():
                st.write(f"seed {seed_value}, **{method}** → λ = {t['best']:g}: " + ", ".join(
                    f"{g:g}: {a:.3f}" for g, a in zip(t["grid"], t["val_acc"], strict=True)))
