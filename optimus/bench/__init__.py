"""Speed figures, measured side by side in one run so that ratios survive a busy machine.

Each bench is a function `bench_<name>(quick: bool = False) -> dict` of plain numbers (JSON-ready),
registered in BENCHES; `format_table` turns a {name: results} dict into text for the CLI. One
module per section: primes, train (train, batch), sample, density (density, count), app (app,
app-load), start (the Train page's Start to the first batch on screen), anysize; timing holds
the shared ways to time, server the Streamlit server and Chromium that
the app sections and the browser tests drive, visitors the many-visitors scenario of
tests/test_visitors_e2e.py, anysize the primes of any size against GMP. `train` imports TensorFlow,
so it is loaded on first use: the CLI imports this package for every command.
"""

from __future__ import annotations

from optimus.bench.anysize import _format_anysize, bench_anysize
from optimus.bench.app import bench_app, bench_app_load, format_app, format_app_load
from optimus.bench.density import _format_count, _format_density, bench_count, bench_density
from optimus.bench.primes import _format_primes, bench_primes
from optimus.bench.sample import SAMPLE_SIZES, SAMPLE_TARGET_PER_S, _format_sample, bench_sample
from optimus.bench.server import rss_bytes, serve
from optimus.bench.start import bench_start, format_start
from optimus.bench.timing import SEED
from optimus.bench.visitors import RACE_MODEL, VISITOR_SAMPLES, visit_app

__all__ = ["BENCHES", "RACE_MODEL", "SAMPLE_SIZES", "SAMPLE_TARGET_PER_S", "SEED", "VISITOR_SAMPLES",
           "bench_anysize", "bench_app", "bench_app_load", "bench_batch", "bench_count", "bench_density",
           "bench_primes", "bench_sample", "bench_start", "bench_train", "format_table", "rss_bytes", "serve", "visit_app"]


# --- registry and text ------------------------------------------------------------------------

def _train_section():
    """optimus.bench.train, imported on first use."""
    from optimus.bench import train  # TensorFlow: the CLI imports optimus.bench for every command

    return train


def bench_train(quick: bool = False) -> dict:
    """`bench train`: optimus.bench.train.bench_train (TensorFlow loaded on first use)."""
    return _train_section().bench_train(quick)


def bench_batch(quick: bool = False) -> dict:
    """`bench batch`: optimus.bench.train.bench_batch (TensorFlow loaded on first use)."""
    return _train_section().bench_batch(quick)


def _format_train(r: dict) -> list[str]:
    return _train_section()._format_train(r)


def _format_batch(r: dict) -> list[str]:
    return _train_section()._format_batch(r)


BENCHES = {"primes": bench_primes, "density": bench_density, "sample": bench_sample,
           "train": bench_train, "batch": bench_batch, "app": bench_app, "app-load": bench_app_load,
           "anysize": bench_anysize, "count": bench_count, "start": bench_start}

_FORMATTERS = {"primes": _format_primes, "density": _format_density, "sample": _format_sample,
               "train": _format_train, "batch": _format_batch, "app": format_app, "app-load": format_app_load,
               "anysize": _format_anysize, "count": _format_count, "start": format_start}

def format_table(results: dict) -> str:
    """Human-readable text for {bench name: results}, or for one bench's results alone."""
    if "sieve_setup_s" in results and "below_1e9" in results:  # a bare bench_primes() result
        results = {"primes": results}
    lines = []
    for name, r in results.items():
        lines.append(f"{name}{' (quick)' if r.get('quick') else ''}")
        formatter = _FORMATTERS.get(name)
        try:
            lines.extend(formatter(r) if formatter else [f"  {k}: {v}" for k, v in r.items()])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):  # a partial result: show it raw
            lines.extend(f"  {k}: {v}" for k, v in r.items())
    return "\n".join(lines)
