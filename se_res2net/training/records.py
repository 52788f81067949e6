"""Run records: one JSON file per (model, seed) run, schema ``se_res2net.run/1``.

A record is what the statistics, tables and claims are computed from, so it
carries everything needed to trust a number: the configuration, per-epoch
curves, the final test error (percent), parameters / MACs and a provenance
block (code hash, git commit, library versions, device, data fingerprint,
times). The schema is described in ``CONTRIBUTING.md``; this module owns the
constants, paths, reading / validating / writing and the provenance helpers.

Records are written atomically (:mod:`se_res2net.training.atomic`): a reader sees the
previous version or the new one, never half a file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .._version import __version__
from .atomic import PathLike, atomic_write_json

SCHEMA = "se_res2net.run/1"
STATUSES = ("running", "complete", "failed")
REQUIRED_KEYS = (
    "schema",
    "status",
    "model",
    "model_kwargs",
    "seed",
    "profile",
    "config",
    "params",
    "macs",
    "epochs",
    "final_test_error",
    "failure",
    "checkpoint",
    "provenance",
)
EPOCH_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_error", "epoch_time_s")
FAILURE_KEYS = ("type", "message", "epoch")

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- paths
def run_name(model: str, seed: int) -> str:
    """File stem of a run: ``<model>_seed<seed>``."""
    return f"{model}_seed{int(seed)}"


def record_path(out_dir: PathLike, model: str, seed: int, name: Optional[str] = None) -> Path:
    """``<out_dir>/<model>_seed<seed>.json`` (or ``<out_dir>/<name>.json`` when ``name`` is given)."""
    return Path(out_dir) / f"{name or run_name(model, seed)}.json"


def checkpoint_path(out_dir: PathLike, model: str, seed: int, name: Optional[str] = None) -> Path:
    """``<out_dir>/checkpoints/<model>_seed<seed>.pt`` (or ``<name>.pt``)."""
    return Path(out_dir) / "checkpoints" / f"{name or run_name(model, seed)}.pt"


def is_stranded(record: Mapping[str, Any], checkpoint_file: PathLike) -> bool:
    """Whether an unfinished run cannot resume here: its record says a checkpoint was written (``checkpoint``
    is set at the first save) and holds trained epochs, but the checkpoint file is not there. A run stopped
    before its first checkpoint is not stranded: it has nothing to resume from and starts again at epoch 0."""
    return bool(record.get("checkpoint")) and bool(record.get("epochs")) and not Path(checkpoint_file).exists()


def stranded_message(record_file: PathLike, checkpoint_file: PathLike, epochs: int) -> str:
    """Why a run whose record holds trained epochs cannot resume without its checkpoint, and the two ways on (a
    checkpoint git ignores, of a model too big to commit, stays on the machine that trained)."""
    return (f"{record_file} holds {epochs} trained epoch(s) but their checkpoint {checkpoint_file} is missing; "
            "bring the checkpoint back (git ignores those of models too big to commit, so it stays on the machine "
            "that trained) to resume, or pass --force to start afresh and discard those epochs")


# --------------------------------------------------------------------------- validation
def validate_record(record: Mapping[str, Any], source: str = "record") -> None:
    """Raise ``ValueError`` naming what is wrong with ``record``; return ``None`` if it follows the schema."""
    if not isinstance(record, Mapping):
        raise ValueError(f"{source} is not a JSON object; expected a {SCHEMA} run record")
    if record.get("schema") != SCHEMA:
        raise ValueError(
            f"{source} has schema {record.get('schema')!r}, expected {SCHEMA!r}; "
            "it was not written by 'se-res2net train' (or by an incompatible version — retrain it)"
        )
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"{source} lacks the keys {missing}; it is incomplete — delete it and rerun the training")
    if record["status"] not in STATUSES:
        raise ValueError(f"{source} has status {record['status']!r}; expected one of {list(STATUSES)}")
    if not isinstance(record["epochs"], list):
        raise ValueError(f"{source}: 'epochs' must be a list of per-epoch entries")
    for i, entry in enumerate(record["epochs"]):
        lacking = [k for k in EPOCH_KEYS if not isinstance(entry, Mapping) or k not in entry]
        if lacking:
            raise ValueError(f"{source}: epoch entry {i} lacks {lacking}")
    if record["status"] == "complete":
        if record["final_test_error"] is None:
            raise ValueError(f"{source} is 'complete' but has no final_test_error")
    if record["status"] == "failed":
        failure = record["failure"]
        if not isinstance(failure, Mapping) or any(k not in failure for k in FAILURE_KEYS):
            raise ValueError(f"{source} is 'failed' but its 'failure' lacks {list(FAILURE_KEYS)}")


def read_record(path: PathLike) -> Dict[str, Any]:
    """Load and validate a run record; ``FileNotFoundError`` / ``ValueError`` name the problem and the fix."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"run record {p} does not exist; run 'se-res2net train' first or check the path")
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"run record {p} is not valid JSON ({exc}); delete it and rerun the training") from None
    validate_record(record, source=f"run record {p}")
    return record


def write_record(path: PathLike, record: Mapping[str, Any]) -> None:
    """Validate ``record`` and write it atomically as JSON (NaN / inf are refused)."""
    validate_record(record, source="record to write")
    atomic_write_json(path, record)


def list_records(out_dir: PathLike) -> List[Dict[str, Any]]:
    """Every valid run record directly under ``out_dir`` (files that are not records are skipped)."""
    records = []
    for p in sorted(Path(out_dir).glob("*.json")):
        try:
            records.append(read_record(p))
        except ValueError:
            continue
    return records


# --------------------------------------------------------------------------- provenance
def utc_now() -> str:
    """Current time, ISO-8601 in UTC with a ``Z`` suffix, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def code_hash(package_dir: PathLike = _PACKAGE_DIR) -> Dict[str, Any]:
    """SHA-256 over the package's source files (``*.py`` / ``*.yaml``, sorted by relative path).

    Pins the code a result was produced with, whether or not the tree is committed.
    """
    root = Path(package_dir)
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts and "_sample" not in p.parts
    )
    h = hashlib.sha256()
    for p in files:
        rel = p.relative_to(root).as_posix()
        h.update(rel.encode("utf-8") + b"\0")
        h.update(p.read_bytes() + b"\0")
    return {"sha256": h.hexdigest(), "files": len(files)}


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=_PACKAGE_DIR.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


_OUTPUT_DIRS = ("book/runs", "book/gradcam")


SOURCE_MANIFEST_ENV = "SE_RES2NET_SOURCE_MANIFEST"


def write_source_manifest(path: PathLike) -> Dict[str, Any]:
    """Write the commit and the blob id of every tracked file of this checkout (``git ls-files -s``).

    A copy of the working tree without ``.git`` (the GPU machine gets one) cannot name its commit; with this
    file beside it, :func:`git_state` checks every file against the manifest and names the commit only when
    the code is that commit's.
    """
    commit = _git("rev-parse", "HEAD")
    listing = _git("ls-files", "-s")
    if not commit or listing is None:
        raise RuntimeError("write_source_manifest needs a git checkout (git rev-parse HEAD failed)")
    files = {}
    for line in listing.splitlines():
        meta, name = line.split("\t", 1)
        mode, blob = meta.split()[:2]
        if mode != "160000":  # submodules are not files
            files[name] = blob
    manifest = {"commit": commit, "dirty_at_write": bool(git_state()["git_dirty"]), "files": files}
    atomic_write_json(path, manifest)
    return manifest


def _blob_id(path: Path) -> str:
    """git's blob id of a file (a symbolic link's blob is its target, as git stores it)."""
    import os

    data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _manifest_state(manifest_path: str) -> Dict[str, Any]:
    """``git_state`` of a copy without ``.git``: clean only if every tracked file (outputs aside) matches."""
    try:
        with open(manifest_path, encoding="utf-8") as fh:
            manifest = json.load(fh)
        commit, files = manifest["commit"], manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {"git_commit": None, "git_dirty": None}
    root = _PACKAGE_DIR.parent
    dirty = bool(manifest.get("dirty_at_write"))
    for name, blob in files.items():
        if name.startswith(tuple(d + "/" for d in _OUTPUT_DIRS)):
            continue
        target = root / name
        if not (target.is_file() or target.is_symlink()) or _blob_id(target) != blob:
            dirty = True
            break
    return {"git_commit": commit, "git_dirty": dirty, "git_source": "manifest"}


def git_state() -> Dict[str, Any]:
    """``{"git_commit": sha or None, "git_dirty": bool or None}`` for the checkout holding the package.

    A copied working tree (the GPU runbook's) is named by the manifest in ``$SE_RES2NET_SOURCE_MANIFEST``
    (:func:`write_source_manifest`), and ``"git_source": "manifest"`` says so. The manifest wins over a
    ``.git`` found there: the device's copy of the tree held the ``.git`` of the last *landed* commit while
    its files were those of a later one, so every record of the first GPU block named the landed commit as
    "dirty" instead of the commit that ran (stop 27).
    """
    import os

    manifest = os.environ.get(SOURCE_MANIFEST_ENV)
    if manifest:
        return _manifest_state(manifest)
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return {"git_commit": None, "git_dirty": None}
    # Dirty = code or configuration differs from the commit; the outputs the runs themselves write (run
    # records, executed notebooks, Grad-CAM metrics) are not code, and re-running a committed profile
    # necessarily rewrites them.
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){p}" for p in _OUTPUT_DIRS))
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def cpu_name() -> str:
    """A human-readable CPU model name (``/proc/cpuinfo`` on Linux, ``platform`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_info(device: Any) -> Dict[str, Any]:
    """``device`` (``"cpu"`` / ``"cuda"``), ``device_name`` and CUDA version for a torch device."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return {"device": "cuda", "device_name": torch.cuda.get_device_name(index), "cuda": torch.version.cuda}
    return {"device": dev.type, "device_name": cpu_name(), "cuda": None}


# set by the sweep for its local workers: how many of its runs may train on one device at once
JOBS_PER_DEVICE_ENV = "SE_RES2NET_JOBS_PER_DEVICE"


def sharing_info(device: Any) -> Dict[str, Any]:
    """How this process shared its device, for a run's wall time to be read right: ``jobs_per_device``, the runs
    its sweep let train on the device at once (``None``: started alone, or by a scheduler that does not say; the
    tail of a sweep runs fewer), and ``cuda_mps``, whether it ran on CUDA as a client of a CUDA MPS daemon
    (``CUDA_MPS_PIPE_DIRECTORY`` set, as ``scripts/gpu-runbook.sh mps start`` sets it: kernels of several runs then
    run side by side instead of taking turns)."""
    import os

    import torch

    raw = os.environ.get(JOBS_PER_DEVICE_ENV, "")
    jobs = int(raw) if raw.isdigit() and int(raw) > 0 else None
    cuda = torch.device(device).type == "cuda"
    return {"jobs_per_device": jobs, "cuda_mps": bool(cuda and os.environ.get("CUDA_MPS_PIPE_DIRECTORY"))}


def provenance(device: Any, data: Any = None, *, start_time: Optional[str] = None) -> Dict[str, Any]:
    """The provenance block of a record (end time / wall time are filled in by the trainer).

    ``data`` is a :class:`se_res2net.training.data.Cifar10` (or ``None``).
    """
    import torch

    prov: Dict[str, Any] = {"package_version": __version__}
    prov.update(git_state())
    prov.update(
        {
            "python": platform.python_version(),
            "torch": torch.__version__,
        }
    )
    prov.update(device_info(device))
    prov["torch_threads"] = torch.get_num_threads()
    prov["sharing"] = sharing_info(device)
    prov["platform"] = platform.platform()
    prov["executable"] = sys.executable
    if data is not None:
        prov.update(
            {
                "data_source": data.source,
                "data_fingerprint": data.fingerprint,
                "data_is_sample": bool(data.is_sample),
                "train_size": int(len(data.train.labels)),
                "test_size": int(len(data.test.labels)),
            }
        )
    prov["start_time"] = start_time or utc_now()
    prov["end_time"] = None
    prov["wall_time_s"] = 0.0
    prov["hostname"] = platform.node()
    return prov


# --------------------------------------------------------------------------- description
def _data_line(config: Mapping[str, Any], prov: Mapping[str, Any]) -> str:
    source = prov.get("data_source")
    if source is None:  # a run that failed before its data was loaded
        return f"not loaded (asked for `{config.get('data_source', 'auto')}`)"
    subset = config.get("train_subset") is not None or config.get("test_subset") is not None
    sizes = (f"{prov['train_size']:,} training / {prov['test_size']:,} test images"
             if prov.get("train_size") is not None else "sizes not recorded")
    if prov.get("data_is_sample"):
        # the label every page carries for the sample: its numbers say nothing about the report
        return (f"the embedded CIFAR-10 **sample** (`sample`, *not* the full data set), {sizes}; its numbers "
                "test the plumbing, not the report")
    where = {"folder": "a class-folder copy", "torchvision": "torchvision's copy"}.get(source, f"`{source}`")
    part = "a stratified subset" if subset else "the whole splits"
    return f"CIFAR-10 from {where} (`{source}`), {part}: {sizes}"


def trained_spans(rec: Mapping[str, Any]) -> List[Tuple[int, Mapping[str, Any], int, int]]:
    """The stretches of a run's logged epochs and what trained each: ``(k, entry, start, end)`` in order, epochs
    ``start`` to ``end - 1`` (0-based) trained under ``entry``: ``k == 0`` the start's ``provenance``, else
    ``resumes[k - 1]``. A run resumed from its checkpoint may go on on other
    hardware, or in another environment: ``provenance`` describes the start, and each entry of ``resumes`` what
    trained on from its ``epoch``. A start or resume that trained no epoch (stopped again before one ended) is
    left out: the one place that reads these marks, for every question asked of them."""
    done = len(rec.get("epochs") or [])
    marks = [(0, rec.get("provenance") or {})] + [(int(r.get("epoch", 0)), r) for r in rec.get("resumes") or []]
    spans = []
    for k, (start, entry) in enumerate(marks):
        end = marks[k + 1][0] if k + 1 < len(marks) else done
        if end > start:
            spans.append((k, entry, start, end))
    return spans


NOT_RECORDED = "not recorded"


def span_device_name(entry: Mapping[str, Any]) -> str:
    """The device name a span's mark (``provenance`` or a ``resumes`` entry) records, or :data:`NOT_RECORDED`."""
    return str(entry["device_name"]) if entry.get("device_name") else NOT_RECORDED


def training_devices(rec: Mapping[str, Any]) -> List[Tuple[str, int, int]]:
    """Which device trained which epochs of a run: ``(device name, first epoch, last epoch)`` in order (1-based,
    from :func:`trained_spans`). A device that is not named counts as :data:`NOT_RECORDED`; consecutive spans on one
    device merge."""
    spans: List[Tuple[str, int, int]] = []
    for _, entry, start, end in trained_spans(rec):
        name = span_device_name(entry)
        if spans and spans[-1][0] == name:
            spans[-1] = (name, spans[-1][1], end)
        else:
            spans.append((name, start + 1, end))
    return spans


def trained_on_text(spans: Sequence[Tuple[str, int, int]]) -> str:
    """``"AMD EPYC (epochs 1–5), Intel Xeon (epochs 6–9)"``; one device's name alone when it trained them all."""
    if len(spans) == 1:
        return spans[0][0]
    return ", ".join(f"{n} (epoch{'s' if a != b else ''} {a}{'–' + str(b) if a != b else ''})" for n, a, b in spans)


def describe_run(record: Mapping[str, Any]) -> str:
    """What a run is, as a Markdown list, from its record alone (model, seed, profile, data source and
    sizes, epochs, schedule, device, status), so an executed notebook describes the run it holds rather
    than the notebook's defaults. No heading: the notebook gives it one in a Markdown cell, because a
    heading inside a cell's output does not become a section of the book."""
    config = record.get("config") or {}
    prov = record.get("provenance") or {}
    kwargs = record.get("model_kwargs") or {}
    model = f"`{record['model']}`" + (f" with {json.dumps(kwargs, sort_keys=True)}" if kwargs else "")
    planned = config.get("epochs")
    done = len(record.get("epochs") or [])
    milestones = config.get("milestones") or []
    recipe = [f"batch {config['batch_size']}"] if config.get("batch_size") else []
    if config.get("lr") is not None:
        recipe.append(f"lr {config['lr']}, x{config.get('gamma')} at epochs {', '.join(map(str, milestones))}"
                      if milestones else f"lr {config['lr']} constant")
    device = prov.get("device")
    if device is None:
        device_line = f"not started (asked for `{config.get('device', 'auto')}`)"
    else:
        name = f" ({prov['device_name']})" if prov.get("device_name") else ""
        bf16 = "bf16 autocast" if prov.get("bf16") else "fp32"
        compiled = f", torch.compile `{prov.get('compile_mode') or 'default'}`" if prov.get("compile") else ""
        sharing = prov.get("sharing") or {}
        shared = (f", up to {sharing['jobs_per_device']} run(s) at once on it" if sharing.get("jobs_per_device") else "")
        shared += " under CUDA MPS" if sharing.get("cuda_mps") else ""
        device_line = f"`{device}`{name}, {bf16}{compiled}{shared}"
        spans = training_devices(record)
        if len(spans) > 1:  # resumed on other hardware: provenance names only the machine that started it
            device_line = f"trained on {trained_on_text(spans)}; started as {device_line}"
    status = record.get("status")
    if status == "failed" and record.get("failure"):
        failure = record["failure"]
        status = f"failed at epoch {failure.get('epoch')}: {failure.get('type')}: {failure.get('message')}"
    lines = [
        f"- **model**: {model}",
        f"- **seed**: {record.get('seed')}; **profile**: `{record.get('profile')}`",
        f"- **data**: {_data_line(config, prov)}",
        f"- **epochs**: {done} of {planned}" + (f"; {', '.join(recipe)}" if recipe else ""),
        f"- **device**: {device_line}",
    ]
    reseeded = [r for r in record.get("resumes") or [] if (r.get("augment_rng") or {}).get("restored") is False]
    if reseeded:  # the trainer's _restore_augment_rng: a CUDA generator's stream cannot go on on a CPU, nor back
        lines.append("- **augmentation**: a fresh random stream from " + ", ".join(
            f"epoch {int(r['epoch']) + 1} (resumed on a {r['augment_rng']['device'].upper()} from a "
            f"{r['augment_rng']['checkpoint_device'].upper()} checkpoint)" for r in reseeded)
            + ", since one device's generator cannot continue the other's; the data order and the model's state "
            "went on exactly")
    lines.append(f"- **status**: {status}")
    return "\n".join(lines) + "\n"
