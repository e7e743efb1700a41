"""Continual learning: does a primality classifier forget old tasks, and what stops it?

Reads the widgets, calls `optimus.forgetting.run_benchmark`, draws the result. TensorFlow is
imported only when the benchmark runs.
"""

import streamlit as st

from optimus import charts_continual, forgetting
from optimus.pages import common

# Training budgets per task. "quick" keeps a click under a minute on a 2-core machine.
BUDGETS = {
    "quick": {"steps_per_task": 40, "batch_size": 128, "test_size": 1000, "val_size": 500},
    "standard": {"steps_per_task": 150, "batch_size": 256},
}
DEFAULT_TASKS = {
    "factor": " ".join(str(p) for p in forgetting.FACTOR_PRIMES),
    "range": " ".join(f"{lo}:{hi}" for lo, hi in forgetting.DECADES),
}
METHOD_HELP = {
    "none": "plain fine-tuning",
    "ewc": "EWC, one penalty per past task (Kirkpatrick et al. 2017)",
    "online-ewc": "online EWC, one decayed running Fisher (Schwarz et al. 2018)",
    "l2": "L2 pull towards the previous weights",
    "joint": "all tasks at once, same budget: the upper bound",
    "gln": "gated linear network, local online updates, no Fisher, no replay",
}

st.title("Continual learning")
st.caption(
    "Tasks arrive one after another; after each, every task's held-out set is scored (balanced "
    "accuracy, 0.5 = chance). **factor**: task j contrasts primes with composites whose smallest "
    "prime factor is p_j, so each task teaches a new rule. **range**: primes against odd "
    "composites in one range per task (a control: divisibility rules hold everywhere). "
    "ACC = mean final accuracy; BWT = how much old tasks lost (negative = forgetting)."
)

c = st.columns([1, 3])
family = c[0].radio("Task family", forgetting.FAMILIES, horizontal=True)
tasks_text = c[1].text_input(
    "Tasks", value=DEFAULT_TASKS[family], key=f"continual_tasks_{family}",
    help=("Odd primes p (at most 997), one task each." if family == "factor" else
          "LO:HI pairs, 0 < LO < HI <= 10,000,000,000, HI - LO >= 10,000 (odd n with LO <= n < HI).")
    + f" 2 to {forgetting.MAX_TASKS} tasks, separated by spaces or commas.",
)
methods = st.multiselect("Methods", forgetting.METHODS, default=list(forgetting.METHODS),
                         format_func=lambda m: f"{m}: {METHOD_HELP[m]}")
c = st.columns(4)
encoding = c[0].radio("Encoding", ("residue", "scalar"), horizontal=True,
                      help="residue: cos/sin of n mod each odd prime <= 97 plus log n; scalar: the seed's n / 1e9.")
seed = c[1].number_input("Seed", value=0, step=1, min_value=0, max_value=2**32 - 1)
budget = c[2].radio("Budget", tuple(BUDGETS), horizontal=True,
                    help="quick: 40 steps of 128 per task (well under a minute); standard: 150 steps of 256.")
tune = c[3].toggle("Tune λ", value=True, help="Pick each penalty's λ on a validation split (never the test sets).")
ewc_lambda = None
if not tune:
    ewc_lambda = st.number_input("EWC λ (ewc and online-ewc; l2 is still tuned)", value=1000.0, min_value=0.0,
                                 max_value=1e9, step=100.0)

if st.button("Run the benchmark", type="primary"):
    with common.user_errors():
        seed = common.check_int("Seed", seed, 0, 2**32 - 1)
        if not methods:
            raise ValueError("Pick at least one method.")
        tasks = forgetting.parse_tasks(family, [tasks_text])
        bar = st.progress(0.0, text="Drawing the tasks' integers ...")
        try:
            result = forgetting.run_benchmark(
                family=family, tasks=tasks, methods=methods, encoding=encoding, seed=seed,
                ewc_lambda=ewc_lambda, progress=lambda f, m: bar.progress(f, text=m), **BUDGETS[budget],
            )
        except RuntimeError as exc:  # e.g. too few integers of a class in a range
            raise ValueError(f"The benchmark could not run: {exc}") from None
        bar.empty()
        st.session_state["continual_result"] = result

result = st.session_state.get("continual_result")
if result is None:
    st.info("Pick the tasks and methods, then run the benchmark.", icon=":material/info:")
    st.stop()

cfg = result["config"]
st.subheader("Summary")
st.caption(
    f"{cfg['family']} tasks ({', '.join(result['tasks'])}), {cfg['encoding']} encoding, seed {cfg['seed']}, "
    f"{cfg['steps_per_task']} steps of {cfg['batch_size']} per task; "
    f"{common.format_seconds(result['seconds']['total'])} in all."
)
st.altair_chart(charts_continual.summary_chart(result))
st.dataframe(charts_continual.summary_frame(result), hide_index=True)
if result.get("tuning"):
    with st.expander("λ tuning (validation ACC per λ)"):
        for method, t in result["tuning"].items():
            st.write(f"**{method}** → λ = {t['best']:g}: " + ", ".join(
                f"{g:g}: {a:.3f}" for g, a in zip(t["grid"], t["val_acc"], strict=True)))
st.subheader("Accuracy matrices")
st.caption("Row i: after training on task i; column j: scored on task j. Faded cells: tasks not trained yet.")
st.altair_chart(charts_continual.accuracy_matrices_chart(result))
