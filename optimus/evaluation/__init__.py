"""What a model is worth, measured against exact primality.

* `metrics`: every reported figure (classification metrics, `generator_report`, the lift's
  `magnitude_matched_baseline`, ACC/BWT/forgetting), NumPy only;
* `report`: sampling a model, classifying, the evaluation report (`load_models`, `sample`,
  `discriminate`, `evaluate`).
"""

from optimus.evaluation.report import (
    Models,
    discriminate,
    discriminator_report,
    evaluate,
    load_models,
    parse_integers,
    sample,
)

__all__ = ["Models", "discriminate", "discriminator_report", "evaluate", "load_models",
           "parse_integers", "sample"]
