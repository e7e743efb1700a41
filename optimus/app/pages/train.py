"""Train: start an online training run, watch it live, stop it, and see past runs.

Training runs outside this script in its own process (`runs.start_training`); this page only
reads what the trainer writes to disk, so refreshing or closing the tab changes nothing.
"""

import os
import time

import streamlit as st

from optimus import continual, limits
from optimus.app import charts, common, presenter, query
from optimus.config import DISCRIMINATORS, LEGACY_EWC_MODES, PRESETS, preset
from optimus.store import runs, storage

NEW = "(new model)"
STARTING_REFRESH_SECONDS = 0.5  # from Start or Continue until the run's first batch is on screen
REFRESH_SECONDS = 1.5  # while the run is live
IDLE_CHECK_SECONDS = 2.0  # idle: only the run's files are looked at (stat), the page reruns when they change

st.title("Train")
st.caption(
    "Online training with EWC: every batch of latent integers is a new task. The run goes on in "
    "a process of its own; this page watches it from disk."
)

# --- start a run ------------------------------------------------------------------------

models = common.list_models()
names = [m["name"] for m in models]
query.init("train_base", NEW, query.one_of([NEW, *names]))
query.init("train_preset", PRESETS[0], query.one_of(PRESETS))
left, right = st.columns(2)
base = left.selectbox(
    "Start from", [NEW, *names], key="train_base",
    help="A new model from a preset, or an existing model whose networks and EWC state training continues.",
)
with common.user_errors():
    if base == NEW:
        preset_name = right.radio(
            "Preset", PRESETS, horizontal=True, key="train_preset",
            help="default: the design that beats chance (it learns the sieve within its first batch). seed: the "
                 "original Optimus. demo: the default design slowed down (generator lr 0.03, 5 steps, 20 batches) "
                 "so the sieve emerges on screen over 10-20 batches.",
        )
        defaults = preset(preset_name)
        suggested = f"my-{preset_name}"
    else:
        base_dir = common.model_path(base)
        defaults = runs.saved_config(base_dir)
        preset_name = defaults.preset
        right.markdown(f"**Preset:** {preset_name} (fixed by {base})")
        suggested = base

# The form's widgets take their values from the URL on the first visit, and the chosen base
# model's or preset's values whenever the base or preset changes.
form_defaults = {
    "train_name": (suggested, str),
    "train_batches": (defaults.batches, query.int_in(1, limits.MAX_BATCHES)),
    "train_batch_size": (defaults.batch_size, query.int_in(16, limits.MAX_BATCH_SIZE)),
    "train_steps": (defaults.steps, query.int_in(1, limits.MAX_STEPS)),
    "train_latent_lo": (defaults.latent_lo, query.int_in(1, limits.MAX_LATENT)),
    "train_latent_hi": (defaults.latent_hi, query.int_in(1, limits.MAX_LATENT)),
    "train_seed": (defaults.seed, query.int_in(0, 2**32 - 1)),
    "train_method": (defaults.method, query.one_of(continual.names())),
    "train_method_lambda": (float(defaults.method_lambda), query.float_in(0.0, limits.MAX_METHOD_LAMBDA)),
    "train_discriminator": (defaults.discriminator, query.one_of(DISCRIMINATORS)),
    "train_regularizers": (defaults.apply_regularizers, query.boolean),
}
if "train_ewc_mode" in st.query_params and "train_method" not in st.query_params:  # links made before
    legacy = LEGACY_EWC_MODES.get(st.query_params["train_ewc_mode"])
    if legacy:
        st.query_params["train_method"] = legacy
    del st.query_params["train_ewc_mode"]
if "train_ewc_lambda" in st.query_params:  # links made before the rename: the same strength
    if "train_method_lambda" not in st.query_params:
        st.query_params["train_method_lambda"] = st.query_params["train_ewc_lambda"]
    del st.query_params["train_ewc_lambda"]
source = (base, preset_name)
if st.session_state.get("train_form_source", source) != source:
    for key, (value, _) in form_defaults.items():
        st.session_state[key] = value
else:
    for key, (value, parse) in form_defaults.items():
        query.init(key, value, parse)
st.session_state["train_form_source"] = source

apply_regularizers = False
if preset_name == "seed":
    apply_regularizers = st.checkbox(
        "Demonstration: apply the README's opposite L2 (training diverges)", key="train_regularizers",
        help="The original README describes an 'opposite L2' (coefficient -1e6) on the generator; the "
             "original code never added it to the loss, so it never acted. Applied, the loss is unbounded "
             "below: expect the run to stop within its first batch with an inf/NaN message.",
    )
    if apply_regularizers:
        st.warning(
            "Demonstration of the divergence: with the opposite L2 applied, the generator's loss has no lower "
            "bound, so training stops in its first batch (inf/NaN) and keeps the last good checkpoint. This is "
            "the expected outcome, not a fault; untick the box to train as the original code did.",
            icon=":material/science:",
        )
    else:
        st.caption("The seed preset trains as the original code did: its regularisers inert (never added to the loss).")

submitted = False
# Starting, stopping and continuing are the presenter's on a shared server (optimus/app/presenter.py).
if presenter.unlock_box("starting, stopping and continuing training runs"):
    runs.ensure_spare()  # a warm trainer for this session's Start (optimus/training/spare.py)
    with st.form("train_form"):
        target = st.text_input(
            "Model name (saved as)", key="train_name",
            help="Letters, digits, '_', '.', '-' (up to 64). The base model's own name continues it in place; "
                 "another name trains a copy and leaves the base untouched.",
        )
        c1, c2, c3 = st.columns(3)
        batches = c1.number_input("Batches", key="train_batches", step=1,
                                  help=f"Online batches in this run: 1 to {limits.MAX_BATCHES:,}.")
        batch_size = c2.number_input("Batch size", key="train_batch_size", step=64,
                                     help=f"Latent integers per batch: 16 to {limits.MAX_BATCH_SIZE:,}.")
        steps = c3.number_input("Steps per batch", key="train_steps", step=1,
                                help=f"Gradient steps per batch, for each network: 1 to {limits.MAX_STEPS:,}.")
        c4, c5, c6 = st.columns(3)
        latent_lo = c4.number_input("Latent lo", key="train_latent_lo", step=1,
                                    help=f"Latent integers are drawn from [lo, hi], 1 <= lo <= hi <= {limits.MAX_LATENT:,}.")
        latent_hi = c5.number_input("Latent hi", key="train_latent_hi", step=1,
                                    help=f"At most {limits.MAX_LATENT:,}.")
        seed = c6.number_input("Seed", key="train_seed", step=1, help="0 to 2**32 - 1.")
        c7, c8, c9 = st.columns(3)
        method = c7.selectbox("Continual-learning method", continual.names(), key="train_method",
                              help="; ".join(f"{name}: {continual.get(name).summary}" for name in continual.names()))
        method_lambda = c8.number_input("Method lambda", key="train_method_lambda", step=1.0, format="%g",
                                        help=f"Strength of the method's penalty: 0 to {limits.MAX_METHOD_LAMBDA:g}.")
        discriminator = c9.selectbox(
            "Discriminator", DISCRIMINATORS, key="train_discriminator",
            disabled=base != NEW,
            help="dense: the seed's MLP on the raw real; residue: divisibility bits + wide & deep head; "
                 "gln: a Bernoulli Gated Linear Network on the same bits, learning by local updates. "
                 "Fixed for an existing model.",
        )
        st.caption(
            f"Limits: batches 1-{limits.MAX_BATCHES:,}; batch size 16-{limits.MAX_BATCH_SIZE:,}; "
            f"steps 1-{limits.MAX_STEPS:,}; latent range within [1, {limits.MAX_LATENT:,}]; "
            f"method lambda 0-{limits.MAX_METHOD_LAMBDA:g}. One run at a time per model."
        )
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
query.publish("train_base", *(["train_preset"] if base == NEW else []), *form_defaults)

CONTINUE_HELP = "A new run from the stopped model, in place; the runs table records its parent."
STARTING_SECONDS = 120  # a launch still loading after this long is shown as whatever its files say


def _launched(name: str, pid: int, remaining: int | None = None) -> None:
    """Remember this session's launch: until the trainer writes its own status, the page shows it
    as starting (not the model's previous run, nor "no status"). `remaining`: a Continue's."""
    st.session_state["train_launch"] = {"name": name, "pid": pid, "time": time.time(), "remaining": remaining}


def _continue_disabled(remaining: int) -> None:
    """Continue, greyed out while the run it started is starting: drawn where the live button was,
    so the old one does not stay on screen, clickable, while the trainer spawns."""
    # the live button's key and look: the same element, greyed out (another key drew a second
    # button and left the live one on screen, stale but clickable, until the run ended)
    st.button(f"Continue: {remaining:,} more batches", icon=":material/play_arrow:", key="train_continue",
              type="primary", disabled=True, help=CONTINUE_HELP)


def _process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def _starting(name: str, status: dict | None) -> bool:
    """This session launched `name` moments ago and the trainer has not reported yet."""
    launch = st.session_state.get("train_launch")
    if not launch or launch["name"] != name:
        return False
    if status is not None and status.get("pid") == launch["pid"] and status.get("state") != "starting":
        st.session_state.pop("train_launch", None)  # the trainer speaks for itself now
        return False
    if time.time() - launch["time"] > STARTING_SECONDS or not _process_alive(launch["pid"]):
        st.session_state.pop("train_launch", None)
        return False
    return True


def progress_text(status: dict) -> tuple[float, str]:
    """(fraction, text) of the progress bar: the model's batches and the run's, e.g. "run-002
    running: batch 58 of 60 (run: 26 of 28)". The model's count is its batches trained before
    the run plus the run's; a status written before `model_batches` existed shows the run's."""
    state = status.get("state", "unknown")
    done, total = int(status.get("batches_done") or 0), int(status.get("batches_total") or 0)
    text = f"{status.get('run') or ''} {state}: batch {done:,} of {total:,}".strip()
    model_done = status.get("model_batches")
    if isinstance(model_done, int) and model_done > done:
        start = model_done - done
        text = (f"{status.get('run') or ''} {state}: batch {model_done:,} of {start + total:,} "
                f"(run: {done:,} of {total:,})").strip()
    if state == "running":
        text += f" - ETA {common.format_seconds(status.get('eta_seconds'))}"
    return (min(done / total, 1.0) if total else 0.0), text


if submitted:
    with common.user_errors():
        presenter.require("start a training run")
        model_dir = runs.resolve_model_dir(target.strip())
        exists = runs.holds_config(model_dir)
        if base == NEW:
            from_dir = None
            if exists:
                raise ValueError(
                    f"A model named {target!r} already exists: choose it under 'Start from' to continue "
                    "training it, or enter a new name."
                )
        else:
            from_dir = None if model_dir == base_dir.resolve() else base_dir
            if from_dir is not None and exists:
                raise ValueError(
                    f"A model named {target!r} already exists: enter a new name for the copy of {base!r}, "
                    f"or {base!r} itself to continue it in place."
                )
        overrides = {
            "batches": common.check_int("Batches", batches, 1, limits.MAX_BATCHES),
            "batch_size": common.check_int("Batch size", batch_size, 16, limits.MAX_BATCH_SIZE),
            "steps": common.check_int("Steps per batch", steps, 1, limits.MAX_STEPS),
            "seed": common.check_int("Seed", seed, 0, 2**32 - 1),
            "method": method,
            "method_lambda": float(method_lambda),
        }
        if preset_name == "seed":
            overrides["apply_regularizers"] = bool(apply_regularizers)
        if base == NEW and discriminator != defaults.discriminator:
            overrides["discriminator"] = discriminator
        overrides["latent_lo"], overrides["latent_hi"] = common.check_range(
            latent_lo, latent_hi, lo_min=1, hi_max=limits.MAX_LATENT, what="latent range")
        # Shown before the trainer is spawned: start_training waits up to 2 s for the trainer
        # to take its lock, and the presenter must see at once that Start was taken.
        starting = st.empty()
        starting.progress(0.0, text=f"{model_dir.name} starting: launching the trainer")
        try:
            pid = runs.start_training(model_dir, from_dir=from_dir,
                                      preset=preset_name if base == NEW else None, overrides=overrides)
        except storage.LockedError as exc:
            starting.error(str(exc), icon=":material/lock:")
        except RuntimeError as exc:
            starting.error(f"Training did not start: {exc}")
        else:
            st.session_state["train_watch"] = model_dir.name
            _launched(model_dir.name, pid)
            starting.success(f"Started training {model_dir.name} (process {pid}).", icon=":material/rocket_launch:")

# --- watch runs -------------------------------------------------------------------------

st.divider()
st.subheader("Runs")
models = common.list_models()
names = [m["name"] for m in models]
watched = st.session_state.get("train_watch")
if watched and watched not in names:
    names.append(watched)
if not names:
    st.info("No models yet: start a run above.")
    st.stop()
query.init("train_watch", watched if watched in names else None, query.one_of(names))
watched = st.session_state.get("train_watch")
if watched not in names:
    live = [m["name"] for m in models if m["live"]]
    st.session_state["train_watch"] = (live or ["default" if "default" in names else names[0]])[0]
watch = st.selectbox("Watch model", names, key="train_watch",
                     help="Running and finished runs are found from the files in the model's folder.")
query.publish("train_watch")


def _ask_continue(name: str, remaining: int) -> None:
    """Continue's on_click: only records the request (instant), so the fragment's rerun draws
    "starting" and no Continue button before it spawns the trainer."""
    st.session_state["train_continue_request"] = {"name": name, "remaining": remaining}


def _continue(name: str, model_dir, remaining: int) -> bool:
    """A new incremental run from the stopped model, in place (its lineage goes to the runs table).
    True when the trainer was launched."""
    try:
        presenter.require("continue a training run")
        pid = runs.start_training(model_dir, overrides={"batches": remaining})
    except presenter.Refused as exc:
        st.error(str(exc), icon=":material/lock:")
    except storage.LockedError as exc:
        common.error(str(exc), icon=":material/lock:")
    except (RuntimeError, ValueError) as exc:
        common.error(f"Training did not continue: {exc}")
    else:
        _launched(name, pid, remaining)
        st.toast(f"Continuing {name} for {remaining:,} batches (process {pid}).", icon=":material/play_arrow:")
        return True
    return False


def _number(value, fmt: str = ".3f") -> str:
    return "-" if value is None or value != value else format(value, fmt)


def _history_signature(model_dir) -> tuple:
    """Changes whenever the run appends a batch or saves: history.jsonl's and the model's files."""
    try:
        stat = (model_dir / storage.HISTORY).stat()
        history = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        history = None
    return history, runs.model_signature(model_dir)


@st.cache_data(max_entries=16, show_spinner=False)
def history_figures(model_dir: str, signature: tuple, planned: int | None) -> tuple[dict, ...]:
    """The five charts of the model's history as Vega-Lite dicts, built once per saved history
    (building them took 0.3 s of the server's CPU on every refresh)."""
    history = runs.read_history(model_dir)
    return (*(charts.spec(chart(history)) for chart in (charts.losses_chart, charts.hit_rate_chart,
                                                          charts.lift_chart, charts.balanced_accuracy_chart)),
            charts.spec(charts.sieve_heatmap(history, planned=planned)))


def _refresh(name: str, status: dict | None) -> float | None:
    """Seconds between the live view's refreshes: STARTING_REFRESH_SECONDS while a run this
    session launched (or asked to continue) starts and until its first batch is recorded,
    REFRESH_SECONDS while a run is live, None when idle (`idle_watch` then notices a run started
    from another browser or the command line)."""
    live = bool(status and status.get("live"))
    if _starting(name, status) or "train_continue_request" in st.session_state or \
            (live and not status.get("batches_done")):
        return STARTING_REFRESH_SECONDS
    return REFRESH_SECONDS if live else None


RUN_FILES = (storage.LOCK, storage.STATUS, storage.HISTORY)


def _files_signature(model_dir) -> tuple:
    """What changes when a run starts, records a batch or ends: the lock (made at a run's start,
    unlinked at its end), status.json and history.jsonl, by their stat."""
    return runs.files_signature(model_dir, RUN_FILES)


@st.fragment(run_every=IDLE_CHECK_SECONDS)
def idle_watch(model_dir, seen: tuple) -> None:
    """The idle page's only refresh: three stats every IDLE_CHECK_SECONDS, and the page again
    (with the live refresh) as soon as the run's files change; it draws nothing."""
    if _files_signature(model_dir) != seen:
        st.rerun()


def live_view(name: str, every: float | None) -> None:
    with common.user_errors():
        model_dir = runs.resolve_model_dir(name)
    status = runs.read_status(model_dir)
    request = st.session_state.pop("train_continue_request", None)
    if request and request["name"] == name:
        st.progress(0.0, text=f"{name} starting: continuing for {request['remaining']:,} more batches")
        _continue_disabled(request["remaining"])
        _continue(name, model_dir, request["remaining"])
        status = runs.read_status(model_dir)
    elif _starting(name, status):
        launch = st.session_state["train_launch"]
        st.progress(0.0, text=f"{name} starting: the trainer is building the networks and compiling its steps "
                              f"({time.time() - launch['time']:.0f} s)")
        if launch.get("remaining"):
            _continue_disabled(launch["remaining"])
    elif status is None:
        entry = next((m for m in common.list_models() if m["name"] == name), None)
        st.caption(f"{name}: {entry['batches']:,} batches trained, no run started from this app yet."
                   if entry and entry.get("batches") else f"{name}: no run yet.")
    else:
        state = status.get("state", "unknown")
        done, total = int(status.get("batches_done") or 0), int(status.get("batches_total") or 0)
        fraction, text = progress_text(status)
        if state == "starting":
            text = f"{name} starting: the trainer is building the networks and compiling its steps"
        st.progress(fraction, text=text)
        if status.get("live"):
            if presenter.may_act() and st.button("Stop after the current step", icon=":material/stop:",
                                                 key="train_stop"):
                with common.user_errors():
                    presenter.require("stop a training run")
                runs.stop_training(model_dir)
                st.toast(f"Asked {name} to stop after its current step.")
            if runs.stop_requested(model_dir):
                st.caption("Stop requested: the run saves and ends after its current step.")
        if state in ("stopped", "interrupted") and not status.get("live") and total > done and presenter.may_act():
            remaining = total - done
            st.button(f"Continue: {remaining:,} more batches", icon=":material/play_arrow:",
                      key="train_continue", type="primary", on_click=_ask_continue, args=(name, remaining),
                      help=CONTINUE_HELP)
        if status.get("message") and state not in ("starting", "failed", "interrupted"):
            st.caption(status["message"])
        last = status.get("last") or {}
        if last:
            m = st.columns(4)
            m[0].metric("Prime hit rate", _number(last.get("hit_rate")))
            m[1].metric("Baseline", _number(last.get("baseline")))
            m[2].metric("Lift", _number(last.get("lift"), ".2f"))
            m[3].metric("Discriminator balanced accuracy", _number(last.get("d_balanced_accuracy")))

    failure = runs.last_failure(model_dir)  # at any moment, from the run's files
    if failure is not None and runs.demonstrates_divergence(model_dir):
        st.info(f"Diverged, as the demonstration expects: {failure['message'].rstrip('.')}. The original code never "
                "applied its opposite L2; the seed preset without the demonstration box trains as it did.",
                icon=":material/science:")
    elif failure is not None:
        common.error(failure["message"])
        with st.expander("Training log (last lines)"):
            st.code(failure["log"] or "(empty)")
    planned = None
    if status is not None and isinstance(status.get("model_batches"), int):
        planned = status["model_batches"] - int(status.get("batches_done") or 0) + int(status.get("batches_total") or 0)
    losses, hit_rate, lift, accuracy, sieve = history_figures(str(model_dir), _history_signature(model_dir), planned)
    top = st.columns(2)
    top[0].vega_lite_chart(losses, width="stretch")
    top[1].vega_lite_chart(hit_rate, width="stretch")
    bottom = st.columns(2)
    bottom[0].vega_lite_chart(lift, width="stretch")
    bottom[1].vega_lite_chart(accuracy, width="stretch")
    st.vega_lite_chart(sieve, width="stretch")

    st.markdown("**Past runs** (newest first; parent = the model and run it started from)")
    table = runs.read_runs(model_dir)
    if table.empty:
        st.caption("No runs recorded yet.")
    else:
        st.dataframe(
            table, hide_index=True, width="stretch",
            column_config={
                "hit_rate": st.column_config.NumberColumn("hit rate", format="%.4f"),
                "baseline": st.column_config.NumberColumn(format="%.4f"),
                "lift": st.column_config.NumberColumn(format="%.2f"),
                "d_balanced_accuracy": st.column_config.NumberColumn("disc. balanced acc.", format="%.3f"),
            },
        )
    if not request and _refresh(name, runs.read_status(model_dir)) != every:
        st.rerun()  # a run started, showed its first batch or ended: the page again, with the other
        # refresh (not after a Continue request: its message, such as why the run did not continue, stays shown)


# One fragment per live refresh (the page reruns to change it); the idle view is drawn once.
live_views = {every: st.fragment(run_every=every)(live_view) for every in (STARTING_REFRESH_SECONDS, REFRESH_SECONDS)}
with common.user_errors():
    watch_dir = runs.resolve_model_dir(watch)
watch_files = _files_signature(watch_dir)  # before the view reads them: a change meanwhile reruns the page
watch_every = _refresh(watch, runs.read_status(watch_dir))
if watch_every is None:
    live_view(watch, None)
    idle_watch(watch_dir, watch_files)
else:
    live_views[watch_every](watch, watch_every)
