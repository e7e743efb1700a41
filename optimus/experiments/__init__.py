"""Experiments beyond one model.

* `forgetting`: the continual-learning benchmark (every registered method on one MLP);
* `background`: that benchmark as a background process with saved JSON results.
"""
