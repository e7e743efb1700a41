"""Sample primes: draw odd integers from a model's generator and see how many are prime."""

from functools import partial

import pandas as pd
import streamlit as st

from optimus import charts, limits
from optimus.pages import common

st.title("Sample primes")
st.caption(
    "The generator maps latent integers to reals x; each becomes the odd integer n = 2*floor(x)+1. "
    "Primality is exact; d_prob is the discriminator's opinion."
)

c1, c2, c3 = st.columns([2, 1, 1])
name = common.model_picker(key="sample_model", container=c1)
count = c2.number_input("Samples", value=1_000, step=1_000, help=f"1 to {limits.MAX_SAMPLES:,}.")
seed = c3.number_input("Seed", value=0, step=1, help="0 to 2**32 - 1; the same seed gives the same samples.")

with common.user_errors():
    count = common.check_int("Samples", count, 1, limits.MAX_SAMPLES)
    seed = common.check_int("Seed", seed, 0, 2**32 - 1)
    table, report = common.sample(name, count, seed)

m = st.columns(5)
m[0].metric("Prime hit rate", f"{report['hit_rate']:.2%}", help="Share of the outputs that are prime.")
m[1].metric("Distinct rate", f"{report['distinct_rate']:.2%}", help="Distinct outputs / samples.")
m[2].metric("Distinct-prime rate", f"{report['distinct_prime_rate']:.2%}", help="Distinct primes / samples.")
m[3].metric("Baseline", f"{report['baseline']:.2%}",
            help="Hit rate of random odd integers at the outputs' own magnitudes.")
m[4].metric("Lift", f"{report['lift']:.2f}x", help="Distinct-prime rate / baseline: 1.0 is chance.")
st.caption(f"Outputs span [{report['lo']:,}, {report['hi']:,}].")

st.altair_chart(charts.output_histogram(table), width="stretch")

st.dataframe(
    table, hide_index=True, width="stretch", height=280,
    column_config={"d_prob": st.column_config.NumberColumn("d_prob", format="%.4f")},
)
st.download_button(
    "Download CSV", data=partial(table.to_csv, index=False),  # built on click, not on every rerun
    file_name=f"optimus-{name}-{count}-seed{seed}.csv", mime="text/csv", icon=":material/download:",
    on_click="ignore",
)

st.subheader("What the network learned")
compare = common.comparison_models(name)
st.caption(
    f"Share of the outputs in each residue class mod small primes: {name} from the {count:,} samples "
    f"above, the other models from {common.COMPARE_SAMPLES:,} samples each (seed 0). Random odd integers "
    "put 1/p in every class; a prime is never 0 mod p (unless it is p), so a generator that learned "
    "divisibility empties class 0."
)
FIGURES = ("hit_rate", "distinct_rate", "distinct_prime_rate", "baseline", "lift")
reports = [{"model": name, "samples": count, **{k: report[k] for k in FIGURES}}]
frames = [common.residues(name, count, seed).assign(model=name)]
for other in compare[1:]:  # cached per model version: changing the seed or count above costs nothing
    try:
        _, rep = common.sample(other, common.COMPARE_SAMPLES, 0)
        res = common.residues(other, common.COMPARE_SAMPLES, 0)
    except ValueError as exc:
        st.warning(f"{other}: {exc}")
        continue
    reports.append({"model": other, "samples": common.COMPARE_SAMPLES, **{k: rep[k] for k in FIGURES}})
    frames.append(res.assign(model=other))
if frames:
    st.altair_chart(charts.residue_chart(pd.concat(frames, ignore_index=True)), width="stretch")
    st.altair_chart(charts.model_comparison_chart(pd.DataFrame(reports)), width="stretch")
    st.dataframe(
        pd.DataFrame(reports), hide_index=True, width="stretch",
        column_config={k: st.column_config.NumberColumn(format="%.4f")
                       for k in ("hit_rate", "distinct_rate", "distinct_prime_rate", "baseline")}
        | {"lift": st.column_config.NumberColumn(format="%.2f")},
    )
