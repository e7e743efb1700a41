"""The registry of continual-learning methods: name -> class. One file per method registers it."""

from __future__ import annotations

import importlib

_METHODS: dict[str, type] = {}


def register(cls):
    """Class decorator: make `cls` (a ContinualMethod subclass with a `name`) available by name."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _METHODS and _METHODS[cls.name] is not cls:
        raise ValueError(f"a continual-learning method named {cls.name!r} is already registered")
    _METHODS[cls.name] = cls
    return cls


# The built-in methods, one module each, in the order menus show them (a plugin registered
# elsewhere comes after them, in registration order).
BUILTINS = ("none", "ewc", "online-ewc", "l2", "si", "replay")
_MODULES = ("none", "ewc", "l2", "si", "replay")
# What `ewc_mode` (config.json files, --ewc-mode, train_ewc_mode= links written before the
# plugins) named: the mode -> the method.
LEGACY_EWC_MODES = {"separate": "ewc", "online": "online-ewc", "off": "none"}


def names() -> tuple[str, ...]:
    """Every registered method: the built-ins in BUILTINS order, then the others as registered."""
    _load_builtins()
    return BUILTINS + tuple(n for n in _METHODS if n not in BUILTINS)


def get(name: str) -> type:
    _load_builtins()
    if name not in _METHODS:
        raise ValueError(f"unknown continual-learning method {name!r}; choose from {', '.join(names())}")
    return _METHODS[name]


def create(name: str, learner, lam: float = 1.0, **options):
    """A new method `name` protecting `learner` (a base.Learner)."""
    return get(name)(learner, lam=lam, **options)


def _load_builtins() -> None:
    # The built-in methods register on import. They import TensorFlow only when a method is
    # built, so the config check and the pages can list them without it.
    for module in _MODULES:
        importlib.import_module(f"optimus.continual.{module}")


def unregister(name: str) -> None:
    """Remove a method registered at run time (a test's example plugin); built-ins stay."""
    if name in BUILTINS:
        raise ValueError(f"{name!r} is a built-in continual-learning method")
    _METHODS.pop(name, None)
