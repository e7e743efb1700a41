"""Overview, the landing page: the original's idea, its measured truth, what Optimus's default
model achieves and learns (the sieve), and where each page goes.

Every figure comes from the models on disk: a model's saved evaluation (written by `python -m
optimus evaluate --save`) when it matches the model's trained batches, else `evaluation.evaluate`
computed here once per saved version of the model (st.cache_data). The sieve picture: for the
shipped models at the default seed, the figure shipped in models/sieve-shares.json (`python -m
optimus sieve-shares`; a new server's first page draws no samples), else computed from generator
samples (`evaluation.residue_distribution`, cached).
"""

import streamlit as st

from optimus import limits
from optimus.app import charts_sieve, common, query
from optimus.evaluation import report as evaluation
from optimus.evaluation import sieve_shares
from optimus.primes import SIEVE_CHART_PRIMES
from optimus.store import runs

SIEVE_SAMPLES = sieve_shares.SAMPLES  # models/sieve-shares.json holds the shipped models' (seed 0)
# One line per page, in the app's order (app.py declares the pages and their titles).
PAGES = {
    "optimus/app/pages/train.py": "Train a model from the browser and watch it learn: losses, lift over chance, "
                              "and the sieve emerging batch by batch. Stop, then continue.",
    "optimus/app/pages/sample.py": "Draw integers from a generator, each checked for primality, next to random odd "
                               "integers of the same size.",
    "optimus/app/pages/discriminator.py": "The discriminator's isPrime against exact primality: accuracy, ROC, "
                                      "confusion, and every disagreement.",
    "optimus/app/pages/density.py": "How many primes there are: exact counts per bin against x/ln x and li(x).",
    "optimus/app/pages/continual.py": "Does a primality classifier forget old tasks, and do EWC and a GLN stop it?",
}


@st.cache_data(max_entries=8, show_spinner="Evaluating the model against exact primality ...")
def _evaluate(path: str, signature: tuple) -> dict:
    return evaluation.evaluate(path)


def model_figures(name: str, batches: int) -> tuple[dict, str]:
    """(the model's evaluation report, where it came from)."""
    path = common.model_path(name)
    saved = runs.saved_evaluation(path, batches)
    if saved is not None:
        return saved, f"{name}'s saved evaluation (optimus evaluate --save)"
    return _evaluate(str(path), common.model_signature(path)), "an evaluation run now (no current saved evaluation)"


def _number(value, fmt: str) -> str:
    return "-" if value is None or value != value else format(value, fmt)


def show_figures(name: str, entry: dict, heading: str) -> None:
    """One row: the model's name and source, then its four figures."""
    cols = st.columns([1.6, 1, 1, 1, 1], vertical_alignment="center")
    try:
        report, source = model_figures(name, entry["batches"])
    except ValueError as exc:
        cols[0].markdown(heading)
        common.error(f"{name}: {exc}")
        return
    gen, disc = report["generator"], report["discriminator_on_uniform"]
    cols[0].markdown(heading)
    cols[0].caption(f"{entry['preset'] or '?'} preset, {entry['batches']:,} batches · from {source}")
    cols[1].metric("Prime hit rate", _number(gen.get("hit_rate"), ".1%"),
                   help=f"Share of {gen.get('count', 0):,} sampled outputs, in [{gen.get('lo', 0):,}, "
                        f"{gen.get('hi', 0):,}], that are prime (exact).")
    cols[2].metric("Lift over chance", _number(gen.get("lift"), ".2f"),
                   help="Hit rate / the prime share of random odd integers of the same magnitudes (1 = chance).")
    cols[3].metric("Distinct outputs", _number(gen.get("distinct_rate"), ".1%"))
    cols[4].metric("Discriminator", _number(disc.get("balanced_accuracy"), ".3f"),
                   help="Balanced accuracy of isPrime against exact primality on uniform odd integers of the "
                        "generator's range (0.5 = chance).")


st.title("Optimus: a neural prime generator")
st.markdown(
    "**The idea** (the original Optimus): a *generator* network turns latent integers into odd integers, a "
    "*discriminator* learns isPrime on them from exact primality, and both train online with Elastic Weight "
    "Consolidation. **The measured truth**: the original design is no better than chance (lift about 1) and its "
    "discriminator calls everything one class. Optimus's `default` design learns the sieve of Eratosthenes "
    "from the discriminator alone."
)

models = {m["name"]: m for m in common.list_models()}
if not models:
    st.error(f"No models in {common.models_root()}. Train one on the Train page, or point {runs.MODELS_ENV} "
             "at a folder that holds models (the repository ships models/default and models/seed).")
    st.stop()
# Models with saved networks (not damaged, not a run that has yet to save its first batch).
choices = [n for n, m in models.items() if m["status"] != "damaged" and runs.has_networks(m["path"])]
if not choices:
    st.error(f"No trained model in {common.models_root()}: train one on the Train page.")
    st.stop()
fallback = "default" if "default" in choices else choices[0]
query.init("overview_model", fallback, query.one_of(choices))
query.init("overview_seed", 0, query.int_in(0, 2**32 - 1))

# The selector first, so it stays whatever a model can or cannot show below (choosing the seed
# once replaced the whole page by an error, selector included).
s1, s2, _ = st.columns([2, 1, 3])
s1.selectbox("Model", choices, key="overview_model",
             help="The model whose figures, sieve and primes are shown, next to the seed model.")
s2.number_input("Sampling seed", key="overview_seed", min_value=0, max_value=2**32 - 1, step=1,
                help=f"The {SIEVE_SAMPLES:,} generator samples behind the sieve chart.")
query.publish("overview_model", "overview_seed")
shown = st.session_state["overview_model"]


def has_learned_sieve(name: str) -> bool:
    """The model's generator is a sieve (scores per residue class), which generating primes of
    any size needs; the seed's dense generator has none."""
    try:
        return (runs.read_config(common.model_path(name)) or {}).get("generator") == "sieve"
    except ValueError:
        return False


with st.container(border=True):
    show_figures(shown, models[shown], f"**Optimus: `{shown}`**" if shown != "seed" else
                 "**The original design: `seed`**")
    if "seed" in choices and shown != "seed":
        show_figures("seed", models["seed"], "**The original design: `seed`**")
    elif shown == "seed" and "default" in choices:
        show_figures("default", models["default"], "**Optimus: `default`**")
    elif shown != "seed":
        st.caption("The shipped `seed` model is not in the models folder, so the original's figures are not shown.")

# --- the learned sieve (above the fold) and the pages --------------------------------------

# The chart across the page's width (at 556 px beside the links its title was cut off).
with st.container():
    rows = []
    for name in dict.fromkeys([shown, "default", "seed"]):
        if name not in choices:
            continue
        try:  # one model that cannot be loaded must not hide the rest of the page
            shares = common.divisible_shares(name, min(SIEVE_SAMPLES, limits.MAX_SAMPLES),
                                             st.session_state["overview_seed"], SIEVE_CHART_PRIMES)
        except ValueError as exc:
            common.warning(f"{name}: {exc}", icon=":material/error:")
            continue
        rows += charts_sieve.sieve_rows(name, SIEVE_CHART_PRIMES, shares)
    if rows:
        st.vega_lite_chart(charts_sieve.sieve_figure(rows), width="stretch")
    st.caption(
        f"From {SIEVE_SAMPLES:,} samples of each generator. Random odd integers put 1 in p among multiples of p "
        "(the dashed line); a perfect sieve puts none. The default generator is never told about divisibility: "
        "it learns one score per residue class mod p from the discriminator's verdicts, and residue 0 sinks."
    )

st.markdown("**The pages**")
for column, (path, line) in zip(st.columns(len(PAGES)), PAGES.items(), strict=True):
    column.page_link(path, query_params=query.model_link(path, shown))
    column.caption(line)

# --- generate primes now ----------------------------------------------------------------

GENERATE_MAX = 1_000  # primes per click on the landing page (the Sample page goes further)
query.init("overview_digits", 30, query.int_in(limits.MIN_DIGITS, limits.MAX_DIGITS))
query.init("overview_count", 10, query.int_in(1, GENERATE_MAX))
with st.container(border=True):
    if not has_learned_sieve(shown):
        st.info(f"`{shown}` has no learned sieve: its generator maps latents to reals directly, with no score per "
                "residue class to pick candidates by, so it cannot generate primes of any size. Its figures and "
                "its outputs' divisibility are above; choose a sieve model (`default`) to generate primes here.",
                icon=":material/info:")
    else:
        st.markdown(f"**Generate primes now** with `{shown}`'s learned sieve, each one verified")
        g1, g2, g3 = st.columns([1, 1, 2])
        g1.number_input("Digits", key="overview_digits", step=1,
                        help=f"{limits.MIN_DIGITS} to {limits.MAX_DIGITS} decimal digits.")
        g2.number_input("How many", key="overview_count", step=1, help=f"1 to {GENERATE_MAX:,}.")
        query.publish("overview_digits", "overview_count")
        try:  # a bad size is one message here; the chart and links above stay
            digits = common.check_int("Digits", st.session_state["overview_digits"], limits.MIN_DIGITS,
                                      limits.MAX_DIGITS)
            count = common.check_int("How many", st.session_state["overview_count"], 1, GENERATE_MAX)
            primes_table, summary = common.generate_primes(shown, digits, count, st.session_state["overview_seed"])
        except ValueError as exc:
            common.error(str(exc))
        else:
            if summary.get("stopped"):
                st.warning(summary["stopped"], icon=":material/timer:")
            # No delta arrow: Streamlit's arrow reads as "went up", not as a comparison.
            g3.metric("Tests per prime", f"{summary['tests_per_prime']:,.1f}",
                      help="Primality tests the learned sieve needed per prime found, against random odd candidates.")
            g3.caption(f"Random odd numbers need {summary['random_odd_tests_per_prime']:,.1f} tests per prime.")
            st.code("\n".join(primes_table["n"]), language=None, wrap_lines=True, height=min(40 + 24 * count, 300))
            st.caption(f"Certainty: {summary['certainty']}. Copy the list with the button at its top right, or "
                       "download it:")
            st.download_button("Download CSV", data=primes_table.to_csv(index=False),
                               file_name=f"optimus-{shown}-{digits}-digit-primes-{count}.csv", mime="text/csv",
                               icon=":material/download:", on_click="ignore", key="overview_download")
