"""Continual-learning methods as plugins: one file and one registry entry each.

    from optimus import continual
    method = continual.create("ewc", continual.Learner(variables, log_likelihood), lam=1.0)

See `base.ContinualMethod` for the interface and README "Add a continual-learning method".
"""

from optimus.continual.base import ContinualMethod, Learner
from optimus.continual.registry import create, get, names, register

__all__ = ["ContinualMethod", "Learner", "create", "get", "names", "register", "from_config"]

# TrainConfig.ewc_mode -> the method the GAN trainer runs (until the config names it itself).
_EWC_MODE_METHODS = {"separate": "ewc", "online": "online-ewc", "off": "none"}


def method_name(cfg) -> str:
    """The registry name of the continual-learning method a TrainConfig asks for."""
    return getattr(cfg, "method", None) or _EWC_MODE_METHODS[cfg.ewc_mode]


def from_config(cfg, learner):
    """The continual-learning method of a TrainConfig, protecting `learner`."""
    return create(method_name(cfg), learner, lam=cfg.ewc_lambda, gamma=cfg.ewc_gamma)
