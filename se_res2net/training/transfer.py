"""Bring results back from a machine with narrow transfer limits: at most N archives of at most M bytes.

``se-res2net pack OUT --runs-root book/runs [--extra DIR ...] [--weights RUN ...]`` gathers, in this order of
priority, every run record and sweep plan, the executed notebooks, the workers' logs, the extra folders
(benchmark results, versions, the sweep's log), model-only final weights of every complete run (``--weights``
names runs whose weights must come back: one not finished yet is listed, not an error, since its checkpoint
travels), and the checkpoints of runs that are **not**
complete (so they resume elsewhere; a complete run's checkpoint stays behind, and so does one that was carried
in and trained nothing, ``--skip-unchanged``; each travels compacted, the same tensors bit for bit,
:func:`checkpoint.compacted_bytes`), and last, optionally, the
sweep's torch.compile cache (``--compile-cache``; the next block's compiles load it, :func:`seed_compile_cache`;
left out without failing when it does not fit). It packs them into
``results-KK.tar.gz`` archives of at most ``max_bytes`` each, no more than ``max_files`` of them and no more
than ``max_total`` bytes together (defaults 8, 16 MiB and 64 MiB: the GPU machine's limits).
Unfinished checkpoints come last, the furthest trained first: what is left out costs the least to redo.
Each archive holds ``MANIFEST-KK.json`` (path, size, SHA-256 of every member). What does not fit is listed
and makes the command fail, after everything that fits has been written: nothing is lost silently.

``se-res2net unpack DIR [--dest .]`` checks every member against its manifest and extracts it; it refuses
paths outside the destination, and it never replaces a *complete* run record with a different one (that is
another result: move the local one away first). After it, :func:`settle_checkpoints` puts each checkpoint where
the next block resumes from it, and :func:`file_block_results` files the block's benchmark results and logs
under ``benchmarks/gpu/block-<time>/``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import tarfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from .atomic import PathLike, atomic_save, atomic_write_bytes, ensure_writable_dir, is_atomic_temp

log = logging.getLogger(__name__)

MAX_FILES = 8
MAX_BYTES = 16 * 1024 * 1024
MAX_TOTAL = 64 * 1024 * 1024
# tar headers, the manifest and gzip's worst case on incompressible data, per archive
_OVERHEAD = 64 * 1024
MANIFEST_SCHEMA = "se_res2net.transfer/1"
# Into the GPU machine: the working tree (tracked and untracked-not-ignored files) plus at most 8 carried
# paths, 64 MiB together per call. Checkpoints the repository takes are < 6 MB (a resumable checkpoint holds
# the weights and the SGD momenta: SE-ResNet-110's is ~14 MB, so some can only travel as carried paths).
CALL_LIMIT = 64 * 1024 * 1024
MAX_CARRY = 8
COMMIT_LIMIT = 6_000_000
# The least a compacted checkpoint (checkpoint.compact_checkpoint) can hold per byte of float32: its three mantissa
# bytes are noise to a compressor (measured on a trained checkpoint: those planes compress to 1.000 of their size,
# the sign/exponent plane to 0.37; the whole file to 0.83). A model whose weights and momenta pass COMMIT_LIMIT
# even at this factor can never be committed; the others may fit once compacted.
INCOMPRESSIBLE = 0.75
STASH_FOLDERS = ("data", "wheels", "meta", "resume", "compile-cache")  # what scripts/gpu-runbook.sh stash takes
# torch.compile's on-disk cache (inductor's FX graphs and kernels, AOTAutograd's entries) of one block, packed as
# one archive member for the next: there a compile that hits it loads kernels instead of generating them
# (seconds instead of most of a minute per graph, on every run's first epoch). Where `unpack` puts it (ignored by
# git), and the machine it was compiled on, read before it is used (a cache of another GPU or torch is no use).
COMPILE_CACHE_MEMBER = ".xfer/compile-cache/inductor.tar.gz"
COMPILE_CACHE_MACHINE = "CACHE-MACHINE.json"


@dataclass(frozen=True)
class Item:
    """One file to bring back: where it is here, its path in the archive, why it is wanted."""

    source: Path
    member: str
    kind: str  # record | plan | notebook | log | extra | weights | checkpoint | cache
    size: int
    data: Optional[bytes] = None  # generated content (model-only weights), else read from source
    epochs_done: int = 0  # checkpoints: epochs their run has logged (the furthest trained are packed first)


_PRIORITY = ("record", "plan", "notebook", "log", "extra", "weights", "checkpoint", "cache")
# what may be left out without failing the pack: it saves time in the next block, it is no result
OPTIONAL_KINDS = ("cache",)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _member_bytes(tar: tarfile.TarFile, member: Any) -> bytes:
    """The bytes of a regular file in ``tar`` (``member``: its name or TarInfo); ``KeyError`` when there is none."""
    f = tar.extractfile(member)
    if f is None:  # a directory or a link: no bytes to read
        raise KeyError(f"{member} is not a regular file in {tar.name!r}")
    return f.read()


def _model_weights(checkpoint: Path) -> bytes:
    """The model state only (no optimiser, no RNG) of a checkpoint, as a loadable se_res2net checkpoint."""
    import torch

    from .checkpoint import SCHEMA, load_checkpoint

    ck = load_checkpoint(checkpoint)
    slim: Dict[str, Any] = {k: ck[k] for k in ("model", "model_kwargs", "state_dict", "epoch", "config") if k in ck}
    slim["schema"] = SCHEMA
    slim["record"] = ck.get("record")
    buf = io.BytesIO()
    torch.save(slim, buf)
    return buf.getvalue()


def compile_cache_archive(cache_dir: PathLike, machine: Mapping[str, Any]) -> bytes:
    """``cache_dir`` (a ``TORCHINDUCTOR_CACHE_DIR``) as tar.gz bytes, with ``machine`` (:func:`decision.machine`
    of the machine that compiled it) as :data:`COMPILE_CACHE_MACHINE`. Lock files and the temporaries of a
    write in progress are left out (they are no entries)."""
    root = Path(cache_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"compile cache {root} is not a folder; pass the sweep's TORCHINDUCTOR_CACHE_DIR")
    missing = [k for k in ("device", "device_name", "torch", "cuda") if k not in machine]
    if missing:
        raise ValueError(f"the compile cache's machine lacks {missing}; write it with 'se-res2net decide machine'")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        info = tarfile.TarInfo(COMPILE_CACHE_MACHINE)
        data = json.dumps(dict(machine), indent=1).encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if not path.is_file() or rel.parts[0] == "locks" or path.suffix in (".lock", ".tmp") or is_atomic_temp(path):
                continue
            try:
                tar.add(path, arcname=f"cache/{rel.as_posix()}", recursive=False)
            except FileNotFoundError:  # renamed away since the listing (a compile finishing): no entry yet
                continue
    return buf.getvalue()


def seed_compile_cache(archive: PathLike, cache_dir: PathLike, here: Mapping[str, Any]) -> str:
    """Extract a carried compile cache (:func:`compile_cache_archive`) into ``cache_dir``, when it was compiled on
    this very machine (:func:`decision.same_machine`) and ``cache_dir`` is absent or empty; say what was done."""
    target = Path(cache_dir)
    if target.is_dir() and any(target.iterdir()):
        return f"compile cache {target} exists already: kept, the carried one not used"
    partial = target.with_name(target.name + ".partial")
    try:
        return _seed_compile_cache(Path(archive), target, partial, here)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:  # a copy cut short, say: it costs a compile
        return f"the carried compile cache {archive} could not be read ({type(exc).__name__}: {exc}): not used"
    finally:  # renamed into place when it worked: what is left is a seeding that failed half way
        import shutil

        shutil.rmtree(partial, ignore_errors=True)


def _seed_compile_cache(archive: Path, target: Path, partial: Path, here: Mapping[str, Any]) -> str:
    from .decision import MACHINE_FIELDS, same_machine

    with tarfile.open(archive, "r:gz") as tar:
        try:
            theirs = json.loads(_member_bytes(tar, COMPILE_CACHE_MACHINE))
        except (KeyError, ValueError):
            return f"{archive} is no compile cache written by 'se-res2net pack --compile-cache': not used"
        if not same_machine(theirs, here):
            named = ", ".join(f"{k}={theirs.get(k)!r}" for k in MACHINE_FIELDS)
            return f"the carried compile cache was compiled on another machine ({named}): not used"
        members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith("cache/")]
        if partial.exists():
            import shutil

            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        for m in members:
            rel = PurePosixPath(m.name).relative_to("cache")
            if ".." in rel.parts:
                raise ValueError(f"{archive}: refusing the path {m.name} (outside the cache)")
            out = partial / Path(*rel.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(_member_bytes(tar, m))
        if target.exists():
            target.rmdir()  # empty (checked above)
        partial.rename(target)  # whole or not at all: a half-seeded cache is never what a compile reads
    return f"compile cache {target} seeded with {len(members)} file(s) compiled on this machine before"


def collect(
    runs_root: PathLike,
    prefix: str,
    extras: Sequence[PathLike] = (),
    weights: Sequence[str] = (),
    compile_cache: Optional[Tuple[PathLike, Mapping[str, Any]]] = None,
    unchanged_from: Optional[PathLike] = None,
) -> Tuple[List[Item], Dict[str, str]]:
    """Everything worth bringing back from ``runs_root`` (``<profile>/...``) and ``extras``, by priority, and the
    ``weights`` runs whose final weights cannot be packed yet (run → why).

    An unfinished run's checkpoint that is byte for byte the one at the same ``<profile>/checkpoints/`` path under
    ``unchanged_from`` (where the block's resumable checkpoints were carried in) trained nothing here: it stays
    behind, since the checkout it came from has it already (and the archives' room goes to what did train).

    Every complete run with a checkpoint travels as its final weights (model state only). ``weights`` names runs
    whose weights are wanted: one not finished yet (or not started) is no error, since its checkpoint travels to
    resume, and one missing name must not cost the whole pack at the end of a GPU block.
    """
    from .records import read_record

    root = Path(runs_root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs root {root} does not exist; pass --runs-root (default book/runs)")
    items: List[Item] = []

    def add(path: Path, member: str, kind: str) -> None:
        items.append(Item(path, member, kind, path.stat().st_size))

    wanted_weights = set(weights)
    packed_weights: Set[str] = set()
    pending: Dict[str, str] = {}
    for pdir in sorted(p for p in root.iterdir() if p.is_dir()):
        base = f"{prefix}/{pdir.name}"
        for path in sorted(p for p in pdir.glob("*.json") if not p.name.startswith(".")):  # pathlib's * takes dotfiles
            add(path, f"{base}/{path.name}", "record")
        for path in sorted(pdir.glob(".*.json")):  # the sweep plan (what `progress` reads), counted apart
            add(path, f"{base}/{path.name}", "plan")
        for path in sorted(pdir.glob("*.ipynb")):
            add(path, f"{base}/{path.name}", "notebook")
        for path in sorted((pdir / "logs").glob("*.log")):
            add(path, f"{base}/logs/{path.name}", "log")
        for ckpt in sorted((pdir / "checkpoints").glob("*.pt")):
            name = ckpt.stem
            try:
                record = read_record(pdir / f"{name}.json")
                status, done = record["status"], len(record.get("epochs") or [])
            except (FileNotFoundError, ValueError):
                status, done = None, 0
            if status == "complete":
                # every complete run's final model comes back: its checkpoint stays behind, and without the
                # weights nobody could check its record's error, or run Grad-CAM on it, anywhere else
                data = _model_weights(ckpt)
                items.append(Item(ckpt, f"{base}/weights/{name}.pt", "weights", len(data), data))
                packed_weights.add(name)
            elif name in wanted_weights:
                pending[name] = (f"{pdir.name}/{name} is not complete ({done} epoch(s) logged): its checkpoint "
                                 "travels to resume; pack its weights once it has finished")
            if status != "complete":
                if unchanged_from is not None and _same_file(ckpt, Path(unchanged_from) / pdir.name / "checkpoints" / ckpt.name):
                    log.info("%s is the checkpoint carried in, untrained here: it stays behind", ckpt)
                    continue
                items.append(Item(ckpt, f"{base}/checkpoints/{ckpt.name}", "checkpoint", ckpt.stat().st_size,
                                  epochs_done=done))
    for name in sorted(wanted_weights - packed_weights - set(pending)):
        pending[name] = f"no checkpoint of {name} under {root}/<profile>/checkpoints (not started yet?)"
    pending = {name: why for name, why in pending.items() if name not in packed_weights}  # complete in one profile
    for extra in extras:
        e = Path(extra)
        if not e.exists():
            raise FileNotFoundError(f"--extra {e} does not exist")
        # not the temporary file of a write in progress (e.g. the parity check's JSON): it is renamed away
        # between this listing and the read, and a half-written file is no result anyway
        files = [e] if e.is_file() else sorted(p for p in e.rglob("*") if p.is_file() and not is_atomic_temp(p))
        for path in files:
            rel = path.name if e.is_file() else f"{e.name}/{path.relative_to(e).as_posix()}"
            add(path, f"extra/{rel}", "extra")
    if compile_cache is not None:
        try:
            data = compile_cache_archive(*compile_cache)
        except Exception as exc:  # optional: a cache that cannot be read must not cost the block's results
            log.warning("the compile cache %s is left out: %s: %s", compile_cache[0], type(exc).__name__, exc)
        else:
            items.append(Item(Path(compile_cache[0]), COMPILE_CACHE_MEMBER, "cache", len(data), data))
    items = _compact_checkpoints(items)
    order = {k: i for i, k in enumerate(_PRIORITY)}
    # stable: keeps the folder order within a kind; checkpoints of the furthest trained runs first
    return sorted(items, key=lambda it: (order[it.kind], -it.epochs_done)), pending


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``b`` exists and holds the bytes of ``a``."""
    return b.is_file() and a.stat().st_size == b.stat().st_size and _sha256(a.read_bytes()) == _sha256(b.read_bytes())


def _compact_checkpoints(items: List[Item]) -> List[Item]:
    """``items`` with each checkpoint to travel replaced by its compacted content (lossless, checked:
    :func:`checkpoint.compacted_bytes`), so that more unfinished runs fit the archives; one that cannot be compacted
    travels as it is. Several at once: LZMA releases the GIL, and this runs at the end of a GPU block."""
    from concurrent.futures import ThreadPoolExecutor

    from .checkpoint import compacted_bytes

    def one(it: Item) -> Item:
        if it.kind != "checkpoint":
            return it
        try:
            data = compacted_bytes(it.source)
        except (ValueError, RuntimeError) as exc:
            log.warning("%s travels uncompacted: %s", it.source, exc)
            return it
        return replace(it, data=data, size=len(data)) if len(data) < it.size else it

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, items))


def plan_archives(items: Sequence[Item], max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES,
                  max_total: int = MAX_TOTAL) -> Tuple[List[List[Item]], List[Item]]:
    """First-fit by priority into at most ``max_files`` bins of ``max_bytes``, ``max_total`` together
    (uncompressed size + overhead, an upper bound of the compressed size). Returns (archives, left_out)."""
    if max_files < 1 or max_bytes <= _OVERHEAD or max_total <= _OVERHEAD:
        raise ValueError(f"need max_files >= 1 and max_bytes, max_total > {_OVERHEAD}, got {max_files}, {max_bytes} "
                         f"and {max_total}")
    bins: List[List[Item]] = []
    used: List[int] = []
    left: List[Item] = []
    for it in items:
        need = it.size + 1024  # its tar header and manifest line
        total = sum(used) + _OVERHEAD * len(bins)
        for i in range(len(bins)):
            if used[i] + need <= max_bytes - _OVERHEAD and total + need <= max_total:
                bins[i].append(it)
                used[i] += need
                break
        else:
            if len(bins) < max_files and need <= max_bytes - _OVERHEAD and total + need + _OVERHEAD <= max_total:
                bins.append([it])
                used.append(need)
            else:
                left.append(it)
    return bins, left


def pack_results(
    out_dir: PathLike,
    runs_root: PathLike = "book/runs",
    *,
    prefix: Optional[str] = None,
    extras: Sequence[PathLike] = (),
    weights: Sequence[str] = (),
    compile_cache: Optional[Tuple[PathLike, Mapping[str, Any]]] = None,
    unchanged_from: Optional[PathLike] = None,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
    max_total: int = MAX_TOTAL,
) -> Dict[str, Any]:
    """Write the archives into ``out_dir`` (which must hold no earlier archives); return a summary dict."""
    out = ensure_writable_dir(out_dir)
    stale = sorted(p.name for p in out.glob("results-*.tar.gz"))
    if stale:
        raise FileExistsError(f"{out} already holds {stale}; pack into an empty folder (results are never overwritten)")
    prefix = prefix if prefix is not None else Path(runs_root).as_posix().strip("/")
    items, weights_pending = collect(runs_root, prefix, extras, weights, compile_cache, unchanged_from)
    bins, left = plan_archives(items, max_files, max_bytes, max_total)
    written = []
    for k, members in enumerate(bins, start=1):
        path = out / f"results-{k:02d}.tar.gz"
        manifest: Dict[str, Any] = {"schema": MANIFEST_SCHEMA, "archive": path.name, "of": len(bins), "files": []}
        blobs = []
        for it in members:
            data = it.data if it.data is not None else it.source.read_bytes()
            manifest["files"].append({"path": it.member, "kind": it.kind, "size": len(data), "sha256": _sha256(data)})
            blobs.append((it.member, data))
        mdata = json.dumps(manifest, indent=1).encode()

        def write(tmp: Path, blobs: List[Tuple[str, bytes]] = blobs, mdata: bytes = mdata, k: int = k) -> None:
            with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
                for name, data in [(f"MANIFEST-{k:02d}.json", mdata)] + blobs:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(data))

        atomic_save(path, write)
        size = path.stat().st_size
        if size > max_bytes:  # cannot happen with the bound above; never hand over an archive that breaks the limit
            path.unlink()
            raise RuntimeError(f"{path.name} came out at {size} bytes > {max_bytes}; report this as a bug")
        written.append({"archive": str(path), "bytes": size, "files": len(members)})
    return {
        "archives": written,
        "packed": sum(len(b) for b in bins),
        "left_out": [{"path": it.member, "kind": it.kind, "bytes": it.size} for it in left],
        "by_kind": {k: sum(1 for b in bins for it in b if it.kind == k) for k in _PRIORITY},
        "weights_pending": weights_pending,
    }


def _run_key(member: PurePosixPath) -> Optional[Tuple[str, str]]:
    """``(profile folder, run)`` of a run's record or checkpoint member, else None."""
    if member.suffix == ".json" and not member.name.startswith("."):
        return str(member.parent), member.stem
    if member.suffix == ".pt" and member.parent.name == "checkpoints":
        return str(member.parent.parent), member.stem
    return None


def _logged_epochs(record: Any) -> int:
    return len(record.get("epochs") or []) if isinstance(record, dict) else -1


def unpack_results(archive_dir: PathLike, dest: PathLike = ".", *, force: bool = False) -> Dict[str, Any]:
    """Verify and extract every ``results-*.tar.gz`` of ``archive_dir`` into ``dest``.

    Progress is never undone: a run whose local record is complete and differs from the archive's keeps its
    record (``kept_local``, a conflict: ``force`` takes the archive's), and a run whose local record has logged
    more epochs than the archive's (it trained on here meanwhile) keeps its record and its checkpoint
    (``kept_newer``; ``force`` does not touch these). Every other file is written, verified against its manifest.
    """
    from .records import read_record

    src = Path(archive_dir)
    archives = sorted(src.glob("results-*.tar.gz"))
    if not archives:
        raise FileNotFoundError(f"no results-*.tar.gz in {src}")
    dest_root = Path(dest).resolve()

    def local_record(key: Tuple[str, str]) -> Optional[Dict[str, Any]]:
        try:
            return read_record(dest_root / key[0] / f"{key[1]}.json")
        except (FileNotFoundError, ValueError):
            return None

    # First every archive checked whole, before anything is written: a set that lacks an archive, or holds a
    # corrupt member, changes nothing here (a half-extracted set would leave records beside older checkpoints).
    # Then every archive's records, so that a run's checkpoint follows its record's verdict in any archive order.
    behind: Set[Tuple[str, str]] = set()
    for archive in archives:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                mnames = [n for n in tar.getnames() if n.startswith("MANIFEST-")]
                if len(mnames) != 1:
                    raise ValueError(f"{archive} has no manifest; it was not written by 'se-res2net pack'")
                manifest = json.loads(_member_bytes(tar, mnames[0]))
                if manifest.get("of") is not None and int(manifest["of"]) != len(archives):
                    raise ValueError(f"{archive} is one of {manifest['of']} archives, but {src} holds {len(archives)} "
                                     "(results-*.tar.gz): bring them all into one folder; nothing was extracted")
                for entry in manifest["files"]:
                    try:
                        fh = tar.extractfile(entry["path"])
                    except KeyError:  # listed in the manifest, absent from the archive
                        fh = None
                    data = fh.read() if fh is not None else None
                    if data is None or _sha256(data) != entry["sha256"]:
                        raise ValueError(f"{archive}: {entry['path']} is missing or does not match its manifest "
                                         "(corrupt transfer); nothing was extracted")
                    key = _run_key(PurePosixPath(entry["path"]))
                    if entry["kind"] != "record" or key is None:
                        continue
                    local = local_record(key)
                    try:
                        theirs = json.loads(data)
                    except ValueError:
                        theirs = None
                    if local is not None and _logged_epochs(local) > _logged_epochs(theirs):
                        behind.add(key)
        except (tarfile.TarError, EOFError, OSError) as exc:  # cut short or not a tar.gz at all
            raise ValueError(f"{archive} cannot be read ({type(exc).__name__}: {exc}); copy it again; nothing "
                             "was extracted") from None

    extracted, kept, newer = [], [], []
    for archive in archives:
        with tarfile.open(archive, "r:gz") as tar:
            mnames = [n for n in tar.getnames() if n.startswith("MANIFEST-")]
            manifest = json.loads(_member_bytes(tar, mnames[0]))
            for entry in manifest["files"]:
                member = PurePosixPath(entry["path"])
                if member.is_absolute() or ".." in member.parts:
                    raise ValueError(f"{archive}: refusing the path {member} (outside the destination)")
                fh = tar.extractfile(entry["path"])
                if fh is None:
                    raise ValueError(f"{archive} lacks {entry['path']} listed in its manifest")
                data = fh.read()
                if _sha256(data) != entry["sha256"]:
                    raise ValueError(f"{archive}: {entry['path']} does not match its manifest (corrupt transfer)")
                target = dest_root / Path(*member.parts)
                if target.exists() and target.read_bytes() == data:
                    continue
                key = _run_key(member)  # None for what is no run's (the sweep plan, extras)
                if key in behind and entry["kind"] in ("record", "checkpoint"):
                    newer.append(str(target))
                    log.warning("kept the local %s %s: its run has logged more epochs here than in the archive",
                                entry["kind"], target)
                    continue
                if target.exists() and entry["kind"] == "record" and key is not None and not force:
                    local = local_record(key)
                    if local is not None and local["status"] == "complete":
                        kept.append(str(target))
                        log.warning("kept the local complete record %s (the archive's differs); "
                                    "move it away or pass --force to take the archive's", target)
                        continue
                ensure_writable_dir(target.parent)
                atomic_write_bytes(target, data)
                extracted.append(str(target))
    return {"extracted": extracted, "kept_local": kept, "kept_newer": newer}


# --------------------------------------------------------------------------------------------------
# Resuming in the next GPU block: which checkpoints go where, and which calls carry what
# --------------------------------------------------------------------------------------------------


def settle_checkpoints(runs_root: PathLike, resume_dir: PathLike, limit: int = COMMIT_LIMIT) -> Dict[str, List[str]]:
    """Put every checkpoint where the next GPU block can resume from it, after ``unpack``.

    A complete run needs none: its checkpoint is deleted (from ``runs_root`` and ``resume_dir``). An
    unfinished run's checkpoint of ``limit`` bytes or more is compacted (:func:`checkpoint.compact_checkpoint`,
    lossless, checked); if it is still that big, it is moved to ``resume_dir/<profile>/checkpoints/`` (keep that
    folder out of git; it travels as a carried path); smaller ones stay, to be committed. The checkpoint of a run
    in training in ``runs_root`` (its train lock held: a sweep on this machine) is left alone, listed nowhere.
    Returns the paths ``removed``, ``compacted`` (each also in ``kept`` or ``moved``), ``moved``, ``kept`` (to
    commit) and ``carried`` (already in ``resume_dir``).
    """
    from .records import read_record

    root, resume = Path(runs_root), Path(resume_dir)
    done: Dict[str, List[str]] = {"removed": [], "compacted": [], "moved": [], "kept": [], "carried": []}
    found = [(base, sorted(base.glob("*/checkpoints/*.pt"))) for base in (root, resume)]  # before any move
    for base, checkpoints in found:
        for ckpt in checkpoints:
            profile = ckpt.parent.parent.name
            if base == root and _in_training(ckpt):  # e.g. a CPU sweep of this checkout: its trainer owns it
                log.warning("%s is left as it is: its run is training here", ckpt)
                continue
            try:
                complete = read_record(root / profile / f"{ckpt.stem}.json")["status"] == "complete"
            except (FileNotFoundError, ValueError):
                complete = False
            if complete:
                ckpt.unlink()
                done["removed"].append(str(ckpt))
                continue
            if base == root and _compact_if_over(ckpt, limit):
                done["compacted"].append(str(ckpt))
            if base == root and ckpt.stat().st_size >= limit:
                target = resume / profile / "checkpoints" / ckpt.name
                ensure_writable_dir(target.parent)
                ckpt.replace(target)
                done["moved"].append(str(target))
            else:
                done["kept" if base == root else "carried"].append(str(ckpt))
    return done


def _in_training(ckpt: Path) -> bool:
    """Whether a trainer holds the run of ``<profile>/checkpoints/<run>.pt`` now (its train lock)."""
    from .locks import RunLock, train_lock_path

    return RunLock(train_lock_path(ckpt.parent.parent, ckpt.stem)).is_locked()


def _compact_if_over(ckpt: Path, limit: int) -> bool:
    """Compact ``ckpt`` when it has ``limit`` bytes or more; whether it was rewritten. Never the checkpoint of a
    run in training: its trainer could write a newer one while this rewrites the older, and lose an epoch; so
    this holds the run's train lock meanwhile (the trainer waits for it) and leaves a held one alone."""
    from .checkpoint import compact_checkpoint
    from .locks import LockBusy, RunLock, train_lock_path

    if ckpt.stat().st_size < limit:
        return False
    try:
        with RunLock(train_lock_path(ckpt.parent.parent, ckpt.stem), what="compacting its checkpoint"):
            before, after = compact_checkpoint(ckpt)
    except LockBusy as exc:
        log.warning("%s was not compacted: its run is training (%s); compact it once it stops", ckpt, exc)
        return False
    except (ValueError, RuntimeError) as exc:  # unreadable, or its compacted copy failed the check: left as it is
        log.warning("%s was not compacted: %s", ckpt, exc)
        return False
    log.info("compacted %s: %d -> %d bytes", ckpt, before, after)
    return after != before


def finalize_runs(runs_root: PathLike, *, force: bool = False, keep_checkpoints: bool = False,
                  limit: int = COMMIT_LIMIT) -> Dict[str, List[str]]:
    """Turn the checkpoints of complete runs into their final weights, for a sweep trained on this machine.

    A complete run needs no optimiser or RNG state, and its checkpoint is twice the size of its model: for every
    ``runs_root/<profile>/checkpoints/<run>.pt`` whose record ``<profile>/<run>.json`` is complete, this writes
    the model-only weights (:func:`_model_weights`, what ``test`` and ``grad-cam`` take) to ``<profile>/weights/
    <run>.pt``, loads them back and checks every tensor against the checkpoint, then deletes the checkpoint
    (unless ``keep_checkpoints``). Weights already there that hold other tensors are kept, with
    :class:`FileExistsError`, unless ``force``. The checkpoint must be of the record's last epoch.

    Returns the paths ``written``, ``unchanged`` (weights there already, the same tensors), ``removed``
    (checkpoints), ``compacted``: unfinished checkpoints of ``limit`` bytes or more, rewritten compacted
    (:func:`checkpoint.compact_checkpoint`, lossless, checked) so that git may hold them, and ``too_big``: those
    still that big, which git must not hold (``scripts/gpu-runbook.sh`` carries them to the next block instead).
    """
    from .checkpoint import load_checkpoint, same_payload
    from .records import read_record

    root = Path(runs_root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs root {root} does not exist; pass --runs-root (default book/runs)")

    done: Dict[str, List[str]] = {"written": [], "unchanged": [], "removed": [], "compacted": [], "too_big": []}
    for ckpt in sorted(root.glob("*/checkpoints/*.pt")):
        profile_dir = ckpt.parent.parent
        try:
            record = read_record(profile_dir / f"{ckpt.stem}.json")
        except FileNotFoundError:
            record = None
        if record is None or record["status"] != "complete":
            if _compact_if_over(ckpt, limit):
                done["compacted"].append(str(ckpt))
            if ckpt.stat().st_size >= limit:
                done["too_big"].append(str(ckpt))
            continue
        ck = load_checkpoint(ckpt)
        last = max((int(e["epoch"]) for e in record.get("epochs") or []), default=0)
        if int(ck["epoch"]) != last or ck["model"] != record["model"]:
            raise ValueError(f"{ckpt} is of {ck['model']} at epoch {ck['epoch']}, but its complete record "
                             f"{profile_dir / (ckpt.stem + '.json')} ends {record['model']} at epoch {last}: "
                             "it is not that run's final checkpoint; move it away")
        target = profile_dir / "weights" / ckpt.name
        if target.exists():
            if same_payload(load_checkpoint(target)["state_dict"], ck["state_dict"]):
                done["unchanged"].append(str(target))
            elif not force:
                raise FileExistsError(f"{target} holds other weights than {ckpt}; move it away or pass --force "
                                      "to replace it")
            else:
                target.unlink()
        if not target.exists():
            ensure_writable_dir(target.parent)
            atomic_write_bytes(target, _model_weights(ckpt))
            if not same_payload(load_checkpoint(target)["state_dict"], ck["state_dict"]):  # pragma: no cover
                target.unlink()
                raise RuntimeError(f"the weights written to {target} differ from {ckpt}; the checkpoint is kept")
            done["written"].append(str(target))
        if not keep_checkpoints:
            ckpt.unlink()
            done["removed"].append(str(ckpt))
    return done


# Where `prepare` puts the committed checkpoints while the device calls run (below), and its list of them. The
# folder's last part is `resume`, so `scripts/gpu-runbook.sh stash` takes it like `.xfer/resume`.
LIFTED_DIR = ".xfer/lifted"
LIFTED_LIST = "LIFTED.json"


def _git_out(repo: Path, *args: str) -> str:
    import subprocess

    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:2])} failed in {repo}: {proc.stderr.strip()}")
    return proc.stdout


def lift_checkpoints(repo: PathLike = ".", runs_dir: str = "book/runs", lifted: Optional[PathLike] = None) -> Dict[str, Any]:
    """Take the committed checkpoints out of the working tree for the GPU block, so that each travels once.

    Every device call sends the whole working tree (tracked and untracked-not-ignored files). The checkpoints of
    unfinished runs are committed (so that any clone can resume them), and they went with *every* call: after the
    first block, 8 of them were 44 MB of the 47 MiB tree, and the data and wheels needed 10 calls instead of 3. With
    a few more in flight the tree alone would pass the 64 MiB a call takes, and no call could carry anything.

    So this copies each tracked ``<runs_dir>/<profile>/checkpoints/*.pt`` to ``<lifted>/resume/<profile>/
    checkpoints/`` (a carried path: ``calls`` plans it, ``stash`` and ``start`` put it where the sweep resumes
    from), checks the copy byte for byte, and removes the original from the index and the working tree (``git rm``:
    a staged deletion, nothing committed). :func:`restore_lifted` (``unpack`` calls it; also
    ``scripts/gpu-runbook.sh restore``) undoes it for every checkpoint that did not come back newer.
    ``<lifted>/LIFTED.json`` lists them with their blob ids. Returns that list's content."""
    import shutil

    root = Path(repo).resolve()
    dest = Path(lifted) if lifted is not None else root / LIFTED_DIR
    if (dest / LIFTED_LIST).exists():
        raise FileExistsError(f"{dest / LIFTED_LIST} exists: checkpoints were lifted already and not put back; "
                              "run scripts/gpu-runbook.sh restore first")
    # :(glob): each * stays within one folder (git's plain pathspec * would also match a/b/checkpoints)
    listing = _git_out(root, "ls-files", "-s", "--", f":(glob){runs_dir}/*/checkpoints/*.pt")
    entries: List[Dict[str, Any]] = []
    for line in listing.splitlines():
        meta, rel = line.split("\t", 1)
        blob = meta.split()[1]
        src = root / rel
        if not src.is_file() or _git_blob(src) != blob:
            raise RuntimeError(f"{rel} differs from what is committed; commit or restore it before lifting")
        entries.append({"path": rel, "blob": blob, "bytes": src.stat().st_size})
    shutil.rmtree(dest, ignore_errors=True)
    for e in entries:
        committed = PurePosixPath(e["path"])
        target = dest / "resume" / committed.parent.parent.name / "checkpoints" / committed.name
        ensure_writable_dir(target.parent)
        shutil.copy2(root / committed, target)
        if _git_blob(target) != e["blob"]:
            raise RuntimeError(f"the copy {target} of {committed} differs from it; nothing was removed")
        e["copy"] = str(target.relative_to(root)) if target.is_relative_to(root) else str(target)
    summary = {"runs_dir": runs_dir, "lifted": entries}
    atomic_write_bytes(dest / LIFTED_LIST, json.dumps(summary, indent=2).encode())
    if entries:  # the list is written first: an interrupted `git rm` is undone by restore_lifted
        _git_out(root, "rm", "-q", "--", *(e["path"] for e in entries))
    return summary


def restore_lifted(repo: PathLike = ".", lifted: Optional[PathLike] = None) -> Dict[str, List[str]]:
    """Undo :func:`lift_checkpoints` after a block: the index gets each lifted path back from ``HEAD``; its file is
    restored from its lifted copy (checked against the blob id it had when lifted) unless something newer stands
    for it: a checkpoint ``unpack`` brought back (kept), a
    complete record of its run (its checkpoint is not needed: the deletion stays, to be committed), or a carried
    copy in ``.xfer/resume`` (too big for git). Then the lifted copies are removed. Returns the paths ``restored``,
    ``newer`` (kept as they came back), ``complete``, ``carried`` and ``untracked`` (restored, but a commit made
    while they were lifted recorded their deletion: add them again); empty lists when nothing was lifted."""
    import shutil

    from .records import read_record

    root = Path(repo).resolve()
    dest = Path(lifted) if lifted is not None else root / LIFTED_DIR
    done: Dict[str, List[str]] = {"restored": [], "newer": [], "complete": [], "carried": [], "untracked": []}
    try:
        summary = json.loads((dest / LIFTED_LIST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return done
    runs_dir = summary["runs_dir"]
    for e in summary["lifted"]:
        rel = PurePosixPath(e["path"])
        _git_out(root, "reset", "-q", "HEAD", "--", str(rel))
        profile, name = rel.parent.parent.name, rel.stem
        try:
            complete = read_record(root / runs_dir / profile / f"{name}.json")["status"] == "complete"
        except (FileNotFoundError, ValueError):
            complete = False
        if (root / rel).exists():
            done["newer" if _git_blob(root / rel) != e["blob"] else "restored"].append(str(rel))
        elif complete:
            done["complete"].append(str(rel))
        elif (root / ".xfer" / "resume" / profile / "checkpoints" / rel.name).exists():
            done["carried"].append(str(rel))
        else:
            # from the lifted copy (checked against the blob id when lifted), not from HEAD: a commit made while
            # lifted may have recorded the deletion, and then HEAD no longer has it
            copy = dest / "resume" / profile / "checkpoints" / rel.name
            if not copy.is_file() or _git_blob(copy) != e["blob"]:
                raise RuntimeError(f"the lifted copy {copy} of {rel} is missing or changed; nothing more was put back "
                                   f"(the committed version is blob {e['blob']}: git cat-file blob {e['blob']} > {rel})")
            ensure_writable_dir((root / rel).parent)
            shutil.copy2(copy, root / rel)
            if not _git_out(root, "ls-files", "--", str(rel)).strip():
                done["untracked"].append(str(rel))  # its deletion was committed while it was lifted
            done["restored"].append(str(rel))
    shutil.rmtree(dest)
    return done


def _git_blob(path: Path) -> str:
    from .records import _blob_id

    return _blob_id(path)


def _block_name(results: Path) -> str:
    """``block-<UTC time>`` of a GPU block: when it decided (``decision.json``), else when its setup ran
    (``versions.txt``), else now."""
    import re

    from .records import utc_now

    stamp = None
    try:
        stamp = json.loads((results / "decision.json").read_text(encoding="utf-8")).get("decided_at")
    except (OSError, ValueError, AttributeError):
        pass
    if not stamp and (results / "versions.txt").is_file():
        dates = re.findall(r"^date: (\S+)$", (results / "versions.txt").read_text(encoding="utf-8"), re.M)
        stamp = dates[0] if dates else None
    return "block-" + re.sub(r"[^0-9TZ]", "", stamp or utc_now())


def file_block_results(dest: PathLike = ".", *, extra: str = "extra", into: str = "benchmarks/gpu",
                       parity_dir: str = "book/parity") -> Dict[str, Any]:
    """File what a GPU block brought back beside its runs, after ``unpack``: the runbook's ``results/`` and
    ``logs/`` (extracted under ``dest/extra``) go to ``dest/<into>/block-<time>/``, where the next block looks for
    what it need not measure again (:mod:`se_res2net.training.decision`).

    A result byte-identical to one filed before (an earlier block's, which this block took instead of measuring)
    is not filed twice. A later pack of the same block adds its new files and extends the logs that grew; a file
    it holds that differs otherwise (a result measured again) is refused, before anything moves. A GPU parity
    check measured in this block is also copied to ``parity_dir``, where the protocol chapter reads it.
    Returns the block's folder, the paths ``filed``, ``parity`` (copied) and ``duplicates`` (``[new, filed]``).
    """
    from .decision import kind_of

    root = Path(dest)
    src = root / extra
    done: Dict[str, Any] = {"block": None, "filed": [], "parity": [], "duplicates": []}
    files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else []
    if not files:
        return done
    name = _block_name(src / "results")
    target = root / into / name
    before = {_sha256(p.read_bytes()): p for p in sorted((root / into).glob("*/results/*.json"))}
    shown = {_sha256(p.read_bytes()) for p in sorted((root / parity_dir).glob("*.json"))}
    # decide every file's fate before moving any: a conflict leaves the unpacked files and the filed ones as they are
    plan: List[Tuple[Path, Path, Optional[Path]]] = []  # (unpacked, where to, filed before: a duplicate)
    conflicts = []
    for path in files:
        rel, data = path.relative_to(src), path.read_bytes()
        to = target / rel
        same = before.get(_sha256(data)) if rel.parts[0] == "results" and path.suffix == ".json" else None
        if same is None and to.is_file():
            old = to.read_bytes()
            if old == data:
                same = to
            elif not (rel.parts[0] == "logs" and data.startswith(old)):  # a log that grew is extended
                conflicts.append(str(to))
        plan.append((path, to, same))
    if conflicts:
        raise FileExistsError(f"{target} already holds other versions of {', '.join(conflicts)} (this block packed "
                              f"twice, and measured again in between?); move them away, then unpack again")
    done["block"] = str(target)
    for path, to, same in plan:
        if same is not None:
            done["duplicates"].append([str(path), str(same)])
            path.unlink()
            continue
        ensure_writable_dir(to.parent)
        path.replace(to)
        done["filed"].append(str(to))
        if to.parts[-2] == "results" and to.suffix == ".json" and _sha256(to.read_bytes()) not in shown:
            try:
                result = json.loads(to.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if isinstance(result, dict) and kind_of(result) == "parity":
                copy = root / parity_dir / f"parity-{result.get('device')}-{name}.json"
                ensure_writable_dir(copy.parent)
                atomic_write_bytes(copy, to.read_bytes())
                done["parity"].append(str(copy))
    for folder in sorted((p for p in src.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [src]:
        if not any(folder.iterdir()):
            folder.rmdir()
    return done


def working_tree_bytes(repo: PathLike = ".") -> int:
    """Bytes of what travels with every device call: tracked and untracked-not-ignored files of ``repo``."""
    import subprocess

    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         check=True, capture_output=True).stdout
    files = {Path(repo) / name for name in out.decode().split("\0") if name}
    return sum(f.stat().st_size for f in files if f.is_file())


def plan_carry(tree_bytes: int, paths: Sequence[Tuple[str, int]], *, limit: int = CALL_LIMIT,
               max_paths: int = MAX_CARRY, margin: int = 1 << 20) -> List[List[Tuple[str, int]]]:
    """Group ``(path, bytes)`` into as few device calls as fit: per call, the working tree plus its paths stay
    within ``limit - margin`` and there are at most ``max_paths`` of them (first fit, largest first)."""
    room = limit - margin - tree_bytes
    mib = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
    if room <= 0:
        raise ValueError(f"the working tree alone is {mib(tree_bytes)}, over the {mib(limit - margin)} a call takes; "
                         "commit fewer or smaller files (unfinished checkpoints: scripts/gpu-runbook.sh unpack moves "
                         f"those of {COMMIT_LIMIT} bytes or more out of git)")
    too_big = [(p, n) for p, n in paths if n > room]
    if too_big:
        p, n = too_big[0]
        raise ValueError(f"{p} ({mib(n)}) does not fit in one call beside the {mib(tree_bytes)} working tree "
                         f"({mib(room)} left); split the data into smaller parts: "
                         f"scripts/gpu-runbook.sh split SRC_DIR PARTS_DIR {max(1, room // 2**20)}M")
    calls: List[List[Tuple[str, int]]] = []
    for p, n in sorted(paths, key=lambda pn: -pn[1]):
        for call in calls:
            if len(call) < max_paths and sum(m for _, m in call) + n <= room:
                call.append((p, n))
                break
        else:
            calls.append([(p, n)])
    return calls


def part_size_for(tree_bytes: int, data_bytes: int, others: Sequence[Tuple[str, int]] = (), *,
                  limit: int = CALL_LIMIT, margin: int = 1 << 20, max_parts: int = 100) -> Tuple[int, int]:
    """The size of the parts to split ``data_bytes`` into so that they and ``others`` travel in the fewest device
    calls beside the working tree (:func:`plan_carry`), the largest such size (the fewest parts), in whole MiB;
    and that number of calls.

    The tree changes from one GPU block to the next (unfinished checkpoints are committed), so the part size that
    fits is worked out for the tree at hand, not fixed: 50 MiB parts stopped fitting once 11 MB of checkpoints were.
    """
    mib = 1 << 20
    best: Optional[Tuple[int, int]] = None
    for size in range((limit - margin - tree_bytes) // mib * mib, 0, -mib):
        full, rest = divmod(data_bytes, size)
        parts = [(f"part-{k:02d}", size) for k in range(full)] + ([(f"part-{full:02d}", rest)] if rest else [])
        if len(parts) > max_parts:  # `split -a 2` names 100 at most; smaller sizes only make more
            break
        try:
            n = len(plan_carry(tree_bytes, parts + list(others), limit=limit, margin=margin))
        except ValueError:  # one of ``others`` does not fit beside these parts' tree: the same for every size
            continue
        if best is None or n < best[1]:
            best = (size, n)
    if best is None:
        plan_carry(tree_bytes, list(others), limit=limit, margin=margin)  # raises what cannot travel, and the fix
        raise ValueError(f"{data_bytes} bytes of data do not fit in {max_parts} parts beside the working tree")
    return best


def bundle_folder(src: PathLike, dest: PathLike, max_bytes: int) -> List[Path]:
    """Hard-link the files of ``src`` into folders ``dest/NN/<src's name>/`` of at most ``max_bytes`` each
    (first fit, largest first) and return those folders, for a folder too big to travel in one device call.

    Each bundle keeps ``src``'s name, so ``scripts/gpu-runbook.sh stash`` takes it as it takes ``src`` and the
    bundles, stashed call by call, merge into one folder on the device. Found before the second GPU block: the
    budget checkpoints committed after the first made the tree 47 MiB, and the 18 MiB of wheels no longer fitted
    beside it in any call."""
    import os

    src_dir, out = Path(src), Path(dest)
    files = sorted((f for f in src_dir.iterdir() if f.is_file()), key=lambda f: (-f.stat().st_size, f.name))
    too_big = [f for f in files if f.stat().st_size > max_bytes]
    if too_big:
        raise ValueError(f"{too_big[0]} ({too_big[0].stat().st_size} bytes) alone is over the {max_bytes} bytes "
                         "a call has room for beside the working tree; commit fewer or smaller files")
    # the same first-fit grouping as the calls, with the bundle as the call and no tree beside it
    bins = plan_carry(0, [(f.name, f.stat().st_size) for f in files], limit=max_bytes, margin=0,
                      max_paths=max(1, len(files)))
    folders = []
    for k, b in enumerate(bins):
        folder = out / f"{k:02d}" / src_dir.name
        ensure_writable_dir(folder)
        for name, _ in b:
            try:
                os.link(src_dir / name, folder / name)
            except OSError:  # another file system: a copy does as well
                (folder / name).write_bytes((src_dir / name).read_bytes())
        folders.append(folder)
    return folders


def carried_folder(repo: PathLike, folder: PathLike, dest: PathLike, *,
                   limit: int = CALL_LIMIT, margin: int = 1 << 20) -> List[Path]:
    """``[folder]`` when it fits in a device call beside the working tree of ``repo``, else the bundles of
    :func:`bundle_folder` (in ``dest``, emptied first), each of at most half the room so that data parts can share
    their calls."""
    import math
    import shutil

    room = limit - margin - working_tree_bytes(repo)
    total = path_bytes(folder)
    shutil.rmtree(dest, ignore_errors=True)
    if total <= room:
        return [Path(folder)]
    if room <= 0:
        plan_carry(working_tree_bytes(repo), [])  # raises: the tree alone is over a call, and the fix
    largest = max((f.stat().st_size for f in Path(folder).iterdir() if f.is_file()), default=0)
    bundles = max(1, math.ceil(total / max(1, room // 2)))
    return bundle_folder(folder, dest, max(math.ceil(total / bundles), largest))


def path_bytes(path: PathLike) -> int:
    """Bytes of a file, or of every file under a folder."""
    p = Path(path)
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def carry_plan_text(repo: PathLike, paths: Sequence[PathLike]) -> str:
    """The device calls that carry ``paths`` (files or folders), one line each, for the runbook."""
    sizes = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; make it first (see scripts/gpu-runbook.sh)")
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        sizes.append((str(p), sum(f.stat().st_size for f in files)))
    tree = working_tree_bytes(repo)
    calls = plan_carry(tree, sizes)
    def stash_dir(p: str) -> str:  # the folder `stash` takes: data/, wheels/, meta/ or resume/
        path = Path(p)
        return str(next((q for q in (path, *path.parents) if q.name in STASH_FOLDERS), path))

    lines = [f"working tree {tree / 2**20:.1f} MiB travels with every call; {len(calls)} call(s) carry the rest:"]
    for k, call in enumerate(calls, 1):
        total = tree + sum(n for _, n in call)
        dirs = " ".join(dict.fromkeys(stash_dir(p) for p, _ in call))
        then = " && scripts/gpu-runbook.sh setup && scripts/gpu-runbook.sh block ..." if k == len(calls) else ""
        lines.append(f"  call {k} ({total / 2**20:.1f} MiB) carry: {' '.join(p for p, _ in call)}")
        lines.append(f"         run: scripts/gpu-runbook.sh stash {dirs}{then}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def add_pack_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="folder for results-KK.tar.gz (must hold none yet)")
    p.add_argument("--runs-root", "--out-root", dest="runs_root", default="book/runs", help="the sweep's runs root (default book/runs)")
    p.add_argument("--prefix", default=None, help="path of the runs root inside the archives (default: as given)")
    p.add_argument("--extra", action="append", default=[], metavar="PATH", help="a file or folder to add, repeatable")
    p.add_argument("--weights", nargs="+", default=[], metavar="RUN",
                   help="runs whose model-only final weights must come back, e.g. se_res2net29_seed0 (every complete "
                        "run's weights are packed; one named here that is not complete yet is listed as WEIGHTS NOT "
                        "PACKED: its checkpoint travels to resume)")
    p.add_argument("--compile-cache", default=None, metavar="DIR",
                   help="also torch.compile's cache folder (TORCHINDUCTOR_CACHE_DIR), last of all and optional: "
                        "left out without failing when it does not fit; unpack puts it in " + COMPILE_CACHE_MEMBER)
    p.add_argument("--compile-cache-machine", default=None, metavar="FILE",
                   help="the machine that compiled it, as 'se-res2net decide machine' writes it (default: this one)")
    p.add_argument("--skip-unchanged", default=None, metavar="DIR",
                   help="leave out each unfinished checkpoint that is byte for byte the one at the same "
                        "<profile>/checkpoints/ path under DIR (carried in, untrained here: the checkout has it)")
    p.add_argument("--max-files", type=int, default=MAX_FILES, help=f"at most this many archives (default {MAX_FILES})")
    p.add_argument("--max-bytes", type=int, default=MAX_BYTES, help=f"bytes per archive (default {MAX_BYTES})")
    p.add_argument("--max-total", type=int, default=MAX_TOTAL, help=f"bytes of all archives (default {MAX_TOTAL})")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_pack(args: argparse.Namespace) -> int:
    cache = None
    if args.compile_cache:
        if args.compile_cache_machine:
            machine = json.loads(Path(args.compile_cache_machine).read_text(encoding="utf-8"))
        else:
            from .decision import machine as this_machine

            machine = this_machine()
        cache = (args.compile_cache, machine)
    s = pack_results(args.out, args.runs_root, prefix=args.prefix, extras=args.extra, weights=args.weights,
                     compile_cache=cache, unchanged_from=args.skip_unchanged, max_files=args.max_files,
                     max_bytes=args.max_bytes,
                     max_total=args.max_total)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        for a in s["archives"]:
            print(f"{a['archive']}: {a['files']} files, {a['bytes'] / 2**20:.2f} MiB")
        print("packed " + ", ".join(f"{n} {k}(s)" for k, n in s["by_kind"].items() if n))
        for it in s["left_out"]:
            optional = " (optional: the next block compiles again)" if it["kind"] in OPTIONAL_KINDS else ""
            print(f"LEFT OUT (does not fit): {it['path']} ({it['kind']}, {it['bytes'] / 2**20:.2f} MiB){optional}")
        for name, why in s["weights_pending"].items():
            print(f"WEIGHTS NOT PACKED: {why}")
    return 3 if any(it["kind"] not in OPTIONAL_KINDS for it in s["left_out"]) else 0


def add_unpack_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("archives", help="folder holding results-KK.tar.gz")
    p.add_argument("--dest", default=".", help="where to extract (default: the current folder, the repository root)")
    p.add_argument("--force", action="store_true", help="replace local complete records that differ")


def run_unpack(args: argparse.Namespace) -> int:
    s = unpack_results(args.archives, args.dest, force=args.force)
    print(f"extracted {len(s['extracted'])} file(s) into {Path(args.dest).resolve()}")
    for path in s["kept_local"]:
        print(f"KEPT the local complete record {path}; the archive's version differs (--force to take it)")
    for path in s["kept_newer"]:
        print(f"kept the local {path}: its run has logged more epochs here than in the archive")
    return 1 if s["kept_local"] else 0


def add_finalize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-root", "--out-root", dest="runs_root", default="book/runs", help="the sweep's runs root (default book/runs)")
    p.add_argument("--force", action="store_true", help="replace weights that hold other tensors")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="write the weights but keep the complete runs' checkpoints")


def run_finalize(args: argparse.Namespace) -> int:
    s = finalize_runs(args.runs_root, force=args.force, keep_checkpoints=args.keep_checkpoints)
    for path in s["written"]:
        print(f"wrote {path} ({Path(path).stat().st_size / 2**20:.2f} MiB, model state only, checked)")
    for path in s["unchanged"]:
        print(f"already there, the same tensors: {path}")
    for path in s["removed"]:
        print(f"removed {path}")
    for path in s["compacted"]:
        print(f"compacted {path} (unfinished) to {Path(path).stat().st_size / 2**20:.2f} MiB, lossless, checked")
    for path in s["too_big"]:
        print(f"TOO BIG TO COMMIT: {path} ({Path(path).stat().st_size / 2**20:.2f} MiB, unfinished): keep it out of "
              "git; the GPU runbook carries it")
    if not any(s.values()):
        print(f"no checkpoint of a complete run under {args.runs_root}/<profile>/checkpoints")
    return 0
