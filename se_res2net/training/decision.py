"""What a GPU block measures before its sweep, what it may take from an earlier block, and the rule it decides by.

A GPU block (``scripts/gpu-runbook.sh block``) measures this trainer's variants and the concurrency of
se_res2net29, decides the sweep's ``--jobs`` and ``--compile`` from them by a fixed rule (:func:`decide`), and
runs the GPU parity check. Measuring all of it takes most of the block's bench budget (390 s of a 30-minute
session), and the full protocol needs many blocks. So a later block takes a result measured in an earlier one
instead of measuring again, when the result itself says it fits (:func:`find_prior`):

* it was measured on the same machine, judged from its own fields: ``device``, ``device_name``, ``torch`` and
  ``cuda`` equal this machine's (:func:`machine`). A result from another GPU model or another torch build is
  never taken, whatever its file is called or wherever it lies;
* it is complete: a bench not cut by its budget (``interrupted`` is ``None``) that has every asked-for variant of
  the model as a row or under ``failed`` (a variant that failed on this machine fails again), at the same batch
  size, warm-up and timed steps; a concurrency bench of the same model and variant, not cut; a parity check of
  the same model with every asked-for variant, run for the same number of epochs and with the same number of noise
  seeds (extra seeds of the reference; a result without a ``noise`` block has 0).

Among several that fit, the one measured last is taken. ``se-res2net decide`` is the runbook's entry point;
``REBENCH=1`` there measures everything again.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from .atomic import PathLike

log = logging.getLogger(__name__)

KINDS = ("bench", "concurrency", "parity")
# the fields that name the machine a result was measured on (bench, concurrency and parity results all hold them)
MACHINE_FIELDS = ("device", "device_name", "torch", "cuda")
RULE_MODEL = "se_res2net29"  # the model the rule measures (the report's headline model)
COMPILE_ARGS = {"eager": [], "compile": ["--compile", "default"], "cudagraphs": ["--compile", "reduce-overhead"]}


def machine(device: str = "auto") -> Dict[str, Any]:
    """This machine as a result names it: ``device`` (``cuda`` / ``cpu``), ``device_name``, ``torch``, ``cuda``."""
    import torch

    from .records import device_info
    from .trainer import resolve_device

    return {**device_info(resolve_device(device)), "torch": torch.__version__}


def kind_of(result: Mapping[str, Any]) -> Optional[str]:
    """``bench``, ``concurrency`` or ``parity`` from a result's own keys; ``None`` for anything else."""
    if "rows" in result and "warmup_steps" in result:
        return "bench"
    if "rows" in result and "variant" in result and all("processes" in r for r in result.get("rows") or []):
        return "concurrency"
    if "reference" in result and "runs" in result:
        return "parity"
    return None


def same_machine(result: Mapping[str, Any], here: Mapping[str, Any]) -> bool:
    return all(result.get(k) == here.get(k) for k in MACHINE_FIELDS)


def why_not(result: Mapping[str, Any], kind: str, here: Mapping[str, Any], *, model: str,
            variants: Sequence[str] = (), batch_size: Optional[int] = None, steps: Optional[int] = None,
            warmup: Optional[int] = None, epochs: Optional[int] = None,
            noise_seeds: Optional[int] = None) -> Optional[str]:
    """Why ``result`` cannot stand for a measurement of ``kind`` asked of this machine; ``None`` when it can.

    ``noise_seeds`` (parity): a parity result judged by seed noise is another check than one with fewer noise
    seeds or judged by fixed tolerances only, so it stands only for the same count (``None``: not compared)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind_of(result) != kind:
        return f"not a {kind} result"
    if not same_machine(result, here):
        theirs = ", ".join(f"{k}={result.get(k)!r}" for k in MACHINE_FIELDS)
        return f"measured on another machine ({theirs})"
    if kind == "parity":
        missing = sorted(set(variants) - set(result["runs"]))
        if result.get("model") != model:
            return f"of {result.get('model')}, not {model}"
        if missing:
            return f"lacks the variant(s) {', '.join(missing)}"
        if epochs is not None and result.get("epochs") != epochs:
            return f"{result.get('epochs')} epochs, not {epochs}"
        have = len((result.get("noise") or {}).get("seeds") or [])
        if noise_seeds is not None and have != noise_seeds:
            return f"{have} noise seed(s), not {noise_seeds}"
        return None
    if result.get("interrupted") is not None:
        return f"cut short ({result['interrupted']})"
    if batch_size is not None and result.get("batch_size") != batch_size:
        return f"batch {result.get('batch_size')}, not {batch_size}"
    if steps is not None and result.get("timed_steps") != steps:
        return f"{result.get('timed_steps')} timed steps, not {steps}"
    if kind == "concurrency":
        if result.get("model") != model or (variants and result.get("variant") not in variants):
            return f"of {result.get('model')} / {result.get('variant')}, not {model} / {' or '.join(variants)}"
        if warmup is not None and result.get("warmup_steps_per_process") != warmup:
            return f"{result.get('warmup_steps_per_process')} warm-up steps, not {warmup}"
        if not result["rows"]:
            return "no level measured"
        return None
    if warmup is not None and result.get("warmup_steps") != warmup:
        return f"{result.get('warmup_steps')} warm-up steps, not {warmup}"
    done = {r["variant"] for r in result["rows"] if r.get("model") == model}
    done |= {f["variant"] for f in result.get("failed") or [] if f.get("model") == model}
    missing = [v for v in variants if v not in done]
    if not done or missing:
        return f"lacks {model} / {', '.join(missing) or 'every variant'}"
    return None


def _json_files(roots: Iterable[PathLike]) -> Iterator[Path]:
    for root in roots:
        root = Path(root)
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from sorted(p for p in root.rglob("*.json") if p.is_file())


def find_prior(roots: Iterable[PathLike], kind: str, here: Mapping[str, Any], **want: Any) -> Optional[Path]:
    """The result under ``roots`` (files, or folders searched for ``*.json``) that stands for a measurement of
    ``kind`` on this machine (:func:`why_not`), the last measured if several; ``None`` if none."""
    fits: List[Tuple[str, int, Path]] = []
    for i, path in enumerate(_json_files(roots)):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a result (or not readable): nothing to take
        if not isinstance(result, dict) or kind_of(result) != kind:
            continue
        reason = why_not(result, kind, here, **want)
        if reason is None:
            fits.append((str(result.get("measured_at") or ""), -i, path))
        else:
            log.debug("not taking %s: %s", path, reason)
    return max(fits)[2] if fits else None


# A process count whose aggregate images/s is within this fraction of the best counts as the best.
JOBS_SLACK = 0.05


def decide(bench: Optional[Mapping[str, Any]], concurrency: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The rule: the fastest trainer variant of se_res2net29 measured in ``bench`` (``plain`` never counts;
    ``eager`` when none was measured), and the fewest processes whose aggregate images/s in ``concurrency`` is
    within :data:`JOBS_SLACK` of the most (1 when none was measured). Returns ``variant``, ``jobs`` and the
    sweep's ``args``.

    Why the fewest, not the fastest: on the H200 the aggregate was flat from 2 to 8 processes (within 1 %,
    ``benchmarks/gpu/block-20261204T144617Z``), the old rule took 8, and all six runs of that block advanced
    together and none finished in it. At the same aggregate, fewer runs at once finish sooner, leave fewer
    unfinished checkpoints at the end of a short block and compile fewer copies of the model at once (eight
    concurrent compiles made the first epoch take 140 s)."""
    rows = [r for r in (bench or {}).get("rows") or [] if r.get("variant") != "plain"
            and r.get("model", RULE_MODEL) == RULE_MODEL]
    variant = max(rows, key=lambda r: r["images_per_s"])["variant"] if rows else "eager"
    levels = (concurrency or {}).get("rows") or []
    jobs = 1
    if levels:
        best = max(r["aggregate_images_per_s"] for r in levels)
        jobs = min(r["processes"] for r in levels if r["aggregate_images_per_s"] >= (1 - JOBS_SLACK) * best)
    return {"variant": variant, "jobs": int(jobs), "args": ["--jobs", str(jobs), *COMPILE_ARGS[variant]]}


def decided_line(decision: Mapping[str, Any]) -> str:
    compile_args = " ".join(decision["args"][2:]) or "(eager)"
    return f"decided: --jobs {decision['jobs']} {compile_args} (fastest variant: {decision['variant']})"


# --------------------------------------------------------------------------------------------------
# CLI: se-res2net decide machine | find | rule
# --------------------------------------------------------------------------------------------------


def _load(path: Optional[PathLike]) -> Optional[Dict[str, Any]]:
    if path is None or not Path(path).is_file():
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON ({exc}); delete it and measure again") from exc


def _here(path: PathLike) -> Dict[str, Any]:
    here = _load(path)
    if not here or any(k not in here for k in MACHINE_FIELDS):
        raise FileNotFoundError(f"{path} does not name this machine; write it with 'se-res2net decide machine --out {path}'")
    return here


def add_decide_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    m = sub.add_parser("machine", help="write what names this machine in a result (device, GPU name, torch, CUDA)")
    m.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    m.add_argument("--out", required=True, metavar="FILE", help="where to write it (JSON)")
    f = sub.add_parser("find", help="a complete result of this machine measured before; exit 1 when none")
    f.add_argument("kind", choices=KINDS)
    f.add_argument("--here", required=True, metavar="FILE", help="this machine, as 'decide machine' wrote it")
    f.add_argument("--roots", nargs="+", required=True, metavar="PATH", help="files, or folders searched for *.json")
    f.add_argument("--model", default=RULE_MODEL, help=f"the model measured (default {RULE_MODEL})")
    f.add_argument("--variants", nargs="*", default=[], metavar="VARIANT",
                   help="every variant it must hold (bench, parity), or the one it may be of (concurrency)")
    f.add_argument("--batch-size", type=int, default=None)
    f.add_argument("--steps", type=int, default=None, help="timed steps (bench, concurrency)")
    f.add_argument("--warmup", type=int, default=None, help="warm-up steps (bench, concurrency)")
    f.add_argument("--epochs", type=int, default=None, help="epochs (parity)")
    from .parity import noise_seeds_arg  # the parity CLI's own check: the same N means the same there and here

    f.add_argument("--noise-seeds", type=noise_seeds_arg, default=1, metavar="N",
                   help="extra reference seeds the parity check ran for its noise (parity; default 1, as "
                        "'se-res2net parity'; a result without noise has 0)")
    f.add_argument("--copy-to", default=None, metavar="FILE",
                   help="also copy it there (where this block's results are), unless it is that file")
    r = sub.add_parser("rule", help="decide --jobs and --compile from this block's results; print the sweep's args")
    r.add_argument("--bench", required=True, metavar="FILE", help=f"the bench of {RULE_MODEL} (absent: not measured)")
    r.add_argument("--concurrency", default=None, metavar="FILE", help="the concurrency bench (absent: not measured)")
    r.add_argument("--here", default=None, metavar="FILE", help="this machine, kept with the decision")
    r.add_argument("--out", default=None, metavar="FILE", help="keep the decision as JSON (what decided it, from what)")
    r.add_argument("--print", dest="show", choices=("line", "args", "variant"), default="line",
                   help="line: 'decided: ...' (default); args: the sweep's --jobs/--compile; variant: the fastest")


def run_decide(args: argparse.Namespace) -> int:
    from .atomic import atomic_write_bytes, atomic_write_json
    from .records import utc_now

    if args.action == "machine":
        atomic_write_json(args.out, machine(args.device))
        return 0
    if args.action == "find":
        here = _here(args.here)
        found = find_prior(args.roots, args.kind, here, model=args.model, variants=args.variants,
                           **({"epochs": args.epochs, "noise_seeds": args.noise_seeds} if args.kind == "parity" else
                              {"batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup}))
        if found is None:
            return 1
        measured_at = json.loads(found.read_text(encoding="utf-8")).get("measured_at") or "at an unrecorded time"
        target = Path(args.copy_to) if args.copy_to else None
        if target is not None and (not target.exists() or not target.samefile(found)):
            atomic_write_bytes(target, found.read_bytes())
        print(f"{args.kind} of {args.model}: measured before on this machine ({here['device_name']}, torch "
              f"{here['torch']}), {measured_at}: {found}")
        return 0
    bench, concurrency = _load(args.bench), _load(args.concurrency)
    decision = decide(bench, concurrency)
    sources = {name: {"file": str(Path(path).resolve()), "measured_at": result.get("measured_at")}
               for name, path, result in (("bench", args.bench, bench), ("concurrency", args.concurrency, concurrency))
               if result is not None}
    if args.out:
        atomic_write_json(args.out, {**decision, "decided_at": utc_now(), "rule_model": RULE_MODEL,
                                     "machine": _load(args.here) if args.here else None, "from": sources})
    print({"line": decided_line(decision), "args": " ".join(decision["args"]), "variant": decision["variant"]}[args.show])
    return 0


__all__ = ["KINDS", "decide", "decided_line", "find_prior", "kind_of", "machine", "same_machine", "why_not"]
