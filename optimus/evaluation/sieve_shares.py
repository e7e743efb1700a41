"""The learned sieve as a figure: how many of a generator's outputs are multiples of each small
prime p (the Overview's chart), and a copy of it computed once for the models the repository ships.

A new server's first Overview drew 10,000 outputs of each shipped generator to draw this chart
(about 0.4 s of the server's CPU, most of what the cold start spent after its imports; issue 18).
`python -m optimus sieve-shares` writes the counts of the shipped models (`SHIPPED`, seed 0,
10,000 outputs, `SIEVE_CHART_PRIMES`) to models/sieve-shares.json. `shipped()` hands them out only
for a model whose generator and config are byte for byte the ones they were computed from
(SHA-256 of generator.keras and config.json: the outputs depend on nothing else), so a retrained
or damaged model is computed live as before. tests/test_sieve_shares.py checks that the file
equals a fresh computation.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np

from optimus.evaluation import report
from optimus.primes import SIEVE_CHART_PRIMES
from optimus.store import runs, storage

FILE = runs.REPO_ROOT / "models" / "sieve-shares.json"  # tracked, next to the shipped models
COMMAND = "python -m optimus sieve-shares"
SHIPPED = ("default", "seed")
SAMPLES = 10_000  # the Overview's sieve chart
SEED = 0
MAX_FILE_BYTES = 1 << 20


def divisible_counts(n_values, primes_list) -> list[int]:
    """For each p of `primes_list`, how many of `n_values` are multiples of p."""
    n = np.asarray(n_values, dtype=np.int64)
    return [int(np.count_nonzero(n % p == 0)) for p in primes_list]


def compute(model_dir, count: int = SAMPLES, seed: int = SEED, primes_list=SIEVE_CHART_PRIMES) -> list[int]:
    """`divisible_counts` of `count` outputs of the model's generator (report.outputs, `seed`)."""
    n = report.outputs(report.load_models(model_dir), count, seed=seed)
    return divisible_counts(n, primes_list)


def fingerprint(model_dir) -> str:
    """SHA-256 over the files the generator's outputs depend on (config.json, generator.keras)."""
    digest = hashlib.sha256()
    for name in (storage.CONFIG, storage.GENERATOR):
        data = (Path(model_dir) / name).read_bytes()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def write(root=None, names=SHIPPED, path=FILE) -> dict:
    """Compute the shipped figure of each model `names` in the models root, and write `path`."""
    models = {}
    for name in names:
        model_dir = runs.resolve_model_dir(name, root)
        models[name] = {"fingerprint": fingerprint(model_dir), "divisible": compute(model_dir)}
    figure = {"command": COMMAND, "samples": SAMPLES, "seed": SEED, "primes": list(SIEVE_CHART_PRIMES),
              "models": models}
    storage.write_json(path, figure)
    return figure


_lock = threading.Lock()
_file: tuple[tuple, dict | None] | None = None  # ((inode, mtime, size), contents)
_fingerprints: dict[tuple, str] = {}  # runs.model_signature -> fingerprint


def _read(path: Path) -> dict | None:
    global _file
    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = (str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)
    with _lock:
        if _file is not None and _file[0] == key:
            return _file[1]
    try:
        figure = storage.read_json(path, max_bytes=MAX_FILE_BYTES)
    except (OSError, ValueError):
        figure = None
    figure = figure if isinstance(figure, dict) and isinstance(figure.get("models"), dict) else None
    with _lock:
        _file = (key, figure)
    return figure


def _fingerprint(model_dir: Path) -> str | None:
    signature = (str(model_dir), runs.model_signature(model_dir))
    with _lock:
        known = _fingerprints.get(signature)
    if known is None:
        try:
            known = fingerprint(model_dir)
        except OSError:
            return None
        with _lock:
            if len(_fingerprints) > 64:
                _fingerprints.clear()
            _fingerprints[signature] = known
    return known


def shipped(model_dir, count: int, seed: int, primes_list, path=FILE) -> list[int] | None:
    """The shipped `divisible_counts` for this model and request, or None: no file, another
    count, seed or set of primes, or a model that is not the one the figure was computed from."""
    figure = _read(Path(path))
    if figure is None or (figure.get("samples"), figure.get("seed")) != (count, seed) \
            or figure.get("primes") != [int(p) for p in primes_list]:
        return None
    model_dir = Path(model_dir)
    for entry in figure["models"].values():
        if not isinstance(entry, dict):
            continue
        counts = entry.get("divisible")
        if (isinstance(counts, list) and len(counts) == len(figure["primes"])
                and all(type(c) is int and 0 <= c <= count for c in counts)
                and entry.get("fingerprint") == _fingerprint(model_dir)):
            return counts
    return None

