"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one.

Every result, checkpoint and cache in the project goes through these helpers:
write to a temporary file in the same directory, flush and fsync, then
``os.replace`` (atomic on POSIX within one filesystem).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Union

PathLike = Union[str, os.PathLike]


def ensure_writable_dir(path: PathLike) -> Path:
    """Create ``path`` if needed and check we can write there; one clear error otherwise."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"cannot create output directory {p}: {exc.strerror}; choose another --out") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise PermissionError(f"output directory {p} is not writable; choose another --out or fix its permissions")
    return p


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it into place, on error delete it."""
    target = Path(path)
    ensure_writable_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    # mkstemp creates 0600 files; results are meant to be shared, so use the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> None:
    # allow_nan=False: a NaN in a record is a bug upstream, not something to serialise.
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def atomic_save(path: PathLike, writer: Callable[[Path], None]) -> None:
    """Generic form: ``writer(tmp_path)`` writes the content (e.g. ``torch.save``)."""
    with atomic_path(path) as tmp:
        writer(tmp)
