"""Prime density: exact prime counts per bin (to 10^18) against the prime number theorem.

No TensorFlow here unless a model's outputs are overlaid (then the model is loaded lazily).
"""

import pandas as pd
import streamlit as st

from optimus import limits, validate
from optimus.app import charts, common, overlays, query
from optimus.primes import density_table as table_of
from optimus.sampling import anysize

NONE = "(none)"
OVERLAY_SAMPLES = 10_000

st.title("Prime density")
st.caption(
    "Exact counts of primes per bin (primecount above the sieves, up to 10^18), against the prime "
    "number theorem's x / ln x and the logarithmic integral li(x)."
)


@st.cache_data(max_entries=32, show_spinner="Counting primes ...")
def density_table(lo: int, hi: int, bins: int, log: bool, estimate: bool) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(the bins, the same as shown in the page's table, the figures): computed once per input,
    what a page run then reads back (the table's sums and the shown copy took 5 ms a run)."""
    table = table_of(lo, hi, bins, log, estimate=estimate)
    rows = pd.DataFrame(table["rows"]).rename(columns={"lo": "bin_lo", "hi": "bin_hi"})
    odd_density = table["odd_prime_density"]
    shown = rows.assign(bin_lo=rows["bin_lo"].map(str), bin_hi=rows["bin_hi"].map(str), count=rows["count"].map(str))
    figures = {"estimated_bins": table["estimated_bins"], "estimated_seconds": table["estimated_seconds"],
               "odd_density": float("nan") if odd_density is None else float(odd_density),
               "total": int(rows["count"].sum()), "x_ln_x": float(rows["expected_x_ln_x"].sum()),
               "li": float(rows["expected_li"].sum())}
    return rows, shown, figures


@st.cache_data(max_entries=8, show_spinner="Sampling the model at this size ...")
def sampled_at(_models, signature: tuple, lo: int, hi: int, placement: str) -> list[int]:
    """The learned sieve's picks in [lo, hi] (the model's window, one pick each)."""
    result = anysize.sample_any(anysize.model_sieve(_models), lo, hi, OVERLAY_SAMPLES, 0,
                                temperature=_models.config.temperature, placement=placement)
    return result.values


@st.cache_data(max_entries=32, show_spinner=False)
def density_figure(lo: int, hi: int, bins: int, log: bool, estimate: bool, measure: str, share, overlay: str) -> dict:
    """The chart as a Vega-Lite dict, built once per table and choice (0.1 s of CPU each run);
    keyed by the table's inputs, not the table (hashing it cost a few ms a run)."""
    table = density_table(lo, hi, bins, log, estimate)[0]
    return charts.spec(charts.density_chart(table, measure=measure, log_x=log, model_share=share, model_name=overlay))


query.init("lo", "2", str)
query.init("hi", "10000000", str)
query.init("bins", 40, query.int_in(None, None))
query.init("spacing", "linear", query.one_of(["linear", "log"]))
query.init("estimate", False, query.boolean)

c = st.columns(4)
c[0].text_input("lo", key="lo", help=f"Lower end (included), 0 <= lo <= hi <= {limits.MAX_DENSITY_HI:,}; "
                "digits, or 10**12 / 1e12.")
c[1].text_input("hi", key="hi", help=f"Upper end (included), at most {limits.MAX_DENSITY_HI:,} (10^18).")
bins = c[2].number_input("Bins", key="bins", step=1, help=f"1 to {limits.MAX_BINS:,}.")
spacing = c[3].radio("Spacing", ("linear", "log"), key="spacing", horizontal=True, help="Log spacing starts at 1 when lo is 0.")
c = st.columns([1, 2, 1])
measure = c[0].radio("Show", ("count", "density"), horizontal=True,
                     format_func={"count": "primes per bin", "density": "primes per integer"}.get)
overlay_names = [NONE, *(m["name"] for m in common.list_models())]
query.init("overlay", NONE, query.one_of(overlay_names))
overlay = c[1].selectbox("Overlay a model's output density", overlay_names, key="overlay",
                         help=f"Share of {OVERLAY_SAMPLES:,} generator outputs per bin (right axis); loads the model. "
                              "Beyond the model's own band, its learned sieve samples at this size.")
estimate = c[2].checkbox("Estimate costly bins", key="estimate",
                         help=f"Counts estimated to take over {limits.MAX_COUNT_SECONDS:g} s are refused; with this, "
                              "the bins beyond that budget show li(x) estimates, marked as such.")
query.publish("lo", "hi", "bins", "spacing", "estimate", "overlay")

with common.user_errors():
    lo = validate.parse_int(st.session_state["lo"], lo=0, what="lo")
    hi = validate.parse_int(st.session_state["hi"], lo=0, what="hi")
    # not common.check_range: it compares through float, which cannot hold every integer above 2^53
    for label, value in (("lower", lo), ("upper", hi)):
        if value > limits.MAX_DENSITY_HI:
            raise ValueError(f"The range's {label} end must be between 0 and {limits.MAX_DENSITY_HI:,}; "
                             f"you entered {value:,}.")
    if lo > hi:
        raise ValueError(f"The range's lower end ({lo:,}) is above its upper end ({hi:,}): swap them or lower lo.")
    bins = common.check_int("Bins", bins, 1, limits.MAX_BINS)
    table, shown, info = density_table(lo, hi, bins, spacing == "log", estimate)
    share = None
    if overlay != NONE:
        samples, _ = common.sample(overlay, OVERLAY_SAMPLES, 0)
        values = samples["n"].tolist()
        inside = overlays.share_inside(values, lo, hi)
        source = f"{overlay}'s outputs in its own band"
        if inside < 0.5:  # the range is mostly outside the model's band: sample it there
            models = common.load_models(overlay)
            picked = sampled_at(models, common.model_signature(common.model_path(overlay)), max(lo, 1), hi,
                                "log" if spacing == "log" else "uniform")
            values = picked
            source = (f"{overlay}'s learned sieve sampling at this size (windows placed "
                      f"{'log-uniformly' if spacing == 'log' else 'uniformly'})")
        share, outside = overlays.bin_shares(values, table["bin_lo"].tolist(), table["bin_hi"].iloc[-1])
        st.caption(f"Overlay: {source}." + (f" {outside:.1%} fall outside [{lo:,}, {hi:,}]." if outside > 0 else ""))

if info["estimated_bins"]:
    st.warning(f"{info['estimated_bins']} of {len(table)} bins are li(x) estimates (column exact = False, drawn "
               f"lighter): counting every bin exactly was estimated at {info['estimated_seconds']:,.0f} s.",
               icon=":material/info:")
st.vega_lite_chart(density_figure(lo, hi, bins, spacing == "log", estimate, measure, share, overlay), width="stretch")
m = st.columns(4)
m[0].metric("Primes in range", f"{info['total']:,}" if not info["estimated_bins"] else f"~{info['total']:,}",
            help=None if not info["estimated_bins"] else "Includes li(x) estimates for some bins.")
m[1].metric("x / ln x predicts", f"{info['x_ln_x']:,.0f}")
m[2].metric("li(x) predicts", f"{info['li']:,.0f}")
m[3].metric("Odd-prime density", f"{info['odd_density']:.5f}", help="Share of odd integers in the range that are prime.")
st.dataframe(shown, hide_index=True, width="stretch", height=260)
