"""``se_res2net.training.atomic``: old file or new file, never half of one; the umask is left alone; the rename is fsynced."""

import os
import stat

import pytest

from se_res2net.training import atomic
from se_res2net.training.atomic import atomic_save, atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "record.json"
    atomic_write_text(target, "old\n")

    def half_then_crash(tmp):
        tmp.write_text("ne")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_save(target, half_then_crash)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_the_umask_is_never_changed_and_still_sets_the_mode(tmp_path, monkeypatch):
    # Setting the umask, even for a moment, races with other threads creating files.
    old = os.umask(0o027)
    try:

        def no_umask(mask):
            raise AssertionError(f"os.umask({mask:#o}) called while writing")

        monkeypatch.setattr(os, "umask", no_umask)
        atomic_write_text(tmp_path / "shared.json", "{}\n")
    finally:
        monkeypatch.undo()
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o640


def test_the_directory_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    synced = []  # (is a directory, target already renamed into place) per fsync
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append((stat.S_ISDIR(os.fstat(fd).st_mode), target.exists()))
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", recording_fsync)
    atomic_write_text(target, "new\n")
    assert synced == [(False, False), (True, True)]
