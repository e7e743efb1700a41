"""`python -m optimus` / `optimus`: train, sample, classify, evaluate, density, bench, forgetting.

Every bad argument is answered by one line on stderr and a non-zero exit, never a traceback.
TensorFlow is imported only by the commands that need it (the modules below import it only
when a network is built or loaded; `train` imports the loop).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

from optimus import bench, continual, limits
from optimus.config import PRESETS
from optimus.evaluation import demo, sieve_shares
from optimus.evaluation.report import discriminate, evaluate, load_models, sample
from optimus.experiments import background, forgetting
from optimus.primes import density_table
from optimus.sampling import anysize
from optimus.store import checkpoint, storage
from optimus.training.distribute import DEVICES
from optimus.validate import parse_int, read_integers

EXIT_USAGE = 2
EXIT_FAILED = 1


class CliError(Exception):
    """A user-facing error: printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage + message
        raise CliError(f"{self.prog}: {message}")


def _int(text: str) -> int:
    """Whole numbers, also written as 1e6 or 10**9 (optimus.validate.parse_int)."""
    try:
        return parse_int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def _add_train(sub):
    p = sub.add_parser("train", help="online training with EWC into a model directory")
    p.add_argument("--model-dir", required=True, help="where the model lives (created or resumed)")
    p.add_argument("--from", dest="from_dir", help="start from this model directory's networks")
    p.add_argument("--preset", choices=PRESETS, help="default (beats chance), seed (the original) or demo (the sieve emerging slowly)")
    p.add_argument("--config", metavar="FILE",
                   help="the run's whole config as JSON (TrainConfig's fields, as in a model's config.json); "
                        "flags given with it override its fields; not with --preset")
    p.add_argument("--batches", type=_int)
    p.add_argument("--batch-size", type=_int)
    p.add_argument("--steps", type=_int, help="gradient steps per online batch")
    p.add_argument("--latent-range", nargs=2, type=_int, metavar=("LO", "HI"))
    p.add_argument("--method", choices=continual.names(),
                   help="continual-learning method (optimus.continual's registry); default: the preset's")
    p.add_argument("--ewc-mode", choices=tuple(continual.LEGACY_EWC_MODES),
                   help="the older spelling of --method: separate = ewc, online = online-ewc, off = none")
    p.add_argument("--method-lambda", "--ewc-lambda", dest="method_lambda", type=_float,
                   help="the method's penalty strength lambda (--ewc-lambda: its older name)")
    p.add_argument("--discriminator", choices=("dense", "residue", "gln"), help="override the preset's discriminator")
    p.add_argument("--seed", type=_int)
    regularizers = p.add_mutually_exclusive_group()
    regularizers.add_argument("--apply-regularizers", dest="apply_regularizers", action="store_const", const=True,
                              help="add model.losses (the seed's opposite L2) to the losses, as the seed README "
                                   "describes: with the seed preset the loss diverges in the first batch (README)")
    regularizers.add_argument("--inert-regularizers", dest="apply_regularizers", action="store_const", const=False,
                              help="do not add model.losses, as the original seed code trained (the seed preset's default)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="auto (all GPUs if several, else one GPU or the CPU), cpu, gpu (error if none), "
                        "mirrored (every GPU of this machine) or multiworker (TF_CONFIG; see README)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_train(a) -> int:
    if not a.model_dir.strip():
        raise CliError("optimus train: --model-dir is empty; name a directory to train into")
    if a.from_dir is not None and not a.from_dir.strip():
        raise CliError("optimus train: --from is empty; name the model directory to start from")
    model_dir = Path(a.model_dir)
    if a.from_dir and not Path(a.from_dir).is_dir():
        raise CliError(f"--from {a.from_dir}: no such model directory")
    if a.from_dir and Path(a.from_dir).absolute() == model_dir.absolute():
        a.from_dir = None
    checkpoint.refuse_existing_target(model_dir, a.from_dir)
    overrides = {}
    if a.config is not None:
        # The file is the whole config (the app writes one per run); flags given with it
        # override its fields, and --preset is refused (the file names its preset).
        if a.preset is not None:
            raise CliError("optimus train: --preset does not combine with --config (the file names its preset)")
        file_config = checkpoint.read_config_file(a.config)
        overrides = {k: v for k, v in dataclasses.asdict(file_config).items() if k in checkpoint.RUN_FIELDS}
    flags = {
        "batches": a.batches, "batch_size": a.batch_size, "steps": a.steps,
        "method": a.method or (continual.LEGACY_EWC_MODES[a.ewc_mode] if a.ewc_mode else None),
        "method_lambda": a.method_lambda, "seed": a.seed, "discriminator": a.discriminator,
        "apply_regularizers": a.apply_regularizers,
    }
    if a.latent_range:
        flags.update(latent_lo=a.latent_range[0], latent_hi=a.latent_range[1])
    overrides.update({k: v for k, v in flags.items() if v is not None})
    cfg = checkpoint.run_config(model_dir, a.from_dir, a.preset, overrides)
    from optimus.training.loop import train  # TensorFlow: only this command trains

    status = train(cfg, model_dir, from_dir=a.from_dir, progress=not a.quiet, device=a.device,
                   log=(lambda *_: None) if a.quiet else (lambda m: print(m, file=sys.stderr)))
    print(json.dumps({k: status[k] for k in ("run", "state", "batches_done", "model_batches", "message")}))
    return 0 if status["state"] in ("done", "stopped") else EXIT_FAILED


def _add_size(p, what: str):
    """--digits / --bits / --range: mutually exclusive sizes for the any-size sampler."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--digits", type=_int, help=f"{what} with D decimal digits ({limits.MIN_DIGITS}..{limits.MAX_DIGITS})")
    g.add_argument("--bits", type=_int, help=f"{what} with B bits ({limits.MIN_BITS}..{limits.MAX_BITS})")
    g.add_argument("--range", nargs=2, type=_int, metavar=("LO", "HI"),
                   help=f"{what} in [LO, HI] (inclusive; decimal integers of any size below 2^{limits.MAX_BITS})")


def _size_of(a):
    """(lo, hi, label) from --digits/--bits/--range, or None when none is given."""
    if a.digits is None and a.bits is None and a.range is None:
        return None
    lo, hi = a.range if a.range else (None, None)
    return anysize.size_range(digits=a.digits, bits=a.bits, lo=lo, hi=hi)


def _add_sample(sub):
    p = sub.add_parser("sample", help="sample odd integers (or verified primes) from a model's generator")
    p.add_argument("--model-dir", required=True)
    p.add_argument("-n", type=_int, default=1000)
    p.add_argument("--seed", type=_int, default=0)
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    _add_size(p, "sample numbers")
    p.add_argument("--primes-only", action="store_true",
                   help="N distinct verified primes, with tests per prime against random odd candidates and a classic sieve")
    p.add_argument("--vet", action="store_true",
                   help="the discriminator vets picks before the primality test (numbers below 2^53 only)")
    p.add_argument("--placement", choices=("uniform", "log"), default="uniform",
                   help="where windows of candidates are placed in the range")
    p.add_argument("--output", help="write the CSV/JSON to this file (atomically; a character device or pipe is "
                                    "written into, a symbolic link or directory refused) instead of stdout")


def _run_sample(a) -> int:
    if a.output:
        storage.check_user_file(a.output)  # a link or a directory is refused before any work
    size = _size_of(a)
    if size is None:
        if a.primes_only or a.vet or a.placement != "uniform":
            raise CliError("optimus sample: --primes-only, --vet and --placement need --digits, --bits or --range")
        df = sample(load_models(a.model_dir), a.n, a.seed)
        text = df.to_csv(index=False) if a.format == "csv" else df.to_json(orient="records") + "\n"
    else:
        lo, hi, label = size
        df, summary = anysize.sample_models(load_models(a.model_dir), lo, hi, a.n, a.seed,
                                            primes_only=a.primes_only, vet=a.vet, placement=a.placement)
        summary["size"] = label
        if a.format == "csv":
            text = df.to_csv(index=False)
            for line in [f"{label} numbers:", *anysize.summary_lines(summary)] + (
                    [summary["d_prob_note"]] if summary["d_prob_note"] else []):
                print(line, file=sys.stderr)
        else:
            rows = [{**r, "d_prob": None if r["d_prob"] != r["d_prob"] else r["d_prob"]}
                    for r in df.to_dict(orient="records")]
            text = json.dumps({"summary": summary, "samples": rows}, indent=1) + "\n"
    if a.output:
        storage.write_user_file(a.output, text.encode())
    else:
        sys.stdout.write(text)
    return 0


def _add_classify(sub):
    p = sub.add_parser("classify", help="read integers from stdin, print n,probability")
    p.add_argument("--model-dir", required=True)


def _run_classify(a) -> int:
    # Read and check all of stdin before loading the model: a bad token costs no TensorFlow.
    n = read_integers(sys.stdin)
    prob = discriminate(load_models(a.model_dir), n)
    sys.stdout.write("".join(f"{int(v)},{p:.6f}\n" for v, p in zip(n, prob, strict=True)))
    return 0


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="generator lift and discriminator accuracy, against exact primality")
    p.add_argument("--model-dir", required=True)
    p.add_argument("-n", type=_int, default=10_000)
    p.add_argument("--seed", type=_int, default=0)
    p.add_argument("--uniform-range", nargs=2, type=_int, metavar=("LO", "HI"),
                   help="range of the uniform odd integers for the discriminator (default: the outputs' range)")
    p.add_argument("--uniform-count", type=_int, default=20_000)
    p.add_argument("--band", nargs=2, type=_int, metavar=("LO", "HI"),
                   help="sample the sieve generator in [LO, HI) instead of its trained band (below 2**53)")
    p.add_argument("--no-vet", action="store_true", help="skip the discriminator rejection sampling figures")
    p.add_argument("--json", action="store_true")
    p.add_argument("--save", action="store_true", help="also write evaluation.json into the model directory")
    _add_size(p, "the generator's lift at numbers")


def _run_evaluate(a) -> int:
    size = _size_of(a)
    if size is not None:
        return _evaluate_at(a, size)
    if a.save:
        storage.check_user_file(Path(a.model_dir) / storage.EVALUATION)  # before any work
    lo, hi = a.uniform_range or (None, None)
    band_lo, band_hi = a.band or (None, None)
    res = evaluate(a.model_dir, a.n, a.seed, lo, hi, a.uniform_count, band_lo, band_hi, vet=not a.no_vet)
    if a.save:
        storage.write_user_file(Path(a.model_dir) / storage.EVALUATION, storage.json_bytes(res))
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        g, do, du = res["generator"], res["discriminator_on_outputs"], res["discriminator_on_uniform"]
        print(f"model {res['model_dir']} (preset {res['preset']}, {res['batches_trained']} batches)")
        print(f"generator, {res['samples']} samples in [{g['lo']:,}, {g['hi']:,}]:")
        print(f"  hit rate {g['hit_rate']:.4f}  distinct {g['distinct_rate']:.4f}  distinct-prime {g['distinct_prime_rate']:.4f}")
        print(f"  baseline {g['baseline']:.4f} (same-range {g['same_range_probability']:.4f})  lift {g['lift']:.2f}")
        v = res.get("generator_vetted")
        if v:
            print("generator with discriminator rejection sampling (each candidate accepted with the "
                  "discriminator's probability):")
            print(f"  hit rate {v['hit_rate']:.4f}  distinct {v['distinct_rate']:.4f}  lift {v['lift']:.2f}  "
                  f"candidates per output {v['candidates_per_output']:.3f} (max {v['candidates_max']}, "
                  f"gave up on {v['gave_up']})")
        for label, d in (("generator outputs", do), (f"uniform odd in [{du['lo']:,}, {du['hi']:,}]", du)):
            print(f"discriminator on {label}: balanced accuracy {d['balanced_accuracy']:.4f}, "
                  f"accuracy {d['accuracy']:.4f}, precision {d['precision']:.4f}, recall {d['recall']:.4f}, "
                  f"F1 {d['f1']:.4f}, ROC AUC {d['roc_auc']:.4f}")
    return 0


def _evaluate_at(a, size) -> int:
    if a.save or a.uniform_range:
        raise CliError("optimus evaluate: --save and --uniform-range do not combine with --digits/--bits/--range")
    lo, hi, label = size
    res = anysize.evaluate_at(load_models(a.model_dir), lo, hi, a.n, a.seed)
    res["size"] = label
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    src = "exact" if res["baseline_exact"] else "li(x) estimate"
    print(f"model {res['model_dir']} (preset {res['preset']}), generator at {label} numbers, {res['samples']:,} samples "
          f"(windows of {res['window']} odd candidates placed uniformly, one Gumbel-max pick each):")
    print(f"  hit rate {res['hit_rate']:.4f}  distinct {res['distinct_rate']:.4f}  distinct-prime {res['distinct_prime_rate']:.4f}")
    print(f"  odd-prime density {res['baseline']:.6g} ({src})  lift {'-' if res['lift'] is None else format(res['lift'], '.2f')}  "
          f"(classic sieve by the same primes: {res['sieve_lift_ceiling']:.2f})")
    print(f"  certainty: {res['certainty']}")
    return 0


def _add_density(sub):
    p = sub.add_parser("density", help="exact prime counts per bin with x/ln x and li(x)")
    p.add_argument("--lo", type=_int, required=True)
    p.add_argument("--hi", type=_int, required=True)
    p.add_argument("--bins", type=_int, default=10)
    p.add_argument("--log", action="store_true", help="log-spaced bins")
    p.add_argument("--max-seconds", type=_float, help="refuse counts estimated to take longer (default: limits.MAX_COUNT_SECONDS)")
    p.add_argument("--estimate", action="store_true",
                   help="instead of refusing, count exactly what fits in --max-seconds and mark the other bins as li(x) estimates")
    p.add_argument("--json", action="store_true")


def _run_density(a) -> int:
    table = density_table(a.lo, a.hi, a.bins, a.log, max_seconds=a.max_seconds, estimate=a.estimate)
    if a.json:
        print(json.dumps(table, indent=2))
        return 0
    rows = table["rows"]
    width = max(14, len(f"{table['hi']:,}"))
    print(f"{'lo':>{width}} {'hi':>{width}} {'primes':>18} {'density':>9} {'x/ln x':>20} {'li(x)':>20}")
    for r in rows:
        count = f"{r['count']:,}" if r["exact"] else f"~{r['count']:,} (est.)"
        print(f"{r['lo']:>{width},} {r['hi']:>{width},} {count:>18} {r['density']:>9.5f} "
              f"{r['expected_x_ln_x']:>20,.1f} {r['expected_li']:>20,.1f}")
    if table["estimated_bins"]:
        print(f"{table['estimated_bins']} of {table['bins']} bins are li(x) estimates (marked est.): "
              f"counting them exactly was estimated to take {table['estimated_seconds']:,.0f} s")
    density = table["odd_prime_density"]
    shown = "undefined (no odd integer in range)" if density is None else f"{density:.6f}"
    if density is not None and table["estimated_bins"]:
        shown += " (includes estimated bins)"
    print(f"odd-prime density over [{a.lo:,}, {a.hi:,}]: {shown}")
    return 0


def _add_bench(sub):
    p = sub.add_parser("bench", help="speed figures, as ratios measured side by side in one run")
    p.add_argument("what", nargs="*", default=["all"], help="primes, density, sample, train, batch, app, app-load, start, anysize, count, or all")
    p.add_argument("--quick", action="store_true", help="smaller sizes (seconds, not minutes)")
    p.add_argument("--json", action="store_true")


def _run_bench(a) -> int:
    names = list(bench.BENCHES) if "all" in a.what else a.what
    unknown = [n for n in names if n not in bench.BENCHES]
    if unknown:
        raise CliError(f"bench: unknown benchmark {unknown[0]!r}; choose from {', '.join(bench.BENCHES)}, all")
    results = {}
    with _stdout_to_stderr():  # stdout carries the results only (valid JSON with --json)
        for name in names:
            print(f"running bench {name}...", file=sys.stderr)
            results[name] = bench.BENCHES[name](quick=a.quick)
    print(json.dumps(results, indent=2) if a.json else bench.format_table(results))
    return 0


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send whatever the benches print (Python's, and C libraries' on file descriptor 1) to stderr."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1
        saved = None
    try:
        if saved is not None:
            os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _add_forgetting(sub):
    p = sub.add_parser("forgetting", help="continual-learning benchmark: EWC against its rivals")
    p.add_argument("--family", choices=forgetting.FAMILIES, default="factor")
    p.add_argument("--tasks", nargs="+", help="primes (factor) or LO:HI pairs (range)")
    methods = forgetting.method_names()
    p.add_argument("--methods", nargs="+", choices=methods, metavar="METHOD",
                   help="the methods to compare (default: all): "
                        + "; ".join(f"{m}: {forgetting.method_summary(m)}" for m in methods))
    p.add_argument("--encoding", choices=("fourier", "scalar", "residue"), default="fourier",
                   help="fourier: cos/sin of 2 pi n / p for small p (\"residue\", its older name, means the same); scalar: n itself")
    p.add_argument("--method-lambda", "--ewc-lambda", dest="method_lambda", type=_float,
                   help="fix EWC's and online EWC's penalty strength instead of tuning it on the validation "
                        "split (--ewc-lambda: its older name)")
    p.add_argument("--seed", type=_int, default=0)
    p.add_argument("--seeds", type=_int, default=1, help="seeds --seed, --seed + 1, ...: the spread over seeds")
    p.add_argument("--steps-per-task", type=_int, default=150)
    p.add_argument("--batch-size", type=_int, default=256)
    p.add_argument("--save", metavar="ID",
                   help="write the finished result to models/continual/ID.json: the Continual learning page "
                        "shows it (read-only) on a fresh clone")
    p.add_argument("--json", action="store_true")


def _run_forgetting(a) -> int:
    if a.save or a.seeds != 1:
        settings = {"family": a.family, "tasks": a.tasks, "methods": a.methods, "encoding": a.encoding,
                    "method_lambda": a.method_lambda, "steps_per_task": a.steps_per_task, "batch_size": a.batch_size}
        settings = {k: v for k, v in settings.items() if v is not None}
        parsed = forgetting.parse_tasks(a.family, a.tasks) if a.tasks else None
        seeds = range(a.seed, a.seed + a.seeds)
        forgetting.check_settings(**{**settings, "tasks": parsed, "seed": a.seed})

        def progress(fraction, message):
            print(f"[{fraction:5.1%}] {message}", file=sys.stderr)

        if a.save:
            path = background.ship(settings, seeds, a.save, progress=progress)
            print(f"saved {path}", file=sys.stderr)
            res = storage.read_json(path)["result"]["mean"]
        else:
            res = forgetting.run_seeds(seeds, progress=progress, **{**settings, "tasks": parsed})["mean"]
        print(json.dumps(res, indent=2) if a.json else forgetting.format_table(res))
        return 0
    tasks = forgetting.parse_tasks(a.family, a.tasks) if a.tasks else None
    res = forgetting.run_benchmark(
        family=a.family, tasks=tasks, methods=a.methods, encoding=a.encoding, seed=a.seed,
        method_lambda=a.method_lambda, steps_per_task=a.steps_per_task, batch_size=a.batch_size,
        progress=lambda f, m: print(f"[{f:5.1%}] {m}", file=sys.stderr),
    )
    if a.json:
        print(json.dumps(res, indent=2))
    else:
        print(forgetting.format_table(res))
    return 0


def _add_demo_figures(sub):
    p = sub.add_parser("demo-figures", help="measure every figure the README's five-minute demo quotes")
    p.add_argument("sections", nargs="*", default=list(demo.SECTIONS), metavar="SECTION", help=f"{', '.join(demo.SECTIONS)} (all by default)")
    p.add_argument("--output", help="merge into this JSON file (atomically; docs/demo-figures.json is the README's)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON (else the README's sentences)")


def _run_demo_figures(a) -> int:
    if a.output:
        storage.check_user_file(a.output)  # a link or a directory is refused before any work
    for section in a.sections:
        if section not in demo.SECTIONS:
            raise CliError(f"optimus demo-figures: unknown section {section!r}; choose from {', '.join(demo.SECTIONS)}")
    figures = demo.measure(a.sections, log=lambda m: print(m, file=sys.stderr))
    if a.output:
        old = demo.load(a.output) if Path(a.output).is_file() else None
        storage.write_user_file(a.output, storage.json_bytes(demo.merge(old, figures)))
    if a.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, text in demo.readme_claims(figures).items():
            print(f"{name}: {text}")
    return 0


def _add_sieve_shares(sub):
    p = sub.add_parser("sieve-shares", help="precompute the Overview's sieve chart of the shipped models "
                                            "(models/sieve-shares.json)")
    p.add_argument("--models-dir", help="the models root holding default and seed (default: $OPTIMUS_MODELS_DIR or models/)")


def _run_sieve_shares(a) -> int:
    figure = sieve_shares.write(a.models_dir)
    for name, entry in figure["models"].items():
        print(f"{name}: {figure['samples']:,} outputs (seed {figure['seed']}), multiples of 3: {entry['divisible'][0]:,}")
    print(f"wrote {sieve_shares.FILE}")
    return 0


COMMANDS = {
    "train": (_add_train, _run_train),
    "sample": (_add_sample, _run_sample),
    "classify": (_add_classify, _run_classify),
    "evaluate": (_add_evaluate, _run_evaluate),
    "density": (_add_density, _run_density),
    "bench": (_add_bench, _run_bench),
    "forgetting": (_add_forgetting, _run_forgetting),
    "demo-figures": (_add_demo_figures, _run_demo_figures),
    "sieve-shares": (_add_sieve_shares, _run_sieve_shares),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="optimus", description="A deep-learning lab for prime numbers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command][1](args)
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError, RuntimeError) as exc:
        # CheckpointError, LockedError and validation errors all land here: one line.
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"optimus {args.command}: {msg}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("optimus: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
