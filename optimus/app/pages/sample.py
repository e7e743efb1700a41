"""Sample primes: draw odd integers from a model's generator and see how many are prime,
in the model's own band or at any size (digits, bits or a range) with its learned sieve."""

from functools import partial

import pandas as pd
import streamlit as st

from optimus import limits, validate
from optimus.app import charts, common, query
from optimus.sampling import anysize

SIZES = {"band": "model's band", "digits": "digits", "bits": "bits", "range": "range"}

st.title("Sample primes")
st.caption(
    "The generator maps latent integers to reals x; each becomes the odd integer n = 2*floor(x)+1. "
    "Primality is exact; d_prob is the discriminator's opinion. At any size, the generator's "
    "learned sieve picks candidates from windows of odd integers placed uniformly in the range."
)


def _size_default() -> str:
    """A link with ?digits=, ?bits= or ?lo= opens that size without also saying ?size=."""
    return next((k for k in ("digits", "bits", "range") if (k if k != "range" else "lo") in st.query_params), "band")


names = [m["name"] for m in common.list_models()]
query.init("sample_model", "default" if "default" in names else (names or [""])[0], query.one_of(names))
query.init("seed", 0, query.int_in(None, None))
query.init("size", _size_default(), query.one_of(list(SIZES)))
query.init("digits", 50, query.int_in(limits.MIN_DIGITS, limits.MAX_DIGITS))
query.init("bits", 256, query.int_in(limits.MIN_BITS, limits.MAX_BITS))
query.init("lo", "1000000000000", str)
query.init("hi", "2000000000000", str)


def auto_count() -> int:
    """The samples a page shows well at the chosen size: 1,000 up to 20 digits, then about
    20,000 digits in all (100 samples of 200 digits: 1,000 of them took 7.3 s and drew a list
    23,860 px tall), never fewer than 10."""
    size = st.session_state.get("size", "band")
    try:
        if size == "digits":
            digits = int(st.session_state["digits"])
        elif size == "bits":
            digits = int(int(st.session_state["bits"]) * 0.30103) + 1
        elif size == "range":
            digits = len(str(validate.parse_int(st.session_state["hi"], lo=0, what="hi")))
        else:
            return 1_000
    except (TypeError, ValueError):
        return 1_000
    return max(10, min(1_000, 20_000 // max(digits, 1)))


# The count follows the size while it is the page's own choice: not once the visitor has typed
# one, nor when the link names one (?count=12 opens 12).
automatic = auto_count()
if "sample_count_auto" not in st.session_state:  # this session's first run of the page
    st.session_state["sample_count_auto"] = None if "count" in st.query_params else automatic
query.init("count", automatic, query.int_in(None, None))
following = st.session_state["sample_count_auto"]
if following is not None and st.session_state["count"] == following:
    st.session_state["count"] = st.session_state["sample_count_auto"] = automatic
query.init("primes", True, query.boolean)
query.init("vet", False, query.boolean)

c1, c2, c3 = st.columns([2, 1, 1])
name = common.model_picker(key="sample_model", container=c1)
count = c2.number_input("Samples", key="count", step=1_000, help=f"1 to {limits.MAX_SAMPLES:,}.")
seed = c3.number_input("Seed", key="seed", step=1, help="0 to 2**32 - 1; the same seed gives the same samples.")
size = st.radio("Size", list(SIZES), key="size", horizontal=True, format_func=SIZES.get,
                help="The model's band is where it was trained; any other size uses its learned sieve.")
if size != "band":
    c = st.columns([1, 1, 1, 1])
    if size == "digits":
        c[0].number_input("Digits", key="digits", step=1, help=f"{limits.MIN_DIGITS} to {limits.MAX_DIGITS}.")
    elif size == "bits":
        c[0].number_input("Bits", key="bits", step=1, help=f"{limits.MIN_BITS} to {limits.MAX_BITS}.")
    else:
        c[0].text_input("lo", key="lo", help="Lower end (included): digits, or 10**18 / 1e18.")
        c[1].text_input("hi", key="hi", help=f"Upper end (included), below 2^{limits.MAX_BITS}.")
    c[2].checkbox("Primes only", key="primes", help="N distinct verified primes, with the tests each one took.")
    c[3].checkbox("Discriminator vetting", key="vet",
                  help="The discriminator skips picks it judges composite before the primality test "
                       "(rejection sampling; numbers below 2^53 only).")
query.publish("sample_model", "count", "seed", "size", *{"digits": ["digits"], "bits": ["bits"], "range": ["lo", "hi"]}.get(size, []),
              *(["primes", "vet"] if size != "band" else []))


@st.cache_data(max_entries=16, show_spinner="Sampling ...")
def sample_any(_models, signature: tuple, lo: int, hi: int, count: int, seed: int, primes_only: bool, vet: bool):
    return anysize.sample_models(_models, lo, hi, count, seed, primes_only=primes_only, vet=vet)


if size != "band":
    with common.user_errors():
        count = common.check_int("Samples", count, 1, limits.MAX_SAMPLES)
        seed = common.check_int("Seed", seed, 0, 2**32 - 1)
        if size == "range":
            lo, hi = validate.parse_int(st.session_state["lo"], lo=0, what="lo"), validate.parse_int(st.session_state["hi"], lo=0, what="hi")
            lo, hi, label = anysize.size_range(lo=lo, hi=hi)
        else:
            lo, hi, label = anysize.size_range(**{size: int(st.session_state[size])})
        primes_only = bool(st.session_state["primes"])
        models = common.load_models(name)
        table, summary = sample_any(models, common.model_signature(common.model_path(name)), lo, hi, count, seed,
                                    primes_only, bool(st.session_state["vet"]))
    if summary.get("stopped"):
        st.warning(summary["stopped"], icon=":material/timer:")
    m = st.columns(5)
    m[0].metric("Primes", f"{summary['primes']:,} of {summary['outputs']:,}")
    m[1].metric("Tests per prime", f"{summary['tests_per_prime']:,.1f}" if summary["tests_per_prime"] else "-",
                help="Candidates given to the primality test per prime found (the learned sieve's picks).")
    m[2].metric("Random odd needs", f"{summary['random_odd_tests_per_prime']:,.1f}",
                help="1 / density of primes among odd integers here"
                     + ("" if summary["density_exact"] else " (estimated with li(x))") + ".")
    m[3].metric("Classic sieve needs", f"{summary['sieve_tests_per_prime']:,.1f}",
                help=f"Trial division by the same {summary['sieve_primes']} primes (<= {summary['sieve_max_prime']}) first.")
    m[4].metric("Lift", "-" if summary["lift"] is None else f"{summary['lift']:.2f}x", help="Hit rate / odd-prime density; the classic sieve reaches "
                f"{summary['sieve_lift']:.2f}x.")
    st.caption(f"{anysize.summary_lines(summary)[0]}. Certainty: {summary['certainty']}.")
    st.vega_lite_chart(charts.tests_per_prime_chart(summary), width="stretch")
    if summary["d_prob_note"]:
        st.caption(summary["d_prob_note"] + ".")
    st.dataframe(table, hide_index=True, width="stretch", height=280,
                 column_config={"n": st.column_config.TextColumn("n", help="Decimal digits, exact: the list below "
                                                                     "shows every digit and copies whole.",
                                                                 width="large"),
                                "d_prob": st.column_config.NumberColumn("d_prob", format="%.4f")})
    st.caption("Every number whole, wrapped at the page's width (copy the list with the button at its top right):")
    st.code("\n".join(table["n"]), language=None, wrap_lines=True, height=320)
    st.download_button(
        "Download CSV", data=partial(table.to_csv, index=False),
        file_name=f"optimus-{name}-{label.strip('[]').replace(', ', '-')}-{count}-seed{seed}.csv"[:120],
        mime="text/csv", icon=":material/download:", on_click="ignore",
    )
    st.stop()

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

st.vega_lite_chart(charts.spec(charts.output_histogram(table)), width="stretch")

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
frames = [common.residue_shares(name, count, seed).assign(model=name)]
for other in compare[1:]:  # cached per model version: changing the seed or count above costs nothing
    try:
        _, rep = common.sample(other, common.COMPARE_SAMPLES, 0)
        res = common.residue_shares(other, common.COMPARE_SAMPLES, 0)
    except ValueError as exc:
        common.warning(f"{other}: {exc}")
        continue
    reports.append({"model": other, "samples": common.COMPARE_SAMPLES, **{k: rep[k] for k in FIGURES}})
    frames.append(res.assign(model=other))
if frames:
    st.vega_lite_chart(charts.residue_chart(pd.concat(frames, ignore_index=True)), width="stretch")
    st.vega_lite_chart(charts.model_comparison_chart(pd.DataFrame(reports)), width="stretch")
    st.dataframe(
        pd.DataFrame(reports), hide_index=True, width="stretch",
        column_config={k: st.column_config.NumberColumn(format="%.4f")
                       for k in ("hit_rate", "distinct_rate", "distinct_prime_rate", "baseline")}
        | {"lift": st.column_config.NumberColumn(format="%.2f")},
    )
