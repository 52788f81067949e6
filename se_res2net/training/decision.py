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
  size, warm-up and timed steps; a concurrency bench of the same model, variant and way of sharing the GPU
  (``time-slicing`` for a result that does not say, or ``mps``), not cut, and not ``rejected`` by its block (an MPS
  result no process reached the daemon for); a parity check of
  the same model with every asked-for variant, run for the same number of epochs and with the same number of noise
  seeds (extra seeds of the reference; a result without a ``noise`` block has 0); a stacked bench (N models in one
  step, ``se-res2net bench --stacked``: measured for the notes, never decided from) of the same model, variant,
  batch per model and steps, holding every asked-for level.

Among several that fit, the one measured last is taken. ``se-res2net decide`` is the runbook's entry point;
``REBENCH=1`` there measures everything again.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from .atomic import PathLike

log = logging.getLogger(__name__)

KINDS = ("bench", "concurrency", "parity", "stacked")
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
    """``bench``, ``concurrency``, ``parity`` or ``stacked`` from a result's own keys; ``None`` for anything else."""
    if result.get("kind") == "stacked" and "rows" in result:
        return "stacked"
    if "rows" in result and "warmup_steps" in result:
        return "bench"
    if "rows" in result and "variant" in result and all("processes" in r for r in result.get("rows") or []):
        return "concurrency"
    if "reference" in result and "runs" in result:
        return "parity"
    return None


def sharing_of(result: Mapping[str, Any]) -> str:
    """How a concurrency result's processes shared the GPU; results from before MPS was measured took turns."""
    return str(result.get("sharing") or "time-slicing")


def same_machine(result: Mapping[str, Any], here: Mapping[str, Any]) -> bool:
    return all(result.get(k) == here.get(k) for k in MACHINE_FIELDS)


def why_not(result: Mapping[str, Any], kind: str, here: Mapping[str, Any], *, model: str,
            variants: Sequence[str] = (), batch_size: Optional[int] = None, steps: Optional[int] = None,
            warmup: Optional[int] = None, epochs: Optional[int] = None,
            noise_seeds: Optional[int] = None, sharing: Optional[str] = None,
            levels: Sequence[int] = ()) -> Optional[str]:
    """Why ``result`` cannot stand for a measurement of ``kind`` asked of this machine; ``None`` when it can.

    ``noise_seeds`` (parity): a parity result judged by seed noise is another check than one with fewer noise
    seeds or judged by fixed tolerances only, so it stands only for the same count (``None``: not compared).
    ``sharing`` (concurrency): processes taking turns on the GPU and processes under CUDA MPS are two
    measurements; a result that does not say was measured taking turns. ``levels`` (stacked): every number of
    stacked models it must hold, measured or failed (a level that failed, out of memory say, fails again)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind_of(result) != kind:
        return f"not a {kind} result"
    if result.get("rejected"):  # a result its block found not to be what it says (e.g. MPS that no process reached)
        return f"rejected by its block: {result['rejected']}"
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
    if kind == "stacked":
        if result.get("model") != model or (variants and result.get("variant") not in variants):
            return f"of {result.get('model')} / {result.get('variant')}, not {model} / {' or '.join(variants)}"
        if batch_size is not None and result.get("batch_size_per_model") != batch_size:
            return f"batch {result.get('batch_size_per_model')} per model, not {batch_size}"
        if steps is not None and result.get("timed_steps") != steps:
            return f"{result.get('timed_steps')} timed steps, not {steps}"
        if warmup is not None and result.get("warmup_steps_per_level") != warmup:
            return f"{result.get('warmup_steps_per_level')} warm-up steps, not {warmup}"
        done = {r["models"] for r in result["rows"]} | {f["models"] for f in result.get("failed") or []}
        missing_levels = [n for n in levels if n not in done]
        if missing_levels or not done:
            return f"lacks the level(s) {', '.join(map(str, missing_levels)) or 'every level'}"
        return None
    if batch_size is not None and result.get("batch_size") != batch_size:
        return f"batch {result.get('batch_size')}, not {batch_size}"
    if steps is not None and result.get("timed_steps") != steps:
        return f"{result.get('timed_steps')} timed steps, not {steps}"
    if kind == "concurrency":
        if result.get("model") != model or (variants and result.get("variant") not in variants):
            return f"of {result.get('model')} / {result.get('variant')}, not {model} / {' or '.join(variants)}"
        if sharing is not None and sharing_of(result) != sharing:
            return f"processes sharing the GPU by {sharing_of(result)}, not {sharing}"
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


def decide(bench: Optional[Mapping[str, Any]],
           concurrency: Union[None, Mapping[str, Any], Sequence[Optional[Mapping[str, Any]]]]) -> Dict[str, Any]:
    """The rule: the fastest trainer variant of se_res2net29 measured in ``bench`` (``plain`` never counts;
    ``eager`` when none was measured), and, over every level of the ``concurrency`` results (one, or several:
    taking turns on the GPU and under CUDA MPS), the fewest processes whose aggregate images/s is within
    :data:`JOBS_SLACK` of the most, taking turns rather than MPS when both are (1 process taking turns when
    nothing was measured). Returns ``variant``, ``jobs``, ``sharing`` and the sweep's ``args``.

    Why the fewest, not the fastest: on the H200 the aggregate was flat from 2 to 8 processes (within 1 %,
    ``benchmarks/gpu/block-20261204T144617Z``), the old rule took 8, and all six runs of that block advanced
    together and none finished in it. At the same aggregate, fewer runs at once finish sooner, leave fewer
    unfinished checkpoints at the end of a short block and compile fewer copies of the model at once (eight
    concurrent compiles made the first epoch take 140 s). Why turns before MPS at a tie: MPS adds a daemon the
    sweep depends on for its whole length; it has to earn that by more than the slack."""
    rows = [r for r in (bench or {}).get("rows") or [] if r.get("variant") != "plain"
            and r.get("model", RULE_MODEL) == RULE_MODEL]
    variant = max(rows, key=lambda r: r["images_per_s"])["variant"] if rows else "eager"
    results = [concurrency] if concurrency is None or isinstance(concurrency, Mapping) else list(concurrency)
    levels = [(sharing_of(c), r) for c in results if c and not c.get("rejected") for r in c.get("rows") or []]
    jobs, sharing = 1, "time-slicing"
    if levels:
        best = max(r["aggregate_images_per_s"] for _, r in levels)
        near = [(how != "time-slicing", r["processes"], how) for how, r in levels
                if r["aggregate_images_per_s"] >= (1 - JOBS_SLACK) * best]
        _, jobs, sharing = min(near)
    return {"variant": variant, "jobs": int(jobs), "sharing": sharing,
            "args": ["--jobs", str(jobs), *COMPILE_ARGS[variant]]}


def decided_line(decision: Mapping[str, Any]) -> str:
    compile_args = " ".join(decision["args"][2:]) or "(eager)"
    mps = ", under CUDA MPS" if decision.get("sharing") == "mps" else ""
    return f"decided: --jobs {decision['jobs']} {compile_args} (fastest variant: {decision['variant']}{mps})"


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
    f.add_argument("--levels", type=int, nargs="*", default=[], metavar="N",
                   help="numbers of stacked models it must hold (stacked)")
    from .bench import SHARING  # the bench's own names for how processes share the GPU

    f.add_argument("--sharing", choices=SHARING, default="time-slicing",
                   help="how the processes shared the GPU (concurrency; default time-slicing)")
    from .parity import noise_seeds_arg  # the parity CLI's own check: the same N means the same there and here

    f.add_argument("--noise-seeds", type=noise_seeds_arg, default=1, metavar="N",
                   help="extra reference seeds the parity check ran for its noise (parity; default 1, as "
                        "'se-res2net parity'; a result without noise has 0)")
    f.add_argument("--copy-to", default=None, metavar="FILE",
                   help="also copy it there (where this block's results are), unless it is that file")
    r = sub.add_parser("rule", help="decide --jobs and --compile from this block's results; print the sweep's args")
    r.add_argument("--bench", required=True, metavar="FILE", help=f"the bench of {RULE_MODEL} (absent: not measured)")
    r.add_argument("--concurrency", nargs="*", default=[], metavar="FILE",
                   help="the concurrency benches, taking turns and under MPS (an absent file: not measured)")
    r.add_argument("--here", default=None, metavar="FILE", help="this machine, kept with the decision")
    r.add_argument("--out", default=None, metavar="FILE", help="keep the decision as JSON (what decided it, from what)")
    r.add_argument("--print", dest="show", choices=("line", "args", "variant", "sharing"), default="line",
                   help="line: 'decided: ...' (default); args: the sweep's --jobs/--compile; variant: the fastest; "
                        "sharing: time-slicing or mps (start the MPS daemon before the sweep)")


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
                              {"batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
                               **({"sharing": args.sharing} if args.kind == "concurrency" else {}),
                               **({"levels": args.levels} if args.kind == "stacked" else {})}))
        if found is None:
            return 1
        measured_at = json.loads(found.read_text(encoding="utf-8")).get("measured_at") or "at an unrecorded time"
        target = Path(args.copy_to) if args.copy_to else None
        if target is not None and (not target.exists() or not target.samefile(found)):
            atomic_write_bytes(target, found.read_bytes())
        what = "concurrency under CUDA MPS" if args.kind == "concurrency" and args.sharing == "mps" else args.kind
        print(f"{what} of {args.model}: measured before on this machine ({here['device_name']}, torch "
              f"{here['torch']}), {measured_at}: {found}")
        return 0
    bench = _load(args.bench)
    loaded = [(path, _load(path)) for path in args.concurrency]
    decision = decide(bench, [c for _, c in loaded])
    sources = {"bench": {"file": str(Path(args.bench).resolve()), "measured_at": bench.get("measured_at")}} if bench else {}
    for path, result in loaded:
        if result is not None:
            name = "concurrency" if sharing_of(result) == "time-slicing" else f"concurrency ({sharing_of(result)})"
            sources[name] = {"file": str(Path(path).resolve()), "measured_at": result.get("measured_at")}
    if args.out:
        atomic_write_json(args.out, {**decision, "decided_at": utc_now(), "rule_model": RULE_MODEL,
                                     "machine": _load(args.here) if args.here else None, "from": sources})
    print({"line": decided_line(decision), "args": " ".join(decision["args"]), "variant": decision["variant"],
           "sharing": decision["sharing"]}[args.show])
    return 0


__all__ = ["KINDS", "decide", "decided_line", "find_prior", "kind_of", "machine", "same_machine", "sharing_of",
           "why_not"]
