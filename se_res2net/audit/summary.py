"""The audit's bottom line, for the book's summary page: claim families, compute spent, runs still to do.

Everything here is computed from the ledger (:func:`se_res2net.audit.claims.book_ledger`) and the run records
(:func:`se_res2net.audit.results.load_records`); nothing is typed in. The summary page follows the shape of an ML
Reproducibility Challenge / ReScience report: scope, the bottom line per claim family, methodology, compute
spent, what was easy and what was difficult, what remains.
"""

from __future__ import annotations

import importlib.metadata
import platform
from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Tuple

from . import claims as _claims

if TYPE_CHECKING:  # pragma: no cover
    import matplotlib.axes
    import pandas as pd

__all__ = [
    "CLASS_COLOURS",
    "FAMILIES",
    "family_of",
    "family_table",
    "plot_families",
    "compute_spent",
    "training_so_far",
    "errors_so_far",
    "remaining_runs",
    "projected_device_hours",
    "build_environment",
    "run_environments",
]

#: One colour per class, shared by every page that shows a class (red: the report fails; green: it holds;
#: blue: agreement that confirms nothing; purple: the literature's word; yellow / grey: no decision yet).
CLASS_COLOURS: Mapping[str, str] = {
    _claims.INCONSISTENT: "#e8939c", _claims.NOT_REPRODUCED: "#f4c2c7", _claims.INCONCLUSIVE: "#fbd7a8",
    _claims.REPRODUCED: "#a9d8bf", _claims.BY_CONSTRUCTION: "#b9d3fb", _claims.CONTRADICTED: "#cfa9e8",
    _claims.IMPLAUSIBLE: "#e3cdf2", _claims.UNTESTABLE: "#fbe7a6", _claims.NOT_YET: "#d6d8db",
}

#: Claim families by id prefix (the prefixes of book/claims.yaml), in the order the report makes them.
FAMILIES: Tuple[Tuple[str, str], ...] = (
    ("E", "test errors (SE-Res2Net-29, baselines)"),
    ("R", "ranking, state of the art"),
    ("S", "significance (Δ, p, d)"),
    ("A", "ablation"),
    ("P", "network parameters"),
    ("M", "network FLOPs (MACs)"),
    ("B", "per-block params, FLOPs"),
    ("O", "SE overhead"),
    ("F", "error-drop efficiency"),
    ("G", "Grad-CAM IoU"),
)


def family_of(claim_id: str) -> str:
    """The family of a claim id (its letter prefix); a ``ValueError`` for an id of no family."""
    for prefix, name in FAMILIES:
        if claim_id.startswith(prefix) and claim_id[len(prefix):].isdigit():
            return name
    raise ValueError(f"claim id {claim_id!r} belongs to no family; add its prefix to summary.FAMILIES")


def family_table(table: "pd.DataFrame") -> "pd.DataFrame":
    """One row per claim family of the ledger ``table``: its claims, and how many have each class.

    Columns: ``family``, ``claims`` (the ids), then one column per class present (in
    :data:`se_res2net.audit.claims.CLASSES` order) with the count.
    """
    import pandas as pd

    fam = pd.DataFrame({"family": [family_of(i) for i in table["id"]], "id": list(table["id"]),
                        "class": [_claims.verdict_category(c) for c in table["class"]]})
    order = [name for _, name in FAMILIES if name in set(fam["family"])]
    counts = pd.crosstab(fam["family"], fam["class"]).reindex(
        index=order, columns=[c for c in _claims.CLASSES if c in set(fam["class"])])
    counts.insert(0, "claims", fam.groupby("family")["id"].agg(", ".join))
    return counts.rename_axis(index="family", columns=None).reset_index()


def plot_families(table: "pd.DataFrame", ax: Optional["matplotlib.axes.Axes"] = None) -> "matplotlib.axes.Axes":
    """The ledger at a glance: one horizontal bar per claim family, split into its classes' counts."""
    import matplotlib.pyplot as plt

    fam = family_table(table)
    classes = [c for c in fam.columns if c not in ("family", "claims")]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.42 * len(fam) + 1.6))
    y = list(range(len(fam)))[::-1]  # the first family on top
    left = [0] * len(fam)
    for c in classes:
        counts = fam[c].tolist()
        ax.barh(y, counts, left=left, color=CLASS_COLOURS[c], edgecolor="white", label=c)
        for yi, l, n in zip(y, left, counts):
            if n:
                ax.text(l + n / 2, yi, str(n), ha="center", va="center", fontsize=10)
        left = [l + n for l, n in zip(left, counts)]
    ax.set_yticks(y, fam["family"].tolist(), fontsize=10)
    ax.set_xlabel("claims")
    # whole claims on the axis; the default locator is an AutoLocator, a MaxNLocator (the stub says Locator)
    ax.xaxis.get_major_locator().set_params(integer=True)  # type: ignore[call-arg]
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=9, frameon=False)
    return ax


SPENT_COLUMNS = ["profile", "machine", "runs", "epochs", "run-hours", "device-hours", "first start (UTC)",
                 "last end (UTC)"]


def _utc(seconds: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def compute_spent(log: "pd.DataFrame") -> "pd.DataFrame":
    """What the run records cost, per profile and machine (``log``: :func:`se_res2net.audit.results.epoch_log`;
    a run resumed on another machine counts on each, with the epochs it trained there). ``run-hours`` sums the
    epochs' wall times; ``device-hours`` is the time in which at least one run was inside an epoch on that
    machine (the union of the epochs' intervals), so runs that shared a device count once. A machine is known by
    its name: two machines of one name at the same time would count once. ``first start`` and ``last end`` are
    the first epoch's start and the last epoch's end there (UTC, to the minute). Epochs without a duration count
    in ``epochs`` only."""
    import pandas as pd

    if log is None or len(log) == 0:
        return pd.DataFrame(columns=SPENT_COLUMNS)
    from .results import device_seconds

    rows = []
    for (prof, machine), g in log.groupby(["profile", "device"], sort=False):
        placed = g.dropna(subset=["start", "end"])
        rows.append({
            "profile": prof, "machine": machine, "runs": int(g["path"].nunique()), "epochs": int(len(g)),
            "run-hours": float(g["epoch_time_s"].sum()) / 3600, "device-hours": device_seconds(g) / 3600,
            "first start (UTC)": _utc(placed["start"].min()) if len(placed) else "not recorded",
            "last end (UTC)": _utc(placed["end"].max()) if len(placed) else "not recorded",
        })
    out = pd.DataFrame(rows, columns=SPENT_COLUMNS)
    rank = {p: i for i, p in enumerate(_claims.PROFILE_ORDER)}
    return out.sort_values(["profile", "machine"], key=lambda s: s.map(lambda p: -rank.get(p, -1))
                           if s.name == "profile" else s, kind="stable").reset_index(drop=True)


def training_so_far(records: "pd.DataFrame", head: Optional[str]) -> str:
    """One markdown sentence for the bottom line: the profile that leads the result pages (``head``, see
    :func:`se_res2net.audit.claims.headline_profile`) with its complete runs, the kinds of device and the machines
    that trained them; then every unfinished run (of any profile) by profile and kind of device; and whether any
    GPU has trained a record. ``records``: :func:`~se_res2net.audit.results.load_records` with ``include_failed``."""
    from .results import counted, device_kind, say_mix

    if records is None or len(records) == 0 or not head:
        return "No training run yet."
    records = records.copy()
    if "device_kinds" not in records:  # a frame built by hand: the device each run started on
        records["device_kinds"] = records["device"].map(device_kind)

    def mix(rows: "pd.DataFrame") -> dict:
        return dict(sorted(rows["device_kinds"].value_counts().items()))

    done = records[(records["profile"] == head) & (records["status"] == "complete")]
    # each machine once: a run resumed on another names both ("A + B" as one machine would read as a third)
    machines = (sorted({n for ns in done["machine_names"] if isinstance(ns, tuple) for n in ns})
                if "machine_names" in done else sorted({n for n in done["device_name"].dropna()}))
    text = (f"Training so far: the most faithful profile with complete runs is **{head}**, with "
            f"{counted(len(done), 'complete run')} of {counted(done['model'].nunique(), 'model')}, {say_mix(mix(done))} "
            f"({', '.join(machines) or 'not recorded'})")
    unfinished = records[~records["status"].isin(["complete", "failed"])]
    if len(unfinished):
        per = "; ".join(f"{say_mix(mix(g))} under **{prof}**" for prof, g in unfinished.groupby("profile", sort=True))
        text += f". Unfinished: {counted(len(unfinished), 'run')}, {per} (listed under *What remains to run*)"
    failed = int((records["status"] == "failed").sum())
    if failed:
        text += f"; {counted(failed, 'run')} failed (their errors are listed with the runs that are not results)"
    if not records["device_kinds"].str.contains("GPU").any():
        text += "; no GPU has trained a record yet"
    return text + "."


def errors_so_far(records: "pd.DataFrame", head: Optional[str], claims: Sequence["_claims.Claim"] = ()) -> str:
    """One markdown sentence for the bottom line: the test error of each model with complete runs under ``head``
    (mean ± SD over seeds; one run: its error), beside the report's claimed error where it makes one, and how
    far those runs are from a test of the report. "" when ``head`` has no complete run."""
    from .results import _fmt_pm, model_label, results_table

    if records is None or len(records) == 0 or not head:
        return ""
    table = results_table(records[records["profile"] == head])
    table = table[table["n"] > 0]
    if table.empty:
        return ""
    claimed = {c.model: c.value for c in claims if c.kind == "test_error"}
    items = [f"{model_label(r['model'])} {_fmt_pm(r['mean_error'], r['std_error'])} %"
             + (f" (the report: {claimed[r['model']]:.2f} %)" if r["model"] in claimed else "")
             for _, r in table.iterrows()]
    n_max = int(table["n"].max())
    seeds = f"{'one seed' if n_max == 1 else f'at most {n_max} seeds'} per model"
    if head == "full":
        how = f"{seeds}; their verdicts are in the *Claims ledger*"
    else:
        epochs = records.loc[records["profile"] == head, "planned_epochs"].dropna()
        shortened = f"{int(epochs.iloc[0])} epochs, " if len(epochs) else ""
        how = f"{shortened}{seeds}: indicative only, they test no claim of the report"
    return f"Their test errors under **{head}** ({how}): " + "; ".join(items) + " (*Results*)."


def remaining_runs(records: "pd.DataFrame", models: Sequence[str], seeds: Sequence[int],
                   profiles: Sequence[str] = ("budget", "full")) -> "pd.DataFrame":
    """Per profile: how many of the planned (model, seed) runs exist complete and satisfying it, which are
    missing (models with the seeds they lack), and which of those have started: stopped between epochs (a
    sweep resumes them from their checkpoints) or failed, with how far each got."""
    import pandas as pd

    rows = []
    for prof in profiles:
        done = set()
        started = "none"
        if records is not None and len(records):
            mine = records[records["profile"] == prof]
            ok = mine[mine["status"] == "complete"]
            done = set(zip(ok["model"], ok["seed"]))
            unfinished = mine[(mine["status"] != "complete") & mine["model"].isin(models) & mine["seed"].isin(seeds)]
            unfinished = unfinished[[(m, s) not in done for m, s in zip(unfinished["model"], unfinished["seed"])]]
            if len(unfinished):
                started = "; ".join(
                    f"{r.model} seed {r.seed} ({r.epochs} of {r.planned_epochs} epochs"
                    + (", failed)" if r.state == "failed" else ")")
                    for r in unfinished.sort_values(["model", "seed"]).itertuples())
        missing = {m: [s for s in seeds if (m, s) not in done] for m in models}
        missing = {m: s for m, s in missing.items() if s}
        n_planned = len(models) * len(seeds)
        n_missing = sum(len(v) for v in missing.values())
        rows.append({
            "profile": prof, "planned runs": n_planned, "done": n_planned - n_missing, "to run": n_missing,
            "missing": "none" if not missing else (
                "all" if n_missing == n_planned else
                "; ".join(f"{m} (seeds {', '.join(map(str, s))})" for m, s in missing.items())),
            "started, not complete": started,
        })
    return pd.DataFrame(rows)


PROJECTION_COLUMNS = ["device", "measured under", "models", "device_s_per_epoch", "hours"]


def projected_device_hours(times: "pd.DataFrame", runs: int, target: str = "full") -> "pd.DataFrame":
    """What ``runs`` runs of profile ``target`` would take on each device that trained epochs of the same work
    (``times``: :func:`se_res2net.audit.results.epoch_times`): an epoch of a profile with the same data, batch
    size and augmentation costs the same whatever the number of epochs, so the device pace (s per epoch of its
    runs together) of e.g. the budget profile prices the full protocol. ``hours`` = the target's epochs × ``runs``
    × that pace. Indicative only: a pace holds the models that trained at it (``models``) at the sharing of their
    sweep, and the first epoch of a session its compile."""
    import pandas as pd

    from ..training.profiles import PROFILES

    goal = PROFILES[target]
    same = [name for name, p in PROFILES.items()
            if all(getattr(p, k) == getattr(goal, k) for k in ("batch_size", "train_subset", "test_subset", "augment"))]
    rows = [{"device": r.device, "measured under": r.profile, "models": r.models,
             "device_s_per_epoch": float(r.device_s_per_epoch),
             "hours": goal.epochs * runs * float(r.device_s_per_epoch) / 3600}
            for r in times.itertuples() if r.profile in same]
    return pd.DataFrame(rows, columns=PROJECTION_COLUMNS)


_BUILD_PACKAGES = ("se_res2net", "torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib", "seaborn",
                   "thop", "grad-cam", "jupyter-book", "myst-nb", "sphinx", "papermill", "nbval")


def build_environment(packages: Sequence[str] = _BUILD_PACKAGES) -> "pd.DataFrame":
    """The environment this book is being built in: Python, platform, processor, and package versions."""
    import os

    import pandas as pd

    rows = [("Python", platform.python_version()), ("platform", platform.platform()),
            ("processor", platform.processor() or platform.machine()), ("CPU cores", str(os.cpu_count()))]
    for name in packages:
        try:
            rows.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return pd.DataFrame(rows, columns=["component", "version"])


def run_environments(records: "pd.DataFrame") -> "pd.DataFrame":
    """Per profile: the environments its runs recorded (hardware, torch, Python, platform, code commits)."""
    import pandas as pd

    cols = ["profile", "runs", "hardware", "torch", "Python", "platform", "code commit(s)"]
    if records is None or len(records) == 0:
        return pd.DataFrame(columns=cols)

    def distinct(g: "pd.DataFrame", col: str, short: bool = False) -> str:
        # a run resumed elsewhere names its machines / torch versions joined by " + " (results.load_records)
        vals = sorted({part[:7] if short else part for v in g[col].dropna() for part in str(v).split(" + ")})
        return ", ".join(vals) or "not recorded"

    rows = []
    for prof, g in records.groupby("profile", sort=False):
        rows.append({"profile": prof, "runs": int(len(g)), "hardware": distinct(g, "device_name"),
                     "torch": distinct(g, "torch"), "Python": distinct(g, "python"),
                     "platform": distinct(g, "platform"), "code commit(s)": distinct(g, "git_commit", short=True)})
    return pd.DataFrame(rows, columns=cols)
