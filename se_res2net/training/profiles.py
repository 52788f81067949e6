"""Training profiles: how much of the report's protocol a sweep runs.

``full``
    The report's protocol: 300 epochs, learning rate 0.1 divided by 10 at epochs 150 and 225,
    batch 128, weight decay 1e-4, the whole of CIFAR-10 (50,000 / 10,000 images).
``budget``
    The same recipe shortened to 30 epochs, meant for one GPU (the pace measured so far, and what the whole
    table costs at it, is on the book's *Reproduce it yourself* page). The schedule is scaled by the report's
    fractions:
    ``milestones = (round(epochs * 150 / 300), round(epochs * 225 / 300))`` → (15, 22) for 30 epochs
    (Python's ``round``: 22.5 rounds to the even 22). Whole data set.
``smoke``
    A CPU check in minutes: 1 epoch on a stratified 256-image train subset, evaluated on 100 test
    images. Data source ``auto`` with a fallback to the embedded sample when no dataset is configured
    (no ``--data-dir``, no ``SE_RES2NET_DATA_DIR``, no torchvision copy); the run record says which
    in ``provenance.data_is_sample``. Its numbers test the plumbing, not the report.

Nothing heavy is imported here: :meth:`Profile.train_config` imports the trainer on demand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from .trainer import TrainConfig

# The report's protocol.
REPORT_EPOCHS = 300
REPORT_MILESTONES: Tuple[int, int] = (150, 225)

REPORT_MODELS: Tuple[str, ...] = ("resnet56", "densenet_bc100", "se_resnet110", "res2net29", "se_res2net29")
ABLATION_MODELS: Tuple[str, ...] = (
    "se_res2net29_last_stream",
    "se_res2net29_streams12",
    "se_res2net29_output",
    "res2net29_report",
    "se_res2net29_report",
)
ALL_MODELS: Tuple[str, ...] = REPORT_MODELS + ABLATION_MODELS
DEFAULT_SEEDS: Tuple[int, ...] = (0, 1, 2)


def scaled_milestones(epochs: int) -> Tuple[int, ...]:
    """The report's milestones scaled to ``epochs``: ``round(epochs*150/300), round(epochs*225/300)``.

    Milestones outside ``1..epochs-1`` (they would never apply) and repeats are dropped, so a
    1-epoch run has a constant learning rate: ``scaled_milestones(300) == (150, 225)``,
    ``scaled_milestones(30) == (15, 22)``, ``scaled_milestones(1) == ()``.
    """
    from .trainer import report_milestones  # the one definition of the rule (light import: no torch)

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    return report_milestones(epochs)


def dataset_configured(data_dir: Optional[str] = None) -> bool:
    """True when ``load_cifar10("auto", data_dir)`` would find the real CIFAR-10 (a directory, the
    ``SE_RES2NET_DATA_DIR`` variable, or a torchvision copy already on disk)."""
    from . import data

    if data_dir or os.environ.get(data.DATA_DIR_ENV):
        return True
    return data._torchvision_present(data.torchvision_root(None))


@dataclass(frozen=True)
class Profile:
    """One row of the profile table; :meth:`train_config` turns it into a :class:`TrainConfig`.

    ``sample_fallback``: with ``data_source="auto"``, use the embedded sample when no dataset is
    configured instead of failing (smoke only).
    """

    name: str
    epochs: int
    milestones: Tuple[int, ...]
    batch_size: int
    lr: float
    weight_decay: float
    train_subset: Optional[int]
    test_subset: Optional[int]
    data_source: str
    device_hint: str
    description: str
    sample_fallback: bool = False
    # The rest of the report's recipe, the same in every profile (and checked by se_res2net.audit.conformance).
    momentum: float = 0.9
    nesterov: bool = False
    gamma: float = 0.1
    augment: str = "crop4-flip"

    def resolve_data_source(self, data_dir: Optional[str] = None, data_source: Optional[str] = None) -> str:
        """The data source a run of this profile uses (``auto`` → ``sample`` for a fallback profile
        when no dataset is configured)."""
        source = self.data_source if data_source is None else data_source
        if source == "auto" and self.sample_fallback and not dataset_configured(data_dir):
            return "sample"
        return source

    def train_config(self, model: str, seed: int, **overrides: Any) -> "TrainConfig":
        """The :class:`~se_res2net.training.trainer.TrainConfig` of ``(model, seed)`` under this profile.

        ``overrides`` replace any ``TrainConfig`` field (e.g. ``epochs=2``, ``data_dir=...``). Changing
        ``epochs`` without ``milestones`` rescales the schedule with :func:`scaled_milestones`.
        """
        from .trainer import TrainConfig

        fields: Dict[str, Any] = {
            "model": model,
            "seed": seed,
            "epochs": self.epochs,
            "milestones": self.milestones,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "gamma": self.gamma,
            "weight_decay": self.weight_decay,
            "augment": self.augment,
            "train_subset": self.train_subset,
            "test_subset": self.test_subset,
            "profile": self.name,
        }
        if "epochs" in overrides and "milestones" not in overrides:
            fields["milestones"] = scaled_milestones(overrides["epochs"])
        fields.update(overrides)
        fields["data_source"] = self.resolve_data_source(fields.get("data_dir"), fields.get("data_source"))
        return TrainConfig(**fields)

    def summary(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "epochs": self.epochs,
            "milestones": list(self.milestones),
            "batch_size": self.batch_size,
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "augment": self.augment,
            "train_subset": self.train_subset,
            "test_subset": self.test_subset,
            "data_source": self.data_source,
            "device_hint": self.device_hint,
            "description": self.description,
        }


_BUDGET_EPOCHS = 30

PROFILES: Dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        epochs=1,
        milestones=scaled_milestones(1),
        batch_size=128,
        lr=0.1,
        weight_decay=1e-4,
        # ≤ the embedded sample's 300 train / 100 test images, so the same profile runs on the sample
        # when no dataset is configured.
        train_subset=256,
        test_subset=100,
        data_source="auto",
        device_hint="cpu",
        description=(
            "CPU plumbing check in minutes: 1 epoch on 256 train / 100 test images (stratified subsets), "
            "report optimiser settings; CIFAR-10 if configured, else the embedded sample (recorded as "
            "data_is_sample). Not a result."
        ),
        sample_fallback=True,
    ),
    "budget": Profile(
        name="budget",
        epochs=_BUDGET_EPOCHS,
        milestones=scaled_milestones(_BUDGET_EPOCHS),
        batch_size=128,
        lr=0.1,
        weight_decay=1e-4,
        train_subset=None,
        test_subset=None,
        data_source="auto",
        device_hint="cuda",
        description=(
            f"One GPU (its measured pace: the book's Reproduce page): {_BUDGET_EPOCHS} epochs on the full data, lr 0.1 "
            f"divided by 10 at epochs {', '.join(map(str, scaled_milestones(_BUDGET_EPOCHS)))} "
            "(the report's 150/300 and 225/300 fractions, rounded), batch 128, weight decay 1e-4."
        ),
    ),
    "full": Profile(
        name="full",
        epochs=REPORT_EPOCHS,
        milestones=REPORT_MILESTONES,
        batch_size=128,
        lr=0.1,
        weight_decay=1e-4,
        train_subset=None,
        test_subset=None,
        data_source="auto",
        device_hint="cuda",
        description=(
            "The report's protocol: 300 epochs, SGD momentum 0.9, lr 0.1 divided by 10 at epochs 150 and 225, "
            "batch 128, weight decay 1e-4, full CIFAR-10 (50,000 train / 10,000 test)."
        ),
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None
