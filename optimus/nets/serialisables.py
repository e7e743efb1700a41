"""Every class a saved Optimus model can contain, registered with Keras in one place.

A `.keras` file names its custom classes ("optimus>SieveWindow"); `keras.saving.load_model`
finds them only if the module that registers them was imported in the loading process. So
every module that calls `keras.saving.register_keras_serializable` is listed here, and every
loader calls `register_all()` first (GLN models failed to load in any new process while the
loader imported `optimus.nets.layers` alone). `tests/test_networks.py` checks that this
list covers every registering module of the package.
"""

from __future__ import annotations

import importlib

MODULES = ("optimus.nets.layers", "optimus.nets.gln")


def register_all() -> None:
    for name in MODULES:
        importlib.import_module(name)
