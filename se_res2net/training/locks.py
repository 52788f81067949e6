"""One process at a time per run: an advisory ``flock`` on a lock file beside the run's files.

Two locks guard a run: the sweep's (``<name>.sweep.lock``, held by the process that executes the run's
notebook, so two sweeps or two cluster jobs never execute the same run at once) and the trainer's
(``<name>.train.lock``, held by :func:`se_res2net.training.trainer.train` while it writes the record and the
checkpoint). The kernel holds the second and is a child of the first's holder: when a sweep is killed, its
kernels notice within a second or so and exit, and a restarted sweep's trainer waits for that.

``flock`` locks die with their process (a SIGKILL releases them), so a stale lock file never blocks
anything; the file's content (pid, host, time, what) is only there to say who holds it. A holder removes
the file when it releases the lock (taking the lock checks that the file it locked is still the one at the
path), so a finished run leaves no lock file behind. On NFS, Linux
emulates ``flock`` with POSIX locks, which is what a Slurm cluster's shared file system offers.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Dict, Optional

from .atomic import PathLike


class LockBusy(RuntimeError):
    """The lock is held by another process (``holder`` says who, when it could be read)."""

    def __init__(self, path: Path, holder: Optional[Dict[str, Any]]) -> None:
        who = "another process"
        if holder:
            who = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')} ({holder.get('what')})"
        super().__init__(f"{path} is held by {who}")
        self.path = path
        self.holder = holder


class RunLock:
    """An exclusive, non-inheritable ``flock`` on ``path``; use as a context manager or acquire/release."""

    def __init__(self, path: PathLike, what: str = "") -> None:
        self.path = Path(path)
        self.what = what
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> Optional[Dict[str, Any]]:
        """Who wrote the lock file last (the holder, while it is held); ``None`` if unreadable."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8") or "null")
        except (OSError, ValueError):
            return None

    def acquire(self, timeout_s: float = 0.0, poll_s: float = 0.1) -> "RunLock":
        """Take the lock, waiting up to ``timeout_s`` seconds; :class:`LockBusy` if it stays taken."""
        import fcntl

        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise LockBusy(self.path, self.holder()) from None
                time.sleep(poll_s)
                continue
            # The holder removes the file when it releases: if ours was removed (or replaced) meanwhile, the
            # lock we got is on a dead inode; try again on the file that is there now.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": platform.node(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "what": self.what}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file, then unlock (so no lock file outlives its holder)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        finally:
            os.close(fd)  # releases the flock

    def is_locked(self) -> bool:
        """Whether some process holds the lock right now (a non-blocking probe; does not take it)."""
        import fcntl

        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def train_lock_path(out_dir: PathLike, name: str) -> Path:
    return Path(out_dir) / "checkpoints" / f"{name}.train.lock"


def sweep_lock_path(out_dir: PathLike, name: str) -> Path:
    return Path(out_dir) / "checkpoints" / f"{name}.sweep.lock"
