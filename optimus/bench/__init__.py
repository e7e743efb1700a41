"""Speed figures, measured side by side in one run so that ratios survive a busy machine.

Each bench is a function `bench_<name>(quick: bool = False) -> dict` of plain numbers (JSON-ready),
registered in BENCHES; `format_table` turns a {name: results} dict into text for the CLI. One
module per section: primes, train (train, batch), sample, density (density, count), app (app,
app-load); timing holds the shared ways to time, server the Streamlit server and Chromium that
the app sections and the browser tests drive, visitors the many-visitors scenario of
tests/test_visitors_e2e.py. The anysize section stays here until it has a module of its own.
"""

from __future__ import annotations

import numpy as np

from optimus.bench.app import bench_app, bench_app_load, format_app, format_app_load
from optimus.bench.density import _format_count, _format_density, bench_count, bench_density
from optimus.bench.primes import _format_primes, bench_primes
from optimus.bench.sample import SAMPLE_SIZES, SAMPLE_TARGET_PER_S, _format_sample, bench_sample
from optimus.bench.server import rss_bytes, serve
from optimus.bench.timing import SEED, best_time, met
from optimus.bench.train import _format_batch, _format_train, bench_batch, bench_train
from optimus.bench.visitors import RACE_MODEL, VISITOR_SAMPLES, visit_app

_best_time, _met = best_time, met  # the names the section below was written with

__all__ = ["BENCHES", "RACE_MODEL", "SAMPLE_SIZES", "SAMPLE_TARGET_PER_S", "SEED", "VISITOR_SAMPLES",
           "bench_anysize", "bench_app", "bench_app_load", "bench_batch", "bench_count", "bench_density",
           "bench_primes", "bench_sample", "bench_train", "format_table", "rss_bytes", "serve", "visit_app"]


# --- primes of any size --------------------------------------------------------------------------

ANYSIZE_TARGETS = {"100_digits": (1000, 2.0), "2048_bits": (10, 5.0)}  # primes, seconds


def _shipped_sieve():
    """models/default's learned sieve (what a user samples with), and where it came from."""
    from pathlib import Path

    from optimus.evaluation.report import load_models
    from optimus.sampling import anysize

    path = Path(__file__).resolve().parents[2] / "models" / "default"
    try:
        return anysize.model_sieve(load_models(path)), str(path)
    except (OSError, ValueError) as exc:  # no shipped model here: the same prime set, avoiding residue 0
        from optimus.primes import SIEVE_CHART_PRIMES
        from optimus.sampling.sieve import LearnedSieve

        primes_ = np.array(SIEVE_CHART_PRIMES)
        scores = np.concatenate([np.where(np.arange(p) == 0, -8.0, 0.0) for p in primes_.tolist()])
        return LearnedSieve(primes_, scores, 32), f"a stand-in sieve ({exc})"


def _random_odd_bpsw(lo: int, hi: int, count: int, rng, test) -> list[int]:
    """The plain reference: random odd candidates in [lo, hi] until `count` pass `test`."""
    found = []
    while len(found) < count:
        n = rng.randrange(lo, hi + 1) | 1
        if n <= hi and test(n):
            found.append(n)
    return found


def bench_anysize(quick: bool = False) -> dict:
    """Verified primes of 100 digits and of 2048 bits with the learned sieve, per prime, against
    sympy.randprime and random-odd + BPSW loops (sympy.isprime, and our own BPSW, whose gcd
    trial division makes most random candidates cheap to reject) in the same run; and the BPSW implementations
    (ours: gcd trial division + gmpy2 strong base-2 + strong Lucas; gmpy2.is_bpsw_prp,
    gmpy2.is_strong_bpsw_prp, sympy.isprime) on the same random odd integers.

    quick: fewer reference primes (the learned sieve's counts stay the targets')."""
    import random

    import gmpy2
    import sympy

    from optimus.sampling import anysize

    sieve, source = _shipped_sieve()
    rng = random.Random(SEED)
    results: dict = {"quick": quick, "sieve": source, "sieve_primes": int(sieve.primes.size)}
    for name, (lo, hi) in (("100_digits", (10**99, 10**100 - 1)), ("2048_bits", (2**2047, 2**2048 - 1))):
        count, target = ANYSIZE_TARGETS[name]
        anysize.sample_any(sieve, lo, hi, 2, seed=SEED, primes_only=True)  # warm-up: tables, imports
        ours_s, res = _best_time(lambda lo=lo, hi=hi, count=count: anysize.sample_any(
            sieve, lo, hi, count, seed=SEED, primes_only=True), 1 if quick or name == "2048_bits" else 2)
        refs = (max(count // 20, 2) if quick else max(count // 4, 5)) if name == "100_digits" else (2 if quick else 5)
        randprime_s, got = _best_time(lambda lo=lo, hi=hi, refs=refs: [sympy.randprime(lo, hi + 1) for _ in range(refs)], 1)
        loop_s, _ = _best_time(lambda lo=lo, hi=hi, refs=refs: _random_odd_bpsw(lo, hi, refs, rng, sympy.isprime), 1)
        ours_loop_s, _ = _best_time(lambda lo=lo, hi=hi, refs=refs: _random_odd_bpsw(lo, hi, refs, rng, anysize.bpsw), 1)
        per = ours_s / count
        results[name] = {
            "primes": count, "seconds": ours_s, "per_prime_s": per, "target_s": target, "met": ours_s <= target,
            "tests_per_prime": res.summary["tests_per_prime"],
            "random_odd_tests_per_prime": res.summary["random_odd_tests_per_prime"],
            "sieve_tests_per_prime": res.summary["sieve_tests_per_prime"],
            "all_prime": bool(all(gmpy2.is_prime(v, 25) for v in res.values)),
            "randprime_per_prime_s": randprime_s / refs, "bpsw_loop_per_prime_s": loop_s / refs,
            "our_bpsw_loop_per_prime_s": ours_loop_s / refs, "reference_primes": refs,
            "vs_randprime": randprime_s / refs / per, "vs_bpsw_loop": loop_s / refs / per,
            "vs_our_bpsw_loop": ours_loop_s / refs / per,
        }
        results[name]["met"] &= results[name]["vs_randprime"] >= 1 and results[name]["vs_bpsw_loop"] >= 1
    # which BPSW: per-test time on the same random odd integers, and agreement
    tests: dict = {}
    for bits, size in ((332, 400 if quick else 2000), (2048, 40 if quick else 200)):
        values = [rng.getrandbits(bits) | 1 | (1 << (bits - 1)) for _ in range(size)]
        values += [int(gmpy2.next_prime(v)) for v in values[: size // 20]]
        row, verdicts = {}, {}
        for label, func in (("ours", anysize.bpsw), ("gmpy2.is_bpsw_prp", gmpy2.is_bpsw_prp),
                            ("gmpy2.is_strong_bpsw_prp", gmpy2.is_strong_bpsw_prp), ("sympy.isprime", sympy.isprime)):
            sec, out = _best_time(lambda func=func, values=values: [bool(func(v)) for v in values], 1)
            row[label] = sec / len(values) * 1e6
            verdicts[label] = out
        row["agree"] = len({tuple(v) for v in verdicts.values()}) == 1
        tests[f"{bits}_bits_us"] = row
    results["bpsw_us_per_test"] = tests
    results["met"] = all(results[k]["met"] for k in ANYSIZE_TARGETS)
    return results


def _format_anysize(r: dict) -> list[str]:
    lines = [f"  learned sieve: {r['sieve']} ({r['sieve_primes']} primes)"]
    for name, shown in (("100_digits", "100-digit"), ("2048_bits", "2048-bit")):
        x = r[name]
        lines.append(f"  {x['primes']:,} verified {shown} primes: {x['seconds']:.2f} s (target <= {x['target_s']:g} s), "
                     f"{x['per_prime_s'] * 1e3:.2f} ms per prime; sympy.randprime {x['randprime_per_prime_s'] * 1e3:.2f} ms "
                     f"({x['vs_randprime']:.1f}x), random odd + sympy.isprime (BPSW) {x['bpsw_loop_per_prime_s'] * 1e3:.2f} ms "
                     f"({x['vs_bpsw_loop']:.1f}x; references over {x['reference_primes']} primes): {_met(x['met'])}")
        lines.append(f"    random odd + our BPSW (gcd trial division first) {x['our_bpsw_loop_per_prime_s'] * 1e3:.2f} ms "
                     f"({x['vs_our_bpsw_loop']:.1f}x)")
        lines.append(f"    tests per prime: learned {x['tests_per_prime']:.1f}, random odd {x['random_odd_tests_per_prime']:.1f}, "
                     f"classic sieve {x['sieve_tests_per_prime']:.1f}")
    for size, row in r["bpsw_us_per_test"].items():
        shown = ", ".join(f"{k} {v:.1f} us" for k, v in row.items() if k != "agree")
        lines.append(f"  BPSW per test, {size.split('_')[0]}-bit random odd: {shown} (agree: {row['agree']})")
    return lines



# --- registry and text ------------------------------------------------------------------------

BENCHES = {"primes": bench_primes, "density": bench_density, "sample": bench_sample,
           "train": bench_train, "batch": bench_batch, "app": bench_app, "app-load": bench_app_load,
           "anysize": bench_anysize, "count": bench_count}

_FORMATTERS = {"primes": _format_primes, "density": _format_density, "sample": _format_sample,
               "train": _format_train, "batch": _format_batch, "app": format_app, "app-load": format_app_load,
               "anysize": _format_anysize, "count": _format_count}

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
