"""Elastic Weight Consolidation, separate ("ewc") and online ("online-ewc").

EWC (Kirkpatrick et al. 2017) keeps a network from forgetting an old task by pulling each
weight back towards the value it had after that task, in proportion to how much the task's
log-likelihood depends on it: the diagonal of the Fisher information (optimus.continual.fisher:
per-sample, vectorised). Options follow Avalanche's `EWCPlugin`, made explicit:

- "ewc" (mode "separate"): one penalty per past task, sum_t lam/2 sum_i F_t,i (theta_i - theta*_t,i)^2.
- "online-ewc" (mode "online", Schwarz et al. 2018): one running importance F <- gamma F + F_t
  and one anchor, the weights after the latest task.

`after_task(*tensors)` computes the Fisher of the learner's log-likelihood on the task's
sample; `consolidate(fisher)` takes importances computed elsewhere. State files keep the
format written before the plugins ("mode", "tasks_seen", "variables", "lam", "gamma" and the
arrays below), so shipped models' state.npz load unchanged, and `convert_state` carries a model
between "separate", "online" and "off" ("none").
"""

from __future__ import annotations

import numpy as np

from optimus.continual.base import ContinualMethod
from optimus.continual.registry import LEGACY_EWC_MODES, create, register

TRAINING_MODES = ("separate", "online", "off")  # the state modes convert_state moves between


class _EWCBase(ContinualMethod):
    options = {"gamma": 1.0}  # online EWC's decay of the running importance, in (0, 1]

    def __init__(self, learner, lam: float = 1.0, **options):
        super().__init__(learner, lam=lam, **options)
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        gamma = float(self.options["gamma"])
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"EWC gamma must be in (0, 1], got {gamma}")
        self._gamma = tf.Variable(gamma, dtype=tf.float64, trainable=False, name="ewc_gamma")

    @property
    def gamma(self) -> float:
        return float(self._gamma.numpy())

    def _scalars(self):
        return {**super()._scalars(), "gamma": np.array(self.gamma, dtype=np.float64)}

    def _converted(self, state, mode):
        if mode not in TRAINING_MODES:
            return super()._converted(state, mode)
        return convert_state(state, self.mode, [tuple(v.shape) for v in self.variables])

    def after_task(self, *tensors) -> None:
        from optimus.continual.fisher import fisher_diagonal  # imports TensorFlow: as above

        if self.learner.log_likelihood is None:
            raise ValueError(f"{self.name} needs the learner's log_likelihood for its Fisher "
                             "(or call consolidate(fisher) with importances)")
        self.consolidate(fisher_diagonal(self.learner.log_likelihood, self.variables, *tensors,
                                         dense_layers=self.learner.dense_layers))

    def consolidate(self, fisher) -> None:
        """End a task: anchor the current values of the variables with importances `fisher`
        (one tensor per variable, as `optimus.continual.fisher.fisher_diagonal` returns)."""
        if fisher is None or len(fisher) != len(self.variables):
            got = "None" if fisher is None else f"{len(fisher)} tensors"
            raise ValueError(f"EWC consolidate: need one Fisher tensor per variable ({len(self.variables)}), got {got}")
        for i, (f, v) in enumerate(zip(fisher, self.variables, strict=True)):
            if tuple(f.shape) != tuple(v.shape):
                raise ValueError(f"EWC consolidate: fisher {i} has shape {tuple(f.shape)} but variable has {tuple(v.shape)}")
        self._consolidate(fisher)
        super().after_task()


@register
class EWC(_EWCBase):
    name, summary = "ewc", "EWC: one quadratic penalty per past task (Kirkpatrick et al. 2017)"

    def __init__(self, learner, lam: float = 1.0, **options):
        super().__init__(learner, lam=lam, **options)
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        # Three exact running sums in float64 (see `penalty` for why float64):
        #   A = sum_t F_t, B = sum_t F_t theta*_t, C = sum_t F_t theta*_t^2,
        # plus two things derived from them at each consolidate: the importance-weighted mean
        # anchor mu = B / A and the constant K = sum(C - B^2 / A) >= 0.
        self._sum_f = self._per_variable("ewc_fisher", tf.float64)
        self._sum_f_anchor = self._per_variable("ewc_fisher_anchor", tf.float64)
        self._sum_f_anchor_sq = self._per_variable("ewc_fisher_anchor_sq", tf.float64)
        self._mean_anchor = self._per_variable("ewc_mean_anchor", tf.float64)
        self._constant = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="ewc_constant")

    def _arrays(self):
        """`fisher_i` is the summed importance A, `fisher_anchor_i` and `fisher_anchor_sq_i` are B and C."""
        names = {}
        for i in range(len(self.variables)):
            names[f"fisher_{i}"] = self._sum_f[i]
            names[f"fisher_anchor_{i}"] = self._sum_f_anchor[i]
            names[f"fisher_anchor_sq_{i}"] = self._sum_f_anchor_sq[i]
        return names

    def _consolidate(self, fisher) -> None:
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        for f, v, a, b, c in zip(fisher, self.variables, self._sum_f, self._sum_f_anchor, self._sum_f_anchor_sq, strict=True):
            f = tf.cast(f, tf.float64)
            theta = tf.cast(v, tf.float64)
            a.assign_add(f)
            b.assign_add(f * theta)
            c.assign_add(f * tf.square(theta))
        self._loaded()

    def _loaded(self) -> None:
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        constant = tf.constant(0.0, tf.float64)
        for a, b, c, mu in zip(self._sum_f, self._sum_f_anchor, self._sum_f_anchor_sq, self._mean_anchor, strict=True):
            mean = tf.math.divide_no_nan(b, a)
            mu.assign(mean)
            # C - B^2/A = sum_t F_t (theta*_t - mu)^2 >= 0 exactly; rounding can make it a hair
            # negative, hence the clamp per element.
            constant += tf.reduce_sum(tf.maximum(c - b * mean, 0.0))
        self._constant.assign(constant)

    def penalty(self):
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        if not self.variables:
            return tf.zeros([], self.dtype)
        # Numerical note. The sum over tasks is sum(A theta^2 - 2 B theta + C). Evaluated as
        # written it cancels catastrophically (three large terms, small difference), so the
        # value is computed in the completed-square form sum(A (theta - mu)^2) + K, which is
        # >= 0 by construction, while the gradient is taken from the expanded form, so it is
        # exactly lam (A theta - B). Sums are float64: after thousands of tasks A, B, C keep
        # ~16 digits where float32 would keep 7. Memory stays 4 float64 arrays per variable.
        expanded = tf.constant(0.0, tf.float64)
        completed = tf.identity(self._constant)
        for v, a, b, c, mu in zip(self.variables, self._sum_f, self._sum_f_anchor, self._sum_f_anchor_sq, self._mean_anchor, strict=True):
            theta = tf.cast(v, tf.float64)
            expanded += tf.reduce_sum(a * tf.square(theta) - 2.0 * b * theta + c)
            completed += tf.reduce_sum(a * tf.square(theta - mu))
        total = expanded + tf.stop_gradient(completed - expanded)
        return tf.cast(0.5 * self._lam * total, self.dtype)


@register
class OnlineEWC(_EWCBase):
    name, summary = "online-ewc", "online EWC: one running importance (Schwarz et al. 2018)"

    def __init__(self, learner, lam: float = 1.0, **options):
        super().__init__(learner, lam=lam, **options)
        self._fisher = self._per_variable("ewc_fisher")
        self._anchor = self._per_variable("ewc_anchor")

    def _arrays(self):
        names = {}
        for i in range(len(self.variables)):
            names[f"fisher_{i}"] = self._fisher[i]
            names[f"anchor_{i}"] = self._anchor[i]
        return names

    def _consolidate(self, fisher) -> None:
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        for f, v, running, anchor in zip(fisher, self.variables, self._fisher, self._anchor, strict=True):
            running.assign(tf.cast(self._gamma, running.dtype) * running + tf.cast(f, running.dtype))
            anchor.assign(v)

    def penalty(self):
        import tensorflow as tf  # TensorFlow on first use: the registry lists methods in TF-free processes (base.py)

        if not self.variables:
            return tf.zeros([], self.dtype)
        total = tf.add_n([tf.reduce_sum(tf.cast(f * tf.square(v - anchor), tf.float64))
                          for v, f, anchor in zip(self.variables, self._fisher, self._anchor, strict=True)])
        return tf.cast(0.5 * self._lam * total, self.dtype)


def ewc_for_mode(variables, mode: str = "separate", lam: float = 1.0, gamma: float = 1.0) -> ContinualMethod:
    """The method an older `ewc_mode` named ("separate", "online", "off"), over bare variables
    (importances given to `consolidate`): how the tests written against the old EWC class,
    and code reading an old config, name it."""
    if mode not in LEGACY_EWC_MODES:
        raise ValueError(f"unknown EWC mode {mode!r}; choose from {', '.join(LEGACY_EWC_MODES)}")
    return create(LEGACY_EWC_MODES[mode], list(variables), lam=lam, gamma=gamma)


def convert_state(state, mode: str, shapes: list[tuple]) -> dict[str, np.ndarray]:
    """An EWC state of one mode ("separate", "online", "off") as the state of another, so a
    model trained with one method continues with another (`shapes`: the variables' shapes, for
    "off" -> on).

    The rule:
    - separate -> online: importance F = A = sum_t F_t and anchor mu = B / A = sum_t F_t theta*_t
      / sum_t F_t. "separate" keeps only these sums, not each task's Fisher or the latest anchor,
      and with them the online penalty sum F (theta - mu)^2 equals the separate penalty minus
      its constant K, so the penalty's gradient, all that training sees, is exactly the same at
      the switch; from then on F decays by gamma per task.
    - online -> separate: one past task with Fisher F and anchor theta* (A = F, B = F theta*,
      C = F theta*^2): the same penalty, exactly.
    - anything -> off: nothing is kept ("off" has no penalty and no arrays); the task count stays.
    - off -> separate or online: a fresh start (zero importance: no penalty until the next
      consolidate); the task count stays.
    tasks_seen, lam and gamma carry over unchanged (lam and gamma come from the run's config).
    """
    def get(key):
        if key not in state:
            raise ValueError(f"EWC state: missing {key!r}")
        return np.asarray(state[key])

    source = str(get("mode"))
    for m in (source, mode):
        if m not in TRAINING_MODES:
            raise ValueError(f"EWC state: mode is {source!r}, which cannot become {mode!r} "
                             "(a model continues under another method only between ewc, online-ewc and none)")
    count = int(get("variables"))
    if count != len(shapes):
        raise ValueError(f"EWC state: {count} variables but this method has {len(shapes)}")
    out = {k: get(k) for k in ("tasks_seen", "variables", "lam", "gamma")}
    out["mode"] = np.array(mode)
    if mode == "off":
        return out
    importance, anchor = [], []
    for i, shape in enumerate(shapes):
        if source == "separate":
            a = get(f"fisher_{i}").astype(np.float64)
            b = get(f"fisher_anchor_{i}").astype(np.float64)
            importance.append(a)
            anchor.append(np.divide(b, a, out=np.zeros_like(a), where=a > 0))
        elif source == "online":
            importance.append(get(f"fisher_{i}").astype(np.float64))
            anchor.append(get(f"anchor_{i}").astype(np.float64))
        else:  # off: a fresh start
            importance.append(np.zeros(shape))
            anchor.append(np.zeros(shape))
    for i, (f, theta) in enumerate(zip(importance, anchor, strict=True)):
        if mode == "online":
            out[f"fisher_{i}"], out[f"anchor_{i}"] = f, theta
        else:
            out[f"fisher_{i}"], out[f"fisher_anchor_{i}"], out[f"fisher_anchor_sq_{i}"] = f, f * theta, f * theta**2
    return out
