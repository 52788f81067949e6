"""Name → factory registry for every network in the book (timm-style).

Each variant is a one-line factory registered with :func:`register_model`; the
factories live in :mod:`se_res2net.models.networks` and :mod:`se_res2net.models.baselines` and
are imported lazily so that ``import se_res2net`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_MODEL_FACTORIES: Dict[str, Callable[..., Any]] = {}
_MODEL_FAMILY: Dict[str, str] = {}
# Modules whose import registers models; imported on first use of the registry.
_MODEL_MODULES = ("se_res2net.models.networks", "se_res2net.models.baselines")
_loaded = False


def register_model(family: str = "cifar") -> Callable[[F], F]:
    """Register a factory under its function name.

    ``family`` is ``"cifar"`` (32×32 input) or ``"imagenet"`` (224×224 input);
    the complexity tables and tests use it to pick the input resolution.
    A second factory with the same name is an error, never a silent override.
    """

    def decorator(fn: F) -> F:
        name = fn.__name__
        if name in _MODEL_FACTORIES:
            raise ValueError(
                f"model name {name!r} is already registered; give the new factory another name"
            )
        _MODEL_FACTORIES[name] = fn
        _MODEL_FAMILY[name] = family
        return fn

    return decorator


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        for module in _MODEL_MODULES:
            importlib.import_module(module)
        _loaded = True


def list_models(family: str | None = None) -> List[str]:
    """Sorted names of the registered models, optionally of one family."""
    _ensure_loaded()
    return sorted(n for n in _MODEL_FACTORIES if family is None or _MODEL_FAMILY[n] == family)


def model_family(name: str) -> str:
    """``"cifar"`` or ``"imagenet"`` for a registered model."""
    get_factory(name)
    return _MODEL_FAMILY[name]


def input_size(name: str) -> int:
    """The spatial input size the model's family is measured at."""
    return 224 if model_family(name) == "imagenet" else 32


def get_factory(name: str) -> Callable[..., Any]:
    _ensure_loaded()
    try:
        return _MODEL_FACTORIES[name]
    except KeyError:
        known = ", ".join(sorted(_MODEL_FACTORIES))
        raise ValueError(f"unknown model {name!r}; choose one of: {known}") from None


def create_model(name: str, **overrides: Any) -> Any:
    """Build a registered model; keyword arguments override its configuration."""
    return get_factory(name)(**overrides)
