"""Checkpoints: what a model is, how it was trained, and where training stopped.

A checkpoint is a ``torch.save``-d dict with a schema tag, the registered model
name and its keyword overrides (enough to rebuild the network), the training
config, the epoch reached and the full optimiser / RNG state for ``--resume``.
Loading checks all of that and names the mismatch instead of failing deep
inside ``load_state_dict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

from .atomic import PathLike, atomic_save

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

SCHEMA = "se_res2net.checkpoint/1"


def save_checkpoint(path: PathLike, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` atomically. It must hold ``model``, ``model_kwargs``, ``state_dict`` and ``epoch``."""
    import torch

    missing = [k for k in ("model", "model_kwargs", "state_dict", "epoch") if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    data = dict(payload)
    data["schema"] = SCHEMA
    atomic_save(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint(
    path: PathLike,
    *,
    expect_model: Optional[str] = None,
    expect_config: Optional[Mapping[str, Any]] = None,
    config_keys: Tuple[str, ...] = (),
    map_location: str = "cpu",
) -> Dict[str, Any]:
    """Load and validate a checkpoint.

    ``expect_model`` / ``expect_config`` (compared on ``config_keys``) guard
    ``--resume`` against continuing another run's checkpoint.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist; pass the path of a .pt file written by 'se-res2net train'")
    try:
        # weights_only=True: a checkpoint is data, never code to execute.
        data = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not a torch file at all
        raise ValueError(f"checkpoint {p} cannot be read ({type(exc).__name__}: {exc}); it is corrupt or not a checkpoint — delete it or retrain") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{p} is not a se_res2net checkpoint (schema {SCHEMA!r} expected); use a file written by 'se-res2net train'")
    if expect_model is not None and data["model"] != expect_model:
        raise ValueError(
            f"checkpoint {p} is of model {data['model']!r}, not {expect_model!r}; "
            "use another --out directory or --force to start afresh"
        )
    if expect_config is not None:
        saved = data.get("config", {})
        diff = {k: (saved.get(k), expect_config.get(k)) for k in config_keys if saved.get(k) != expect_config.get(k)}
        if diff:
            details = ", ".join(f"{k}: checkpoint={a!r} now={b!r}" for k, (a, b) in diff.items())
            raise ValueError(
                f"checkpoint {p} was written with another configuration ({details}); "
                "resume with the same settings, or use --force to start afresh"
            )
    return data


def load_model_from_checkpoint(path: PathLike, device: str = "cpu") -> "Tuple[nn.Module, Dict[str, Any]]":
    """Rebuild the registered model of a checkpoint and load its weights (eval mode)."""
    from ..models.registry import create_model

    data = load_checkpoint(path, map_location=device)
    model = create_model(data["model"], **data.get("model_kwargs", {}))
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not fit model {data['model']!r}: {str(exc).splitlines()[0]}") from None
    model.to(device).eval()
    return model, data
