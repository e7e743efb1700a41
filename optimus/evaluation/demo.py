"""The README's "Demo in five minutes", measured: every figure its script quotes, computed the way
the page that shows it computes it, on the shipped models (`python -m optimus demo-figures`).

The figures go to `docs/demo-figures.json`; `readme_claims(figures)` renders the sentences the
README must contain, in the pages' own number formats, and tests/test_demo.py fails
when the README and the figures disagree. Sections:

- overview: each shipped model's figures as the Overview shows them (its saved evaluation,
  `runs.saved_evaluation`) and the learned sieve from 10,000 samples, seed 0 (`residue_distribution`);
- discriminator: the Discriminator page's defaults (5,000 outputs of `default`, seed 0) through
  `default` and `seed`: balanced accuracy and ROC AUC against exact primality;
- train: a `demo` preset run of the preset's batches into a temporary directory: the lift and
  the multiples of 3 per batch, and the seconds a batch takes;
- continual: what the Continual page shows when it opens, the shipped benchmark
  (`SHIPPED_CONTINUAL`, measured by `python -m optimus forgetting --seeds 3 --save
  factor-standard-3seeds`): ACC and BWT per method (means over its seeds, as the page draws
  them), and which method forgets least. Read from its record, not run again.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from optimus.config import preset
from optimus.evaluation import report as evaluation
from optimus.experiments import background
from optimus.primes import SIEVE_CHART_PRIMES
from optimus.store import runs, storage

SECTIONS = ("overview", "discriminator", "train", "continual")
FIGURES_FILE = Path(__file__).resolve().parents[2] / "docs" / "demo-figures.json"
SIEVE_SAMPLES = 10_000  # the Overview's sieve chart
DISC_SAMPLES = 5_000  # the Discriminator page's default count
# The Continual page's budgets (optimus/app/pages/continual.py reads them from here). "tiny"
# checks the pipeline in seconds (not a measurement); "quick" keeps a seed under a minute on a
# 2-core machine.
CONTINUAL_BUDGETS = {
    "tiny": {"steps_per_task": 5, "batch_size": 32, "test_size": 200, "val_size": 100, "fisher_samples": 64},
    "quick": {"steps_per_task": 40, "batch_size": 128, "test_size": 1000, "val_size": 500},
    "standard": {"steps_per_task": 150, "batch_size": 256},
}
CONTINUAL_DEFAULT_BUDGET = "quick"
CONTINUAL_DEFAULT_SEEDS = 3
# The benchmark the Continual page opens on (models/continual/), so the one the script quotes.
SHIPPED_CONTINUAL = "factor-standard-3seeds"
SHIPPED_CONTINUAL_COMMAND = f"python -m optimus forgetting --seeds 3 --save {SHIPPED_CONTINUAL}"


def _models_root(root=None) -> Path:
    return runs.models_root(root)


def overview(root=None) -> dict:
    """What the Overview shows for `default` and `seed` (their saved evaluations) and its sieve chart."""
    out = {}
    entries = {m["name"]: m for m in runs.list_models(root)}
    for name in ("default", "seed"):
        path = _models_root(root) / name
        saved = runs.saved_evaluation(path, entries[name]["batches"])
        if saved is None:
            raise ValueError(f"{path} has no current evaluation.json: run `python -m optimus evaluate "
                             f"--model-dir {path} --save` first (the Overview would evaluate it live)")
        gen, disc = saved["generator"], saved["discriminator_on_uniform"]
        table = evaluation.sample(evaluation.load_models(path), SIEVE_SAMPLES, seed=0)
        n = table["n"].to_numpy()
        vs_chance = {int(p): float(np.mean(n % p == 0) * p) for p in SIEVE_CHART_PRIMES}
        out[name] = {"batches": int(entries[name]["batches"]), "hit_rate": gen["hit_rate"], "lift": gen["lift"],
                     "distinct_rate": gen["distinct_rate"], "balanced_accuracy": disc["balanced_accuracy"],
                     "sieve_vs_chance": vs_chance}
    return out


def discriminator(root=None) -> dict:
    """The Discriminator page with its defaults: 5,000 outputs of `default` (seed 0) classified
    by `default` and `seed`."""
    default = evaluation.load_models(_models_root(root) / "default")
    n = evaluation.sample(default, DISC_SAMPLES, seed=0)["n"].to_numpy()
    out = {"count": int(len(n)), "primes": int(evaluation.primes.is_prime(n).sum())}
    for name in ("default", "seed"):
        models = default if name == "default" else evaluation.load_models(_models_root(root) / name)
        rep = evaluation.discriminator_report(models, n)
        out[name] = {"balanced_accuracy": rep["balanced_accuracy"], "roc_auc": rep["roc_auc"],
                     "roc_points": len(rep["roc"]["fpr"])}
    return out


def train(batches: int | None = None, log=None) -> dict:
    """A `demo` preset run in a new process, as the Train page starts one: per batch its lift and
    multiples of 3 relative to chance, and its timings."""
    cfg = preset("demo", batches=batches)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="optimus-demo-") as tmp:
        model_dir = Path(tmp) / "demo"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "optimus", "train", "--model-dir", str(model_dir),
                               "--preset", "demo", "--batches", str(cfg.batches), "--quiet"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"the demo run failed: {(done.stderr or done.stdout).strip()[-500:]}")
        history = storage.read_jsonl(model_dir / storage.HISTORY)
    seconds = [float(r["seconds"]) for r in history]
    return {
        "preset": "demo", "batches": cfg.batches, "batch_size": cfg.batch_size, "steps": cfg.steps,
        "lr_generator": cfg.lr_generator,
        "lift": [float(r["lift"]) for r in history],
        "hit_rate": [float(r["hit_rate"]) for r in history],
        "multiples_of_3_vs_chance": [float(r["divisible_share"]["3"]) * 3 for r in history],
        "first_batch_seconds": seconds[0],
        # the pace on screen: from one batch's record to the next (consolidation included)
        "later_batch_seconds_median": float(statistics.median(np.diff([float(r["time"]) for r in history])))
        if len(seconds) > 1 else seconds[0],
        "wall_seconds": wall,
        # the 1-minute load average before and after: timings on a shared machine mean little without it
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
    }


def continual(shipped=None) -> dict:
    """What the Continual page shows when it opens: the shipped benchmark's ACC and BWT per
    method, means over its seeds (the record's `mean`, which its chart and table draw), and the
    computing time it took. Measured by SHIPPED_CONTINUAL_COMMAND; read here from its record."""
    record = background.read_shipped(SHIPPED_CONTINUAL, shipped)
    if record is None:
        raise RuntimeError(f"models/continual/{SHIPPED_CONTINUAL}.json: no finished benchmark shipped "
                           f"(write it with `{SHIPPED_CONTINUAL_COMMAND}`)")
    result = record["result"]
    methods, cfg = result["mean"]["methods"], result["mean"]["config"]
    return {"benchmark": SHIPPED_CONTINUAL, "command": SHIPPED_CONTINUAL_COMMAND, "seeds": list(result["seeds"]),
            "steps_per_task": cfg["steps_per_task"], "batch_size": cfg["batch_size"],
            "acc": {m: float(r["acc"]) for m, r in methods.items()},
            "bwt": {m: float(r["bwt"]) for m, r in methods.items()},
            "benchmark_seconds": float(result["mean"]["seconds"]["total"])}


def _sequential(bwt: dict) -> dict:
    """BWT of the methods that learn the tasks in sequence: `joint` (all tasks at once, the upper
    bound) has nothing to forget, so it is never "the method that forgets least"."""
    return {m: v for m, v in bwt.items() if m != "joint"}


def measure(sections=SECTIONS, root=None, log=None) -> dict:
    figures = {"command": "python -m optimus demo-figures", "measured": time.strftime("%Y-%m-%d"),
               "sections": {}}
    for section in sections:
        t0 = time.perf_counter()
        value = {"overview": lambda: overview(root), "discriminator": lambda: discriminator(root),
                 "train": train, "continual": continual}[section]()
        value["seconds"] = round(time.perf_counter() - t0, 1)
        figures["sections"][section] = value
        if log:
            log(f"{section}: {value['seconds']} s")
    return figures


def merge(old: dict | None, new: dict) -> dict:
    """`new`'s sections over `old`'s: measuring one section keeps the others."""
    out = {**(old or {}), **{k: v for k, v in new.items() if k != "sections"}}
    out["sections"] = {**((old or {}).get("sections") or {}), **new["sections"]}
    return out


def load(path=FIGURES_FILE) -> dict:
    return storage.read_json(path)


# --- the README's sentences, in the pages' number formats --------------------------------------


def readme_claims(figures: dict) -> dict[str, str]:
    """Each figure the README's demo section quotes, as the exact text it must contain."""
    s = figures["sections"]
    claims = {}
    if "overview" in s:
        d, seed = s["overview"]["default"], s["overview"]["seed"]
        claims |= {
            "seed lift": f"lift {seed['lift']:.2f}",
            "seed balanced accuracy": f"balanced accuracy {seed['balanced_accuracy']:.3f}",
            "default hit rate": f"hit rate {d['hit_rate']:.1%}",
            "default lift": f"lift {d['lift']:.2f}",
            "default distinct": f"{d['distinct_rate']:.1%} distinct",
            "default discriminator": f"discriminator {d['balanced_accuracy']:.3f}",
            "default sieve": f"at most {max(d['sieve_vs_chance'].values()):.2f}x chance",
            "seed sieve": (f"between {min(seed['sieve_vs_chance'].values()):.2f}x and "
                           f"{max(seed['sieve_vs_chance'].values()):.2f}x"),
        }
    if "discriminator" in s:
        x = s["discriminator"]
        claims |= {
            "discriminator default AUC": f"default (AUC {x['default']['roc_auc']:.3f})",
            "discriminator seed AUC": f"seed (AUC {x['seed']['roc_auc']:.3f})",
        }
    if "train" in s:
        t = s["train"]
        lift, three = t["lift"], t["multiples_of_3_vs_chance"]
        mid = min(10, len(lift)) - 1
        claims |= {
            "demo preset": f"`demo` preset ({t['batches']} batches of {t['batch_size']}, {t['steps']} steps, "
                           f"generator lr {t['lr_generator']:g})",
            "demo lift": (f"lift {lift[0]:.2f} at batch 1, {lift[mid]:.2f} at batch {mid + 1}, "
                          f"{lift[-1]:.2f} at batch {len(lift)}"),
            "demo multiples of 3": (f"multiples of 3 at {three[0]:.2f}x chance after batch 1, "
                                    f"{three[mid]:.2f}x after batch {mid + 1}"),
            "demo batch time": f"{t['later_batch_seconds_median']:.1f} s a batch",
        }
        if t.get("load_average"):
            lo, hi = sorted(t["load_average"])
            claims["demo load"] = f"at a load average of {lo:.0f} to {hi:.0f}"
    if "continual" in s:
        c = s["continual"]
        sequential = _sequential(c["bwt"])
        best, worst = max(sequential, key=sequential.get), min(sequential, key=sequential.get)
        top = max(c["acc"], key=c["acc"].get)
        claims |= {
            "continual least": f"{best} forgets least (BWT {c['bwt'][best]:+.3f})",
            "continual most": f"{worst} forgets most (BWT {c['bwt'][worst]:+.3f})",
            "continual best ACC": f"{top} reaches the highest ACC ({c['acc'][top]:.3f})",
            "continual time": f"about {c.get('benchmark_seconds', c['seconds']) / 60:.0f} minutes of computing",
        }
        if "ewc" in c["bwt"]:
            claims["continual ewc"] = f"EWC's BWT is {c['bwt']['ewc']:+.3f}"
    return claims


def demo_section(readme_text: str) -> str:
    """The README's "Demo in five minutes" section (to the next second-level heading)."""
    start = readme_text.index("## Demo in five minutes")
    end = readme_text.find("\n## ", start + 3)
    return readme_text[start:end if end >= 0 else None]
