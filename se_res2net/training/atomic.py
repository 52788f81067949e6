"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one.

Every result, checkpoint and cache in the project goes through these helpers:
write to a temporary file in the same directory, flush and fsync, then
``os.replace`` (atomic on POSIX within one filesystem) and fsync the directory, so that the
rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
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


def is_atomic_temp(path: PathLike) -> bool:
    """Whether ``path`` is the temporary file of an atomic write in progress (or of one killed mid-write)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".tmp")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it into place, on error delete it."""
    target = Path(path)
    ensure_writable_dir(target.parent)
    tmp_path = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    # Mode 0o666 given to open(2), so the kernel applies the umask as for any shared file (not mkstemp's 0600
    # plus a chmod: the umask can only be read by setting it, which races with other threads creating files).
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    # Platforms that cannot open or fsync a directory (Windows) keep the rename without this guarantee.
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


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
