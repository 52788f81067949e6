"""SE-Res2Net: an executable audit of the SE-Res2Net CIFAR-10 report.

Importing the package is cheap: torch and the model modules load on first use,
so ``from se_res2net import se_res2net29`` and ``se_res2net.create_model(...)``
work while ``import se_res2net`` alone does not import torch.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .models.registry import create_model, input_size, list_models, model_family, register_model

__all__ = [
    "__version__",
    "create_model",
    "list_models",
    "model_family",
    "input_size",
    "register_model",
]


def __getattr__(name: str) -> Any:
    # Submodules first (``from se_res2net import audit`` must not load torch), then, lazily,
    # every registered model factory as a package attribute.
    import importlib
    import importlib.util

    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    from .models import registry

    registry._ensure_loaded()
    if name in registry._MODEL_FACTORIES:
        return registry._MODEL_FACTORIES[name]
    raise AttributeError(f"module 'se_res2net' has no attribute {name!r}")
