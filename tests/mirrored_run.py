"""Helper for tests/test_distribute.py, run in a subprocess: `python tests/mirrored_run.py OUT_DIR`.

It splits the CPU into two logical devices (this must happen before TensorFlow initialises its
devices, hence a fresh process), trains each tiny config twice, on one device (`device="auto"`:
the default strategy) and under `MirroredStrategy` over the two CPU devices
(`device="mirrored"`), and prints one JSON object: per config, the largest differences between
the two runs' weights, optimiser state and EWC state, plus what the start events recorded.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from optimus.store import checkpoint, storage  # noqa: E402
from optimus.training.loop import train  # noqa: E402
from tests.helpers import tiny  # noqa: E402

# Dropout draws different masks per replica than over the whole batch, so the comparison turns
# it off. The seed config keeps latents small: its float32 generator outputs ~ latent, and
# near 1e6 a 1e-7 relative difference can move floor(x) to another integer (another label).
CONFIGS = {
    "default": tiny("default", disc_dropout=0.0),
    "seed": tiny("seed", disc_dropout=0.0, latent_hi=1000),
    # 45 latents: shards of 23 and 22 latents, and uneven discriminator shards too.
    "seed_uneven": tiny("seed", disc_dropout=0.0, latent_hi=1000, batch_size=45, min_batch=10),
}


def arrays(model_dir):
    ck = checkpoint.load(model_dir)
    out = {f"weights/{i}": w for i, w in enumerate(ck.generator.get_weights() + ck.discriminator.get_weights())}
    out.update({f"state/{k}": v for k, v in ck.state.items() if np.asarray(v).dtype.kind in "fi"})
    return out


def main(out_dir: Path) -> dict:
    result = {}
    for name, cfg in CONFIGS.items():
        runs = {}
        for device in ("auto", "mirrored"):
            d = out_dir / f"{name}-{device}"
            t0 = time.perf_counter()
            status = train(cfg, d, progress=False, log=lambda *_: None, device=device)
            start = [r for r in storage.read_jsonl(d / storage.RUNS) if r["event"] == "start"][-1]
            runs[device] = {"status": status["state"], "seconds": time.perf_counter() - t0,
                            "device": start.get("device"), "arrays": arrays(d),
                            "history": checkpoint.read_history(d)}
        a, b = runs["auto"]["arrays"], runs["mirrored"]["arrays"]
        worst = {"abs": 0.0, "excess": 0.0, "key": None}
        for key in a:
            x, y = np.asarray(a[key], np.float64), np.asarray(b[key], np.float64)
            diff = np.abs(x - y)
            excess = float(np.max(diff - (1e-5 + 1e-4 * np.abs(x)), initial=-np.inf))
            if excess > worst["excess"] or worst["key"] is None:
                worst = {"abs": float(diff.max(initial=0.0)), "excess": excess, "key": key}
        ha, hb = runs["auto"]["history"], runs["mirrored"]["history"]
        result[name] = {
            "same_keys": sorted(a) == sorted(b),
            "worst": worst,  # excess <= 0: every element within atol 1e-5 + rtol 1e-4
            "d_loss": [[h["d_loss"] for h in ha], [h["d_loss"] for h in hb]],
            "g_loss": [[h["g_loss"] for h in ha], [h["g_loss"] for h in hb]],
            "status": [runs["auto"]["status"], runs["mirrored"]["status"]],
            "device": [runs["auto"]["device"], runs["mirrored"]["device"]],
            "seconds": [runs["auto"]["seconds"], runs["mirrored"]["seconds"]],
        }
    # The shipped models continue under the mirrored strategy (loaded under its scope); --from
    # leaves them untouched. Their dropout differs per replica, so no comparison here.
    for name in ("default", "seed"):
        source = ROOT / "models" / name
        cfg = checkpoint.load_config(source).replace(batches=1, batch_size=64, steps=2, fisher_samples=16)
        status = train(cfg, out_dir / f"shipped-{name}", from_dir=source, progress=False, log=lambda *_: None,
                       device="mirrored")
        ck = checkpoint.load(out_dir / f"shipped-{name}")
        result[f"shipped_{name}"] = {
            "status": status["state"], "model_batches": status["model_batches"],
            "source_batches": checkpoint.saved_batches(source),
            "finite": all(np.all(np.isfinite(w)) for w in ck.generator.get_weights() + ck.discriminator.get_weights()),
        }
    # The GLN discriminator learns by local updates: refused under two replicas, before any file.
    try:
        train(tiny("default", discriminator="gln"), out_dir / "gln", progress=False, log=lambda *_: None,
              device="mirrored")
        result["gln_error"] = None
    except ValueError as exc:
        result["gln_error"] = str(exc)
    result["gln_dir_created"] = (out_dir / "gln").exists()
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
