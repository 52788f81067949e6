"""The trainer: one CIFAR-10 run of one registered model, readable top to bottom.

The report's protocol (``TrainConfig`` defaults): SGD, momentum 0.9, weight decay
1e-4 on every parameter, batch 128, 300 epochs, learning rate 0.1 divided by 10
at epochs 150 and 225 (``MultiStepLR`` stepped once per epoch, 0-based: epochs
0–149 use 0.1), pad-4 / random-crop / flip augmentation, top-1 error on the test
split after the last epoch.

How it runs
-----------
* The whole data set lives on the training device as ``uint8`` tensors (on the GPU
  when training on CUDA); each epoch draws a permutation from a seeded CPU
  ``torch.Generator`` and augments each batch with :func:`se_res2net.training.data.augment`
  (batched tensor ops, its own seeded generator on the device). Every image is
  seen once per epoch: the last, smaller batch is **kept** (like
  ``DataLoader(shuffle=True, drop_last=False)``).
* Evaluation: the whole test split (or ``test_subset``), eval mode, no
  augmentation, only :func:`se_res2net.training.data.normalize`; after every epoch.
* The fast path (:class:`FastPath`, resolved from the config by
  :func:`resolve_fast_path`): on CUDA by default bf16 autocast, channels-last and
  fused SGD; optionally ``torch.compile`` in any of :data:`COMPILE_MODES`
  (``reduce-overhead`` = CUDA graphs). Every switch can also be set on CPU, which
  is how CI proves each of them against the eager fp32 loop. There is no host
  synchronisation inside the epoch (:func:`train_epoch`: loss / accuracy
  accumulate as device tensors, read once per epoch). CPU: float32 by default,
  with ``torch.use_deterministic_algorithms(True)``, so the same config gives
  bit-identical per-epoch numbers (for a fixed thread count).
* Test error is always measured in float32, whatever the training precision: the
  weights are copied into a plain (contiguous, eager, fp32) copy of the network
  and evaluated with TF32 and cuDNN autotuning off, exactly as
  ``se-res2net test CHECKPOINT`` does, so that command reproduces the record's
  error on the same device.
* Outputs: the run record ``<out>/<model>_seed<seed>.json`` (schema
  ``se_res2net.run/1``, :mod:`se_res2net.training.records`), rewritten atomically after
  every epoch, and the checkpoint ``<out>/checkpoints/<model>_seed<seed>.pt``
  every ``checkpoint_every`` epochs and at the end. The checkpoint holds the
  model, optimiser and scheduler state, the record so far and every RNG state
  (global torch CPU / CUDA, data order, augmentation), so ``resume=True`` after
  a crash or a SIGKILL continues bit-identically on CPU (on CUDA, cuDNN autotuning and atomic-add
  backward kernels make it continue within rounding, as two GPU runs of one seed differ).
* A complete record is never overwritten: ``train`` returns it and logs that it
  skipped, unless ``force=True``.
* A non-finite loss stops the run: the record is marked ``failed`` with
  ``failure = {"type": "NonFiniteLoss", ...}``, the last good checkpoint is kept
  and a ``RuntimeError`` is raised. Any other exception also marks the record
  failed and is re-raised.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from .atomic import PathLike, ensure_writable_dir
from .records import (
    checkpoint_path,
    code_hash,
    device_info,
    git_state,
    provenance,
    read_record,
    record_path,
    run_name,
    is_stranded,
    sharing_info,
    stranded_message,
    utc_now,
    write_record,
)

log = logging.getLogger(__name__)

DATA_SOURCES = ("auto", "folder", "torchvision", "sample")
# torch.compile modes the trainer accepts ("reduce-overhead" adds CUDA graphs on CUDA; on CPU it compiles
# like "default").
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# SGD implementations: "auto" = fused on CUDA, torch's default (a for-loop on CPU tensors) elsewhere.
SGD_IMPLS = ("auto", "fused", "foreach", "forloop")
# Training augmentations: "crop4-flip" is the report's (zero-pad 4, random 32x32 crop, horizontal flip with
# p = 0.5; se_res2net.training.data.augment); "none" only normalises. Recorded in every run's config, so the ledger
# can tell from a record whether it followed the protocol.
AUGMENTATIONS = ("crop4-flip", "none")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

# Config keys whose change changes the numbers: a checkpoint or a complete record written with
# other values of these is another run. ``data_fingerprint`` and ``bf16_resolved`` are added
# to the checkpoint's config by the trainer (the data actually used, bf16 after "auto").
RESULT_KEYS: Tuple[str, ...] = (
    "model",
    "model_kwargs",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "nesterov",
    "milestones",
    "gamma",
    "seed",
    "train_subset",
    "test_subset",
    "augment",
)
CHECKPOINT_KEYS: Tuple[str, ...] = RESULT_KEYS + ("data_fingerprint", "bf16_resolved")
# What to do when a resume finds one of the keys the trainer adds changed ("auto" resolves bf16 by device type, so
# a run started on a GPU and resumed on a CPU meets the first).
RESUME_FIXES: Dict[str, Callable[[Any, Any], str]] = {
    "bf16_resolved": lambda ck, now: (
        "bf16 after 'auto' depends on the device type: resume on the type the run started on, or pass "
        f"{'--bf16' if ck else '--no-bf16'} to 'se-res2net train' or 'se-res2net sweep', as the run started"),
    "data_fingerprint": lambda ck, now: (
        "the training data changed: point SE_RES2NET_DATA_DIR (or --data-dir) at the data the run started with "
        f"(fingerprint {str(ck)[:12]}…)"),
}


class NonFiniteLossError(RuntimeError):
    """Training diverged: a loss became NaN or infinite."""


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


def _freeze(value: Any) -> Any:
    """Lists → tuples, dicts → sorted tuples of pairs, recursively (so the config stays hashable)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def report_milestones(epochs: int) -> Tuple[int, ...]:
    """The report's schedule (÷10 at 50 % and 75 % of training: 150, 225 for 300 epochs) scaled to ``epochs``.

    Milestones that fall outside ``[1, epochs-1]`` or coincide are dropped (``()`` for 1 epoch).
    """
    out: List[int] = []
    for frac in (0.5, 0.75):
        m = int(round(epochs * frac))
        if 1 <= m <= epochs - 1 and (not out or m > out[-1]):
            out.append(m)
    return tuple(out)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run. Defaults are the report's protocol.

    ``model_kwargs`` are overrides passed to the registered factory; give a dict, it is stored as a
    sorted tuple of ``(key, value)`` pairs (use :attr:`model_kwargs_dict`). ``None`` for ``bf16`` /
    ``channels_last`` means "on when training on CUDA".
    """

    model: str
    model_kwargs: Any = ()
    epochs: int = 300
    batch_size: int = 128  # images per SGD step
    lr: float = 0.1  # initial learning rate
    momentum: float = 0.9
    weight_decay: float = 1e-4  # L2 coefficient, applied to every parameter (weights, biases, BN)
    nesterov: bool = False
    milestones: Tuple[int, ...] = (150, 225)  # 0-based epochs at which lr *= gamma
    gamma: float = 0.1
    seed: int = 0
    data_source: str = "auto"  # auto | folder | torchvision | sample
    data_dir: Optional[str] = None
    download: bool = False  # torchvision source only
    train_subset: Optional[int] = None  # images kept from the train split (stratified), None = all
    test_subset: Optional[int] = None
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N
    bf16: Optional[bool] = None  # bf16 autocast; None = on for CUDA, off on CPU
    channels_last: Optional[bool] = None  # None = on for CUDA
    compile: bool = False  # torch.compile the model
    compile_mode: str = "default"  # one of COMPILE_MODES (used when compile is True)
    sgd_impl: str = "auto"  # one of SGD_IMPLS
    augment: str = "crop4-flip"  # one of AUGMENTATIONS: the report's zero-pad 4 / random crop / flip, or none
    checkpoint_every: int = 10  # epochs between checkpoints (plus one at the end)
    eval_batch_size: int = 500
    profile: str = "custom"  # smoke | budget | full | custom (a label for the record)

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        kwargs = self.model_kwargs
        if kwargs is None:
            kwargs = ()
        if isinstance(kwargs, Mapping):
            set_("model_kwargs", _freeze(kwargs))
        elif isinstance(kwargs, (tuple, list)):
            try:
                set_("model_kwargs", _freeze(dict(kwargs)))
            except (TypeError, ValueError):
                raise ValueError("model_kwargs must be a dict or (key, value) pairs, e.g. {'scale': 4}") from None
        else:
            raise ValueError(f"model_kwargs must be a dict, got {type(kwargs).__name__}")
        if isinstance(self.milestones, (int, float)):
            set_("milestones", (self.milestones,))
        try:
            set_("milestones", tuple(int(m) for m in self.milestones))
        except (TypeError, ValueError):
            raise ValueError(f"milestones must be integers (epochs), got {self.milestones!r}; e.g. --schedule 150 225") from None
        if self.data_dir is not None:
            set_("data_dir", str(self.data_dir))
        self.validate()

    # ---- validation -----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` naming the fix for the first invalid setting."""

        def is_int(x: Any) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        if not isinstance(self.model, str) or not self.model:
            raise ValueError("model must be a registered model name; see 'se-res2net complexity' or list_models()")
        from ..models.registry import get_factory

        get_factory(self.model)  # ValueError listing the known names
        if not is_int(self.epochs) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}; pass --epochs 1 or more")
        if not is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}; pass --batch-size 1 or more")
        if not is_int(self.eval_batch_size) or self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be an integer >= 1, got {self.eval_batch_size!r}")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}; pass e.g. --lr 0.1")
        if not isinstance(self.momentum, (int, float)) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}; pass e.g. --momentum 0.9")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0; drop --nesterov or pass --momentum 0.9")
        if not isinstance(self.weight_decay, (int, float)) or not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}; pass e.g. --wd 1e-4")
        if not isinstance(self.gamma, (int, float)) or not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}; pass e.g. --gamma 0.1")
        ms = self.milestones
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"milestones must be strictly increasing, got {list(ms)}; e.g. --schedule 150 225")
        bad = [m for m in ms if not 1 <= m <= self.epochs - 1]
        if bad:
            raise ValueError(
                f"milestones {bad} lie outside epochs 1..{self.epochs - 1} of a {self.epochs}-epoch run, so they would "
                f"never apply; pass --schedule with values below {self.epochs} (e.g. {' '.join(map(str, report_milestones(self.epochs))) or 'nothing'}) "
                "or more --epochs"
            )
        if not is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if self.data_source not in DATA_SOURCES:
            raise ValueError(f"data_source must be one of {', '.join(DATA_SOURCES)}, got {self.data_source!r}")
        for name in ("train_subset", "test_subset"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {v!r}")
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise ValueError(f"unknown device {self.device!r}; use auto, cpu, cuda or cuda:N")
        for name in ("bf16", "channels_last"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, bool):
                raise ValueError(f"{name} must be None (the device's default), True or False, got {v!r}; "
                                 f"pass --{name.replace('_', '-')} or --no-{name.replace('_', '-')}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}; choose the mode with compile_mode")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        if self.sgd_impl not in SGD_IMPLS:
            raise ValueError(f"sgd_impl must be one of {', '.join(SGD_IMPLS)}, got {self.sgd_impl!r}")
        if not is_int(self.checkpoint_every) or self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be an integer >= 1, got {self.checkpoint_every!r}")
        if not isinstance(self.profile, str) or not self.profile:
            raise ValueError("profile must be a non-empty label (smoke, budget, full or custom)")

    # ---- conversions ----------------------------------------------------------------------------
    @property
    def model_kwargs_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in self.model_kwargs}

    @property
    def name(self) -> str:
        return run_name(self.model, self.seed)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict (tuples → lists, ``model_kwargs`` → dict)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model_kwargs"] = self.model_kwargs_dict
        return _jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys are a ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {unknown}; known: {sorted(names)}")
        return cls(**dict(d))

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> "Any":
    """``"auto"`` → CUDA if present else CPU; a CUDA device that is not there is a ``ValueError``."""
    import torch

    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist ({torch.cuda.device_count()} CUDA device(s)); use cuda:0")
    return dev


def _derive_seed(seed: int, stream: str) -> int:
    """Independent 63-bit seeds for the data-order and augmentation generators of one run seed."""
    digest = hashlib.sha256(f"se_res2net/{stream}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _complexity(model: Any) -> Tuple[int, int]:
    """(params, thop MACs at 1×3×32×32) without touching the model or the global RNG."""
    import torch

    from ..models.complexity import count_macs, count_params

    with torch.random.fork_rng(devices=[]):
        return count_params(model), count_macs(model, input_size=32)


@contextlib.contextmanager
def _numerics(device: Any) -> Iterator[None]:
    """CPU: deterministic algorithms. CUDA: cuDNN autotuning (TF32 stays at torch's defaults: on for cuDNN
    convolutions, off for matmuls, which bf16 autocast runs anyway; so an "fp32" run on CUDA convolves in TF32,
    as torch does by default). Restores the previous settings."""
    import torch

    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    try:
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """TF32 on or off for cuBLAS matmuls and cuDNN convolutions, restored afterwards.

    Uses the per-backend ``fp32_precision`` settings where torch has them (since 2.9; mixing them with the
    legacy ``allow_tf32`` flags makes torch raise, and inductor reads the new ones), the legacy flags before.
    Matmuls go through ``torch.set_float32_matmul_precision``, which sets the legacy and the new flag together:
    after a caller's ``set_float32_matmul_precision("high")`` (the line inductor's hint suggests), setting only
    the new flag leaves them mixed, and every cuBLAS call raises ("mix of the legacy and new APIs").
    """
    import torch

    b: Any = torch.backends  # its per-backend fp32_precision knobs are newer than some torch type stubs
    if hasattr(getattr(b.cudnn, "conv", None), "fp32_precision"):
        knobs = [b.cudnn.conv, b.cudnn.rnn]
        saved = [k.fp32_precision for k in knobs]
        saved_matmul = (torch.get_float32_matmul_precision(), b.cuda.matmul.fp32_precision)
        try:
            torch.set_float32_matmul_precision("high" if enabled else "highest")
            for k in knobs:
                k.fp32_precision = "tf32" if enabled else "ieee"
            yield
        finally:
            for k, v in zip(knobs, saved):
                k.fp32_precision = v
            torch.set_float32_matmul_precision(saved_matmul[0])
            # e.g. torch's initial "none", which the line above leaves "ieee"
            b.cuda.matmul.fp32_precision = saved_matmul[1]
        return
    saved_legacy = (b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32)
    try:
        b.cudnn.allow_tf32 = b.cuda.matmul.allow_tf32 = enabled
        yield
    finally:
        b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = saved_legacy


def _autocast(device: Any, enabled: bool) -> Any:
    import torch

    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@dataclass(frozen=True)
class FastPath:
    """The switches of one run's training step, after ``None`` / ``"auto"`` are resolved for its device.

    ``compile_mode`` is ``None`` for eager. ``cudagraphs``: the modes whose inductor options turn CUDA graphs on
    (``reduce-overhead`` and ``max-autotune``: ``torch._inductor.list_mode_options``); the step marks each
    iteration's start for CUDA-graph trees (``torch.compiler.cudagraph_mark_step_begin``) and clones what it
    returns, which the next replay would overwrite.
    """

    bf16: bool
    channels_last: bool
    sgd_impl: str  # fused | foreach | forloop
    compile_mode: Optional[str]

    @property
    def cudagraphs(self) -> bool:
        return self.compile_mode in ("reduce-overhead", "max-autotune")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        parts = ["bf16 autocast" if self.bf16 else "fp32", "channels_last" if self.channels_last else "NCHW",
                 f"{self.sgd_impl} SGD", f"torch.compile({self.compile_mode})" if self.compile_mode else "eager"]
        return ", ".join(parts)


def resolve_fast_path(config: "TrainConfig", device_type: str) -> FastPath:
    """The fast path ``config`` asks for on a ``device_type`` (``"cuda"`` or ``"cpu"``) device.

    Unset switches (``None`` / ``"auto"``) are on for CUDA and off elsewhere; explicit ones are kept
    on any device, so every CUDA setting also runs on CPU (that is how CI tests them).
    """
    on_cuda = device_type == "cuda"
    sgd = config.sgd_impl if config.sgd_impl != "auto" else ("fused" if on_cuda else "forloop")
    return FastPath(
        bf16=on_cuda if config.bf16 is None else bool(config.bf16),
        channels_last=on_cuda if config.channels_last is None else bool(config.channels_last),
        sgd_impl=sgd,
        compile_mode=config.compile_mode if config.compile else None,
    )


def make_optimizer(model: Any, config: "TrainConfig", fast: FastPath) -> Any:
    """SGD with the config's hyper-parameters and the fast path's implementation (fused / foreach / for-loop)."""
    import torch

    impl = {"fused": {"fused": True}, "foreach": {"foreach": True}, "forloop": {"foreach": False}}[fast.sgd_impl]
    return torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
        **impl,
    )


def prepare_model(model: Any, device: Any, fast: FastPath) -> Tuple[Any, Any]:
    """Move ``model`` to ``device`` (channels-last if asked) and return ``(model, step_model)``.

    ``step_model`` is what the training step calls: ``model`` itself, or ``torch.compile(model, mode=...)``
    (same parameters). Evaluation never uses it (see :func:`evaluate`).
    """
    import torch

    model.to(device)
    if fast.channels_last:
        model.to(memory_format=torch.channels_last)
    # dynamic=False: the batch size is fixed (plus one smaller last batch), so two static graphs beat one
    # dynamic-shape graph, and CUDA graphs need static shapes anyway
    step_model = torch.compile(model, mode=fast.compile_mode, dynamic=False) if fast.compile_mode else model
    return model, step_model


@contextlib.contextmanager
def _fp32_numerics(device: Any) -> Iterator[None]:
    """Evaluation numerics: IEEE fp32 (no TF32) and fixed cuDNN algorithms on CUDA; a no-op on CPU.

    Autotuning picks algorithms by timing, so two processes could round differently; with it off, the same
    weights on the same GPU give the same logits in training-time evaluation and in ``se-res2net test``.
    """
    import torch

    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.deterministic)
    try:
        cudnn.benchmark, cudnn.deterministic = False, True
        with _tf32(False):
            yield
    finally:
        cudnn.benchmark, cudnn.deterministic = saved


def _remove_stale_temp_files(*targets: Path) -> None:
    """Temporary files left by a process killed in the middle of an atomic write."""
    for target in targets:
        for tmp in target.parent.glob(f".{target.name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                log.debug("removed stale temporary file %s", tmp)


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def evaluate(
    model: Any,
    images_uint8: Any,
    labels: Any,
    device: Any = "cpu",
    batch_size: int = 500,
) -> Tuple[float, float]:
    """Mean cross-entropy and top-1 error (percent) of ``model`` on uint8 NCHW images: eval mode, no
    augmentation, float32 (no autocast, no TF32, fixed cuDNN algorithms; see :func:`_fp32_numerics`).

    Pass a plain eager fp32 model (the trainer passes a contiguous copy of the weights, never the compiled
    or channels-last training module), so the number does not depend on how the network was trained.
    ``images_uint8`` / ``labels``: numpy arrays or tensors (any device; batches are moved to ``device``).
    The model's train/eval mode is restored afterwards.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    from .data import normalize

    device = torch.device(device)
    if isinstance(images_uint8, np.ndarray):
        images_uint8 = torch.from_numpy(images_uint8)
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    n = int(labels.shape[0])
    if n == 0 or images_uint8.shape[0] != n:
        raise ValueError(f"evaluate needs as many images as labels (>0), got {images_uint8.shape[0]} and {n}")
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    wrong = torch.zeros((), dtype=torch.int64, device=device)
    try:
        with torch.no_grad(), _fp32_numerics(device):
            for i in range(0, n, batch_size):
                x = normalize(images_uint8[i : i + batch_size].to(device, non_blocking=True))
                y = labels[i : i + batch_size].to(device, non_blocking=True)
                out = model(x).float()
                loss_sum += F.cross_entropy(out, y, reduction="sum").double()
                wrong += (out.argmax(1) != y).sum()
    finally:
        model.train(was_training)
    return loss_sum.item() / n, 100.0 * wrong.item() / n


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def train_step(
    model: Any,
    optimizer: Any,
    images_uint8: Any,
    labels: Any,
    aug_gen: Any,
    fast: FastPath,
    augmentation: str = "crop4-flip",
) -> Tuple[Any, Any]:
    """One SGD step on a uint8 batch: batched augmentation on the device, forward, backward, update.

    Returns the batch's mean loss and number of correct predictions as device tensors (no host
    sync: the caller reads them once per epoch). Used by :func:`train_epoch` and by the benchmark.
    """
    import torch.nn.functional as F

    x = step_input(images_uint8, aug_gen, fast, augmentation)
    with _autocast(images_uint8.device, fast.bf16):
        out = model(x)
        loss = F.cross_entropy(out, labels)
    return sgd_update(optimizer, loss, fast), (out.detach().argmax(1) == labels).sum()


def step_input(images_uint8: Any, aug_gen: Any, fast: FastPath, augmentation: str = "crop4-flip") -> Any:
    """The first part of a training step (:func:`train_step`, :func:`se_res2net.training.stacked.stacked_train_step`):
    a new CUDA-graph iteration where graphs are on, the batch augmented (or only normalised) on the device, in the
    fast path's memory format."""
    import torch

    from .data import augment, normalize

    if fast.cudagraphs:  # a new iteration for CUDA-graph trees: the previous step's outputs may be reused
        torch.compiler.cudagraph_mark_step_begin()
    x = augment(images_uint8, aug_gen) if augmentation == "crop4-flip" else normalize(images_uint8)
    if fast.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def sgd_update(optimizer: Any, loss: Any, fast: FastPath) -> Any:
    """The last part of a training step: backward from ``loss`` and one optimiser step. ``loss`` is a scalar, or one
    loss per stacked model, whose sum is minimised. Returns ``loss`` detached, as a tensor of its own where CUDA
    graphs are on (the next replay overwrites the graph's outputs)."""
    optimizer.zero_grad(set_to_none=True)
    (loss if loss.dim() == 0 else loss.sum()).backward()  # a scalar as it is: no extra kernel in the plain step
    optimizer.step()
    loss = loss.detach()
    return loss.clone() if fast.cudagraphs else loss


def train_epoch(
    step_model: Any,
    optimizer: Any,
    images: Any,
    labels: Any,
    perm: Any,
    aug_gen: Any,
    batch_size: int,
    fast: FastPath,
    augmentation: str = "crop4-flip",
) -> Tuple[Any, Any]:
    """One pass over ``images[perm]`` in batches of ``batch_size`` (the last, smaller batch is kept).

    Returns ``(loss_sum, correct)`` as device tensors: the sum of per-image losses (float64) and the
    number of correct predictions. Nothing in here waits for the device: no ``.item()``, ``.cpu()``,
    printing or Python ``if`` on a tensor (``tests/test_fast_path.py`` checks this statically and by
    counting synchronising calls).
    """
    import torch

    n = perm.shape[0]
    loss_sum = torch.zeros((), dtype=torch.float64, device=images.device)
    correct = torch.zeros((), dtype=torch.int64, device=images.device)
    for i in range(0, n, batch_size):
        idx = perm[i : i + batch_size]
        loss, n_correct = train_step(step_model, optimizer, images[idx], labels[idx], aug_gen, fast, augmentation)
        loss_sum += loss.double() * idx.shape[0]
        correct += n_correct
    return loss_sum, correct


# --------------------------------------------------------------------------------------------------
# One run, in reading order: set-up (or resume), then per epoch train / evaluate in fp32 / record
# --------------------------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    out_dir: PathLike,
    *,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
    record_name: Optional[str] = None,
    lock_timeout_s: float = 120.0,
) -> Dict[str, Any]:
    """Train ``config`` and return its run record (also written to ``<out_dir>/<model>_seed<seed>.json``).

    ``resume=True`` continues from the checkpoint in ``<out_dir>/checkpoints`` (it must come from
    the same model and result-relevant config); without a checkpoint it starts from epoch 0.
    ``force=True`` discards any previous record / checkpoint of this run and starts afresh.
    An unfinished run found without ``resume`` / ``force`` is a ``FileExistsError``.
    ``record_name`` replaces the ``<model>_seed<seed>`` file stem.

    One process trains a run at a time: ``train`` holds ``checkpoints/<name>.train.lock`` throughout
    and waits up to ``lock_timeout_s`` seconds for another holder (e.g. the kernel of a killed sweep,
    which exits within seconds) before raising a ``RuntimeError`` that names it. Everything, including
    whether the run is already complete, is decided after the lock is taken.
    """
    from .locks import LockBusy, RunLock, train_lock_path

    if not isinstance(config, TrainConfig):
        raise TypeError(f"train() expects a TrainConfig, got {type(config).__name__}")
    if force and resume:
        raise ValueError("pass either force (start afresh) or resume (continue), not both")
    out = ensure_writable_dir(out_dir)  # PermissionError before any work
    ensure_writable_dir(out / "checkpoints")
    name = record_name or config.name
    lock = RunLock(train_lock_path(out, name), what=f"se-res2net train {name}")
    try:
        lock.acquire(timeout_s=lock_timeout_s)
    except LockBusy as exc:
        raise RuntimeError(
            f"run {name} is being trained by another process ({exc}); wait for it to finish, or stop it and "
            "start again with --resume"
        ) from None
    try:
        return _train_locked(config, out, name, force=force, resume=resume, progress=progress)
    finally:
        lock.release()


def _train_locked(
    config: TrainConfig, out: Path, name: str, *, force: bool, resume: bool, progress: bool
) -> Dict[str, Any]:
    """:func:`train` once the run's lock is held."""
    from tqdm import tqdm  # plain tqdm: tqdm.auto warns in notebooks without ipywidgets

    wall_start = time.perf_counter()
    device = resolve_device(config.device)
    rec_path = record_path(out, config.model, config.seed, name)
    ckpt_path = checkpoint_path(out, config.model, config.seed, name)
    finished = _finished_run(config, rec_path, ckpt_path, force=force, resume=resume)
    if finished is not None:
        return finished
    run = _set_up(config, device, progress)  # an error up to here leaves the run's files as they were
    record, start_epoch = _start_record(run, name, rec_path, ckpt_path, force=force, resume=resume)
    prior_wall = float(record["provenance"].get("wall_time_s") or 0.0)

    def stamp() -> None:
        record["provenance"]["end_time"] = utc_now()
        record["provenance"]["wall_time_s"] = round(prior_wall + time.perf_counter() - wall_start, 3)

    n = len(run.labels)
    log.info(
        "training %s (seed %d, %d params, %d MACs) on %s: %d train / %d test images (%s%s), epochs %d..%d",
        config.model, config.seed, run.params, run.macs, device, n, len(run.test_labels), run.data.source,
        ", SAMPLE" if run.data.is_sample else "", start_epoch + 1, config.epochs,
    )
    bar = tqdm(total=config.epochs, initial=start_epoch, disable=not progress, desc=name, unit="epoch", dynamic_ncols=True)
    epoch = start_epoch  # the failure path names epoch + 1, also when it fails before the first epoch
    try:
        with _numerics(device):
            stamp()
            write_record(rec_path, record)  # "running"; after a resume: no epoch beyond the checkpoint
            for epoch in range(start_epoch, config.epochs):
                t0 = time.perf_counter()
                lr = run.optimizer.param_groups[0]["lr"]
                loss_sum, correct = _run_epoch(run)
                train_loss, train_acc = loss_sum.item() / n, 100.0 * correct.item() / n  # one host sync per epoch
                train_time = time.perf_counter() - t0
                _check_finite("train", train_loss, epoch, lr)
                test_loss, test_error = _evaluate_fp32(run)
                _check_finite("test", test_loss, epoch, lr)
                record["epochs"].append({
                    "epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                    "test_loss": test_loss, "test_error": test_error,
                    "epoch_time_s": round(time.perf_counter() - t0, 4), "train_time_s": round(train_time, 4),
                })
                done = epoch + 1
                if done == config.epochs:
                    _mark_complete(record)  # before the last checkpoint, whose record must say so too
                stamp()
                if done % config.checkpoint_every == 0 or done == config.epochs:
                    _save_checkpoint(run, record, ckpt_path, ckpt_path.relative_to(out).as_posix(), done)
                write_record(rec_path, record)
                _report_epoch(bar, record["epochs"][-1], name, config.epochs, progress)
                if epoch == start_epoch and run.fast.compile_mode:  # the compile happened in this epoch
                    log.info("%s: first epoch with torch.compile(%s) took %.1f s; %s", name, run.fast.compile_mode,
                             train_time, compile_cache_summary())
            if record["status"] != "complete":  # resumed from the final checkpoint: no epoch left to run
                _mark_complete(record)
                stamp()
                write_record(rec_path, record)
    except NonFiniteLossError as exc:
        _fail(record, rec_path, "NonFiniteLoss", str(exc), epoch + 1, stamp)
        kept = f"the last good checkpoint {ckpt_path} is kept" if record.get("checkpoint") else "no checkpoint had been written yet"
        raise RuntimeError(
            f"training {name} diverged: {exc}; {rec_path} is marked failed and {kept}; lower --lr or check the model"
        ) from None
    except BaseException as exc:
        _fail(record, rec_path, type(exc).__name__, str(exc) or repr(exc), epoch + 1, stamp)
        raise
    finally:
        bar.close()
    log.info("%s complete: test error %.2f%% -> %s", name, record["final_test_error"], rec_path)
    return record


def _finished_run(
    config: TrainConfig, rec_path: Path, ckpt_path: Path, *, force: bool, resume: bool
) -> Optional[Dict[str, Any]]:
    """This run's complete record, to return untouched; ``None`` when there is training to do.

    A complete record of another configuration is a ``ValueError``; an unfinished run (a record or a
    checkpoint) needs ``resume`` or ``force``, so that no crash is silently started over; a resume whose
    record holds trained epochs needs their checkpoint (``FileNotFoundError``), so that none is silently lost.
    """
    if not force and rec_path.exists():
        existing = read_record(rec_path)
        if existing["status"] == "complete":
            cfg = config.to_dict()
            diff = [k for k in RESULT_KEYS if existing["config"].get(k) != cfg.get(k)]
            if diff:
                raise ValueError(
                    f"{rec_path} is a complete run with another configuration (differs in {diff}); "
                    "use another --out directory, or --force to replace it"
                )
            log.info("skipping %s: %s is already complete (test error %.2f%%); use --force to retrain",
                     rec_path.stem, rec_path, existing["final_test_error"])
            return existing
        if not resume:
            raise FileExistsError(
                f"an unfinished run ({existing['status']}) exists at {rec_path}; pass --resume to continue it "
                "or --force to start afresh"
            )
        if is_stranded(existing, ckpt_path):
            # resuming from epoch 0 would overwrite the measured epochs: a lost checkpoint is the user's call
            raise FileNotFoundError(stranded_message(rec_path, ckpt_path, len(existing["epochs"])))
        saved = existing.get("checkpoint_epoch")  # the epoch of the last checkpoint written (records since stop 39)
        if saved is not None and ckpt_path.exists():
            from .checkpoint import checkpoint_epoch

            # an older checkpoint than the last one written (the newer did not come back from a GPU block, say):
            # resuming from it would silently cut the record's later epochs and train them again. (A checkpoint
            # behind the logged epochs by less than checkpoint_every is the normal case, and resumes.)
            at = checkpoint_epoch(ckpt_path)
            if at < int(saved):
                raise FileNotFoundError(
                    f"{rec_path} says its checkpoint was written at epoch {saved}, but {ckpt_path} is of epoch {at}: "
                    f"the newer checkpoint is missing. Bring it back to resume; or move {rec_path} away to resume "
                    f"from epoch {at} (the epochs after it are then trained again), or pass --force to start afresh")
    elif not (force or resume) and ckpt_path.exists():
        raise FileExistsError(
            f"a checkpoint of an unfinished run exists at {ckpt_path}; pass --resume to continue it or --force to start afresh"
        )
    return None


@dataclass
class _Run:
    """What the set-up resolves for one run; the epochs and the checkpoint read and update it."""

    config: TrainConfig
    device: Any
    data: Any  # se_res2net.training.data.Cifar10, after the config's subsets
    fast: FastPath
    params: int
    macs: int
    model: Any
    step_model: Any  # model itself, or its torch.compile wrapper (same parameters)
    eval_model: Any  # a plain fp32 copy for evaluation, see _evaluate_fp32
    optimizer: Any
    scheduler: Any
    order_gen: Any  # data order (CPU generator)
    aug_gen: Any  # augmentation (on the device)
    ck_config: Dict[str, Any]  # the config as the checkpoint stores it: plus the data and bf16 actually used
    images: Any
    labels: Any
    test_images: Any
    test_labels: Any


def _set_up(config: TrainConfig, device: Any, progress: bool) -> _Run:
    """Data on the device, the model seeded with ``config.seed``, optimiser, schedule and the data generators."""
    import torch

    from ..models.registry import create_model
    from .data import NoDataSourceError, SourceFlags, load_cifar10

    try:
        data = load_cifar10(config.data_source, config.data_dir, download=config.download, progress=progress)
    except NoDataSourceError as exc:
        # Spelled as TrainConfig fields, which are also the run notebook's papermill parameters (it has no
        # download parameter, hence no download spelling); the CLI re-spells it as its own flags.
        raise exc.with_flags(SourceFlags("data_dir=DIR", None, 'data_source="sample"')) from None
    if config.train_subset is not None or config.test_subset is not None:
        data = data.subset(train=config.train_subset, test=config.test_subset, seed=0)
    fast = resolve_fast_path(config, device.type)

    torch.manual_seed(config.seed)  # weight init (and the CUDA generators)
    try:
        model = create_model(config.model, **config.model_kwargs_dict)
    except TypeError as exc:
        raise ValueError(f"model {config.model!r} does not accept the overrides {config.model_kwargs_dict}: {exc}") from None
    params, macs = _complexity(model)
    with torch.random.fork_rng(devices=[]):  # the fp32 evaluation copy must not move the training RNG
        eval_model = create_model(config.model, **config.model_kwargs_dict).to(device)
    model, step_model = prepare_model(model, device, fast)
    optimizer = make_optimizer(model, config, fast)
    return _Run(
        config=config, device=device, data=data, fast=fast, params=params, macs=macs,
        model=model, step_model=step_model, eval_model=eval_model, optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.gamma),
        order_gen=torch.Generator().manual_seed(_derive_seed(config.seed, "order")),
        aug_gen=torch.Generator(device=device).manual_seed(_derive_seed(config.seed, "augment")),
        ck_config={**config.to_dict(), "data_fingerprint": data.fingerprint, "bf16_resolved": fast.bf16},
        images=torch.from_numpy(data.train.images).to(device),
        labels=torch.from_numpy(data.train.labels).to(device),
        test_images=torch.from_numpy(data.test.images).to(device),
        test_labels=torch.from_numpy(data.test.labels).to(device),
    )


def _start_record(
    run: _Run, name: str, rec_path: Path, ckpt_path: Path, *, force: bool, resume: bool
) -> Tuple[Dict[str, Any], int]:
    """The record to write to and the first epoch to run: the checkpoint's (its state restored into ``run``)
    when resuming from one, else a new record at epoch 0."""
    code = code_hash()
    if force:
        for p in (rec_path, ckpt_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    _remove_stale_temp_files(rec_path, ckpt_path)
    if resume and ckpt_path.exists():
        return _resume(run, name, ckpt_path, code)
    if resume:
        log.info("no checkpoint at %s; starting %s from epoch 0", ckpt_path, name)
    return _new_record(run, name, code), 0


def _resume(run: _Run, name: str, ckpt_path: Path, code: Dict[str, Any]) -> Tuple[Dict[str, Any], int]:
    import torch

    from .checkpoint import load_checkpoint

    config, device = run.config, run.device
    ck = load_checkpoint(ckpt_path, expect_model=config.model, expect_config=run.ck_config, config_keys=CHECKPOINT_KEYS,
                         fixes=RESUME_FIXES)
    try:
        run.model.load_state_dict(ck["state_dict"])
    except RuntimeError as exc:  # the model's code changed since the checkpoint was written
        raise ValueError(
            f"checkpoint {ckpt_path} does not fit {config.model} as this code builds it "
            f"({str(exc).splitlines()[0]}); resume with the code that wrote it (its record names the commit), or "
            "pass --force to start afresh") from None
    # load_state_dict also takes the saved groups' implementation flags (fused / foreach): this session's own
    # choice (recorded below) is put back, the hyperparameters and momenta stay the checkpoint's
    impl = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in run.optimizer.param_groups]
    run.optimizer.load_state_dict(ck["optimizer"])
    for group, own in zip(run.optimizer.param_groups, impl):
        group.update(own)
    run.scheduler.load_state_dict(ck["scheduler"])
    rng = ck["rng"]
    torch.set_rng_state(rng["torch"])
    if device.type == "cuda" and rng.get("cuda") is not None:
        torch.cuda.set_rng_state(rng["cuda"], device)
    run.order_gen.set_state(rng["order"])  # a CPU generator on every device: the data order always goes on
    record, start_epoch = ck["record"], int(ck["epoch"])
    augment_rng = _restore_augment_rng(run, rng, record, start_epoch, name)
    record["status"] = "running"  # completed by the epoch loop, also when resuming from the final checkpoint
    record["failure"] = None
    record["config"] = config.to_dict()  # non-result settings (device, progress, checkpoint_every, ...) may change
    # the device, torch and CUDA that train on from here: a run may resume on other hardware than it started on
    info, fast = device_info(device), run.fast
    record.setdefault("resumes", []).append(
        {"epoch": start_epoch, "time": utc_now(), "device": info["device"], "device_name": info["device_name"],
         "torch": torch.__version__, "cuda": info["cuda"], "code": code, "sharing": sharing_info(device),
         # what the start's provenance says of its session, said again of this one
         **git_state(), "python": platform.python_version(), "platform": platform.platform(),
         "torch_threads": torch.get_num_threads(), "bf16": fast.bf16, "channels_last": fast.channels_last,
         "compile": bool(config.compile), "compile_mode": fast.compile_mode, "sgd_impl": fast.sgd_impl,
         "augment_rng": augment_rng}
    )
    if record.get("code", {}).get("sha256") != code["sha256"]:
        log.warning("resuming %s with different package code than it was started with (code hash changed)", name)
    log.info("resuming %s from %s at epoch %d/%d", name, ckpt_path, start_epoch, config.epochs)
    return record, start_epoch


def _augment_rng_device(rng: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """The device type (``"cpu"`` / ``"cuda"``) whose generator wrote a checkpoint's augmentation state: its own
    ``augment_device``, or, in checkpoints from before that key, the device of the record's last start or resume
    (the one that trained up to the checkpoint)."""
    if rng.get("augment_device"):
        return str(rng["augment_device"])
    marks = [record.get("provenance") or {}] + list(record.get("resumes") or [])
    device = next((m["device"] for m in reversed(marks) if m.get("device")), "cpu")
    return str(device).split(":")[0]


def _restore_augment_rng(run: _Run, rng: Mapping[str, Any], record: Mapping[str, Any], epoch: int,
                         name: str) -> Dict[str, Any]:
    """Put the checkpoint's augmentation generator state back, where this device's generator can take it.

    A CUDA generator's state (Philox: seed and offset, 16 bytes) and a CPU one's (Mersenne Twister, 5,056 bytes)
    are different kinds of thing, and neither device can continue the other's stream. A run resumed on the other
    device type therefore goes on with a fresh augmentation stream, seeded from the run seed, the epoch and the
    device type (the same resume gives the same numbers), and its resume entry says so: its crops and flips from
    there differ from an uninterrupted run's. The data order (a CPU generator everywhere) and the weights,
    momenta and schedule continue exactly."""
    saved = _augment_rng_device(rng, record)
    here = run.device.type
    if saved == here:
        run.aug_gen.set_state(rng["augment"])
        return {"restored": True, "device": here}
    seed = _derive_seed(run.config.seed, f"augment/resumed-on-{here}-at-epoch-{epoch}")
    run.aug_gen.manual_seed(seed)
    log.warning("%s: the checkpoint's augmentation generator is a %s one, which a %s generator cannot continue; "
                "epochs %d- augment with a fresh stream (seed %d), recorded in the run's resumes", name,
                saved.upper(), here.upper(), epoch + 1, seed)
    return {"restored": False, "device": here, "checkpoint_device": saved, "seed": seed}


def _new_record(run: _Run, name: str, code: Dict[str, Any]) -> Dict[str, Any]:
    config, fast = run.config, run.fast
    prov = provenance(run.device, run.data)
    prov.update({"bf16": fast.bf16, "channels_last": fast.channels_last, "compile": bool(config.compile),
                 "compile_mode": fast.compile_mode, "sgd_impl": fast.sgd_impl,
                 "deterministic": run.device.type == "cpu", "eval_precision": "fp32"})
    return _jsonable({
        "schema": "se_res2net.run/1", "status": "running", "name": name, "model": config.model,
        "model_kwargs": config.model_kwargs_dict, "seed": config.seed, "profile": config.profile,
        "config": config.to_dict(), "params": run.params, "macs": run.macs, "epochs": [], "final_test_error": None,
        "failure": None, "checkpoint": None, "code": code, "provenance": prov,
    })


def _run_epoch(run: _Run) -> Tuple[Any, Any]:
    """One epoch in a fresh order, then the schedule's step; returns :func:`train_epoch`'s device tensors."""
    import torch

    run.model.train()
    perm = torch.randperm(len(run.labels), generator=run.order_gen).to(run.device)
    loss_sum, correct = train_epoch(run.step_model, run.optimizer, run.images, run.labels, perm, run.aug_gen,
                                    run.config.batch_size, run.fast, run.config.augment)
    run.scheduler.step()
    return loss_sum, correct


def compile_cache_summary() -> str:
    """This process's hits and misses of inductor's FX graph cache and AOTAutograd's cache, as one phrase.

    A compile that hits both caches loads compiled kernels instead of generating them (seconds instead of most
    of a minute per graph); the GPU runbook carries the cache from one block to the next for that. These are
    torch's own counters (``torch._dynamo.utils.counters``), read, never reset."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:  # pragma: no cover - torch without dynamo
        return "compile cache counters unavailable"
    fx: Mapping[str, int] = counters.get("inductor", {})
    aot: Mapping[str, int] = counters.get("aot_autograd", {})
    return (f"compile cache: FX graph {fx.get('fxgraph_cache_hit', 0)} hit(s) / {fx.get('fxgraph_cache_miss', 0)} "
            f"miss(es), AOTAutograd {aot.get('autograd_cache_hit', 0)} hit(s) / {aot.get('autograd_cache_miss', 0)} "
            "miss(es)")


def _check_finite(split: str, loss: float, epoch: int, lr: float) -> None:
    if not math.isfinite(loss):
        raise NonFiniteLossError(f"{split} loss is {loss} at epoch {epoch + 1} (lr {lr:g})")


def _evaluate_fp32(run: _Run) -> Tuple[float, float]:
    """Test loss and error of the current weights, whatever the training precision, layout or compilation:
    the weights are copied into a plain fp32 network first, as ``se-res2net test`` loads them."""
    run.eval_model.load_state_dict(run.model.state_dict())
    return evaluate(run.eval_model, run.test_images, run.test_labels, run.device, run.config.eval_batch_size)


def _mark_complete(record: Dict[str, Any]) -> None:
    record["status"] = "complete"
    record["final_test_error"] = record["epochs"][-1]["test_error"]


def _save_checkpoint(run: _Run, record: Dict[str, Any], path: Path, rel_path: str, epoch_done: int) -> None:
    """Everything ``resume`` needs to continue bit-identically, the record so far included."""
    import torch

    from .checkpoint import save_checkpoint

    rng = {"torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None,
           "order": run.order_gen.get_state(), "augment": run.aug_gen.get_state(),
           "augment_device": run.device.type}
    save_checkpoint(path, {
        "model": run.config.model, "model_kwargs": run.config.model_kwargs_dict, "state_dict": run.model.state_dict(),
        "epoch": epoch_done, "config": run.ck_config, "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "rng": rng,
        "record": _jsonable(dict(record, checkpoint=rel_path, checkpoint_epoch=epoch_done)),
    })
    # only once the file is there: a record that names a checkpoint never written would strand its run, and one
    # that names a later epoch than the file holds would refuse to resume from it
    record["checkpoint"], record["checkpoint_epoch"] = rel_path, epoch_done


def _report_epoch(bar: Any, entry: Mapping[str, Any], name: str, epochs: int, progress: bool) -> None:
    bar.update(1)
    bar.set_postfix(loss=f"{entry['train_loss']:.3f}", acc=f"{entry['train_acc']:.1f}", err=f"{entry['test_error']:.2f}")
    # with a progress bar the per-epoch line would only interleave with it
    log.log(
        logging.DEBUG if progress else logging.INFO,
        "%s epoch %d/%d lr %.4g train loss %.4f acc %.2f%% test loss %.4f error %.2f%% (%.1f s)",
        name, entry["epoch"], epochs, entry["lr"], entry["train_loss"], entry["train_acc"], entry["test_loss"],
        entry["test_error"], entry["epoch_time_s"],
    )


def _fail(record: Dict[str, Any], path: Path, kind: str, message: str, epoch: int, stamp: Any) -> None:
    record["status"] = "failed"
    record["final_test_error"] = None
    record["failure"] = {"type": kind, "message": message, "epoch": epoch}
    try:
        stamp()
        write_record(path, record)
    except Exception:  # never hide the original error behind a failure to record it
        log.exception("could not write the failed record %s", path)


# --------------------------------------------------------------------------------------------------
# CLI: se-res2net train / test
# --------------------------------------------------------------------------------------------------


def _parse_model_arg(text: str) -> Tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--model-arg expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registered model name, e.g. se_res2net29")
    p.add_argument("--model-arg", action="append", type=_parse_model_arg, default=[], metavar="KEY=VALUE",
                   help="override of the model factory (JSON value), repeatable, e.g. --model-arg scale=8")
    p.add_argument("--epochs", type=int, default=300, help="training epochs (report: 300)")
    p.add_argument("--batch-size", type=int, default=128, help="images per SGD step (report: 128)")
    p.add_argument("--lr", type=float, default=0.1, help="initial learning rate (report: 0.1)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (report: 0.9)")
    p.add_argument("--nesterov", action="store_true", help="Nesterov momentum (report: no)")
    p.add_argument("--wd", type=float, default=1e-4, help="weight decay on every parameter (report: 1e-4)")
    p.add_argument("--schedule", type=int, nargs="*", default=None, metavar="EPOCH",
                   help="epochs at which lr is multiplied by --gamma (report: 150 225); default: the report's "
                        "50%%/75%% points of --epochs; give the flag with no value for a constant lr")
    p.add_argument("--gamma", type=float, default=0.1, help="lr factor at each milestone (report: 0.1)")
    p.add_argument("--augment", choices=AUGMENTATIONS, default="crop4-flip",
                   help="training augmentation (report: crop4-flip = zero-pad 4, random 32x32 crop, horizontal flip)")
    p.add_argument("--seed", type=int, default=0, help="run seed (report: 0, 1, 2)")
    p.add_argument("--data", choices=DATA_SOURCES, default="auto", help="CIFAR-10 source (default: auto)")
    p.add_argument("--data-dir", default=None, help="class-folder CIFAR-10 (or the torchvision root)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10")
    p.add_argument("--subset", type=int, default=None, metavar="N",
                   help="train on N images (stratified subset). Training only: every epoch is still tested on the "
                        "whole test split (10,000 images, minutes on CPU) unless you add --test-subset M")
    p.add_argument("--test-subset", type=int, default=None, metavar="M",
                   help="test on M images (stratified subset of the test split; default: all of it)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast (default: on CUDA)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels-last memory format (default: on CUDA)")
    p.add_argument("--compile", nargs="?", const="default", default=None, choices=COMPILE_MODES, metavar="MODE",
                   help="torch.compile the model; MODE one of " + ", ".join(COMPILE_MODES)
                        + " (default: default; reduce-overhead = CUDA graphs)")
    p.add_argument("--sgd", choices=SGD_IMPLS, default="auto",
                   help="SGD implementation (default auto: fused on CUDA, the for-loop on CPU)")
    p.add_argument("--eval-batch-size", type=int, default=500, help="test images per evaluation batch (default 500)")
    p.add_argument("--checkpoint-every", type=int, default=10, metavar="EPOCHS", help="checkpoint interval (default 10)")
    p.add_argument("--out", default="runs/custom", help="output directory (default runs/custom)")
    p.add_argument("--name", default=None, help="file stem of the record / checkpoint (default <model>_seed<seed>)")
    p.add_argument("--profile", default="custom", help="profile label stored in the record")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--force", action="store_true", help="discard a previous record of this run and start afresh")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log each epoch instead)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    milestones = report_milestones(args.epochs) if args.schedule is None else tuple(args.schedule)
    return TrainConfig(
        model=args.model, model_kwargs=dict(args.model_arg), seed=args.seed,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum, weight_decay=args.wd,
        nesterov=args.nesterov, milestones=milestones, gamma=args.gamma, augment=args.augment,
        data_source=args.data, data_dir=args.data_dir, download=args.download,
        train_subset=args.subset, test_subset=args.test_subset, eval_batch_size=args.eval_batch_size,
        device=args.device, bf16=args.bf16, channels_last=args.channels_last, sgd_impl=args.sgd,
        compile=args.compile is not None, compile_mode=args.compile or "default",
        checkpoint_every=args.checkpoint_every, profile=args.profile,
    )


def run_train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if config.train_subset is not None and config.test_subset is None:
        # --subset alone looks like a quick run but still tests on the whole split each epoch: say so up front
        log.info("--subset %d trains on %d images only; every epoch is tested on the whole test split "
                 "(add --test-subset M to test on M images)", config.train_subset, config.train_subset)
    record = train(config, args.out, force=args.force, resume=args.resume, progress=not args.no_progress,
                   record_name=args.name)
    path = record_path(args.out, config.model, config.seed, args.name)
    sample = " [SAMPLE data]" if record["provenance"].get("data_is_sample") else ""
    print(f"{record.get('name', config.name)}: test error {record['final_test_error']:.2f}% after "
          f"{len(record['epochs'])} epochs{sample} -> {path}")
    return 0


def add_test_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint_path", nargs="*", default=[], metavar="CHECKPOINT",
                   help="one or more .pt files written by 'se-res2net train' (with --json: one JSON line each); "
                        "each is compared with the test error its own record measured at its epoch")
    p.add_argument("--checkpoint", default=None, help=argparse.SUPPRESS)
    p.add_argument("--data", choices=DATA_SOURCES, default=None,
                   help="CIFAR-10 source (default: the checkpoint's own, else auto)")
    p.add_argument("--data-dir", default=None, help="class-folder CIFAR-10 (or the torchvision root)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10")
    p.add_argument("--test-subset", type=int, default=None, metavar="M",
                   help="evaluate on M test images (default: the checkpoint's own test subset)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=None, help="default: the checkpoint's eval batch size (500)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def evaluate_checkpoint(
    checkpoint: PathLike,
    data_source: Optional[str] = None,
    data_dir: Optional[PathLike] = None,
    *,
    test_subset: Optional[int] = None,
    device: str = "auto",
    batch_size: Optional[int] = None,
    download: bool = False,
) -> Dict[str, Any]:
    """Test error (percent) and loss of a checkpoint on the test split (float32, no augmentation).

    Unset arguments come from the checkpoint's training config (data source, test subset, evaluation
    batch size), so by default this measures exactly what the run record's ``test_error`` measured; the
    result says whether the data matched (``same_data_as_run``). A checkpoint's data source ``folder`` /
    ``torchvision`` becomes ``auto`` here (the folder may live elsewhere on this machine).
    """
    import torch

    from .checkpoint import load_model_from_checkpoint
    from .data import load_cifar10

    dev = resolve_device(device)
    model, ck = load_model_from_checkpoint(checkpoint, str(dev))
    cfg = ck.get("config", {}) or {}
    if data_source is None:
        data_source = "sample" if cfg.get("data_source") == "sample" else "auto"
    if data_source not in DATA_SOURCES:
        raise ValueError(f"data source must be one of {', '.join(DATA_SOURCES)}, got {data_source!r}")
    if test_subset is None:
        test_subset = cfg.get("test_subset")
    if test_subset is not None and test_subset < 1:
        raise ValueError(f"--test-subset must be >= 1, got {test_subset}")
    if batch_size is None:
        batch_size = int(cfg.get("eval_batch_size") or 500)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    data = load_cifar10(data_source, data_dir, download=download, progress=False)
    if test_subset is not None:
        # the trainer subsets train and test together with seed 0; the test part does not depend on the train part
        data = data.subset(train=cfg.get("train_subset"), test=test_subset, seed=0)
    loss, error = evaluate(model, data.test.images, data.test.labels, dev, batch_size)
    same_data = cfg.get("data_fingerprint") == data.fingerprint if cfg.get("data_fingerprint") else None
    # the record inside the checkpoint holds what training measured after this epoch: compare, on the same data
    record = ck.get("record") or {}
    entry = next((e for e in record.get("epochs") or [] if e.get("epoch") == ck["epoch"]), None)
    comparable = entry is not None and same_data is not False and test_subset == cfg.get("test_subset")
    return {
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest(),
        "model": ck["model"],
        "model_kwargs": ck.get("model_kwargs", {}),
        "epoch": ck["epoch"],
        "test_loss": loss,
        "test_error": error,
        "test_size": len(data.test),
        "batch_size": batch_size,
        "data_source": data.source,
        "data_is_sample": data.is_sample,
        "data_fingerprint": data.fingerprint,
        "same_data_as_run": same_data,
        "evaluated_on": {"device_name": device_info(dev)["device_name"], "torch": torch.__version__},
        "record": None if entry is None else {"test_error": entry["test_error"], "test_loss": entry["test_loss"],
                                              "evaluated_on": epoch_device(record, int(ck["epoch"]))},
        # the record's error again, to the digit: fp32 evaluation makes this hold across machines (rounding moves
        # the loss in its last digits, almost never a prediction); None when the data or subset differ
        "reproduces_record": (entry["test_error"] == error) if comparable and entry is not None else None,
    }


def epoch_device(record: Mapping[str, Any], epoch: int) -> Optional[str]:
    """The device that trained and evaluated ``epoch`` (1-based) of a run: the last resume before it, else the
    device the run started on (a run may resume on other hardware)."""
    device = (record.get("provenance") or {}).get("device_name")
    for r in record.get("resumes") or []:
        if int(r.get("epoch", 0)) < epoch:
            device = r.get("device_name", device)
    return device


def run_test(args: argparse.Namespace) -> int:
    paths = list(args.checkpoint_path) or ([args.checkpoint] if args.checkpoint else [])
    if not paths:
        raise ValueError("give the checkpoint to evaluate: se-res2net test PATH.pt")
    if args.checkpoint_path and args.checkpoint and args.checkpoint_path != [args.checkpoint]:
        raise ValueError("checkpoints given both as arguments and with --checkpoint; give them as arguments")
    for path in paths:
        _test_one(path, args)
    return 0


def _test_one(path: str, args: argparse.Namespace) -> None:
    result = evaluate_checkpoint(
        path, args.data, args.data_dir, test_subset=args.test_subset, device=args.device,
        batch_size=args.batch_size, download=args.download,
    )
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        sample = " [SAMPLE data]" if result["data_is_sample"] else ""
        other = "" if result["same_data_as_run"] is not False else " (NOT the data the run was evaluated on)"
        print(f"{result['model']} (epoch {result['epoch']}): test error {result['test_error']:.2f}% "
              f"(loss {result['test_loss']:.4f}) on {result['test_size']} {result['data_source']} test "
              f"images{sample}{other}, on {result['evaluated_on']['device_name']}")
        rec = result["record"]
        if result["reproduces_record"] is not None:
            verdict = "reproduces" if result["reproduces_record"] else "DOES NOT reproduce"
            print(f"{verdict} the record's test error at epoch {result['epoch']}, {rec['test_error']:.2f}% "
                  f"(evaluated on {rec['evaluated_on']}); test loss differs by "
                  f"{abs(result['test_loss'] - rec['test_loss']):.1e}", flush=True)
