"""Continual-learning methods as plugins: one file and one registry entry each.

    from optimus import continual
    method = continual.create("ewc", continual.Learner(variables, log_likelihood), lam=1.0)

See `base.ContinualMethod` for the interface and README "Add a continual-learning method".
"""

from optimus.continual.base import ContinualMethod, Learner
from optimus.continual.registry import LEGACY_EWC_MODES, create, get, names, register, unregister

__all__ = ["LEGACY_EWC_MODES", "ContinualMethod", "Learner", "create", "get", "names", "register", "unregister", "from_config"]


def from_config(cfg, learner):
    """The continual-learning method a TrainConfig names (`cfg.method`, with its strength
    `cfg.method_lambda` and online EWC's decay `cfg.method_gamma`), protecting `learner`."""
    return create(cfg.method, learner, lam=cfg.method_lambda, gamma=cfg.method_gamma)
