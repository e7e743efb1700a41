"""What the pages share: the model picker, cached model loading and sampling, input checks and
the rule that a bad input shows `st.error` with what to change, never a traceback.

The server never imports TensorFlow: models load as NumPy forwards (`optimus.nets.forward`,
through `optimus.evaluation.report`); training and benchmarks run in child processes.
tests/test_server_e2e.py opens every page and checks the server never mapped TensorFlow.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from optimus import primes, validate
from optimus.app import query
from optimus.evaluation import metrics, sieve_shares
from optimus.evaluation import report as evaluation
from optimus.nets import forward
from optimus.sampling import anysize
from optimus.store import runs

# The server's NumPy forwards run one BLAS thread each: OpenBLAS's own threads spun on the
# shared cores, tripling the seed discriminator's CPU per page (optimus.nets.forward.blas_threads).
forward.blas_threads(1)

SMALL_PRIMES = tuple(p for p in primes.SIEVE_CHART_PRIMES if p <= 31)
COMPARE_MODELS = ("default", "seed")
COMPARE_SAMPLES = 10_000  # outputs per model in the side-by-side comparisons


# --- errors and input checks ------------------------------------------------------------


def error(message, icon: str = ":material/error:", container=st) -> None:
    """`st.error` showing `message` as literal text: messages echo what a visitor typed or put in
    a URL, which Streamlit would otherwise render as Markdown (an image it fetches, a link)."""
    container.error(query.literal(message), icon=icon)


def warning(message, icon: str = ":material/warning:", container=st) -> None:
    container.warning(query.literal(message), icon=icon)


@contextlib.contextmanager
def user_errors():
    """Turn a ValueError (bad input, damaged model) into `st.error` and stop the page."""
    try:
        yield
    except ValueError as exc:
        error(str(exc))
        st.stop()


check_int = validate.check_int


check_range = validate.check_range  # (lo, hi, *, lo_min, hi_max, what): the one range check


# --- models -----------------------------------------------------------------------------


def models_root() -> Path:
    return runs.models_root()


def list_models() -> list[dict]:
    return runs.list_models()


def _describe(entry: dict) -> str:
    extra = [entry["preset"] or "?", f"{entry['batches']:,} batches"]
    if entry["status"] not in ("done", "ready"):
        extra.append(entry["status"])
    return f"{entry['name']} ({', '.join(extra)})"


def model_picker(label: str = "Model", *, key: str, default: str = "default", container=st) -> str:
    """A selectbox over the models root; stops the page with st.error if it holds no model."""
    models = list_models()
    if not models:
        st.error(
            f"No models in {models_root()}. Train one on the Train page, or point "
            f"{runs.MODELS_ENV} at a folder that holds models (the repository ships models/default)."
        )
        st.stop()
    names = [m["name"] for m in models]
    labels = {m["name"]: _describe(m) for m in models}
    # A value already in session state (seeded from the URL by query.init) is the selection:
    # passing an index too made Streamlit log a warning with a stack trace (?disc_model=seed).
    index = 0 if key in st.session_state else names.index(default) if default in names else 0
    name = container.selectbox(label, names, index=index, key=key, format_func=labels.get)
    show_problem(next((m for m in models if m["name"] == name), None), container)
    return name


def show_problem(entry: dict | None, container=st) -> None:
    """A damaged model stops the page with what is wrong (runs.list_models found it); a model
    with damaged records only gets a warning: it still loads."""
    if entry is None:
        return
    if entry["status"] == "damaged":
        error(f"Model {entry['name']} is damaged: {entry['error']}", container=container)
        st.stop()
    if entry.get("problem"):
        warning(f"Model {entry['name']}: {entry['problem']}", container=container)


def model_signature(path) -> tuple:
    """Changes whenever a run saves the model (runs.model_signature): the cache key."""
    return runs.model_signature(path)


@st.cache_resource(max_entries=6, show_spinner="Loading the model ...")
def _load_models(path: str, signature: tuple):
    return evaluation.load_models(path)


def model_path(name: str) -> Path:
    """The model's directory, or ValueError if the name is bad or the model is gone."""
    path = runs.resolve_model_dir(name)
    if not path.is_dir():
        raise ValueError(f"Model {name!r} does not exist in {models_root()}; pick another or train it first.")
    return path


def load_models(name: str):
    """The model's networks, loaded once per saved version (CheckpointError is a ValueError)."""
    path = model_path(name)
    return _load_models(str(path), model_signature(path))


# The outputs (column "n") of the latest samples, so that a page that shows both a sample and
# its residue shares draws from the generator once; bounded like the caches below.
_latest_outputs: collections.OrderedDict = collections.OrderedDict()
_OUTPUTS_KEPT = 8
_outputs_lock = threading.Lock()


def _keep_outputs(key: tuple, n: np.ndarray) -> None:
    with _outputs_lock:
        _latest_outputs[key] = n
        _latest_outputs.move_to_end(key)
        while len(_latest_outputs) > _OUTPUTS_KEPT:
            _latest_outputs.popitem(last=False)


@st.cache_data(max_entries=24, show_spinner="Sampling ...")
def _sample(path: str, signature: tuple, count: int, seed: int) -> tuple[pd.DataFrame, dict]:
    table = evaluation.sample(_load_models(path, signature), count, seed=seed)
    n = table["n"].to_numpy()
    _keep_outputs((path, signature, count, seed), n)
    report = metrics.generator_report(n)
    return table, report


def sample(name: str, count: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """`count` generator samples (latent, n, is_prime, d_prob) and their generator_report."""
    path = model_path(name)
    return _sample(str(path), model_signature(path), int(count), int(seed))


@st.cache_data(max_entries=24, show_spinner="Generating primes ...")
def _primes_of_size(path: str, signature: tuple, lo: int, hi: int, count: int, seed: int):
    return anysize.sample_models(_load_models(path, signature), lo, hi, count, seed, primes_only=True)


def generate_primes(name: str, digits: int, count: int, seed: int) -> tuple[pd.DataFrame, dict]:
    """`count` verified primes of `digits` digits from the model's learned sieve: (table, summary)
    as `anysize.sample_models` gives them (n as decimal strings, certainty, tests per prime)."""
    lo, hi, _ = anysize.size_range(digits=digits)
    path = model_path(name)
    return _primes_of_size(str(path), model_signature(path), lo, hi, int(count), int(seed))


@st.cache_data(max_entries=24, show_spinner=False)
def _residue_shares(path: str, signature: tuple, count: int, seed: int, primes: tuple) -> pd.DataFrame:
    # The generator's outputs alone (the Overview's sieve chart: half the cost of a first
    # Overview was classifying samples it never shows), or those of a sample just drawn.
    with _outputs_lock:
        n = _latest_outputs.get((path, signature, count, seed))
    if n is None:
        n = evaluation.outputs(_load_models(path, signature), count, seed=seed)
    return evaluation.residue_distribution(n, list(primes))


def residue_shares(name: str, count: int, seed: int, primes=SMALL_PRIMES) -> pd.DataFrame:
    """Share of the model's outputs in each residue class mod each of `primes`."""
    path = model_path(name)
    return _residue_shares(str(path), model_signature(path), int(count), int(seed), tuple(primes))


@st.cache_data(max_entries=24, show_spinner=False)
def _divisible_shares(path: str, signature: tuple, count: int, seed: int, primes: tuple) -> list[float]:
    counts = sieve_shares.shipped(path, count, seed, primes)  # the shipped models' figure, if it is theirs
    if counts is None:
        shares = _residue_shares(path, signature, count, seed, primes)
        return shares.loc[shares["residue"] == 0, "share"].astype(float).tolist()
    return [c / count for c in counts]


def divisible_shares(name: str, count: int, seed: int, primes) -> list[float]:
    """For each p of `primes`, the share of `count` outputs of the model (`seed`) that are
    multiples of p (the residue-0 rows of `residue_shares`: the Overview's sieve chart), from
    models/sieve-shares.json when it holds this model's (optimus.evaluation.sieve_shares), else
    computed."""
    path = model_path(name)
    return _divisible_shares(str(path), model_signature(path), int(count), int(seed), tuple(primes))


@st.cache_data(max_entries=24, show_spinner="Classifying ...")
def _discriminate(path: str, signature: tuple, n_values: np.ndarray, _truth=None, _prob=None) -> tuple[dict, np.ndarray]:
    # _truth and _prob follow from n_values and the model: not part of the cache key
    report = evaluation.discriminator_report(_load_models(path, signature), n_values, _truth, _prob)
    return report, np.asarray(report["prob"], dtype=np.float64)


def discriminate(name: str, n_values: np.ndarray, truth=None, prob=None) -> tuple[dict, np.ndarray]:
    """The discriminator's report on `n_values` and its probabilities. truth: exact primality
    of n_values, prob: this model's probabilities, where the page has them already (a sample's
    is_prime and d_prob columns), so they are not computed again."""
    path = model_path(name)
    return _discriminate(str(path), model_signature(path), np.asarray(n_values, dtype=np.int64), truth, prob)


def comparison_models(selected: str | None = None) -> list[str]:
    """`selected` followed by the shipped default and seed models that exist, without repeats."""
    names = {m["name"] for m in list_models()}
    wanted = [selected, *COMPARE_MODELS] if selected else list(COMPARE_MODELS)
    return [n for n in dict.fromkeys(wanted) if n in names]


def format_seconds(seconds) -> str:
    if seconds is None or seconds != seconds:
        return "unknown"
    seconds = int(round(float(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
