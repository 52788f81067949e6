"""Checkpoints: what a model is, how it was trained, and where training stopped.

A checkpoint is a ``torch.save``-d dict with a schema tag, the registered model
name and its keyword overrides (enough to rebuild the network), the training
config, the epoch reached and the full optimiser / RNG state for ``--resume``.
Loading checks all of that and names the mismatch instead of failing deep
inside ``load_state_dict``.

A checkpoint can also be stored *compacted* (:func:`compact_checkpoint`): the same payload, bit for bit, 17–19 %
smaller on this project's checkpoints (measured: benchmarks/NOTES.md, stop 38), so that more unfinished runs fit
under the repository's size limit and can resume in a later session. Floats are incompressible as they are. Split into byte planes, the plane holding the sign and the
high exponent bits compresses well (trained weights and momenta span few binades), the three mantissa planes
hardly at all. So the compacted file is a ``torch.save``-d dict like any other checkpoint, whose ``blob`` is the
LZMA-compressed ``torch.save`` of the payload, each float tensor in it stored as its byte planes. This is the
byte-shuffle filter of HDF5/Blosc; :func:`load_checkpoint` reads either form.
"""

from __future__ import annotations

import io
import lzma
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Tuple

from .atomic import PathLike, atomic_save, atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

SCHEMA = "se_res2net.checkpoint/1"
# the container of a compacted checkpoint (its ``container`` field), and the tag of a float tensor in it
COMPACT = "byte-planes+lzma/1"
_PLANES = "__byte_planes__"


def save_checkpoint(path: PathLike, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` atomically. It must hold ``model``, ``model_kwargs``, ``state_dict`` and ``epoch``."""
    import torch

    missing = [k for k in ("model", "model_kwargs", "state_dict", "epoch") if k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    data = dict(payload)
    data["schema"] = SCHEMA
    atomic_save(path, lambda tmp: torch.save(data, tmp))


def _read(p: Path, map_location: str, expand: Any = None) -> Any:
    """The ``torch.load``-ed content of ``p`` (expanded by ``expand`` when given), or one clear error."""
    import torch

    try:
        # weights_only=True: a checkpoint is data, never code to execute.
        data = torch.load(p, map_location=map_location, weights_only=True)
        return expand(data, map_location) if expand is not None else data
    except Exception as exc:  # corrupt, truncated, or not a torch file at all
        raise ValueError(f"checkpoint {p} cannot be read ({type(exc).__name__}: {exc}); it is corrupt or not a checkpoint — delete it or retrain") from None


def _checked(data: Any, p: Path) -> Dict[str, Any]:
    """``data`` (a loaded payload) when it carries this project's checkpoint schema, else one clear error."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{p} is not a se_res2net checkpoint (schema {SCHEMA!r} expected); use a file written by 'se-res2net train'")
    return data


def load_checkpoint(
    path: PathLike,
    *,
    expect_model: Optional[str] = None,
    expect_config: Optional[Mapping[str, Any]] = None,
    config_keys: Tuple[str, ...] = (),
    fixes: Optional[Mapping[str, Callable[[Any, Any], str]]] = None,
    map_location: str = "cpu",
) -> Dict[str, Any]:
    """Load and validate a checkpoint.

    ``expect_model`` / ``expect_config`` (compared on ``config_keys``) guard
    ``--resume`` against continuing another run's checkpoint; ``fixes[key](checkpoint_value, current_value)`` names, for a
    key whose mismatch has a fix better than "the same settings", that fix (added to the error).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist; pass the path of a .pt file written by 'se-res2net train'")
    data = _checked(_read(p, map_location, _expand), p)
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
            named = [fixes[k](a, b) for k, (a, b) in diff.items() if fixes and k in fixes]
            raise ValueError(
                f"checkpoint {p} was written with another configuration ({details}); "
                + "".join(f"{fix}; " for fix in named)
                + "resume with the same settings, or use --force to start afresh"
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


# --------------------------------------------------------------------------------------------------
# Compacted checkpoints: lossless, for the repository's size limit
# --------------------------------------------------------------------------------------------------


def _to_planes(obj: Any) -> Any:
    """``obj`` with every float tensor replaced by its byte planes (plane ``k`` = byte ``k`` of every element)."""
    import torch

    if isinstance(obj, torch.Tensor):
        if not obj.is_floating_point() or obj.element_size() == 1:
            return obj.detach().cpu()
        flat = obj.detach().cpu().contiguous().reshape(-1)
        planes = flat.view(torch.uint8).reshape(-1, obj.element_size()).t().contiguous()
        return {_PLANES: 1, "dtype": str(obj.dtype).removeprefix("torch."), "shape": list(obj.shape), "planes": planes}
    if isinstance(obj, dict):
        return {k: _to_planes(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_planes(v) for v in obj)
    return obj


def _from_planes(obj: Any) -> Any:
    import torch

    if isinstance(obj, dict):
        if obj.get(_PLANES) == 1:
            dtype = getattr(torch, obj["dtype"])
            return obj["planes"].t().contiguous().view(dtype).reshape(obj["shape"])
        return {k: _from_planes(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_from_planes(v) for v in obj)
    return obj


def _expand(packed: Any, map_location: str) -> Any:
    """The payload of a compacted checkpoint; anything else as it is."""
    import torch

    if not _is_compact(packed):
        return packed
    raw = lzma.decompress(packed["blob"].cpu().numpy().tobytes())
    return _from_planes(torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True))


def same_payload(a: Any, b: Any) -> bool:
    """True when two loaded checkpoints hold the same values, tensors compared bit for bit (NaN and -0.0 too)."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        a, b = a.detach().cpu().contiguous(), b.detach().cpu().contiguous()
        if a.is_floating_point() and a.element_size() > 1:
            a, b = a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)
        return bool(torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_payload(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_payload(x, y) for x, y in zip(a, b))
    return bool(type(a) is type(b) and a == b)


def is_compacted(path: PathLike) -> bool:
    """Whether ``path`` is a compacted checkpoint (read from its outer dict, the payload is not expanded)."""
    return _is_compact(_read(Path(path), "cpu"))


def _outer(p: Path) -> Any:
    """The ``torch.load``-ed content of the checkpoint file ``p`` as it is (a compacted one not expanded)."""
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} does not exist; pass the path of a .pt file written by 'se-res2net train'")
    return _read(p, "cpu")


def _is_compact(data: Any) -> bool:
    return isinstance(data, dict) and data.get("container") == COMPACT


def _plain_payload(p: Path) -> Optional[Dict[str, Any]]:
    """The checked payload of the plain checkpoint at ``p``, or None when ``p`` is compacted already; the file is
    read once either way (a compacted one is not expanded)."""
    data = _outer(p)
    return None if _is_compact(data) else _checked(data, p)


def checkpoint_epoch(path: PathLike) -> int:
    """The epoch a checkpoint was written at, read without expanding a compacted one (its outer dict names it)."""
    p = Path(path)
    data = _outer(p)
    return int((data if _is_compact(data) else _checked(data, p))["epoch"])


def _load_bytes(blob: bytes) -> Any:
    import torch

    return _expand(torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True), "cpu")


def _compacted(data: Mapping[str, Any], name: str) -> bytes:
    """The file content of ``data`` (a loaded checkpoint) compacted, once it has been checked to load back to the
    same values, every tensor bit for bit; ``name`` names the checkpoint in the error otherwise."""
    import torch

    inner = io.BytesIO()
    torch.save(_to_planes(data), inner)
    # preset 6: the extreme presets gain < 0.1 % on these planes (measured on a trained checkpoint)
    blob = bytearray(lzma.compress(inner.getvalue(), preset=6))
    packed = {"schema": SCHEMA, "container": COMPACT, "model": data["model"], "epoch": data["epoch"],
              "blob": torch.frombuffer(blob, dtype=torch.uint8)}
    out = io.BytesIO()
    torch.save(packed, out)
    content = out.getvalue()
    if not same_payload(_load_bytes(content), data):  # a bug here, not bad input
        raise RuntimeError(f"the compacted copy of {name} does not load back to the same values; {name} is kept")
    return content


def compacted_bytes(path: PathLike) -> bytes:
    """The content of a compacted copy of the checkpoint at ``path`` (checked as :func:`compact_checkpoint` does),
    for sending it somewhere smaller; the file's own bytes when it is compacted already. ``path`` is not touched."""
    p = Path(path)
    plain = _plain_payload(p)
    return p.read_bytes() if plain is None else _compacted(plain, str(p))


def compact_checkpoint(path: PathLike) -> Tuple[int, int]:
    """Rewrite the checkpoint at ``path`` compacted (see the module's docstring), in place, and return its sizes
    (bytes) before and after. The compacted content is loaded back and compared with the original, every tensor
    bit for bit, before it replaces it: on any difference (or any error) the original stays as it was.
    A checkpoint compacted already is left as it is."""
    p = Path(path)
    before = p.stat().st_size
    plain = _plain_payload(p)
    if plain is None:
        return before, before
    atomic_write_bytes(p, _compacted(plain, str(p)))
    return before, p.stat().st_size
