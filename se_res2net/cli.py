"""Command-line interface: ``se-res2net <command>`` or ``python -m se_res2net <command>``.

Each sub-command lives in the module of its concept and exposes two functions,
``add_<cmd>_arguments(parser)`` and ``run_<cmd>(args) -> int``; this file only
dispatches, importing the module on demand so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Dict, List, Optional, Tuple

# command -> (module, function stem, one-line help)
COMMANDS: Dict[str, Tuple[str, str, str]] = {
    "complexity": ("se_res2net.models.complexity", "complexity", "parameters, thop MACs and FLOPs of every model"),
    "train": ("se_res2net.training.trainer", "train", "train one model on CIFAR-10 and write its run record"),
    "test": ("se_res2net.training.trainer", "test", "print the test error of checkpoints, against their records"),
    "sweep": ("se_res2net.training.sweep", "sweep", "run the papermill notebook once per (model, seed) of a profile"),
    "progress": ("se_res2net.training.progress", "progress", "which runs of a sweep are done, training, resumable; images/s, ETA"),
    "pack": ("se_res2net.training.transfer", "pack", "pack records, notebooks, logs, unfinished checkpoints into few archives"),
    "unpack": ("se_res2net.training.transfer", "unpack", "verify and extract archives written by 'se-res2net pack'"),
    "finalize": ("se_res2net.training.transfer", "finalize", "complete runs' checkpoints -> their model-only final weights"),
    "bench": ("se_res2net.training.bench", "bench", "training images/s of this trainer vs a plain loop"),
    "floor": ("se_res2net.training.floor", "floor", "FLOPs, bytes and launches of a training step; its floor on a device"),
    "parity": ("se_res2net.training.parity", "parity", "loss curves of each fast-path switch against eager fp32"),
    "decide": ("se_res2net.training.decision", "decide", "a GPU block's rule for --jobs/--compile; results it may reuse"),
    "grad-cam": ("se_res2net.audit.gradcam", "gradcam", "Grad-CAM grid-pointing-game IoU of checkpoints"),
    "data": ("se_res2net.training.data", "data", "load, verify and cache CIFAR-10; print its fingerprints"),
}

# How each command that reads CIFAR-10 spells the fixes of a missing source (se_res2net.training.data.SourceFlags
# fields: data_dir, download, sample), so that its error names options the user can add to the command
# they ran: `data` chooses the source with --source, the others with --data; only some can download.
DATA_FLAGS: Dict[str, Tuple[str, Optional[str], str]] = {
    "data": ("--data-dir DIR", "--download", "--source sample"),
    "train": ("--data-dir DIR", "--download", "--data sample"),
    "test": ("--data-dir DIR", "--download", "--data sample"),
    "sweep": ("--data-dir DIR", None, "--data sample"),
    "grad-cam": ("--data-dir DIR", None, "--data sample"),
    "bench": ("--data-dir DIR", None, "--data sample"),
    "parity": ("--data-dir DIR", None, "--data sample"),
}


def _for_command(exc: Exception, command: str) -> Exception:
    """``exc`` with its fixes spelled for ``command`` (a missing data source), else ``exc`` itself."""
    from .training.data import NoDataSourceError, SourceFlags

    if isinstance(exc, NoDataSourceError) and command in DATA_FLAGS:
        return exc.with_flags(SourceFlags(*DATA_FLAGS[command]))
    return exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="se-res2net", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, stem, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a command whose module is not built yet
            if exc.name != module:
                raise
            p.set_defaults(_missing=module)
            continue
        getattr(mod, f"add_{stem}_arguments")(p)
        p.set_defaults(_run=getattr(mod, f"run_{stem}"))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "_missing", None):
        parser.error(f"command {args.command!r} is not available: {args._missing} is missing")
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:
        # the reader went away (`se-res2net progress | head`): stop quietly with the exit status of a Unix tool
        # killed by SIGPIPE, and point stdout at devnull so that the flush at exit does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError, RuntimeError) as exc:
        # One clear line for user errors; tracebacks only with --verbose.
        if args.verbose:
            spelled = _for_command(exc, args.command)
            if spelled is not exc:
                raise spelled from exc
            raise
        print(f"se-res2net {args.command}: error: {_for_command(exc, args.command)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
