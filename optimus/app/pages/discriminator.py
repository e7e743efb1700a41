"""Discriminator vs sympy: how well a model's isPrime network agrees with exact primality."""

import numpy as np
import pandas as pd
import streamlit as st

from optimus import limits
from optimus.app import charts, common, query

SOURCES = ("Generator outputs", "Uniform odd integers", "Pasted list")

st.title("Discriminator vs sympy")
st.caption("The discriminator's probability that n is prime, thresholded at 0.5, against exact primality.")

DEFAULT_LIST = "1000003, 1000033, 1000037, 1000039, 999999, 1000001, 1000005, 1000007"
INPUTS = ("disc_model", "disc_source", "disc_list", "disc_count", "disc_seed", "disc_lo", "disc_hi")

names = [m["name"] for m in common.list_models()]
query.init("disc_model", "default" if "default" in names else (names or [""])[0], query.one_of(names))
query.init("disc_source", SOURCES[0], query.one_of(SOURCES))
query.init("disc_list", DEFAULT_LIST, str)
query.init("disc_count", 5_000, query.int_in(1, limits.MAX_CLASSIFY))
query.init("disc_seed", 0, query.int_in(0, 2**32 - 1))
query.init("disc_lo", 1_000_001, query.int_in(1, limits.EXACT_LIMIT - 1))
query.init("disc_hi", 1_000_000_000, query.int_in(1, limits.EXACT_LIMIT - 1))

c1, c2 = st.columns([2, 3])
name = common.model_picker(key="disc_model", container=c1, default=st.session_state["disc_model"])
source = c2.radio("Integers to classify", SOURCES, horizontal=True, key="disc_source")

known: dict = {}  # exact primality and this model's probabilities, where a sample has them
with common.user_errors():
    query.publish(*INPUTS)
    if source == "Pasted list":
        text = st.text_area(
            "Odd integers, separated by commas, spaces or new lines", key="disc_list",
            help=f"Whole numbers 0 <= n < 2**53, at most {limits.MAX_CLASSIFY:,}.",
        )
        from optimus.evaluation.report import parse_integers

        try:
            n_values = parse_integers(text)
        except ValueError as exc:
            raise ValueError(f"Pasted list: {exc}. Fix or remove that entry.") from None
    else:
        cols = st.columns(4)
        count = cols[0].number_input("How many", key="disc_count", step=1_000, help=f"1 to {limits.MAX_CLASSIFY:,}.")
        seed = cols[1].number_input("Seed", key="disc_seed", step=1, help="0 to 2**32 - 1.")
        count = common.check_int("How many", count, 1, limits.MAX_CLASSIFY)
        seed = common.check_int("Seed", seed, 0, 2**32 - 1)
        if source == "Generator outputs":
            table, _ = common.sample(name, min(count, limits.MAX_SAMPLES), seed)
            n_values = table["n"].to_numpy()
            known = {"truth": table["is_prime"].to_numpy(), "prob": table["d_prob"].to_numpy()}
        else:
            lo = cols[2].number_input("lo", key="disc_lo", step=1, help="Odd integers in [lo, hi], 1 <= lo <= hi < 2**53.")
            hi = cols[3].number_input("hi", key="disc_hi", step=1, help="Below 2**53.")
            lo, hi = common.check_range(lo, hi, lo_min=1, hi_max=limits.EXACT_LIMIT - 1)
            from optimus.evaluation.report import uniform_rng
            from optimus.primes import uniform_odd

            n_values = uniform_odd(lo, hi, count, uniform_rng(seed))
    report, prob = common.discriminate(name, n_values, **known)

truth = np.asarray(report["truth"], dtype=bool)
st.caption(f"{len(n_values):,} integers, {int(truth.sum()):,} of them prime ({truth.mean():.2%}).")
m = st.columns(6)
for col, (label, key) in zip(m, [("Accuracy", "accuracy"), ("Balanced accuracy", "balanced_accuracy"),
                                  ("Precision", "precision"), ("Recall", "recall"), ("F1", "f1"),
                                  ("ROC AUC", "roc_auc")], strict=True):
    value = report[key]
    col.metric(label, "n/a" if value != value else f"{value:.3f}")

left, right = st.columns(2)
left.vega_lite_chart(charts.confusion_heatmap(report["confusion"]), width="stretch")

# The same integers through the shipped default and seed models, for comparison.
rocs, aucs, rows = {name: report["roc"]}, {name: report["roc_auc"]}, [
    {"model": name, **row} for row in report["by_magnitude"]]
for other in common.comparison_models(name)[1:]:
    try:
        other_report, _ = common.discriminate(other, n_values, truth=truth)
    except ValueError as exc:
        common.warning(f"{other}: {exc}")
        continue
    rocs[other], aucs[other] = other_report["roc"], other_report["roc_auc"]
    rows += [{"model": other, **row} for row in other_report["by_magnitude"]]
right.vega_lite_chart(charts.spec(charts.roc_chart(rocs, aucs)), width="stretch")
st.vega_lite_chart(charts.spec(charts.accuracy_by_magnitude_chart(pd.DataFrame(rows))), width="stretch")

predicted = prob >= 0.5
wrong = np.flatnonzero(predicted != truth)
st.subheader(f"Disagreements ({len(wrong):,})")
if len(wrong):
    shown = wrong[:1_000]
    st.dataframe(
        pd.DataFrame({
            "n": np.asarray(n_values)[shown],
            "is_prime (exact)": truth[shown],
            "d_prob": prob[shown],
            "kind": np.where(truth[shown], "missed prime (FN)", "false alarm (FP)"),
        }),
        hide_index=True, width="stretch", height=260,
        column_config={"d_prob": st.column_config.NumberColumn(format="%.4f")},
    )
    if len(wrong) > len(shown):
        st.caption(f"Showing the first {len(shown):,}.")
else:
    st.success("The discriminator agrees with exact primality on every integer.")
