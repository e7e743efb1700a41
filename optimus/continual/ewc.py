"""EWC (separate and online), L2 and "none" as plugins: a TEMPORARY adapter over optimus.ewc.EWC.

To be replaced by the real one-file-per-method implementations (issue 13)."""

from __future__ import annotations

from optimus.continual.base import ContinualMethod
from optimus.continual.registry import register


class _EWCAdapter(ContinualMethod):
    mode = "separate"
    needs_fisher = True

    def __init__(self, learner, lam: float = 1.0, gamma: float = 1.0, **options):
        super().__init__(learner, lam=lam)
        from optimus.ewc import EWC

        self._ewc = EWC(self.variables, mode=self.mode, lam=lam, gamma=gamma)

    @property
    def lam(self):
        return self._ewc.lam

    @lam.setter
    def lam(self, value):
        self._ewc.lam = value

    def penalty(self):
        return self._ewc.penalty()

    def after_task(self, *tensors) -> None:
        from optimus.ewc import fisher_diagonal

        fisher = None
        if self.needs_fisher:
            fisher = fisher_diagonal(self.learner.log_likelihood, self._ewc.variables, *tensors,
                                     dense_layers=self.learner.dense_layers)
        self._ewc.consolidate(fisher)

    def state(self):
        return self._ewc.state()

    def load_state(self, state) -> None:
        self._ewc.load_state(state)

    def reset(self) -> None:
        self._ewc.reset()


@register
class EWCSeparate(_EWCAdapter):
    name, summary, mode = "ewc", "EWC: one quadratic penalty per past task (Kirkpatrick et al. 2017)", "separate"


@register
class OnlineEWC(_EWCAdapter):
    name, summary, mode = "online-ewc", "online EWC: one running importance (Schwarz et al. 2018)", "online"


@register
class L2(_EWCAdapter):
    name, summary, mode, needs_fisher = "l2", "L2 pull towards the weights after the last task", "l2", False


@register
class NoMethod(_EWCAdapter):
    name, summary, mode, needs_fisher, uses_lambda = "none", "plain fine-tuning: no protection", "off", False, False
