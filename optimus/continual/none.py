""""none": plain fine-tuning, no protection (the lower bound every method must beat)."""

from __future__ import annotations

import numpy as np

from optimus.continual.base import ContinualMethod
from optimus.continual.ewc import TRAINING_MODES, convert_state
from optimus.continual.registry import register


@register
class NoMethod(ContinualMethod):
    name, summary, uses_lambda = "none", "plain fine-tuning: no protection", False
    options = {"gamma": 1.0}  # recorded only: its state file is EWC's "off" (see ewc.convert_state)

    def _scalars(self):
        return {**super()._scalars(), "gamma": np.array(self.options["gamma"], dtype=np.float64)}

    def _converted(self, state, mode):
        if mode not in TRAINING_MODES:
            return super()._converted(state, mode)
        return convert_state(state, self.mode, [tuple(v.shape) for v in self.variables])
