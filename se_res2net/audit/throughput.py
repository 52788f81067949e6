"""What the fast path buys: the GPU blocks' benchmark results, as the book shows them.

A GPU block (``scripts/gpu-runbook.sh block``) leaves its measurements as JSON under ``benchmarks/gpu/<block>/results/``:
benches of the trainer's variants against the plain loop (with the floor of a step), the aggregate images/s of
concurrent processes, and N models stacked into one step. This module finds them by their own keys
(:func:`se_res2net.training.decision.kind_of`), never by their file names, and turns them
into the tables and the figure of the protocol chapter. Every number comes from a result; each table says on
which machine and when it was measured.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

KINDS = ("bench", "concurrency", "stacked")
BENCH_FORMATS = {"images/s": "{:,.0f}", "ms per step": "{:.1f}", "achieved TFLOP/s": "{:.2f}",
                 "vs plain": "{:.2f}×", "vs eager": "{:.2f}×"}
FLOOR_FORMATS = {"GFLOP": "{:.1f}", "GB": "{:.2f}", "ops": "{:.0f}", "arithmetic ms": "{:.2f}",
                 "memory ms": "{:.2f}", "launches ms": "{:.2f}", "floor ms": "{:.2f}", "≤ images/s": "{:,.0f}",
                 "eager ms": "{:.1f}", "eager ÷ floor": "{:.2f}×"}


def kind(result: Mapping[str, Any]) -> Union[str, None]:
    """``bench``, ``concurrency`` or ``stacked`` from a result's own keys; ``None`` for anything else."""
    from ..training.decision import kind_of

    k = kind_of(result)
    return k if k in KINDS else None


def load_results(root: Union[str, Path]) -> Dict[str, List[Dict[str, Any]]]:
    """Every bench, concurrency and stacked result under ``root`` (recursively), by kind, oldest first. Each
    keeps where it was read from under ``_path``. A rejected result (an MPS bench no process reached the daemon
    for) is left out; so is any JSON that is not one of these kinds, or cannot be read."""
    found: Dict[str, List[Dict[str, Any]]] = {k: [] for k in KINDS}
    for path in sorted(Path(root).rglob("*.json")):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        k = kind(result) if isinstance(result, dict) else None
        if k is None or result.get("rejected") or not result.get("rows"):
            continue
        found[k].append({**result, "_path": str(path)})
    for k in KINDS:
        found[k].sort(key=lambda r: str(r.get("measured_at") or ""))
    return found


def machine_text(result: Mapping[str, Any]) -> str:
    """``"NVIDIA H200 (cuda), torch 2.11.0+cu130, measured 2026-12-04T14:40:44Z"``."""
    return (f"{result.get('device_name') or 'unnamed device'} ({result.get('device')}), torch {result.get('torch')}, "
            f"measured {result.get('measured_at') or 'at an unrecorded time'}")


def bench_display(result: Mapping[str, Any]) -> "pd.DataFrame":
    """One row per measured (model, variant) of a bench result: images/s, ms per step, achieved TFLOP/s and the
    ratios to the plain loop and to eager measured in the same run."""
    import pandas as pd

    rows = [{"model": r["model"], "variant": r["variant"], "images/s": r["images_per_s"], "ms per step": r["step_ms"],
             "achieved TFLOP/s": r.get("tflops"), "vs plain": r.get("vs_plain"), "vs eager": r.get("vs_eager"),
             "setup": r.get("setup", "")} for r in result["rows"]]
    return _one_model_named_above(pd.DataFrame(rows))


def _one_model_named_above(df: "pd.DataFrame") -> "pd.DataFrame":
    """Without the model column when every row is of one model (the page names it above the table)."""
    return df.drop(columns="model") if df["model"].nunique() == 1 else df


def bench_notes(result: Mapping[str, Any]) -> List[str]:
    """What the table of a bench result leaves out: variants that failed, and where a budget cut it short."""
    notes = [f"{f['model']} / {f['variant']} failed: {f['error']}" for f in result.get("failed") or []]
    if result.get("interrupted"):
        notes.append(f"cut short by the block's bench budget {result['interrupted']}: the rows above are all it "
                     "measured")
    return notes


def floor_display(result: Mapping[str, Any]) -> "pd.DataFrame":
    """The floor of a step per model of a bench result that counted one (``--floor``): FLOPs, bytes and ops per
    step, the time each takes at the device's measured rates, the largest (the floor) and what bounds it, beside
    the eager step measured in the same run."""
    import pandas as pd

    floor = result.get("floor") or {}
    eager = {r["model"]: r["step_ms"] for r in result["rows"] if r["variant"] == "eager"}
    rows = []
    for r in floor.get("rows") or []:
        measured = eager.get(r["model"])
        rows.append({"model": r["model"], "GFLOP": r["flops"] / 1e9, "GB": r["bytes"] / 1e9, "ops": r["ops"],
                     "arithmetic ms": r["arithmetic_ms"], "memory ms": r["memory_ms"],
                     "launches ms": r["launches_ms"], "floor ms": r["floor_ms"], "bound by": r["bound"],
                     "≤ images/s": r["ceiling_images_per_s"], "eager ms": measured,
                     "eager ÷ floor": measured / r["floor_ms"] if measured else None})
    return _one_model_named_above(pd.DataFrame(rows)) if rows else pd.DataFrame(rows)


def floor_text(result: Mapping[str, Any]) -> str:
    """The device's measured rates and the switches the floor was counted with, for the floor table's caption."""
    floor = result["floor"]
    p = floor["peaks"]
    first = floor["rows"][0]
    return (f"measured on {p['device_name']}: {p['dtype']} matmul {p['flops_per_s'] / 1e12:,.0f} TFLOP/s, copy "
            f"{p['bytes_per_s'] / 1e9:,.0f} GB/s, {p['seconds_per_op'] * 1e6:.2f} µs per op; counted at batch "
            f"{first['batch_size']} with {first['switches']}")


def sharing_points(concurrency: Sequence[Mapping[str, Any]],
                   stacked: Sequence[Mapping[str, Any]]) -> "pd.DataFrame":
    """One row per measured level: how the runs shared the device (processes taking turns, processes under MPS, or
    models stacked in one step), how many, and the aggregate images/s, with the result's model, variant, machine."""
    import pandas as pd

    from ..training.decision import sharing_of

    rows = []
    for c in concurrency:
        for r in c["rows"]:
            rows.append({"how": f"processes, {sharing_of(c)}", "runs": r["processes"],
                         "images/s": r["aggregate_images_per_s"], "model": c["model"], "variant": c["variant"],
                         "machine": c.get("device_name"), "measured_at": c.get("measured_at")})
    for s in stacked:
        for r in s["rows"]:
            rows.append({"how": "stacked in one step", "runs": r["models"], "images/s": r["aggregate_images_per_s"],
                         "model": s["model"], "variant": s["variant"], "machine": s.get("device_name"),
                         "measured_at": s.get("measured_at")})
    return pd.DataFrame(rows, columns=["how", "runs", "images/s", "model", "variant", "machine", "measured_at"])


def plot_sharing(points: "pd.DataFrame") -> "Figure":
    """Aggregate images/s against the number of runs sharing the device, one line per (machine, model, variant,
    way of sharing)."""
    from matplotlib.figure import Figure

    # a Figure, not pyplot's: the page displays it once, and pyplot would show it a second time at the cell's end
    fig = Figure(figsize=(7.5, 3.8))
    ax = fig.subplots()
    for (machine, model, variant, how), g in points.groupby(["machine", "model", "variant", "how"], sort=True):
        g = g.sort_values("runs")
        ax.plot(g["runs"], g["images/s"], marker="o" if how.startswith("processes") else "s",
                linestyle="-" if how.startswith("processes") else "--", label=f"{model} / {variant}, {how} ({machine})")
    runs = sorted(points["runs"].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(runs, [str(int(n)) for n in runs])
    ax.set_ylim(0, 1.15 * float(points["images/s"].max()))  # room above the top line for the legend
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:,.0f}")
    ax.set_xlabel("runs sharing one device")
    ax.set_ylabel("images/s, all runs together")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    ax.set_title("Training throughput of runs sharing one GPU", fontsize=10)
    fig.tight_layout()
    return fig
