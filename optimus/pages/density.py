"""Prime density: exact prime counts per bin against the prime number theorem.

No TensorFlow here unless a model's outputs are overlaid (then the model is loaded lazily).
"""

import numpy as np
import pandas as pd
import streamlit as st

from optimus import charts, limits
from optimus.pages import common

NONE = "(none)"
OVERLAY_SAMPLES = 10_000

st.title("Prime density")
st.caption(
    "Exact counts of primes per bin, against the prime number theorem's x / ln x and the "
    "logarithmic integral li(x)."
)


@st.cache_data(max_entries=32, show_spinner="Counting primes ...")
def density_table(lo: int, hi: int, bins: int, log: bool) -> tuple[pd.DataFrame, float]:
    from optimus.primes import density_table as table_of

    table = table_of(lo, hi, bins, log)
    rows = pd.DataFrame(table["rows"]).rename(columns={"lo": "bin_lo", "hi": "bin_hi"})
    if "width" not in rows.columns:
        rows["width"] = rows["bin_hi"] - rows["bin_lo"]
    odd_density = table["odd_prime_density"]
    return rows, float("nan") if odd_density is None else float(odd_density)


c = st.columns(4)
lo = c[0].number_input("lo", value=2, step=1, help=f"Lower end (included), 0 <= lo <= hi <= {limits.MAX_DENSITY_HI:,}.")
hi = c[1].number_input("hi", value=10**7, step=10**6, help=f"Upper end (included), at most {limits.MAX_DENSITY_HI:,}.")
bins = c[2].number_input("Bins", value=40, step=1, help=f"1 to {limits.MAX_BINS:,}.")
spacing = c[3].radio("Spacing", ("linear", "log"), horizontal=True, help="Log spacing starts at 1 when lo is 0.")
c = st.columns([1, 2])
measure = c[0].radio("Show", ("count", "density"), horizontal=True,
                     format_func={"count": "primes per bin", "density": "primes per integer"}.get)
overlay_names = [NONE, *(m["name"] for m in common.list_models())]
overlay = c[1].selectbox("Overlay a model's output density", overlay_names,
                         help=f"Share of {OVERLAY_SAMPLES:,} generator outputs per bin (right axis); loads the model.")

with common.user_errors():
    lo, hi = common.check_range(lo, hi, lo_min=0, hi_max=limits.MAX_DENSITY_HI)
    bins = common.check_int("Bins", bins, 1, limits.MAX_BINS)
    table, odd_density = density_table(lo, hi, bins, spacing == "log")
    share = None
    if overlay != NONE:
        samples, _ = common.sample(overlay, OVERLAY_SAMPLES, 0)
        edges = np.append(table["bin_lo"].to_numpy(dtype=np.float64), float(table["bin_hi"].iloc[-1]))
        counts, _ = np.histogram(samples["n"].to_numpy(dtype=np.float64), bins=edges)
        share = pd.Series(counts / len(samples))
        outside = 1 - share.sum()
        if outside > 0:
            st.caption(f"{outside:.1%} of {overlay}'s outputs fall outside [{lo:,}, {hi:,}].")

st.altair_chart(
    charts.density_chart(table, measure=measure, log_x=spacing == "log", model_share=share, model_name=overlay),
    width="stretch",
)
total = int(table["count"].sum())
m = st.columns(4)
m[0].metric("Primes in range", f"{total:,}")
m[1].metric("x / ln x predicts", f"{table['expected_x_ln_x'].sum():,.0f}")
m[2].metric("li(x) predicts", f"{table['expected_li'].sum():,.0f}")
m[3].metric("Odd-prime density", f"{odd_density:.5f}", help="Share of odd integers in the range that are prime.")
st.dataframe(table, hide_index=True, width="stretch", height=260)
