"""Does a run record follow a profile? Decided from the record's own config, provenance and log.

A verdict on the report may only rest on runs that really followed its protocol. Where a record
sits (``book/runs/full/``) and what it calls itself (``"profile": "full"``) are claims, not
evidence: :func:`deviations` checks a record against a :class:`~se_res2net.training.profiles.Profile` on

* **the recipe** in ``config``: epochs, milestones, batch size, learning rate, momentum, Nesterov,
  gamma, weight decay, augmentation, no model overrides;
* **the data** in ``provenance``: the whole data set (no train/test subset, not the embedded sample:
  50,000 / 10,000 images whose fingerprint is CIFAR-10's, :data:`se_res2net.training.data.CIFAR10_FINGERPRINT`),
  or for ``smoke`` its stratified subsets;
* **the log** in ``epochs``: the learning rate logged at every epoch is the schedule's, and a
  ``complete`` record logs every planned epoch and reports the last one's test error as its result.

:func:`satisfied_profile` is the most faithful profile a record satisfies (``full`` > ``budget`` >
``smoke``), or :data:`CUSTOM` when it satisfies none; the book shows a record whose own ``profile``
label says otherwise as such (:func:`conformance_table`), and the ledger never counts it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..training.profiles import Profile

__all__ = ["CUSTOM", "deviations", "satisfied_profile", "conformance_table"]

#: The profile name of a record that satisfies no profile.
CUSTOM = "custom"
#: Profiles tried by :func:`satisfied_profile`, most faithful first.
_ORDER = ("full", "budget", "smoke")
#: Recipe keys compared with the profile (config key = profile attribute, how a reader names it).
_RECIPE = (("epochs", "epochs"), ("batch_size", "batch size"), ("lr", "learning rate"), ("momentum", "momentum"),
           ("nesterov", "Nesterov"), ("weight_decay", "weight decay"), ("gamma", "lr decay factor"),
           ("augment", "augmentation"), ("train_subset", "train subset"), ("test_subset", "test subset"))
_FULL_SIZES = (50_000, 10_000)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _schedule_deviation(epochs: Sequence[Mapping[str, Any]], lr: float, milestones: Sequence[int], gamma: float) -> Optional[str]:
    """The first logged epoch whose learning rate is not ``lr * gamma ** #(milestones <= epoch index)``."""
    for e in epochs:
        i = int(e.get("epoch", 0)) - 1  # logged epochs are 1-based; milestones are 0-based epoch indices
        want = lr * gamma ** sum(1 for m in milestones if m <= i)
        got = e.get("lr")
        if not isinstance(got, (int, float)) or not math.isclose(float(got), want, rel_tol=1e-6):
            return f"epoch {i + 1} logs lr {got!r}, the schedule gives {want:g}"
    return None


def deviations(record: Mapping[str, Any], profile: "Profile | str") -> List[str]:
    """Every way ``record`` departs from ``profile`` (empty when it satisfies it), each in words.

    ``record`` is a parsed run record (``se_res2net.run/1``); ``profile`` a profile or its name.
    """
    from ..training.data import CIFAR10_FINGERPRINT, SAMPLE_FINGERPRINT
    from ..training.profiles import get_profile

    prof = get_profile(profile) if isinstance(profile, str) else profile
    cfg = record.get("config") or {}
    prov = record.get("provenance") or {}
    out: List[str] = []

    # the recipe
    for key, name in _RECIPE:
        want = getattr(prof, key)
        if key not in cfg:
            out.append(f"{name} not recorded (config.{key})")
        elif not _same(cfg[key], want):
            out.append(f"{name} {cfg[key]!r}, the profile's is {want!r}")
    got_ms = cfg.get("milestones")
    if not isinstance(got_ms, (list, tuple)) or [int(m) for m in got_ms] != list(prof.milestones):
        out.append(f"lr milestones {got_ms!r}, the profile's are {list(prof.milestones)}")
    if cfg.get("model_kwargs"):
        out.append(f"model overrides {cfg['model_kwargs']!r} (the registered model is not what ran)")
    if cfg.get("model", record.get("model")) != record.get("model"):
        out.append(f"config.model {cfg.get('model')!r} differs from the record's model {record.get('model')!r}")

    # the data
    fp = str(prov.get("data_fingerprint") or "")
    sizes = (prov.get("train_size"), prov.get("test_size"))
    if prof.train_subset is None and prof.test_subset is None:
        if prov.get("data_is_sample", False):
            out.append("trained on the embedded sample, not the whole data set")
        if sizes != _FULL_SIZES:
            out.append(f"{sizes[0]} train / {sizes[1]} test images, not the whole data set's 50,000 / 10,000")
        if fp != CIFAR10_FINGERPRINT:
            out.append("data fingerprint is not CIFAR-10's" + (f" ({fp[:16]}…)" if fp else " (none recorded)"))
    else:
        if sizes != (prof.train_subset, prof.test_subset):
            out.append(f"{sizes[0]} train / {sizes[1]} test images, the profile's subsets are "
                       f"{prof.train_subset} / {prof.test_subset}")
        if fp.split(":")[0] not in (CIFAR10_FINGERPRINT, SAMPLE_FINGERPRINT):
            out.append("data fingerprint is neither CIFAR-10's nor the embedded sample's")

    # the log
    epochs = record.get("epochs") or []
    if isinstance(cfg.get("lr"), (int, float)) and isinstance(cfg.get("gamma"), (int, float)) and isinstance(got_ms, (list, tuple)):
        bad = _schedule_deviation(epochs, float(cfg["lr"]), [int(m) for m in got_ms], float(cfg["gamma"]))
        if bad:
            out.append(f"logged learning rate off schedule: {bad}")
    if record.get("status") == "complete":
        if len(epochs) != prof.epochs:
            out.append(f"complete, but logs {len(epochs)} of the profile's {prof.epochs} epochs")
        elif [int(e.get("epoch", -1)) for e in epochs] != list(range(1, prof.epochs + 1)):
            out.append("complete, but the logged epochs are not 1, 2, …, in order")
        fte = record.get("final_test_error")
        if epochs and (not isinstance(fte, (int, float)) or not math.isclose(float(fte), float(epochs[-1].get("test_error", math.nan)))):
            out.append(f"final test error {fte!r} is not the last logged epoch's {epochs[-1].get('test_error')!r}")
    return out


def satisfied_profile(record: Mapping[str, Any]) -> str:
    """The most faithful profile ``record`` satisfies (``full``, ``budget``, ``smoke``), else :data:`CUSTOM`."""
    for name in _ORDER:
        if not deviations(record, name):
            return name
    return CUSTOM


def conformance_table(records: Sequence[Mapping[str, Any]]) -> "pd.DataFrame":
    """Per record: the profile it names, the one it satisfies, and (when they differ) why.

    ``records`` are parsed run records with a ``path`` key added (as :func:`se_res2net.audit.results.read_runs`
    returns them). A record counts for the report's verdicts only when it satisfies ``full``.
    """
    import pandas as pd

    rows: List[Dict[str, Any]] = []
    for rec in records:
        named = str(rec.get("profile") or (rec.get("config") or {}).get("profile") or "?")
        sat = satisfied_profile(rec)
        why = "" if named == sat else "; ".join(deviations(rec, named)) if named in _ORDER else "no profile name"
        rows.append({"run": f"{rec.get('model')} seed {rec.get('seed')}", "status": rec.get("status"),
                     "names itself": named, "satisfies": sat, "agrees": named == sat, "why not": why,
                     "path": str(rec.get("path", ""))})
    return pd.DataFrame(rows, columns=["run", "status", "names itself", "satisfies", "agrees", "why not", "path"])
