"""Grad-CAM localisation on CIFAR-10, measured by the grid pointing game.

The report claims a "Grad-CAM saliency IoU" of 0.62 (SE-Res2Net-29) vs 0.48 (Res2Net-29) vs
0.42 (SE-ResNet-110) without saying against *what*: CIFAR-10 has no masks or boxes. We therefore
define the protocol ourselves and state it in every output (``PROTOCOL``). It is the **grid
pointing game** of Böhle, Fritz & Schiele, "Convolutional Dynamic Alignment Networks for
Interpretable Classifications" (CVPR 2021), on 2×2 grids, where the ground truth exists by
construction:

1. **Eligible images.** A test image is eligible for a model when the model alone, on the plain
   32×32 image, predicts its label with softmax probability ≥ ``confidence`` (default 0.5).
   When several models are compared, only images eligible for *all* of them are used (the
   intersection of :func:`confident_indices`), so every model sees the same mosaics.
   ``confidence=0`` switches the filter off (every image, right or wrong) — only for smoke tests of
   untrained models; results produced that way say so.
2. **Mosaics.** :func:`make_mosaics` draws, deterministically from a seed, 2×2 mosaics (64×64) of
   four eligible images of four *different* classes, in quadrant order TL, TR, BL, BR.
3. **CAMs.** For each mosaic and each of its four cells, Grad-CAM (``pytorch-grad-cam``) at the
   model's ``cam_target_layer()`` (the last block of its last stage) with the cell's class logit as
   target (``ClassifierOutputTarget``) gives a map, ReLU-ed, min–max normalised to [0, 1] and
   bilinearly upsampled to 64×64 by the library. Fully convolutional CIFAR networks with global
   average pooling accept the 64×64 input unchanged.
4. **Scores** against the target cell's quadrant: :func:`quadrant_iou` (IoU of ``{cam ≥ t}`` with
   the quadrant, at ``t = 0.5`` and ``t = 0.3`` to show threshold sensitivity) and
   :func:`energy_in_quadrant` (share of the positive CAM mass inside the quadrant — the grid
   pointing game's localisation score). An all-zero CAM (no positive evidence anywhere) scores
   IoU 0 and energy 0 — a localisation failure — and is counted in ``zero_cams``. A map spread
   evenly over the mosaic would score energy 0.25 and IoU 0.25.

These numbers are *not* the report's numbers (its protocol is unknown); they answer the question
the report's claim implies: does SE gating make Grad-CAM point at the evidence for the class?

Public API: :class:`Mosaic`, :func:`make_mosaics`, :func:`confident_indices`,
:func:`compute_cams`, :func:`quadrant_mask`, :func:`quadrant_iou`, :func:`energy_in_quadrant`,
:func:`score_cams`, :func:`run_evaluation` / :func:`evaluate_models`, :func:`plot_overlays`, :func:`save_evaluation`,
:func:`save_overlay_data` / :func:`load_overlay_data`, :func:`load_models`, :func:`untrained_models`,
:func:`select_models`, :func:`metrics_table` / :func:`metrics_display`, and the
CLI command ``se-res2net grad-cam`` (:func:`add_gradcam_arguments`, :func:`run_gradcam`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..training.atomic import PathLike, atomic_save, atomic_write_json, ensure_writable_dir

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    import pandas as pd
    import torch
    import torch.nn as nn
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

SCHEMA = "se_res2net.gradcam/1"
QUADRANTS: Tuple[str, str, str, str] = ("TL", "TR", "BL", "BR")
CELL = 32
MOSAIC = 2 * CELL
DEFAULT_CONFIDENCE = 0.5
DEFAULT_THRESHOLDS: Tuple[float, ...] = (0.5, 0.3)
DEFAULT_MOSAICS = 100
METRICS_FILE = "gradcam_metrics.json"
OVERLAY_FILE = "gradcam_overlays.png"
#: The overlay figure's data (mosaics, target cells, each model's CAM of the target cell), so that the book
#: draws the figure at build time, at the size of its page, without re-running the models.
OVERLAY_DATA_FILE = "gradcam_overlays.npz"
REPORT_MODELS: Tuple[str, ...] = ("res2net29", "se_res2net29", "se_resnet110")

PROTOCOL: Dict[str, str] = {
    "name": "grid pointing game on 2x2 CIFAR-10 mosaics",
    "reference": (
        "M. Böhle, M. Fritz, B. Schiele. Convolutional Dynamic Alignment Networks for Interpretable "
        "Classifications. CVPR 2021 (grid pointing game)."
    ),
    "why": (
        "The report states Grad-CAM IoU 0.62 / 0.48 / 0.42 without a protocol, and CIFAR-10 has no masks; "
        "mosaics give a ground-truth location by construction. These values are not comparable to the report's."
    ),
    "eligibility": (
        "a test image is eligible for a model when the model alone, on the 32x32 image, predicts its label with "
        "softmax probability >= confidence; compared models use the intersection of their eligible sets "
        "(confidence 0 disables the filter: every image, correct or not)"
    ),
    "mosaic": (
        "2x2 grid (64x64) of four eligible test images of four different classes, quadrant order TL, TR, BL, BR; "
        "drawn with numpy.random.default_rng(seed), no mosaic drawn twice"
    ),
    "cam": (
        "Grad-CAM (pytorch-grad-cam) at the model's cam_target_layer() (last block of the last stage), target = "
        "the logit of one cell's class (ClassifierOutputTarget); ReLU, min-max normalised to [0, 1], bilinearly "
        "upsampled to 64x64; inputs normalised with the CIFAR-10 mean/std; four CAMs per mosaic, one per cell"
    ),
    "iou": "IoU of {cam >= t} with the target cell's quadrant, for each threshold t",
    "energy": "share of the positive CAM mass inside the target cell's quadrant (grid pointing game score)",
    "zero_cam": "an all-zero CAM scores IoU 0 and energy 0 (a localisation failure) and is counted in zero_cams",
    "chance": "a map spread evenly over the mosaic scores energy 0.25 and IoU 0.25",
}


# --------------------------------------------------------------------------------------------------------------
# Quadrants and metrics
# --------------------------------------------------------------------------------------------------------------


def _quadrant_index(quadrant: Union[int, str]) -> int:
    if isinstance(quadrant, str):
        try:
            return QUADRANTS.index(quadrant.upper())
        except ValueError:
            raise ValueError(f"quadrant {quadrant!r} is not one of {', '.join(QUADRANTS)}") from None
    q = int(quadrant)
    if not 0 <= q < 4:
        raise ValueError(f"quadrant index {quadrant} is not in 0..3 (TL, TR, BL, BR)")
    return q


def quadrant_mask(quadrant: Union[int, str], size: Union[int, Tuple[int, int]] = MOSAIC) -> np.ndarray:
    """Boolean (H, W) mask of one quadrant: 0/"TL", 1/"TR", 2/"BL", 3/"BR". H and W must be even."""
    h, w = (size, size) if isinstance(size, int) else size
    if h % 2 or w % 2 or h <= 0 or w <= 0:
        raise ValueError(f"quadrant masks need a positive even size, got {h}x{w}")
    q = _quadrant_index(quadrant)
    mask = np.zeros((h, w), dtype=bool)
    r0, c0 = (q // 2) * (h // 2), (q % 2) * (w // 2)
    mask[r0 : r0 + h // 2, c0 : c0 + w // 2] = True
    return mask


def _as_mask(quadrant: Union[int, str, np.ndarray], shape: Tuple[int, ...]) -> np.ndarray:
    if isinstance(quadrant, np.ndarray) and quadrant.dtype == bool:
        if quadrant.shape != shape:
            raise ValueError(f"mask shape {quadrant.shape} does not match the CAM's {shape}")
        return quadrant
    return quadrant_mask(quadrant, shape)  # type: ignore[arg-type]


def _check_cam(cam: Any) -> np.ndarray:
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2:
        raise ValueError(f"a CAM must be a 2-D (H, W) map, got shape {cam.shape}")
    if not np.all(np.isfinite(cam)):
        raise ValueError("the CAM contains NaN or inf values")
    return cam


def quadrant_iou(cam: Any, quadrant: Union[int, str, np.ndarray], threshold: float = 0.5) -> float:
    """IoU of ``{cam >= threshold}`` with the quadrant (index, name or boolean mask).

    ``cam`` is expected in [0, 1] (as pytorch-grad-cam returns it). ``threshold`` must lie in (0, 1].
    An all-zero CAM scores 0 (no evidence is a localisation failure).
    """
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"IoU threshold {threshold} must lie in (0, 1]")
    cam = _check_cam(cam)
    mask = _as_mask(quadrant, cam.shape)
    if not np.any(cam > 0):
        return 0.0
    pred = cam >= threshold
    union = np.logical_or(pred, mask).sum()
    return float(np.logical_and(pred, mask).sum() / union) if union else 0.0


def energy_in_quadrant(cam: Any, quadrant: Union[int, str, np.ndarray]) -> float:
    """Share of the positive CAM mass inside the quadrant; 0 for an all-zero (or all-negative) CAM."""
    cam = _check_cam(cam)
    mask = _as_mask(quadrant, cam.shape)
    pos = np.clip(cam, 0.0, None)
    total = pos.sum()
    if total <= 0:
        return 0.0
    return float(pos[mask].sum() / total)


def _threshold_key(t: float) -> str:
    return f"{float(t):g}"


def score_cams(cams: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> Dict[str, Any]:
    """Score an (M, 4, H, W) array of CAMs, cell ``k`` against quadrant ``k``.

    Returns ``{"iou": {"0.5": (M, 4) array, ...}, "energy": (M, 4) array, "zero": (M, 4) bool array}``.
    """
    cams = np.asarray(cams)
    if cams.ndim != 4 or cams.shape[1] != 4:
        raise ValueError(f"cams must have shape (M, 4, H, W), got {cams.shape}")
    m = cams.shape[0]
    iou = {_threshold_key(t): np.zeros((m, 4)) for t in thresholds}
    energy = np.zeros((m, 4))
    zero = np.zeros((m, 4), dtype=bool)
    for i in range(m):
        for k in range(4):
            cam = cams[i, k]
            zero[i, k] = not np.any(cam > 0)
            energy[i, k] = energy_in_quadrant(cam, k)
            for t in thresholds:
                iou[_threshold_key(t)][i, k] = quadrant_iou(cam, k, t)
    return {"iou": iou, "energy": energy, "zero": zero}


# --------------------------------------------------------------------------------------------------------------
# Mosaics
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Mosaic:
    """A 2×2 mosaic: ``image`` uint8 (3, 64, 64), read-only; ``labels`` / ``indices`` of the cells TL, TR, BL, BR.

    ``indices`` are positions in the test split the mosaic was drawn from; they identify the mosaic.
    """

    image: np.ndarray
    labels: Tuple[int, int, int, int]
    indices: Tuple[int, int, int, int]

    def to_dict(self) -> Dict[str, List[int]]:
        return {"indices": list(self.indices), "labels": list(self.labels)}


def assemble_mosaic(cells: np.ndarray) -> np.ndarray:
    """Four uint8 (3, H, W) images → one (3, 2H, 2W) image, in quadrant order TL, TR, BL, BR."""
    cells = np.asarray(cells)
    if cells.ndim != 4 or cells.shape[0] != 4 or cells.shape[1] != 3:
        raise ValueError(f"assemble_mosaic needs four (3, H, W) images, got shape {cells.shape}")
    return np.block([[cells[0], cells[1]], [cells[2], cells[3]]])


def _check_images_labels(images: Any, labels: Any) -> Tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({images.shape[0]},), got {labels.dtype} {labels.shape}")
    return images, labels.astype(np.int64)


def make_mosaics(
    images: Any,
    labels: Any,
    n: int,
    seed: int,
    candidates: Optional[Union[Sequence[int], np.ndarray]] = None,
) -> List[Mosaic]:
    """Draw ``n`` distinct 2×2 mosaics of four images of four different classes, deterministically from ``seed``.

    ``candidates`` restricts which indices of ``images`` may be used (e.g. the intersection of
    :func:`confident_indices` of the compared models). For each mosaic, four classes among those with a
    candidate are drawn without replacement (their order is the placement TL, TR, BL, BR), then one candidate
    image of each class. An image may appear in several mosaics; the same set of four images in the same
    placement is never drawn twice.
    """
    images, labels = _check_images_labels(images, labels)
    if int(n) < 1:
        raise ValueError(f"the number of mosaics must be >= 1, got {n}")
    n = int(n)
    if candidates is None:
        pool = np.arange(len(labels))
    else:
        pool = np.unique(np.asarray(candidates, dtype=np.int64))
        if pool.size and (pool[0] < 0 or pool[-1] >= len(labels)):
            raise ValueError(f"candidate indices must lie in 0..{len(labels) - 1}")
    by_class = {int(c): pool[labels[pool] == c] for c in np.unique(labels[pool])}
    classes = np.array(sorted(by_class), dtype=np.int64)
    if len(classes) < 4:
        raise ValueError(
            f"the eligible images cover {len(classes)} class(es) ({pool.size} image(s)); a mosaic needs 4 different "
            "classes — lower the confidence threshold (--confidence), use better-trained checkpoints, or use more "
            "test data (--data folder/torchvision instead of the sample)"
        )
    rng = np.random.default_rng(seed)
    mosaics: List[Mosaic] = []
    seen = set()
    attempts, max_attempts = 0, 50 * n + 1000
    while len(mosaics) < n:
        attempts += 1
        if attempts > max_attempts:
            raise ValueError(
                f"only {len(mosaics)} distinct mosaics could be drawn from {pool.size} eligible images in "
                f"{len(classes)} classes; ask for fewer mosaics (--mosaics) or lower --confidence"
            )
        cls = rng.choice(classes, size=4, replace=False)
        idx = tuple(int(rng.choice(by_class[int(c)])) for c in cls)
        if idx in seen:
            continue
        seen.add(idx)
        image = assemble_mosaic(images[list(idx)])
        image.setflags(write=False)
        mosaics.append(Mosaic(image=image, labels=tuple(int(c) for c in cls), indices=idx))  # type: ignore[arg-type]
    return mosaics


# --------------------------------------------------------------------------------------------------------------
# Models: eligibility and Grad-CAM
# --------------------------------------------------------------------------------------------------------------


def _model_device(model: "nn.Module") -> "torch.device":
    p = next(model.parameters(), None)
    if p is None:
        raise ValueError(f"model {type(model).__name__} has no parameters; Grad-CAM needs a trainable network")
    return p.device


def confident_indices(
    model: "nn.Module",
    images: Any,
    labels: Any,
    threshold: float = DEFAULT_CONFIDENCE,
    *,
    device: Any = "cpu",
    batch_size: int = 256,
) -> np.ndarray:
    """Sorted indices of the images the model classifies correctly with softmax probability ≥ ``threshold``.

    ``threshold = 0`` returns every index (filter off, correct or not). The model's device and train/eval
    mode are restored afterwards.
    """
    import torch

    from ..training.data import normalize

    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"confidence threshold {threshold} must lie in [0, 1]")
    images, labels = _check_images_labels(images, labels)
    if float(threshold) == 0.0:
        return np.arange(len(labels), dtype=np.int64)
    was_training, orig_device = model.training, _model_device(model)
    model.to(device).eval()
    probs = []
    try:
        with torch.no_grad():
            for start in range(0, len(labels), batch_size):
                x = normalize(torch.from_numpy(images[start : start + batch_size]).to(device))
                probs.append(torch.softmax(model(x).float(), dim=1).cpu().numpy())
    finally:
        model.to(orig_device).train(was_training)
    p = np.concatenate(probs) if probs else np.zeros((0, 1))
    ok = (p.argmax(axis=1) == labels) & (p[np.arange(len(labels)), labels] >= threshold)
    return np.flatnonzero(ok).astype(np.int64)


def resolve_target_layer(model: "nn.Module", target_layer: Optional["nn.Module"] = None) -> "nn.Module":
    """``target_layer`` if given, else ``model.cam_target_layer()``; it must be a submodule of ``model``."""
    if target_layer is None:
        getter = getattr(model, "cam_target_layer", None)
        if getter is None:
            raise ValueError(
                f"model {type(model).__name__} has no cam_target_layer() method; pass target_layer= explicitly"
            )
        target_layer = getter()
    if not any(m is target_layer for m in model.modules()):
        raise ValueError(f"target layer {type(target_layer).__name__} is not a submodule of the model")
    return target_layer


def target_layer_name(model: "nn.Module", layer: "nn.Module") -> str:
    """The qualified name of ``layer`` inside ``model`` (``""`` for the model itself)."""
    return next((name for name, m in model.named_modules() if m is layer), "?")


def _clone_output(module: Any, args: Any, output: Any) -> Any:
    # Registered *after* pytorch-grad-cam's hooks: Grad-CAM keeps (and hooks the gradient of) the layer's own
    # output, while the rest of the network receives a copy. An in-place op downstream (ReLU(inplace=True),
    # ``out += identity``) then modifies the copy, never the stored activations (on CPU, ``.cpu().detach()``
    # aliases the storage). The gradient reaches the original through ``clone``'s backward unchanged.
    import torch

    if isinstance(output, torch.Tensor):
        return output.clone()
    return None


def mosaic_batch(mosaics: Sequence[Mosaic]) -> np.ndarray:
    """The mosaics' images stacked as uint8 (M, 3, 64, 64)."""
    if not mosaics:
        return np.zeros((0, 3, MOSAIC, MOSAIC), dtype=np.uint8)
    return np.stack([m.image for m in mosaics])


def compute_cams(
    model: "nn.Module",
    mosaics: Sequence[Mosaic],
    target_layer: Optional["nn.Module"] = None,
    device: Any = "cpu",
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Grad-CAM of every cell of every mosaic: float32 (M, 4, 64, 64), cell ``k`` targeting ``labels[k]``.

    The target layer defaults to ``model.cam_target_layer()``. The model is run on ``device`` in eval mode;
    afterwards its hooks are removed and its device, train/eval mode and parameter gradients are restored.
    """
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from ..training.data import normalize

    layer = resolve_target_layer(model, target_layer)
    m = len(mosaics)
    if m == 0:
        return np.zeros((0, 4, MOSAIC, MOSAIC), dtype=np.float32)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    images = torch.from_numpy(mosaic_batch(mosaics))
    size = tuple(images.shape[-2:])
    # Each mosaic four times, once per target cell.
    cell_images = images.repeat_interleave(4, dim=0)
    targets_all = [int(c) for mosaic in mosaics for c in mosaic.labels]
    out = np.empty((4 * m,) + size, dtype=np.float32)

    params = list(model.parameters())
    was_training, orig_device = model.training, _model_device(model)
    saved_grads = [p.grad for p in params]
    model.to(device)
    cam = GradCAM(model=model, target_layers=[layer])
    guard = layer.register_forward_hook(_clone_output)
    try:
        with torch.enable_grad():
            for start in range(0, 4 * m, batch_size):
                stop = min(start + batch_size, 4 * m)
                x = normalize(cell_images[start:stop].to(device)).requires_grad_(True)
                targets = [ClassifierOutputTarget(c) for c in targets_all[start:stop]]
                try:
                    maps = cam(input_tensor=x, targets=targets)
                except AttributeError as exc:
                    if cam.activations_and_grads.gradients:
                        raise
                    raise ValueError(
                        f"target layer {target_layer_name(model, layer)!r} received no gradient from the logits; "
                        "pass a target_layer on the path to the classifier"
                    ) from exc
                except RuntimeError as exc:
                    raise ValueError(
                        f"{type(model).__name__} cannot run Grad-CAM on a {size[0]}x{size[1]} mosaic "
                        f"({str(exc).splitlines()[0]}); the grid pointing game needs a fully convolutional network "
                        "with global average pooling"
                    ) from exc
                out[start:stop] = maps
    finally:
        guard.remove()
        cam.activations_and_grads.release()
        cam.outputs = None  # drop the retained graph
        model.to(orig_device).train(was_training)
        for p, g in zip(params, saved_grads):
            p.grad = g
    return out.reshape(m, 4, *size)


# --------------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------------


@dataclass
class GradCamEvaluation:
    """What :func:`run_evaluation` produced: the JSON-able ``metrics``, the ``mosaics`` and the CAMs per model."""

    metrics: Dict[str, Any]
    mosaics: List[Mosaic]
    cams: Dict[str, np.ndarray] = field(default_factory=dict)


def _test_split(data: Any) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    split = getattr(data, "test", data)
    images, labels = getattr(split, "images", None), getattr(split, "labels", None)
    if images is None or labels is None:
        raise ValueError("data must be a Cifar10 (from se_res2net.training.data.load_cifar10) or have .images and .labels")
    images, labels = _check_images_labels(images, labels)
    info = {
        "source": getattr(data, "source", None),
        "is_sample": getattr(data, "is_sample", None),
        "fingerprint": getattr(data, "fingerprint", None),
        "test_size": int(len(labels)),
    }
    return images, labels, info


def _round(x: float, nd: int = 6) -> float:
    return float(round(float(x), nd))


def _software() -> Dict[str, Optional[str]]:
    from importlib import metadata

    from .._version import __version__

    def version(dist: str) -> Optional[str]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"se_res2net": __version__, "torch": version("torch"), "grad-cam": version("grad-cam")}


def _provenance(device: Any) -> Dict[str, Any]:
    """Which code computed the metrics (commit, whether it differed from it), when, on what hardware."""
    from ..training.records import device_info, git_state, utc_now

    return {**git_state(), "created": utc_now(), **device_info(device)}


def run_evaluation(
    models: Mapping[str, "nn.Module"],
    data: Any,
    n_mosaics: int = DEFAULT_MOSAICS,
    seed: int = 0,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    device: Any = "cpu",
    target_layers: Optional[Mapping[str, "nn.Module"]] = None,
    batch_size: int = 64,
    model_info: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> GradCamEvaluation:
    """The grid pointing game for several models on the *same* mosaics (see the module docstring).

    ``data``: a :class:`se_res2net.training.data.Cifar10` (its test split is used) or anything with ``.images`` /
    ``.labels``. ``model_info`` adds per-model provenance (e.g. checkpoint path) to the metrics.
    """
    if not models:
        raise ValueError("no models to evaluate; pass at least one (--checkpoint PATH)")
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds:
        raise ValueError("give at least one IoU threshold")
    for t in thresholds:
        if not 0.0 < t <= 1.0:
            raise ValueError(f"IoU threshold {t} must lie in (0, 1]")
    if not 0.0 <= float(confidence) <= 1.0:
        raise ValueError(f"confidence threshold {confidence} must lie in [0, 1]")
    images, labels, data_info = _test_split(data)
    target_layers = dict(target_layers or {})

    eligible_per_model: Dict[str, int] = {}
    eligible: Optional[np.ndarray] = None
    for name, model in models.items():
        idx = confident_indices(model, images, labels, confidence, device=device)
        eligible_per_model[name] = int(idx.size)
        eligible = idx if eligible is None else np.intersect1d(eligible, idx)
        log.info("%s: %d of %d test images eligible (confidence >= %g)", name, idx.size, len(labels), confidence)
    assert eligible is not None
    try:
        mosaics = make_mosaics(images, labels, n_mosaics, seed, candidates=eligible)
    except ValueError as exc:
        raise ValueError(
            f"confidence {confidence:g}: {eligible.size} test image(s) are eligible for all of "
            f"{', '.join(models)} ({eligible_per_model}); {exc}"
        ) from None

    scored: Dict[str, Any] = {}
    cams_by_model: Dict[str, np.ndarray] = {}
    for name, model in models.items():
        layer = resolve_target_layer(model, target_layers.get(name))
        log.info("Grad-CAM of %s on %d mosaics at %s", name, len(mosaics), target_layer_name(model, layer))
        cams = compute_cams(model, mosaics, target_layer=layer, device=device, batch_size=batch_size)
        cams_by_model[name] = cams
        s = score_cams(cams, thresholds)
        iou, energy, zero = s["iou"], s["energy"], s["zero"]
        scored[name] = {
            **(model_info.get(name, {}) if model_info else {}),
            "architecture": type(model).__name__,
            "target_layer": target_layer_name(model, layer),
            "eligible_alone": eligible_per_model[name],
            "n_cams": int(energy.size),
            "mean_iou": {k: _round(v.mean()) for k, v in iou.items()},
            "std_iou": {k: _round(v.std(ddof=1)) if v.size > 1 else None for k, v in iou.items()},
            "mean_energy": _round(energy.mean()),
            "std_energy": _round(energy.std(ddof=1)) if energy.size > 1 else None,
            "zero_cams": int(zero.sum()),
            "per_cell": {
                "mean_iou": {k: [_round(x) for x in v.mean(axis=0)] for k, v in iou.items()},
                "mean_energy": [_round(x) for x in energy.mean(axis=0)],
            },
            "per_mosaic": {
                "iou": {k: [[_round(x, 4) for x in row] for row in v] for k, v in iou.items()},
                "energy": [[_round(x, 4) for x in row] for row in energy],
            },
        }

    filter_off = float(confidence) == 0.0
    metrics: Dict[str, Any] = {
        "schema": SCHEMA,
        "protocol": dict(PROTOCOL),
        "settings": {
            "n_mosaics": len(mosaics),
            "n_cams_per_model": 4 * len(mosaics),
            "seed": int(seed),
            "confidence": float(confidence),
            "confidence_filter": "off (every test image eligible)" if filter_off else "on",
            "thresholds": list(thresholds),
            "quadrants": list(QUADRANTS),
            "mosaic_size": int(mosaics[0].image.shape[-1]),
        },
        "data": data_info,
        "eligible": {
            "rule": "intersection over models of: argmax == label and softmax[label] >= confidence"
            if not filter_off
            else "all test images (confidence 0: filter off)",
            "per_model": eligible_per_model,
            "n_common": int(eligible.size),
            "per_class": [int(x) for x in np.bincount(labels[eligible], minlength=10)],
            "indices": [int(i) for i in eligible],
        },
        "mosaics": [mo.to_dict() for mo in mosaics],
        "models": scored,
        "software": _software(),
        "provenance": _provenance(device),
    }
    if data_info.get("is_sample"):
        metrics["warning"] = "computed on the embedded CIFAR-10 sample, not the full test set"
    return GradCamEvaluation(metrics=metrics, mosaics=mosaics, cams=cams_by_model)


def evaluate_models(
    models: Mapping[str, "nn.Module"],
    data: Any,
    n_mosaics: int = DEFAULT_MOSAICS,
    seed: int = 0,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    confidence: float = DEFAULT_CONFIDENCE,
    **kwargs: Any,
) -> Dict[str, Any]:
    """:func:`run_evaluation` returning only the JSON-able metrics dict."""
    return run_evaluation(models, data, n_mosaics, seed, thresholds, confidence, **kwargs).metrics


def metrics_table(metrics: Mapping[str, Any]) -> "pd.DataFrame":
    """One row per model: mean IoU per threshold, mean energy, zero CAMs, number of CAMs."""
    import pandas as pd

    rows = [{"model": name, **{f"IoU@{t}": v for t, v in m["mean_iou"].items()}, "energy": m["mean_energy"],
             "zero CAMs": m["zero_cams"], "CAMs": m["n_cams"]} for name, m in metrics["models"].items()]
    return pd.DataFrame(rows).set_index("model")


def metrics_display(
    metrics: Mapping[str, Any],
    profiles: Optional[Mapping[str, str]] = None,
    report: Optional[Mapping[str, float]] = None,
    trained_on: Optional[Mapping[str, str]] = None,
) -> "pd.DataFrame":
    """:func:`metrics_table` for a reader: the model's human name, the profile its checkpoint was trained under
    (``profiles``: metrics key → profile) and the hardware it trained on (``trained_on``: metrics key → the
    checkpoint's own run's devices), mean IoU per threshold, mean energy, all-zero CAMs as "k of n" and the
    report's number for that model (``report``: registered model name → value; NaN where it gives none).
    The scores stay numbers, for a Styler to print (two decimals: a mean over a few hundred CAMs whose SD is
    about 0.1 has a standard error of about 0.005)."""
    import pandas as pd

    rows = []
    for key, m in metrics["models"].items():
        row: Dict[str, Any] = {"model": _label(m.get("model", key))}
        if profiles is not None:
            row["checkpoint trained under"] = profiles.get(key, "unknown")
        if trained_on is not None:
            row["trained on"] = trained_on.get(key, "not recorded")
        for t, v in m["mean_iou"].items():
            row[f"IoU@{t}"] = v
        row["energy"] = m["mean_energy"]
        row["all-zero CAMs"] = f"{m['zero_cams']} of {m['n_cams']}"
        if report is not None:
            row["report's IoU (protocol unknown)"] = report.get(m.get("model", key), float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# Figure
# --------------------------------------------------------------------------------------------------------------


def _label(name: str) -> str:
    from .results import model_label

    return model_label(name)


def plot_overlays(
    mosaics: Sequence[Mosaic],
    cams_by_model: Mapping[str, np.ndarray],
    path: Optional[PathLike] = None,
    *,
    n_rows: int = 4,
    cells: Optional[Sequence[int]] = None,
    labels: Optional[Mapping[str, str]] = None,
    iou_threshold: float = DEFAULT_THRESHOLDS[0],
    alpha: float = 0.5,
    width: float = 7.6,
    dpi: int = 100,
) -> "Figure":
    """Rows = the first ``n_rows`` mosaics; columns = the input + each model's CAM for one target cell.

    Row ``r`` targets cell ``cells[r]`` (default ``r % 4``: TL, TR, BL, BR in turn), named with its class at the
    row's left and outlined in the input and every overlay; each column is titled with its model (``labels``,
    default :func:`se_res2net.audit.results.model_label`); under each overlay, that CAM's IoU at ``iou_threshold`` and
    its energy. A colour
    bar gives the CAM scale (0 = no evidence, 1 = the map's maximum). ``width`` (inches) at ``dpi`` is the
    figure's width in pixels: 7.6 × 100 fills the book's text column without being scaled down. ``path``: save
    it as PNG (atomically).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from ..training.data import CIFAR10_CLASSES

    if not mosaics:
        raise ValueError("no mosaics to plot")
    rows = min(int(n_rows), len(mosaics))
    cells = _target_cells(rows, cells)
    if len(cells) < rows:
        raise ValueError(f"give a target cell for each of the {rows} rows")
    names = list(cams_by_model)
    for name in names:
        if np.asarray(cams_by_model[name]).shape[:2] != (len(mosaics), 4):
            raise ValueError(f"CAMs of {name!r} do not match the {len(mosaics)} mosaics (expected shape (M, 4, H, W))")
    labels = {n: (labels or {}).get(n) or _label(n) for n in names}
    ncols = 1 + len(names)
    panel = width / (ncols + 0.35)  # room for the colour bar
    fig = Figure(figsize=(width, (panel + 0.2) * rows + 0.6), dpi=dpi, layout="constrained")
    axes = np.asarray(fig.subplots(rows, ncols, squeeze=False))
    image = None
    for r in range(rows):
        mosaic, k = mosaics[r], cells[r]
        img = mosaic.image.transpose(1, 2, 0)
        h, w = img.shape[:2]
        y0, x0 = (k // 2) * h / 2, (k % 2) * w / 2
        cls = CIFAR10_CLASSES[mosaic.labels[k]] if 0 <= mosaic.labels[k] < len(CIFAR10_CLASSES) else mosaic.labels[k]
        for c in range(ncols):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            if c == 0:
                ax.set_ylabel(f"target {QUADRANTS[k]}:\n{cls}", fontsize=11)
                if r == 0:
                    ax.set_title("input", fontsize=11)
            else:
                cam = np.asarray(cams_by_model[names[c - 1]], dtype=np.float32)[r, k]
                image = ax.imshow(cam, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0, interpolation="bilinear")
                if np.any(cam > 0):
                    # two lines: on one, neighbouring panels' scores run into each other at 10 pt
                    score = f"IoU {quadrant_iou(cam, k, iou_threshold):.2f}\nenergy {energy_in_quadrant(cam, k):.2f}"
                else:
                    score = "all-zero CAM"
                ax.set_xlabel(score, fontsize=10, labelpad=2)
                if r == 0:
                    ax.set_title(labels[names[c - 1]], fontsize=11)
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w / 2, h / 2, fill=False, edgecolor="lime", linewidth=2))
            ax.set_xticks([])
            ax.set_yticks([])
    if image is not None:
        bar = fig.colorbar(image, ax=axes[:, 1:], shrink=0.5, aspect=25, pad=0.02)
        bar.set_label("Grad-CAM (0 none, 1 strongest)", fontsize=10)
        bar.ax.tick_params(labelsize=9)
    if path is not None:
        atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return fig


def _target_cells(rows: int, cells: Optional[Sequence[int]]) -> List[int]:
    """Row ``r``'s target cell: ``cells[r]`` (index or name), default ``r % 4``."""
    return [r % 4 for r in range(rows)] if cells is None else [_quadrant_index(c) for c in cells][:rows]


def save_overlay_data(
    path: PathLike,
    mosaics: Sequence[Mosaic],
    cams_by_model: Mapping[str, np.ndarray],
    n_rows: int = 4,
    cells: Optional[Sequence[int]] = None,
) -> Path:
    """Write what :func:`plot_overlays` draws (first ``n_rows`` mosaics, their target cells, each model's CAM of
    the target cell as float16) to a compressed ``.npz``, atomically; read it back with :func:`load_overlay_data`.
    """
    if not mosaics:
        raise ValueError("no mosaics to save")
    rows = min(int(n_rows), len(mosaics))
    cells = _target_cells(rows, cells)
    names = list(cams_by_model)
    target = np.stack([np.stack([np.asarray(cams_by_model[n])[r, cells[r]] for r in range(rows)]) for n in names])
    arrays: Dict[str, Any] = {
        "images": mosaic_batch(mosaics[:rows]),
        "labels": np.asarray([m.labels for m in mosaics[:rows]], dtype=np.int64),
        "indices": np.asarray([m.indices for m in mosaics[:rows]], dtype=np.int64),
        "cells": np.asarray(cells, dtype=np.int64),
        "names": np.asarray(names, dtype=str),
        "cams": target.astype(np.float16),  # (models, rows, H, W); float16 keeps 3 decimals of a [0, 1] map
    }
    def write(tmp: Path) -> None:
        # through a file object: given a path, numpy appends ".npz" to the temporary file's name
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    p = Path(path)
    atomic_save(p, write)
    return p


@dataclass
class OverlayData:
    """The overlay figure's data: ``mosaics``, their target ``cells`` and per model an (M, 4, H, W) CAM array in
    which only each row's target cell is stored (the other cells are NaN)."""

    mosaics: List[Mosaic]
    cells: List[int]
    cams: Dict[str, np.ndarray]


def load_overlay_data(path: PathLike) -> OverlayData:
    """Read a file written by :func:`save_overlay_data`; ``plot_overlays(d.mosaics, d.cams, cells=d.cells)``
    draws it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist; run se-res2net grad-cam to write it")
    with np.load(p, allow_pickle=False) as z:
        images, labels, indices = z["images"], z["labels"], z["indices"]
        cells, names, target = [int(c) for c in z["cells"]], [str(n) for n in z["names"]], z["cams"]
    mosaics = []
    for img, lab, idx in zip(images, labels, indices):
        img = np.ascontiguousarray(img, dtype=np.uint8)
        img.setflags(write=False)
        mosaics.append(Mosaic(image=img, labels=tuple(int(x) for x in lab),  # type: ignore[arg-type]
                              indices=tuple(int(x) for x in idx)))  # type: ignore[arg-type]
    rows, h, w = target.shape[1:]
    cams: Dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        cams[name] = np.full((rows, 4, h, w), np.nan, dtype=np.float32)
        cams[name][np.arange(rows), cells] = target[i]
    return OverlayData(mosaics=mosaics, cells=cells, cams=cams)


# --------------------------------------------------------------------------------------------------------------
# Models from checkpoints (CLI and notebook)
# --------------------------------------------------------------------------------------------------------------


def load_models(
    checkpoints: Sequence[PathLike], device: Any = "cpu"
) -> Tuple[Dict[str, "nn.Module"], Dict[str, Dict[str, Any]]]:
    """Load checkpoints → ``({name: model}, {name: provenance})``.

    A model is named by its checkpoint's registered model name; when two checkpoints share a name, each gets a
    ``_seed<k>`` suffix (from its training config), then ``_<i>`` if that is still ambiguous.
    """
    from ..training.checkpoint import load_model_from_checkpoint

    if not checkpoints:
        raise ValueError("no checkpoints given; pass --checkpoint PATH (one or more)")
    loaded = []
    for path in checkpoints:
        model, ckpt = load_model_from_checkpoint(path, device=device)
        config = ckpt.get("config") or {}
        loaded.append((str(ckpt["model"]), model, ckpt, config.get("seed") if isinstance(config, Mapping) else None, path))
    counts = Counter(name for name, *_ in loaded)
    models: Dict[str, "nn.Module"] = {}
    info: Dict[str, Dict[str, Any]] = {}
    for i, (name, model, ckpt, seed, path) in enumerate(loaded):
        key = name if counts[name] == 1 else (f"{name}_seed{seed}" if seed is not None else f"{name}_{i}")
        if key in models:
            key = f"{key}_{i}"
        models[key] = model
        info[key] = {
            "model": name,
            "model_kwargs": dict(ckpt.get("model_kwargs") or {}),
            "checkpoint": str(path),
            "epoch": ckpt.get("epoch"),
            "seed": seed,
            "trained": True,
        }
    return models, info


def untrained_models(
    names: Sequence[str] = REPORT_MODELS, seed: int = 0
) -> Tuple[Dict[str, "nn.Module"], Dict[str, Dict[str, Any]]]:
    """Randomly initialised registered models (``torch.manual_seed(seed)`` before each), in eval mode.

    Only for demonstrating the pipeline: their CAMs mean nothing.
    """
    import torch

    from ..models.registry import create_model

    models: Dict[str, "nn.Module"] = {}
    info: Dict[str, Dict[str, Any]] = {}
    for name in names:
        torch.manual_seed(seed)
        models[name] = create_model(name).eval()
        info[name] = {"model": name, "model_kwargs": {}, "checkpoint": None, "seed": seed, "trained": False}
    return models, info


def find_checkpoints(directory: PathLike) -> List[Path]:
    """The ``*.pt`` files directly under ``directory`` (sorted); none if it does not exist."""
    d = Path(directory)
    return sorted(p for p in d.glob("*.pt") if p.is_file()) if d.is_dir() else []


def select_models(
    checkpoints: Sequence[PathLike] = (),
    fallback_dir: Optional[PathLike] = None,
    untrained: Sequence[str] = REPORT_MODELS,
    seed: int = 0,
    device: Any = "cpu",
) -> Tuple[Dict[str, "nn.Module"], Dict[str, Dict[str, Any]], str]:
    """For the notebook: ``checkpoints`` if given, else the ``*.pt`` under ``fallback_dir``, else untrained models.

    Returns ``(models, info, description)``; the description says plainly which case applied.
    """
    if checkpoints:
        models, info = load_models(checkpoints, device)
        return models, info, f"{len(models)} trained checkpoint(s): " + ", ".join(str(c) for c in checkpoints)
    found = find_checkpoints(fallback_dir) if fallback_dir is not None else []
    if found:
        models, info = load_models(found, device)
        return models, info, f"{len(models)} checkpoint(s) found under {fallback_dir}"
    models, info = untrained_models(untrained, seed)
    return models, info, (
        f"UNTRAINED models ({', '.join(untrained)}; random initialisation, seed {seed}): no checkpoint was given or "
        f"found, so these numbers demonstrate the pipeline only and say nothing about the architectures"
    )


def save_evaluation(result: GradCamEvaluation, out_dir: PathLike, *, overlay_rows: int = 4,
                    replace: bool = False) -> Tuple[Path, Path]:
    """Write ``out_dir/gradcam_metrics.json``, ``out_dir/gradcam_overlays.png`` and the figure's data
    ``out_dir/gradcam_overlays.npz`` (all atomically); returns the metrics' and the PNG's paths.

    ``FileExistsError`` when ``out_dir`` already holds a result and ``replace`` is false
    (:func:`refuse_to_replace`): a Grad-CAM of trained checkpoints is never replaced silently (by a smoke
    rerun, say)."""
    if not replace:
        refuse_to_replace(out_dir, "replace=True (--force) replaces it, or write to another directory")
    out = ensure_writable_dir(out_dir)
    metrics_path, overlay_path = out / METRICS_FILE, out / OVERLAY_FILE
    result.metrics["overlay"] = OVERLAY_FILE
    result.metrics["overlay_data"] = OVERLAY_DATA_FILE
    # a stand-alone PNG is looked at outside the book, often zoomed: twice the book's pixel density
    plot_overlays(result.mosaics, result.cams, overlay_path, n_rows=overlay_rows, dpi=200)
    save_overlay_data(out / OVERLAY_DATA_FILE, result.mosaics, result.cams, n_rows=overlay_rows)
    atomic_write_json(metrics_path, result.metrics)
    return metrics_path, overlay_path


# --------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------


def add_gradcam_arguments(p: "argparse.ArgumentParser") -> None:
    p.add_argument("--checkpoint", action="append", required=True, metavar="PATH",
                   help="a checkpoint written by 'se-res2net train'; repeat to compare models on the same mosaics")
    p.add_argument("--out-dir", required=True, metavar="DIR",
                   help=f"where {METRICS_FILE} and {OVERLAY_FILE} are written")
    p.add_argument("--mosaics", type=int, default=DEFAULT_MOSAICS, metavar="N",
                   help=f"number of 2x2 mosaics (4 CAMs each; default {DEFAULT_MOSAICS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the mosaic draw (default 0)")
    p.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE, metavar="C",
                   help="an image is eligible when every model predicts its label with softmax >= C "
                        f"(default {DEFAULT_CONFIDENCE}; 0 disables the filter, for untrained models only)")
    p.add_argument("--thresholds", type=float, nargs="+", default=list(DEFAULT_THRESHOLDS), metavar="T",
                   help="IoU thresholds on the [0, 1] CAM (default 0.5 0.3)")
    p.add_argument("--data", default="auto", choices=("auto", "folder", "torchvision", "sample"),
                   help="CIFAR-10 source (default auto; 'sample' = the small embedded subset)")
    p.add_argument("--data-dir", default=None, metavar="D", help="class-folder copy of CIFAR-10 (or torchvision root)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    p.add_argument("--batch-size", type=int, default=64, help="CAMs per Grad-CAM batch (default 64)")
    p.add_argument("--overlay-rows", type=int, default=4, metavar="K", help="mosaics shown in the overlay figure")
    p.add_argument("--force", action="store_true",
                   help=f"replace the result already in --out-dir (without it, an existing {METRICS_FILE} is an error)")


def refuse_to_replace(out_dir: PathLike, fix: str) -> None:
    """``FileExistsError`` naming what ``out_dir`` already holds (its :data:`METRICS_FILE` and that file's
    checkpoints) and ``fix``, when it holds a Grad-CAM result: a result is never replaced silently."""
    path = Path(out_dir) / METRICS_FILE
    if not path.exists():
        return
    try:
        models = json.loads(path.read_text(encoding="utf-8")).get("models") or {}
        ckpts = [str(e.get("checkpoint") or f"{name} (untrained)") for name, e in models.items()]
    except (OSError, ValueError, AttributeError):
        ckpts = []
    held = f"{path} (of {', '.join(ckpts)})" if ckpts else str(path)
    raise FileExistsError(f"{out_dir} already holds a Grad-CAM result, {held}; {fix}")


def run_gradcam(args: "argparse.Namespace") -> int:
    from ..training.data import load_cifar10
    from ..training.trainer import resolve_device

    if not args.force:  # before any work: a refused run writes nothing
        refuse_to_replace(args.out_dir, "pass --force to replace it, or choose another --out-dir")
    out_dir = ensure_writable_dir(args.out_dir)  # fail before the work if it cannot be written
    device = str(resolve_device(args.device))
    models, info = load_models(args.checkpoint, device=device)
    data = load_cifar10(source=args.data, data_dir=args.data_dir)
    result = run_evaluation(models, data, n_mosaics=args.mosaics, seed=args.seed, thresholds=args.thresholds,
                            confidence=args.confidence, device=device, batch_size=args.batch_size, model_info=info)
    metrics_path, overlay_path = save_evaluation(result, out_dir, overlay_rows=args.overlay_rows, replace=args.force)
    m = result.metrics
    print(
        f"grid pointing game: {m['settings']['n_mosaics']} mosaics (seed {args.seed}), confidence >= "
        f"{args.confidence:g}, {m['eligible']['n_common']} eligible test images, data {m['data']['source']}"
        + (" (SAMPLE)" if m["data"].get("is_sample") else "")
    )
    for name, entry in m["models"].items():
        ious = "  ".join(f"IoU@{t} {v:.3f}" for t, v in entry["mean_iou"].items())
        print(f"  {name:<28} {ious}  energy {entry['mean_energy']:.3f}  zero CAMs {entry['zero_cams']}")
    print(f"wrote {metrics_path} and {overlay_path}")
    return 0
