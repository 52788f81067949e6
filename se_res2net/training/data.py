"""CIFAR-10: one canonical dataset from three sources, fingerprinted, cached, with batched augmentation.

Sources
-------
``"folder"``
    A class-folder directory of PNGs, ``{train,test}/<class>/*.png`` (50,000 / 10,000 images), chosen by
    ``data_dir=`` (CLI ``--data-dir``) or the environment variable ``SE_RES2NET_DATA_DIR``.
``"torchvision"``
    ``torchvision.datasets.CIFAR10`` under ``~/.cache/se_res2net/torchvision`` (or ``data_dir``); it is downloaded
    only when ``download=True`` (CLI ``--download``).
``"sample"``
    A small real subset shipped in the package (``se_res2net/_sample/cifar10``, 30 train + 10 test images per
    class), so tests and the smoke profile run with no network and no dataset. Everything loaded from it
    carries ``is_sample=True`` and must be labelled as such.

Canonical form
--------------
Whatever the source, the result is the same arrays: images ``uint8`` ``(N, 3, 32, 32)`` (NCHW, RGB), labels
``int64`` ``(N,)``, sorted by label and then by the raw pixel bytes of the NCHW image (the README of the data
folder leaves the order to the loader; this one does not depend on file names or batch order). The SHA-256 of
``images.tobytes() + labels.tobytes()`` (little-endian int64) of each split is checked against constants below;
any mismatch (missing class, wrong count, truncated or altered PNG, non-32x32 image) is one clear error naming
the source path and the fix.

Cache
-----
The decoded canonical arrays of the full data set are kept in one uncompressed ``.npz`` (written atomically)
in ``SE_RES2NET_CACHE`` or ``~/.cache/se_res2net/``, keyed by the source, its path and the expected
fingerprint; the cache also stores a digest of the source listing (names, sizes, mtimes) so an edited source is
decoded again. A cache that fails its fingerprint check is rebuilt with a warning.

Augmentation
------------
:func:`augment` is the report's training augmentation (zero-pad 4, random 32x32 crop, horizontal flip with
p = 0.5, normalise) done as batched tensor ops on the batch's device, deterministic given a
``torch.Generator`` on that device.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .atomic import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

# --------------------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------------------

CIFAR10_CLASSES: Tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
)

# Per-channel (R, G, B) statistics of pixel values in [0, 1], population std, from the data folder's README
# (equal to those of the canonical ``cifar-10-python.tar.gz``); reproduced by tests/test_data.py.
CIFAR10_MEAN: Tuple[float, float, float] = (0.49139968, 0.48215841, 0.44653091)
CIFAR10_STD: Tuple[float, float, float] = (0.24703223, 0.24348513, 0.26158784)
CIFAR10_TEST_MEAN: Tuple[float, float, float] = (0.49421428, 0.48513139, 0.45040909)
CIFAR10_TEST_STD: Tuple[float, float, float] = (0.24665252, 0.24289226, 0.26159238)

IMAGE_SHAPE: Tuple[int, int, int] = (3, 32, 32)
SOURCES: Tuple[str, ...] = ("auto", "folder", "torchvision", "sample")

DATA_DIR_ENV = "SE_RES2NET_DATA_DIR"
CACHE_ENV = "SE_RES2NET_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/se_res2net")
DEFAULT_TORCHVISION_ROOT = Path("~/.cache/se_res2net/torchvision")
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "_sample" / "cifar10"

CACHE_SCHEMA = "se_res2net.cifar10-cache/1"


@dataclass(frozen=True)
class _Expected:
    """What a source must decode to: images per class and the canonical SHA-256 of each split."""

    name: str
    train_per_class: int
    test_per_class: int
    train_sha256: str
    test_sha256: str

    def per_class(self, split: str) -> int:
        return self.train_per_class if split == "train" else self.test_per_class

    def sha256(self, split: str) -> str:
        return self.train_sha256 if split == "train" else self.test_sha256

    @property
    def fingerprint(self) -> str:
        return combine_fingerprints(self.train_sha256, self.test_sha256)


# Computed once from /work/shared/data/cifar10 (50,000 + 10,000 PNGs) with split_fingerprint().
CIFAR10_TRAIN_SHA256 = "fa158f4331f69569f54ed36512abd0c084187fb1128450632ac5d6a1b1428e5f"
CIFAR10_TEST_SHA256 = "ae7de586ee906318032f731aed6bb7b6bef8c8d08d43c7841f103212fda8f736"
# The embedded sample (se_res2net/_sample/cifar10: 30 train + 10 test images per class).
SAMPLE_TRAIN_SHA256 = "f71d4b831a2139a93c8f01d0dbf4cbdc5f5b9f406253066e04facd257aca359a"
SAMPLE_TEST_SHA256 = "0cb7377c0ce5dbf34a28fe194b5a78d9b88a147ab91df44e06eafa566694f51e"
SAMPLE_TRAIN_PER_CLASS = 30
SAMPLE_TEST_PER_CLASS = 10

_FULL = _Expected("CIFAR-10", 5000, 1000, CIFAR10_TRAIN_SHA256, CIFAR10_TEST_SHA256)
_SAMPLE = _Expected(
    "the embedded CIFAR-10 sample", SAMPLE_TRAIN_PER_CLASS, SAMPLE_TEST_PER_CLASS, SAMPLE_TRAIN_SHA256, SAMPLE_TEST_SHA256
)

# --------------------------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CifarSplit:
    """One split in canonical form: ``images`` uint8 (N, 3, 32, 32), ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(
                f"CifarSplit.images must be a uint8 numpy array of shape (N, 3, 32, 32), got "
                f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}; convert with to_canonical()"
            )
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.shape != (images.shape[0],):
            raise ValueError(
                f"CifarSplit.labels must be an int64 numpy array of shape ({images.shape[0]},), got "
                f"{getattr(labels, 'dtype', type(labels))} {getattr(labels, 'shape', '')}; convert with to_canonical()"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def sha256(self) -> str:
        """SHA-256 of the canonical bytes (images, then little-endian int64 labels)."""
        return split_fingerprint(self.images, self.labels)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(CIFAR10_CLASSES))


@dataclass(frozen=True, eq=False)
class Cifar10:
    """CIFAR-10 in canonical form, with where it came from.

    ``fingerprint`` identifies the data exactly (see :func:`combine_fingerprints`); a subset appends
    ``:subset(train=..,test=..,seed=..)``. ``is_sample`` is True for the embedded sample, which must be labelled
    as such wherever a result depends on it.
    """

    train: CifarSplit
    test: CifarSplit
    source: str  # "folder" | "torchvision" | "sample"
    is_sample: bool
    fingerprint: str
    root: Optional[str]

    @property
    def classes(self) -> Tuple[str, ...]:
        return CIFAR10_CLASSES

    def subset(self, train: Optional[int] = None, test: Optional[int] = None, seed: int = 0) -> "Cifar10":
        """A stratified, deterministic subset keeping canonical order.

        ``train`` / ``test``: number of images to keep (``None``: the whole split). Each class gets its share of
        ``n`` in proportion to its size (largest remainders, ties broken by the seed); within a class the images
        are drawn without replacement by ``numpy.random.default_rng([seed, split])``; the kept indices are sorted.
        """
        if train is None and test is None:
            return self
        return replace(
            self,
            train=_stratified(self.train, train, seed, 0, "train"),
            test=_stratified(self.test, test, seed, 1, "test"),
            fingerprint=f"{self.fingerprint}:subset(train={train},test={test},seed={seed})",
        )

    def summary(self) -> Dict[str, Any]:
        """Provenance fields for run records."""
        return {
            "data_source": self.source,
            "data_fingerprint": self.fingerprint,
            "data_is_sample": self.is_sample,
            "train_size": len(self.train),
            "test_size": len(self.test),
        }


def _stratified(split: CifarSplit, n: Optional[int], seed: int, stream: int, name: str) -> CifarSplit:
    total = len(split)
    if n is None:
        return split
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0 or n > total:
        raise ValueError(f"subset({name}={n!r}) must be an integer between 0 and {total} (the size of the {name} split)")
    n = int(n)
    rng = np.random.default_rng([int(seed), stream])
    counts = split.class_counts()
    quota_exact = n * counts / max(total, 1)
    quota = np.floor(quota_exact).astype(np.int64)
    remainder = n - int(quota.sum())
    if remainder:
        tie_break = rng.permutation(len(counts))
        # Largest fractional part first; ties in a seeded order.
        order = sorted(range(len(counts)), key=lambda c: (-(quota_exact[c] - quota[c]), tie_break[c]))
        for c in order[:remainder]:
            quota[c] += 1
    keep: List[np.ndarray] = []
    for c in range(len(counts)):
        if quota[c]:
            idx = np.flatnonzero(split.labels == c)
            keep.append(rng.choice(idx, size=int(quota[c]), replace=False))
    index = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    return CifarSplit(np.ascontiguousarray(split.images[index]), np.ascontiguousarray(split.labels[index]))


# --------------------------------------------------------------------------------------------------------------
# Canonical form and fingerprints
# --------------------------------------------------------------------------------------------------------------


def split_fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 hex of ``images`` (uint8, C order) followed by ``labels`` (little-endian int64)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images, dtype=np.uint8).data)
    h.update(np.ascontiguousarray(labels, dtype="<i8").data)
    return h.hexdigest()


def combine_fingerprints(train_sha256: str, test_sha256: str) -> str:
    """The data set's fingerprint: SHA-256 hex of ``"cifar10:<train sha256>:<test sha256>"``."""
    return hashlib.sha256(f"cifar10:{train_sha256}:{test_sha256}".encode("ascii")).hexdigest()


#: The fingerprints a run record's ``provenance.data_fingerprint`` carries for the whole data set and the
#: embedded sample (a subset appends ``:subset(...)``); se_res2net.audit.conformance checks records against them.
CIFAR10_FINGERPRINT = _FULL.fingerprint
SAMPLE_FINGERPRINT = _SAMPLE.fingerprint


def canonical_order(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices sorting by label, then by the raw bytes of each NCHW image (lexicographic, unsigned)."""
    flat = np.ascontiguousarray(images).reshape(images.shape[0], -1)
    as_bytes = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()  # np.void compares raw bytes: unsigned, lexicographic
    return np.lexsort((as_bytes, np.asarray(labels))).astype(np.int64)


def to_canonical(images: np.ndarray, labels: Union[np.ndarray, Sequence[int]], layout: str = "NCHW") -> CifarSplit:
    """Any uint8 image array + labels → a :class:`CifarSplit` in canonical order.

    ``layout="NHWC"`` is torchvision's ``CIFAR10.data`` layout ``(N, 32, 32, 3)``; ``"NCHW"`` is ours.
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"CIFAR-10 images must be uint8, got {arr.dtype}; pass the raw 0..255 pixels")
    if layout == "NHWC":
        if arr.ndim != 4 or arr.shape[1:] != (32, 32, 3):
            raise ValueError(f"expected NHWC images of shape (N, 32, 32, 3), got {arr.shape}")
        arr = arr.transpose(0, 3, 1, 2)
    elif layout != "NCHW":
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', got {layout!r}")
    if arr.ndim != 4 or arr.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"expected NCHW images of shape (N, 3, 32, 32), got {arr.shape}")
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if lab.shape[0] != arr.shape[0]:
        raise ValueError(f"{arr.shape[0]} images but {lab.shape[0]} labels")
    if lab.size and (lab.min() < 0 or lab.max() >= len(CIFAR10_CLASSES)):
        raise ValueError(f"labels must lie in 0..{len(CIFAR10_CLASSES) - 1}, got {lab.min()}..{lab.max()}")
    arr = np.ascontiguousarray(arr)
    order = canonical_order(arr, lab)
    return CifarSplit(np.ascontiguousarray(arr[order]), np.ascontiguousarray(lab[order]))


def channel_stats(images_uint8_nchw: Any) -> Tuple[Tuple[float, float, float], Tuple[float, float, float]]:
    """Per-channel mean and population std of pixel values scaled to [0, 1], exact (via 256-bin histograms)."""
    arr = images_uint8_nchw
    if hasattr(arr, "detach"):  # a torch tensor
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1] != 3:
        raise ValueError(f"channel_stats expects uint8 NCHW images with 3 channels, got {arr.dtype} {arr.shape}")
    if arr.size == 0:
        raise ValueError("channel_stats needs at least one image")
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(3):
        hist = np.bincount(arr[:, c].reshape(-1), minlength=256)
        means.append(float(np.average(values, weights=hist)))
        stds.append(float(np.average((values - means[-1]) ** 2, weights=hist)) ** 0.5)
    return (means[0], means[1], means[2]), (stds[0], stds[1], stds[2])


# --------------------------------------------------------------------------------------------------------------
# Folder source
# --------------------------------------------------------------------------------------------------------------

_FOLDER_FIX = (
    "point --data-dir / SE_RES2NET_DATA_DIR at a complete, unmodified class-folder copy of CIFAR-10 "
    "({train,test}/<class>/*.png), or use --download (torchvision) or source='sample' for a smoke run"
)


def _list_folder(root: Path, expected: _Expected) -> Dict[str, List[Tuple[Path, int]]]:
    """``{split: [(png path, label), ...]}`` after checking the layout and counts; no decoding."""
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 folder {root} does not exist or is not a directory; {_FOLDER_FIX}")
    listing: Dict[str, List[Tuple[Path, int]]] = {}
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"CIFAR-10 folder {root} has no '{split}' directory ({split_dir}); {_FOLDER_FIX}")
        present = {p.name for p in split_dir.iterdir() if p.is_dir()}
        missing = [c for c in CIFAR10_CLASSES if c not in present]
        if missing:
            raise FileNotFoundError(
                f"CIFAR-10 folder {root} lacks the class folder(s) {', '.join(f'{split}/{c}' for c in missing)}; "
                f"{_FOLDER_FIX}"
            )
        extra = sorted(present - set(CIFAR10_CLASSES))
        if extra:
            logger.warning("ignoring unknown folder(s) in %s: %s", split_dir, ", ".join(extra))
        files: List[Tuple[Path, int]] = []
        for label, cls in enumerate(CIFAR10_CLASSES):
            cls_dir = split_dir / cls
            with os.scandir(cls_dir) as it:  # scandir: no stat per file
                pngs = [cls_dir / n for n in sorted(e.name for e in it if e.name.lower().endswith(".png") and e.is_file())]
            want = expected.per_class(split)
            if len(pngs) != want:
                raise ValueError(
                    f"{split_dir / cls} holds {len(pngs)} PNG files, {expected.name} has {want}: the copy at {root} "
                    f"is incomplete or mixed with other files; {_FOLDER_FIX}"
                )
            files.extend((p, label) for p in pngs)
        listing[split] = files
    return listing


def _expected_for_folder(root: Path) -> _Expected:
    """What a class folder must hold: the full set, or — when it has exactly the sample's per-class count —
    a copy of the embedded sample (verified against the sample's fingerprint and labelled ``is_sample``), so a
    transferred copy of the sample exercises the same folder path as the real data set (the GPU runbook's
    rehearsal)."""
    probe = root / "train" / CIFAR10_CLASSES[0]
    try:
        with os.scandir(probe) as it:
            n = sum(1 for e in it if e.name.lower().endswith(".png"))
    except OSError:
        return _FULL  # _list_folder names what is missing
    return _SAMPLE if n == SAMPLE_TRAIN_PER_CLASS else _FULL


def _listing_digest(listing: Dict[str, List[Tuple[Path, int]]], root: Path) -> str:
    """Digest of relative names, sizes and mtimes: a cheap check that the source did not change since caching."""
    h = hashlib.sha256()
    for split in ("train", "test"):
        for path, label in listing[split]:
            st = os.stat(path)
            h.update(f"{split}/{path.parent.name}/{path.name}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _decode_pngs(files: Sequence[Tuple[Path, int]], root: Path, desc: str, progress: bool) -> Tuple[np.ndarray, np.ndarray]:
    from PIL import Image
    from tqdm import tqdm  # plain tqdm: tqdm.auto warns in notebooks without ipywidgets

    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    labels = np.empty(len(files), dtype=np.int64)
    for i, (path, label) in enumerate(tqdm(files, desc=desc, unit="img", disable=not progress, leave=False)):
        try:
            with Image.open(io.BytesIO(path.read_bytes())) as im:
                size, mode = im.size, im.mode
                pixels = np.asarray(im, dtype=np.uint8) if (size, mode) == ((32, 32), "RGB") else None
        except Exception as exc:  # truncated / not a PNG / unreadable
            raise ValueError(
                f"cannot decode {path} ({type(exc).__name__}: {exc}): the file is corrupt or truncated; {_FOLDER_FIX}"
            ) from None
        if pixels is None:
            raise ValueError(
                f"{path} is a {size[0]}x{size[1]} {mode} image, CIFAR-10 images are 32x32 RGB: the folder {root} "
                f"is not CIFAR-10 as exported; {_FOLDER_FIX}"
            )
        images[i] = pixels
        labels[i] = label
    return images, labels


def _check_split(split: CifarSplit, name: str, expected: _Expected, where: str, fix: str) -> None:
    want = expected.per_class(name)
    counts = split.class_counts()
    if len(split) != want * len(CIFAR10_CLASSES) or not np.all(counts == want):
        raise ValueError(
            f"{where}: the {name} split has {len(split)} images ({counts.tolist()} per class), {expected.name} has "
            f"{want} per class; {fix}"
        )
    got = split.sha256
    if got != expected.sha256(name):
        raise ValueError(
            f"{where}: the {name} split's fingerprint is {got[:16]}…, {expected.name} is {expected.sha256(name)[:16]}…: "
            f"some image was altered or replaced; {fix}"
        )


def _decode_folder(
    root: Path, expected: _Expected, progress: bool, listing: Optional[Dict[str, List[Tuple[Path, int]]]] = None
) -> Tuple[CifarSplit, CifarSplit]:
    listing = listing if listing is not None else _list_folder(root, expected)
    splits = {}
    for name in ("train", "test"):
        t0 = time.perf_counter()
        images, labels = _decode_pngs(listing[name], root, f"decoding CIFAR-10 {name}", progress)
        split = to_canonical(images, labels, layout="NHWC")
        logger.info("decoded %d %s PNGs from %s in %.1f s", len(split), name, root, time.perf_counter() - t0)
        _check_split(split, name, expected, f"CIFAR-10 folder {root}", _FOLDER_FIX)
        splits[name] = split
    return splits["train"], splits["test"]


# --------------------------------------------------------------------------------------------------------------
# torchvision source
# --------------------------------------------------------------------------------------------------------------

_TV_BASE = "cifar-10-batches-py"
_TV_FIX = (
    "delete it and run again with --download (torchvision), or point --data-dir / SE_RES2NET_DATA_DIR at a "
    "class-folder copy, or use source='sample' for a smoke run"
)


def torchvision_root(data_dir: Optional[PathLike] = None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else DEFAULT_TORCHVISION_ROOT.expanduser()


def _torchvision_present(root: Path) -> bool:
    return (root / _TV_BASE / "batches.meta").is_file()


def from_torchvision_arrays(data: np.ndarray, targets: Sequence[int]) -> CifarSplit:
    """torchvision ``CIFAR10.data`` (N, 32, 32, 3) uint8 + ``.targets`` → canonical :class:`CifarSplit`."""
    return to_canonical(np.asarray(data), targets, layout="NHWC")


def _torchvision_digest(root: Path) -> str:
    """Digest of the torchvision batch files' names, sizes and mtimes (cache staleness check)."""
    h = hashlib.sha256()
    for p in sorted((root / _TV_BASE).glob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _fetch_torchvision(root: Path) -> None:
    from torchvision.datasets import CIFAR10 as TVCIFAR10

    logger.info("downloading CIFAR-10 with torchvision into %s", root)
    root.mkdir(parents=True, exist_ok=True)
    TVCIFAR10(str(root), train=True, download=True)


def _load_torchvision(root: Path, expected: _Expected, progress: bool = False) -> Tuple[CifarSplit, CifarSplit]:
    """Read torchvision's batches under ``root`` (no download) and convert them to canonical form."""
    from torchvision.datasets import CIFAR10 as TVCIFAR10

    if not _torchvision_present(root):
        raise FileNotFoundError(
            f"no torchvision CIFAR-10 under {root} ({root / _TV_BASE} is missing); run with --download "
            f"(download=True) to fetch it, or point --data-dir / SE_RES2NET_DATA_DIR at a class-folder copy, "
            f"or use source='sample' for a smoke run"
        )
    splits = {}
    for name in ("train", "test"):
        try:
            ds = TVCIFAR10(str(root), train=(name == "train"), download=False)
        except Exception as exc:  # RuntimeError "Dataset not found or corrupted", unpickling errors
            raise ValueError(f"torchvision CIFAR-10 under {root} is unusable ({exc}); {_TV_FIX}") from None
        if tuple(ds.classes) != CIFAR10_CLASSES:
            raise ValueError(f"torchvision CIFAR-10 under {root} has classes {ds.classes}; {_TV_FIX}")
        split = from_torchvision_arrays(ds.data, ds.targets)
        _check_split(split, name, expected, f"torchvision CIFAR-10 under {root}", _TV_FIX)
        splits[name] = split
    return splits["train"], splits["test"]


# --------------------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------------------


def cache_dir_path(cache_dir: Optional[PathLike] = None) -> Path:
    """``cache_dir``, else ``$SE_RES2NET_CACHE``, else ``~/.cache/se_res2net``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR.expanduser()


def cache_file(cache_dir: Path, source: str, root: Path, expected: _Expected) -> Path:
    """One file per (source, resolved source path, expected fingerprint)."""
    where = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return cache_dir / f"cifar10-{source}-{where}-{expected.fingerprint[:16]}.npz"


def _read_cache(path: Path, expected: _Expected, listing_digest: str) -> Optional[Tuple[CifarSplit, CifarSplit]]:
    """The cached splits, or None when absent / stale (source changed) / corrupt (warned)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("schema") != CACHE_SCHEMA or meta.get("listing") != listing_digest:
                logger.info("cache %s is stale (the source changed); decoding again", path)
                return None
            train = CifarSplit(z["train_images"], z["train_labels"])
            test = CifarSplit(z["test_images"], z["test_labels"])
        if train.sha256 != expected.train_sha256 or test.sha256 != expected.test_sha256:
            raise ValueError("fingerprint mismatch")
    except Exception as exc:
        warnings.warn(f"CIFAR-10 cache {path} is corrupt ({type(exc).__name__}: {exc}); rebuilding it", stacklevel=3)
        logger.warning("CIFAR-10 cache %s is corrupt (%s); rebuilding it", path, exc)
        return None
    return train, test


def _write_cache(path: Path, train: CifarSplit, test: CifarSplit, meta: Dict[str, Any]) -> None:
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a path
                np.savez(fh, train_images=train.images, train_labels=train.labels, test_images=test.images,
                         test_labels=test.labels, meta=np.array(json.dumps(meta)))
        logger.info("cached CIFAR-10 in %s", path)
    except OSError as exc:  # PermissionError included: caching is an optimisation, never fatal
        logger.warning("could not write the CIFAR-10 cache %s (%s); continuing without it", path, exc)


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceFlags:
    """How a caller spells the fixes of a missing data source: each command (and the Python API) names
    its own options, and an error must name the one that works where the user is. ``download=None``: the
    caller has no download switch (the fix is then ``se-res2net data --source torchvision --download``,
    after which ``auto`` finds the copy)."""

    data_dir: str
    download: Optional[str]
    sample: str


# load_cifar10's own keywords; the CLI (se_res2net.cli) and the trainer re-spell the error for their callers.
PYTHON_FLAGS = SourceFlags(data_dir="data_dir=DIR", download="download=True", sample='source="sample"')


class NoDataSourceError(ValueError):
    """``source="auto"`` found no CIFAR-10. The message names three fixes in the caller's spelling
    (:class:`SourceFlags`); :meth:`with_flags` re-spells it for another caller."""

    def __init__(self, torchvision_dir: PathLike, flags: SourceFlags = PYTHON_FLAGS) -> None:
        self.torchvision_dir = Path(torchvision_dir)
        self.flags = flags
        download = (
            f"pass {flags.download} to fetch it with torchvision into {self.torchvision_dir}"
            if flags.download
            else f"fetch it once with torchvision into {self.torchvision_dir}: "
            "se-res2net data --source torchvision --download"
        )
        super().__init__(
            f"no CIFAR-10 source found. Either (1) pass {flags.data_dir} or set {DATA_DIR_ENV}=DIR to a "
            f"class-folder copy ({{train,test}}/<class>/*.png), (2) {download}, or (3) pass {flags.sample} for a "
            "smoke run on the embedded 400-image sample"
        )

    def with_flags(self, flags: SourceFlags) -> "NoDataSourceError":
        return NoDataSourceError(self.torchvision_dir, flags)


def _make(train: CifarSplit, test: CifarSplit, source: str, expected: _Expected, root: Optional[Path]) -> Cifar10:
    # Every path into here has checked both splits against ``expected`` (no need to hash 180 MB again).
    return Cifar10(
        train=train,
        test=test,
        source=source,
        is_sample=expected is _SAMPLE,
        fingerprint=expected.fingerprint,
        root=str(root) if root is not None else None,
    )


def _load_cached(
    source: str,
    root: Path,
    expected: _Expected,
    cache_root: Optional[Path],
    listing_digest: str,
    decode: Any,
) -> Tuple[CifarSplit, CifarSplit]:
    path = cache_file(cache_root, source, root, expected) if cache_root is not None else None
    if path is not None:
        t0 = time.perf_counter()
        hit = _read_cache(path, expected, listing_digest)
        if hit is not None:
            logger.info("loaded CIFAR-10 from cache %s in %.1f s", path, time.perf_counter() - t0)
            return hit
    train, test = decode()
    if path is not None:
        meta = {
            "schema": CACHE_SCHEMA,
            "source": source,
            "root": str(root.resolve()),
            "fingerprint": expected.fingerprint,
            "listing": listing_digest,
        }
        _write_cache(path, train, test, meta)
    return train, test


def load_sample(progress: bool = False) -> Cifar10:
    """The embedded sample (``is_sample=True``); decoding its 400 PNGs takes well under a second."""
    train, test = _decode_folder(SAMPLE_DIR, _SAMPLE, progress)
    return _make(train, test, "sample", _SAMPLE, SAMPLE_DIR)


def load_cifar10(
    source: str = "auto",
    data_dir: Optional[PathLike] = None,
    *,
    cache_dir: Optional[PathLike] = None,
    download: bool = False,
    progress: bool = True,
    cache: bool = True,
) -> Cifar10:
    """Load CIFAR-10 in canonical form, verified against the fingerprint constants.

    ``source``:
      * ``"auto"``: ``data_dir`` → folder; else ``$SE_RES2NET_DATA_DIR`` → folder; else torchvision if already
        under its root (or ``download=True``); else a :class:`NoDataSourceError` (a ValueError) naming the
        three fixes.
      * ``"folder"``: ``data_dir`` or ``$SE_RES2NET_DATA_DIR``.
      * ``"torchvision"``: root ``data_dir`` or ``~/.cache/se_res2net/torchvision``; fetched only if ``download``.
      * ``"sample"``: the embedded sample (``is_sample=True``); ``data_dir`` is ignored and nothing is cached.

    The decoded arrays are cached in ``cache_dir`` / ``$SE_RES2NET_CACHE`` / ``~/.cache/se_res2net`` unless
    ``cache=False``.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if source == "sample":
        return load_sample(progress=False)

    env_dir = os.environ.get(DATA_DIR_ENV) or None
    if source == "auto":
        if data_dir is not None:
            source = "folder"
        elif env_dir is not None:
            source, data_dir = "folder", env_dir
        elif download or _torchvision_present(torchvision_root(None)):
            source = "torchvision"
        else:
            raise NoDataSourceError(torchvision_root(None))
    cache_root = cache_dir_path(cache_dir) if cache else None

    if source == "folder":
        if data_dir is None:
            if env_dir is None:
                raise ValueError(
                    "source='folder' needs a directory: pass --data-dir (data_dir=) or set SE_RES2NET_DATA_DIR "
                    "to a class-folder copy of CIFAR-10"
                )
            data_dir = env_dir
        root = Path(data_dir).expanduser()
        expected = _expected_for_folder(root)
        listing = _list_folder(root, expected)
        digest = _listing_digest(listing, root)
        train, test = _load_cached(
            "folder", root, expected, cache_root, digest, lambda: _decode_folder(root, expected, progress, listing)
        )
        return _make(train, test, "folder", expected, root)

    # torchvision
    root = torchvision_root(data_dir)
    if download and not _torchvision_present(root):
        _fetch_torchvision(root)
    if not _torchvision_present(root):
        _load_torchvision(root, _FULL)  # raises the FileNotFoundError that names the fixes
    train, test = _load_cached(
        "torchvision", root, _FULL, cache_root, _torchvision_digest(root), lambda: _load_torchvision(root, _FULL, progress)
    )
    return _make(train, test, "torchvision", _FULL, root)


# --------------------------------------------------------------------------------------------------------------
# Tensor ops: normalisation and batched augmentation
# --------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _mean_std(device: Any) -> Tuple["torch.Tensor", "torch.Tensor"]:
    """The normalisation constants on ``device``, made once per device: building them from Python floats on
    every batch would be a blocking host-to-device copy inside the training loop."""
    import torch

    with torch.inference_mode(False):  # plain tensors even when first made under inference_mode
        mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    return mean, std


def _check_uint8_nchw(x: "torch.Tensor", who: str) -> None:
    import torch

    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{who} expects a uint8 NCHW tensor with 3 channels, got {x.dtype} {tuple(x.shape)}")


def normalize(x_uint8: "torch.Tensor") -> "torch.Tensor":
    """uint8 NCHW (any device) → float32 ``(x / 255 - CIFAR10_MEAN) / CIFAR10_STD`` on the same device."""
    import torch

    _check_uint8_nchw(x_uint8, "normalize")
    mean, std = _mean_std(x_uint8.device)
    return (x_uint8.to(torch.float32).div_(255.0).sub_(mean)).div_(std)


def augment_params(
    n: int, generator: "torch.Generator", device: Any = None, padding: int = 4
) -> Tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """The random draws of :func:`augment`, in its order: row offsets, column offsets (each int64 in
    ``0..2*padding``), then flips (bool, p = 0.5)."""
    import torch

    device = generator.device if device is None else torch.device(device)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand((n,), generator=generator, device=device) < 0.5
    return dy, dx, flip


def crop_flip(x: "torch.Tensor", dy: "torch.Tensor", dx: "torch.Tensor", flip: "torch.Tensor", padding: int = 4) -> "torch.Tensor":
    """Zero-pad by ``padding``, crop each image at its (dy, dx) to the original size, flip where ``flip``.

    Batched gather; same dtype as ``x``.
    """
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding), mode="constant", value=0)
    padded = padded.permute(0, 2, 3, 1)  # N, H+2p, W+2p, C
    dev = x.device
    rows = dy.to(dev).view(n, 1) + torch.arange(h, device=dev).view(1, h)  # N, H
    cols = dx.to(dev).view(n, 1) + torch.arange(w, device=dev).view(1, w)  # N, W
    cols = torch.where(flip.to(dev).view(n, 1), cols.flip(1), cols)
    batch = torch.arange(n, device=dev).view(n, 1, 1)
    out = padded[batch, rows.view(n, h, 1), cols.view(n, 1, w)]  # N, H, W, C
    return out.permute(0, 3, 1, 2).contiguous()


def augment(x_uint8: "torch.Tensor", generator: "torch.Generator") -> "torch.Tensor":
    """The report's training augmentation, batched on ``x_uint8.device``.

    Zero-pad 4 → random 32x32 crop (per-image offsets) → horizontal flip with p = 0.5 (per image) → normalise.
    Draws (see :func:`augment_params`) come from ``generator``, which must live on ``x_uint8.device``; the same
    generator state gives the same output. Returns float32 NCHW.
    """
    _check_uint8_nchw(x_uint8, "augment")
    if generator.device.type != x_uint8.device.type:
        raise ValueError(
            f"augment: the generator lives on {generator.device} but the batch on {x_uint8.device}; "
            f"create it with torch.Generator(device=x.device)"
        )
    dy, dx, flip = augment_params(x_uint8.shape[0], generator, x_uint8.device)
    return normalize(crop_flip(x_uint8, dy, dx, flip))


# --------------------------------------------------------------------------------------------------------------
# Building the embedded sample (maintainers only)
# --------------------------------------------------------------------------------------------------------------


def _build_sample(src_root: PathLike, dst_root: PathLike = SAMPLE_DIR, train_per_class: int = 30, test_per_class: int = 10) -> None:
    """Copy, byte for byte, the ``k`` PNGs per class with the smallest SHA-256 of their canonical pixel bytes
    (a deterministic, unbiased pick) from the full folder into ``dst_root``. Used once to make ``_sample``."""
    import shutil

    from PIL import Image

    src, dst = Path(src_root), Path(dst_root)
    for split, k in (("train", train_per_class), ("test", test_per_class)):
        for cls in CIFAR10_CLASSES:
            keyed = []
            for p in sorted((src / split / cls).glob("*.png")):
                with Image.open(p) as im:
                    pix = np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
                keyed.append((hashlib.sha256(pix.data).hexdigest(), p))
            keyed.sort()
            out = dst / split / cls
            out.mkdir(parents=True, exist_ok=True)
            for _, p in keyed[:k]:
                shutil.copyfile(p, out / p.name)


# --------------------------------------------------------------------------------------------------------------
# CLI: se-res2net data
# --------------------------------------------------------------------------------------------------------------


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=SOURCES, default="auto", help="where to read CIFAR-10 from (default: auto)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help=f"class-folder copy {{train,test}}/<class>/*.png (default: ${DATA_DIR_ENV}); "
        "for --source torchvision, the torchvision root",
    )
    parser.add_argument("--download", action="store_true", help="download with torchvision if not present")
    parser.add_argument("--cache-dir", default=None, help=f"cache directory (default: ${CACHE_ENV} or ~/.cache/se_res2net)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_data(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    data = load_cifar10(
        args.source,
        args.data_dir,
        cache_dir=args.cache_dir,
        download=args.download,
        progress=not args.no_progress,
        cache=not args.no_cache,
    )
    elapsed = time.perf_counter() - t0
    label = " (EMBEDDED SAMPLE: not the full data set)" if data.is_sample else ""
    print(f"CIFAR-10 from {data.source}{label}: {data.root}")
    print(f"loaded and verified in {elapsed:.1f} s")
    print(f"fingerprint  {data.fingerprint}")
    ok = True
    for name, split, ref_mean, ref_std in (
        ("train", data.train, CIFAR10_MEAN, CIFAR10_STD),
        ("test", data.test, CIFAR10_TEST_MEAN, CIFAR10_TEST_STD),
    ):
        mean, std = channel_stats(split.images)
        print(f"{name:5s} sha256 {split.sha256}")
        print(f"{name:5s} {len(split)} images, per class {split.class_counts().tolist()}")
        fmt = lambda v: " ".join(f"{x:.8f}" for x in v)  # noqa: E731
        dm = max(abs(a - b) for a, b in zip(mean, ref_mean))
        ds = max(abs(a - b) for a, b in zip(std, ref_std))
        print(f"{name:5s} mean {fmt(mean)}   README {fmt(ref_mean)}   max |diff| {dm:.1e}")
        print(f"{name:5s} std  {fmt(std)}   README {fmt(ref_std)}   max |diff| {ds:.1e}")
        if not data.is_sample and max(dm, ds) > 1e-6:
            ok = False
    if data.is_sample:
        print("(the sample's statistics are not expected to match the README's full-data values)")
    elif not ok:
        print("MISMATCH: statistics differ from the README by more than 1e-6")
        return 1
    return 0
