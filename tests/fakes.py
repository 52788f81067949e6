"""Fake run records that follow a profile exactly (config, data provenance and logged schedule), for tests
of code that reads records: results tables, the claims ledger, conformance. Tests that break conformance
start from one of these and change one thing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

from se_res2net.training.data import CIFAR10_FINGERPRINT, SAMPLE_FINGERPRINT
from se_res2net.training.profiles import get_profile


def lr_at(profile_name: str, epoch: int) -> float:
    """The learning rate the profile's schedule gives at 1-based ``epoch``."""
    p = get_profile(profile_name)
    return p.lr * p.gamma ** sum(1 for m in p.milestones if m <= epoch - 1)


def make_record(model: str, seed: int, err: Optional[float], profile: str = "full", status: str = "complete",
                logged: Optional[int] = None, params: int = 650_000, macs: int = 100_000_000,
                device_name: str = "Fake GPU", sample: bool = False, wall_time_s: float = 12.5) -> Dict[str, Any]:
    """A ``se_res2net.run/1`` record of ``model``/``seed`` that satisfies ``profile``.

    ``err`` is the final test error (the last logged epoch's); ``logged`` the number of logged epochs
    (default: all of the profile's when complete, half otherwise); the test error falls by 0.01 pp per epoch.
    """
    p = get_profile(profile)
    n = p.epochs if logged is None and status == "complete" else (logged if logged is not None else max(1, p.epochs // 2))
    last = err if err is not None else 50.0
    epochs = [{"epoch": e, "lr": lr_at(profile, e), "train_loss": 2.0 / e, "train_acc": min(99.0, 30.0 + e),
               "test_loss": 2.1 / e, "test_error": round(last + 0.01 * (n - e), 6), "epoch_time_s": 1.5}
              for e in range(1, n + 1)]
    subset = p.train_subset is not None
    base_fp = SAMPLE_FINGERPRINT if sample else CIFAR10_FINGERPRINT
    fingerprint = base_fp + (f":subset(train={p.train_subset},test={p.test_subset},seed=0)" if subset else "")
    return {
        "schema": "se_res2net.run/1", "status": status, "name": f"{model}_seed{seed}", "model": model,
        "model_kwargs": {}, "seed": seed, "profile": profile,
        "config": {"model": model, "model_kwargs": {}, "epochs": p.epochs, "batch_size": p.batch_size, "lr": p.lr,
                   "momentum": p.momentum, "weight_decay": p.weight_decay, "nesterov": p.nesterov,
                   "milestones": list(p.milestones), "gamma": p.gamma, "seed": seed, "data_source": "folder",
                   "augment": p.augment, "train_subset": p.train_subset, "test_subset": p.test_subset,
                   "profile": profile},
        "params": params, "macs": macs, "epochs": epochs,
        "final_test_error": epochs[-1]["test_error"] if status == "complete" else None,
        "failure": None if status != "failed" else {"type": "RuntimeError", "message": "nan loss", "epoch": n},
        "checkpoint": None,
        "code": {},
        "provenance": {"device": "cuda", "device_name": device_name, "data_source": "sample" if sample else "folder",
                       "data_is_sample": sample, "data_fingerprint": fingerprint,
                       "train_size": p.train_subset if subset else 50_000, "test_size": p.test_subset if subset else 10_000,
                       "wall_time_s": wall_time_s},
    }


def write_record(root: Path, rec: Dict[str, Any], folder: Optional[str] = None, name: Optional[str] = None) -> Path:
    """Write ``rec`` as ``root/<folder or its profile>/<model>_seed<k>.json``."""
    d = Path(root) / (folder or rec["profile"])
    d.mkdir(parents=True, exist_ok=True)
    path = d / (name or f"{rec['model']}_seed{rec['seed']}.json")
    path.write_text(json.dumps(rec))
    return path
