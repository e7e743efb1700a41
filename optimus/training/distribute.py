"""Which devices a training run uses: `--device` turned into a `tf.distribute.Strategy`.

| device | strategy |
| --- | --- |
| `auto` (default) | `MirroredStrategy` over every GPU when there is more than one, else the default strategy (one GPU if there is one, else the CPU) |
| `cpu` | the default strategy with GPUs hidden (or pinned to `/cpu:0` when TensorFlow already started on them) |
| `gpu` | the default strategy on the first GPU; a one-line error when no GPU is visible |
| `mirrored` | `MirroredStrategy` over every GPU of this machine (over every logical CPU device when there is no GPU) |
| `multiworker` | `MultiWorkerMirroredStrategy` across machines, configured by the `TF_CONFIG` environment variable |

The training loop (`optimus.training.loop`) creates every variable (networks, optimisers,
continual-learning state) under `strategy.scope()`; the GAN (`optimus.training.gan.PrimeGAN`) runs each
step with `strategy.run` on per-replica shards of the batch (`shard`) and scales the
per-replica losses with `tf.nn.compute_average_loss` / `tf.nn.scale_regularization_loss`, so
the gradients Keras sums across replicas equal the single-device gradient. The GLN discriminator learns by local updates
(`BernoulliGLN.update`), outside any gradient, so it trains on one replica only: `auto` keeps it
on one device and `mirrored`/`multiworker` refuse it.

Resolve the strategy before TensorFlow touches a device: hiding GPUs (`cpu`) only works then.
"""

from __future__ import annotations

import json
import os

DEVICES = ("auto", "cpu", "gpu", "mirrored", "multiworker")


# One strategy per device set and process: two MirroredStrategy objects over the same devices
# would issue collectives with clashing keys (and a second MultiWorkerMirroredStrategy cannot
# be created at all once the first has started its server).
_STRATEGIES: dict = {}


def _tf():
    import tensorflow as tf  # TensorFlow on first use: the CLI reads DEVICES in every command

    return tf


def _cached(key, make):
    if key not in _STRATEGIES:
        _STRATEGIES[key] = make()
    return _STRATEGIES[key]


def strategy_for(device="auto", *, local_updates: bool = False):
    """The `tf.distribute.Strategy` for a `--device` choice (a Strategy passes through).

    `local_updates`: the model trains by local updates that cannot be mirrored (the GLN
    discriminator): `auto` then stays on one device, and a strategy with more than one
    replica is refused with a ValueError.
    """
    tf = _tf()
    if isinstance(device, tf.distribute.Strategy):
        strategy = device
    elif device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    elif device == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1 and not local_updates:
            names = tuple(d.name for d in gpus)
            strategy = _cached(("mirrored", names), lambda: tf.distribute.MirroredStrategy(list(names)))
        else:
            strategy = tf.distribute.get_strategy()
    elif device == "cpu":
        strategy = _cpu_strategy(tf)
    elif device == "gpu":
        if not tf.config.list_physical_devices("GPU"):
            raise ValueError("--device gpu: TensorFlow sees no GPU on this machine "
                             "(tf.config.list_physical_devices('GPU') is empty); use --device cpu or auto")
        strategy = tf.distribute.get_strategy()
    elif device == "mirrored":
        names = tuple(d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))
        strategy = _cached(("mirrored", names), lambda: tf.distribute.MirroredStrategy(list(names)))
    else:  # multiworker
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--device multiworker needs the TF_CONFIG environment variable on every worker "
                             "(README: 'More than one device, more than one machine')")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"TF_CONFIG is not valid JSON ({exc})") from None
        strategy = _cached(("multiworker",), tf.distribute.MultiWorkerMirroredStrategy)
    if local_updates and strategy.num_replicas_in_sync > 1:
        raise ValueError(
            f"the GLN discriminator learns by local updates on one replica and cannot be mirrored over "
            f"{strategy.num_replicas_in_sync} replicas; use --device auto, cpu or gpu"
        )
    return strategy


def _cpu_strategy(tf):
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices (an app or a test process)
        if tf.config.list_logical_devices("GPU"):
            return _cached(("one", "/cpu:0"), lambda: tf.distribute.OneDeviceStrategy("/cpu:0"))
    return tf.distribute.get_strategy()


def is_default(strategy) -> bool:
    """True for TensorFlow's default (no-op) strategy: one device, no distribution machinery."""
    tf = _tf()
    return strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy()


def _cluster(strategy):
    tf = _tf()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None
    resolver = strategy.cluster_resolver
    if resolver is None or resolver.task_type is None:
        return None
    return resolver


def num_workers(strategy) -> int:
    """Machines (processes) taking part in the strategy: 1 unless multi-worker."""
    resolver = _cluster(strategy)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("chief", [])) + len(spec.get("worker", [])))


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints and history (TF's rule: the `chief` task, or
    worker 0 when the cluster has no `chief`)."""
    resolver = _cluster(strategy)
    if resolver is None:
        return True
    return is_chief_task(resolver.task_type, resolver.task_id, resolver.cluster_spec().as_dict())


def is_chief_task(task_type, task_id, cluster: dict) -> bool:
    """TF's rule for the task that writes: `chief` if the cluster has one, else worker 0."""
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and int(task_id or 0) == 0 and "chief" not in cluster


def describe(strategy, requested) -> dict:
    """What a run's start event records about its devices (never stored in config.json, so a
    model trained on one machine resumes on any other)."""
    tf = _tf()
    resolver = _cluster(strategy)
    try:
        devices = list(strategy.extended.worker_devices)
    except (AttributeError, RuntimeError, NotImplementedError):  # the default strategy has none
        devices = []
    if not devices:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [gpus[0].name] if gpus else ["/device:CPU:0"]
    return {
        "requested": requested if isinstance(requested, str) else type(requested).__name__,
        "strategy": ("default" if is_default(strategy) else "MultiWorkerMirroredStrategy"
                     if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) else type(strategy).__name__),
        "replicas": int(strategy.num_replicas_in_sync),
        "workers": num_workers(strategy),
        "task": None if resolver is None else f"{resolver.task_type}:{resolver.task_id}",
        "devices": [str(d) for d in devices],
    }


def split_sizes(total: int, parts: int) -> list[int]:
    """Contiguous shard sizes of `total` rows over `parts` replicas (as np.array_split)."""
    base, extra = divmod(int(total), int(parts))
    return [base + (1 if i < extra else 0) for i in range(parts)]


def shard(strategy, tensors, sizes):
    """Per-replica values: replica r gets rows [sum(sizes[:r]) * k, sum(sizes[:r+1]) * k) of each
    tensor, where k = rows / sum(sizes) (so the sieve's candidate rows follow their latents)."""
    tf = _tf()
    total = sum(sizes)
    starts = [sum(sizes[:r]) for r in range(len(sizes))]
    out = []
    for t in tensors:
        t = tf.convert_to_tensor(t)
        k = int(t.shape[0]) // total
        if k * total != int(t.shape[0]):
            raise ValueError(f"cannot shard {int(t.shape[0])} rows over {total} rows of batch")

        def value_fn(ctx, t=t, k=k):
            r = ctx.replica_id_in_sync_group
            return tf.identity(t[starts[r] * k : (starts[r] + sizes[r]) * k])

        out.append(strategy.experimental_distribute_values_from_function(value_fn))
    return tuple(out)


def any_worker(strategy, flag: bool) -> bool:
    """True on every worker when `flag` is true on any (a stop request reaches them all, so all
    workers run the same number of steps; otherwise the collectives would hang)."""
    if num_workers(strategy) <= 1:
        return bool(flag)
    tf = _tf()
    agree = _AGREE.get(id(strategy))
    if agree is None:
        @tf.function
        def agree(x):  # in a tf.function: eager collectives are slow
            return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.identity, args=(x,)), axis=None)

        _AGREE[id(strategy)] = agree
    return float(agree(tf.constant(1.0 if flag else 0.0))) > 0.0


_AGREE: dict = {}
