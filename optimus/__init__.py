"""Optimus: a deep-learning lab for prime numbers.

The folder tree is the architecture; dependencies point down this list, never up:

* `primes/`: number theory, exact and in NumPy (sieves, primality, counting, density);
* `nets/`: the networks: registered Keras layers, the generator and discriminators, encodings, GLN;
* `sampling/`: drawing from a trained generator: the learned sieve's NumPy tables, any size;
* `evaluation/`: every reported figure (`metrics`) and a model's evaluation report;
* `continual/`: continual-learning methods as plugins, their registry and the Fisher information;
* `training/`: the GAN, the one-graph online batch, the loop, its callbacks, tf.distribute;
* `store/`: model directories on disk: atomic checkpoints, file primitives, run discovery/launch;
* `experiments/`: the forgetting benchmark and its background runs;
* `app/`: the Streamlit pages, charts and URL state; `bench/`: `python -m optimus bench`.

Beside them: `config` (TrainConfig and presets), `limits` (every per-request bound), `validate`
(the one integer parser and input checks) and `cli`. Importing the package is cheap: nothing
here imports TensorFlow or Streamlit.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# Module paths before the subpackages (0.1.0 and earlier sessions' scripts and notebooks): an
# old path imports the module at its new home, under both names (one module object, so state
# and monkeypatching are shared).
MOVED = {
    "anysize": "sampling.anysize",
    "metrics": "evaluation.metrics", "layers": "nets.layers", "models": "nets.networks",
    "encoding": "nets.encoding", "gln": "nets.gln", "serialisables": "nets.serialisables",
    "gan": "training.gan", "online_batch": "training.online_batch", "callbacks": "training.callbacks",
    "distribute": "training.distribute", "fisher": "continual.fisher", "checkpoint": "store.checkpoint",
    "storage": "store.storage", "runs": "store.runs", "forgetting": "experiments.forgetting",
    "benchmark_runs": "experiments.background", "charts": "app.charts",
    "charts_continual": "app.charts_continual", "overlays": "app.overlays",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        head, _, tail = fullname.partition(".")
        if head == __name__ and tail in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(f"{__name__}.{MOVED[spec.name.partition('.')[2]]}")

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _MovedFinder())
