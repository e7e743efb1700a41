"""Continual-learning methods as plugins: one file and one registry entry each.

    from optimus import continual
    method = continual.create("ewc", continual.Learner(variables, log_likelihood), lam=1.0)

See `base.ContinualMethod` for the interface and README "Add a continual-learning method".
"""

from optimus.continual.base import ContinualMethod, Learner
from optimus.continual.registry import create, get, names, register, unregister

__all__ = ["ContinualMethod", "Learner", "create", "get", "names", "register", "unregister", "from_config"]


def from_config(cfg, learner):
    """The continual-learning method a TrainConfig names (`cfg.method`), protecting `learner`."""
    return create(cfg.method, learner, lam=cfg.ewc_lambda, gamma=cfg.ewc_gamma)
