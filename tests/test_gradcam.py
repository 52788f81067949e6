"""Grad-CAM grid pointing game: metrics, mosaics, CAMs with ground truth by construction, CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from se_res2net.audit import gradcam as g
from se_res2net.audit.gradcam import (
    Mosaic,
    compute_cams,
    confident_indices,
    energy_in_quadrant,
    evaluate_models,
    make_mosaics,
    plot_overlays,
    quadrant_iou,
    quadrant_mask,
    score_cams,
)


# ---------------------------------------------------------------- hand-built networks with known evidence


class QuadrantGate(nn.Module):
    """Activations ``+(1 + 0.1 tanh x)`` in quadrant ``pos``, ``-(1 + 0.1 tanh x)`` in quadrant ``neg``, 0 elsewhere."""

    def __init__(self, pos: int, neg: int | None = None) -> None:
        super().__init__()
        self.pos, self.neg = pos, neg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        sign = torch.zeros(h, w, dtype=x.dtype, device=x.device)
        sign[torch.from_numpy(quadrant_mask(self.pos, (h, w)))] = 1.0
        if self.neg is not None:
            sign[torch.from_numpy(quadrant_mask(self.neg, (h, w)))] = -1.0
        return sign * (1.0 + 0.1 * torch.tanh(x))


class QuadrantNet(nn.Module):
    """stem (stride 4, like a CIFAR net's 64→16 map) → gate (the CAM target) → [ReLU] → GAP → linear.

    Every class logit is ``w · mean(activations)`` with ``w`` of one sign for all classes, so Grad-CAM for any
    class must light exactly the quadrant that carries the (signed) evidence.
    """

    def __init__(self, pos: int = 0, neg: int | None = None, weight: float = 1.0, inplace_relu: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 2, 4, stride=4)
        self.gate = QuadrantGate(pos, neg)
        self.act = nn.ReLU(inplace=True) if inplace_relu else nn.Identity()
        self.fc = nn.Linear(2, 10)
        with torch.no_grad():
            self.fc.weight.fill_(weight)
            self.fc.bias.copy_(torch.arange(10, dtype=torch.float32))  # class 9 always wins, for confidence tests

    def cam_target_layer(self) -> nn.Module:
        return self.gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.gate(self.stem(x))).mean(dim=(2, 3)))


def _images(n_per_class: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class).astype(np.int64)
    images = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    return images, labels


# ---------------------------------------------------------------- metrics on synthetic maps


def test_quadrant_mask_layout():
    m = quadrant_mask("TR", 4)
    assert m.tolist() == [[False, False, True, True], [False, False, True, True], [False] * 4, [False] * 4]
    assert quadrant_mask(3, 64).sum() == 32 * 32 and quadrant_mask(3, 64)[63, 63]
    with pytest.raises(ValueError):
        quadrant_mask(4)
    with pytest.raises(ValueError):
        quadrant_mask(0, 5)


def test_iou_and_energy_exact_values():
    cam = np.zeros((4, 4))
    cam[0, 0:2] = 1.0  # top row of TL
    cam[0, 2] = 0.4  # one pixel of TR, below 0.5 but above 0.3
    # threshold 0.5: pred = 2 px, all inside the 4-px TL → IoU 2/4
    assert quadrant_iou(cam, 0, 0.5) == pytest.approx(0.5)
    # threshold 0.3: pred = 3 px, 2 inside → intersection 2, union 4 + 1 → 0.4
    assert quadrant_iou(cam, 0, 0.3) == pytest.approx(0.4)
    assert quadrant_iou(cam, "TR", 0.3) == pytest.approx(1 / 6)  # 1 ∩, union 4 + 2
    assert quadrant_iou(cam, 3, 0.5) == 0.0
    assert energy_in_quadrant(cam, 0) == pytest.approx(2 / 2.4)
    assert energy_in_quadrant(cam, 1) == pytest.approx(0.4 / 2.4)
    assert energy_in_quadrant(cam, 2) == 0.0
    # a boolean mask is accepted as the quadrant
    assert quadrant_iou(cam, quadrant_mask(0, 4), 0.5) == pytest.approx(0.5)
    # perfect map
    perfect = quadrant_mask(2, 64).astype(float)
    assert quadrant_iou(perfect, 2) == 1.0 and energy_in_quadrant(perfect, 2) == 1.0
    # evenly spread map: chance levels 0.25
    flat = np.full((64, 64), 0.7)
    assert quadrant_iou(flat, 1) == pytest.approx(0.25) and energy_in_quadrant(flat, 1) == pytest.approx(0.25)


def test_all_zero_cam_scores_zero_and_is_counted():
    zero = np.zeros((64, 64))
    assert quadrant_iou(zero, 0, 0.5) == 0.0
    assert energy_in_quadrant(zero, 0) == 0.0
    cams = np.zeros((2, 4, 64, 64), dtype=np.float32)
    cams[1, 2] = quadrant_mask(2, 64)
    s = score_cams(cams, (0.5, 0.3))
    assert s["zero"].sum() == 7
    assert s["iou"]["0.5"][1, 2] == 1.0 and s["iou"]["0.3"].sum() == 1.0
    assert s["energy"][1, 2] == 1.0


def test_metric_input_validation():
    with pytest.raises(ValueError, match="threshold"):
        quadrant_iou(np.zeros((4, 4)), 0, 0.0)
    with pytest.raises(ValueError, match="2-D"):
        energy_in_quadrant(np.zeros((2, 4, 4)), 0)
    with pytest.raises(ValueError, match="NaN"):
        energy_in_quadrant(np.full((4, 4), np.nan), 0)


# ---------------------------------------------------------------- mosaics


def test_mosaics_deterministic_distinct_classes_and_layout():
    images, labels = _images()
    a = make_mosaics(images, labels, 12, seed=3)
    b = make_mosaics(images, labels, 12, seed=3)
    c = make_mosaics(images, labels, 12, seed=4)
    assert [m.indices for m in a] == [m.indices for m in b]
    assert [m.indices for m in a] != [m.indices for m in c]
    assert len({m.indices for m in a}) == 12
    for m in a:
        assert isinstance(m, Mosaic) and m.image.shape == (3, 64, 64) and m.image.dtype == np.uint8
        assert len(set(m.labels)) == 4
        assert list(m.labels) == [int(labels[i]) for i in m.indices]
        tl, tr, bl, br = (images[i] for i in m.indices)
        assert np.array_equal(m.image[:, :32, :32], tl) and np.array_equal(m.image[:, :32, 32:], tr)
        assert np.array_equal(m.image[:, 32:, :32], bl) and np.array_equal(m.image[:, 32:, 32:], br)
        assert not m.image.flags.writeable


def test_mosaics_respect_candidates_and_explain_shortage():
    images, labels = _images()
    candidates = np.flatnonzero(labels < 5)  # classes 0..4 only
    for m in make_mosaics(images, labels, 10, seed=0, candidates=candidates):
        assert set(m.indices) <= set(candidates.tolist())
    with pytest.raises(ValueError, match="--confidence"):
        make_mosaics(images, labels, 1, seed=0, candidates=np.flatnonzero(labels < 3))
    # 4 classes × 1 image → only 4! = 24 distinct placements
    few = [int(np.flatnonzero(labels == c)[0]) for c in range(4)]
    assert len(make_mosaics(images, labels, 24, seed=0, candidates=few)) == 24
    with pytest.raises(ValueError, match="distinct mosaics"):
        make_mosaics(images, labels, 25, seed=0, candidates=few)


# ---------------------------------------------------------------- Grad-CAM with ground truth by construction


@pytest.mark.parametrize("quadrant", [0, 3])
def test_cam_of_single_quadrant_network(quadrant):
    images, labels = _images()
    mosaics = make_mosaics(images, labels, 3, seed=0)
    model = QuadrantNet(pos=quadrant)
    cams = compute_cams(model, mosaics)
    assert cams.shape == (3, 4, 64, 64) and cams.dtype == np.float32
    s = score_cams(cams, (0.5,))
    iou = s["iou"]["0.5"]
    assert np.all(iou[:, quadrant] > 0.99)
    others = [k for k in range(4) if k != quadrant]
    assert np.all(iou[:, others] < 0.01)
    assert np.all(s["energy"][:, quadrant] > 0.9)
    assert np.all(s["energy"][:, others] < 0.1)


def test_model_state_restored_after_cams():
    images, labels = _images()
    model = QuadrantNet(pos=1).train()
    model.fc.weight.grad = torch.full_like(model.fc.weight, 7.0)
    compute_cams(model, make_mosaics(images, labels, 1, seed=0))
    assert model.training
    assert not model.gate._forward_hooks and not model.gate._backward_hooks
    assert torch.equal(model.fc.weight.grad, torch.full_like(model.fc.weight, 7.0))
    assert model.stem.weight.grad is None


def test_inplace_relu_after_target_layer():
    """+evidence in TL, −evidence in BR, negative weights, ReLU(inplace=True) after the target layer.

    True Grad-CAM: the class score falls with the TL activations, so α < 0 and the CAM lights BR. If the
    in-place ReLU overwrote the stored activations, the CAM would be all zero.
    """
    images, labels = _images()
    mosaics = make_mosaics(images, labels, 2, seed=1)
    model = QuadrantNet(pos=0, neg=3, weight=-1.0, inplace_relu=True)
    cams = compute_cams(model, mosaics)
    s = score_cams(cams, (0.5,))
    assert not s["zero"].any()
    assert np.all(s["iou"]["0.5"][:, 3] > 0.99)
    # the same model with non-in-place ReLU gives the same maps
    ref = QuadrantNet(pos=0, neg=3, weight=-1.0, inplace_relu=False)
    np.testing.assert_allclose(compute_cams(ref, mosaics), cams, atol=1e-6)


def test_inplace_guard_is_what_makes_it_work(monkeypatch):
    images, labels = _images()
    mosaics = make_mosaics(images, labels, 1, seed=1)
    monkeypatch.setattr(g, "_clone_output", lambda module, args, output: None)
    cams = compute_cams(QuadrantNet(pos=0, neg=3, weight=-1.0, inplace_relu=True), mosaics)
    assert not np.any(cams > 0)  # without the guard the stored activations are clobbered


def test_explicit_target_layer_and_errors():
    images, labels = _images()
    mosaics = make_mosaics(images, labels, 1, seed=0)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    with pytest.raises(ValueError, match="cam_target_layer"):
        compute_cams(plain, mosaics)
    assert compute_cams(plain, mosaics, target_layer=plain[0]).shape == (1, 4, 64, 64)
    with pytest.raises(ValueError, match="not a submodule"):
        compute_cams(plain, mosaics, target_layer=nn.Conv2d(3, 4, 3))
    fixed = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 32 * 32, 10))
    with pytest.raises(ValueError, match="fully convolutional"):
        compute_cams(fixed, mosaics, target_layer=fixed[0])


def test_confident_indices():
    images, labels = _images()
    model = QuadrantNet(pos=0)  # bias makes class 9 win with softmax ≈ 0.63
    assert confident_indices(model, images, labels, 0.5).tolist() == np.flatnonzero(labels == 9).tolist()
    assert confident_indices(model, images, labels, 0.9).size == 0
    assert confident_indices(model, images, labels, 0.0).size == len(labels)


def test_evaluate_models_same_mosaics_and_json():
    images, labels = _images()
    data = SimpleNamespace(test=SimpleNamespace(images=images, labels=labels), source="synthetic", is_sample=True,
                           fingerprint="x")
    models = {"tl": QuadrantNet(pos=0), "br": QuadrantNet(pos=3)}
    metrics = evaluate_models(models, data, n_mosaics=5, seed=0, thresholds=(0.5, 0.3), confidence=0.0)
    json.dumps(metrics, allow_nan=False)
    assert metrics["settings"]["n_mosaics"] == 5 and len(metrics["mosaics"]) == 5
    assert metrics["data"]["is_sample"] is True and "warning" in metrics
    assert metrics["eligible"]["n_common"] == len(labels)
    tl, br = metrics["models"]["tl"], metrics["models"]["br"]
    # each model localises one quadrant out of four: mean IoU@0.5 = 1/4
    assert tl["mean_iou"]["0.5"] == pytest.approx(0.25, abs=0.01)
    assert tl["per_cell"]["mean_iou"]["0.5"][0] > 0.99 and br["per_cell"]["mean_iou"]["0.5"][3] > 0.99
    assert set(tl["mean_iou"]) == {"0.5", "0.3"}
    assert len(tl["per_mosaic"]["energy"]) == 5 and len(tl["per_mosaic"]["energy"][0]) == 4
    assert tl["target_layer"] == "gate"
    # which code computed it, and on what
    prov = metrics["provenance"]
    assert set(prov) >= {"git_commit", "git_dirty", "created", "device", "device_name"} and prov["device"] == "cpu"
    # an eligibility filter nobody passes names the fix
    with pytest.raises(ValueError, match="confidence 0.9"):
        evaluate_models(models, data, n_mosaics=2, confidence=0.9)


def test_plot_overlays_writes_a_legible_png(tmp_path):
    from se_res2net.training.data import CIFAR10_CLASSES

    images, labels = _images()
    mosaics = make_mosaics(images, labels, 3, seed=0)
    cams = {"res2net29": compute_cams(QuadrantNet(pos=0), mosaics), "zero": np.zeros((3, 4, 64, 64))}
    path = tmp_path / "overlay.png"
    fig = plot_overlays(mosaics, cams, path, n_rows=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 2 * 3 and len(fig.axes) == len(panels) + 1  # + the CAM's colour bar
    # fits the book's text column at its own size, with fonts of at least 10 pt (~14 px there)
    assert fig.get_size_inches()[0] * fig.dpi <= 770
    assert [panels[c].get_title() for c in range(3)] == ["input", "Res2Net-29", "zero"]
    assert panels[0].get_ylabel() == f"target TL:\n{CIFAR10_CLASSES[mosaics[0].labels[0]]}"
    cam = cams["res2net29"][0, 0]
    assert panels[1].get_xlabel() == f"IoU {quadrant_iou(cam, 0, 0.5):.2f}\nenergy {energy_in_quadrant(cam, 0):.2f}"
    assert panels[1].get_xlabel().startswith("IoU 1.00") and panels[2].get_xlabel() == "all-zero CAM"
    texts = [t for ax in panels for t in (ax.title, ax.xaxis.label, ax.yaxis.label) if t.get_text()]
    assert min(t.get_fontsize() for t in texts) >= 10
    assert "Grad-CAM" in [ax for ax in fig.axes if ax.get_label() == "<colorbar>"][0].get_ylabel()


def test_overlay_data_round_trip_redraws_the_same_target_cells(tmp_path):
    images, labels = _images()
    mosaics = make_mosaics(images, labels, 5, seed=0)
    rng = np.random.default_rng(1)  # every cell's map different, so a mix-up of cells shows
    cams = {"tl": rng.random((5, 4, 64, 64)).astype(np.float32), "br": rng.random((5, 4, 64, 64)).astype(np.float32)}
    path = g.save_overlay_data(tmp_path / g.OVERLAY_DATA_FILE, mosaics, cams, n_rows=3)
    assert path.name == g.OVERLAY_DATA_FILE and [p.name for p in tmp_path.iterdir()] == [g.OVERLAY_DATA_FILE]
    d = g.load_overlay_data(path)
    assert d.cells == [0, 1, 2] and list(d.cams) == ["tl", "br"]
    for r, m in enumerate(d.mosaics):
        assert np.array_equal(m.image, mosaics[r].image) and m.labels == mosaics[r].labels
        for name in cams:
            k = d.cells[r]
            assert np.allclose(d.cams[name][r, k], cams[name][r, k], atol=1e-3)  # float16 storage
            assert np.isnan(d.cams[name][r, (k + 1) % 4]).all()  # only the target cell is kept
    fig = plot_overlays(d.mosaics, d.cams, cells=d.cells, n_rows=3)
    before = plot_overlays(mosaics, cams, n_rows=3)
    assert [ax.get_xlabel() for ax in fig.axes] == [ax.get_xlabel() for ax in before.axes]
    with pytest.raises(FileNotFoundError, match="se-res2net grad-cam"):
        g.load_overlay_data(tmp_path / "nope.npz")


def test_metrics_display_names_models_and_keeps_scores_numeric():
    metrics = {"models": {
        "res2net29": {"model": "res2net29", "mean_iou": {"0.5": 0.038671, "0.3": 0.07}, "mean_energy": 0.17409,
                      "zero_cams": 115, "n_cams": 400},
        "se_res2net29_seed1": {"model": "se_res2net29", "mean_iou": {"0.5": 0.06, "0.3": 0.1}, "mean_energy": 0.27,
                               "zero_cams": 0, "n_cams": 400}}}
    t = g.metrics_display(metrics, {"res2net29": "smoke"}, {"res2net29": 0.48})
    assert list(t.columns) == ["model", "checkpoint trained under", "IoU@0.5", "IoU@0.3", "energy", "all-zero CAMs",
                               "report's IoU (protocol unknown)"]
    assert t["model"].tolist() == ["Res2Net-29", "SE-Res2Net-29"]
    assert t["checkpoint trained under"].tolist() == ["smoke", "unknown"]
    assert t["all-zero CAMs"].tolist() == ["115 of 400", "0 of 400"]
    assert t.at[0, "IoU@0.5"] == 0.038671 and np.isnan(t.at[1, "report's IoU (protocol unknown)"])
    assert list(g.metrics_display(metrics).columns) == ["model", "IoU@0.5", "IoU@0.3", "energy", "all-zero CAMs"]
    t = g.metrics_display(metrics, trained_on={"res2net29": "AMD EPYC"})
    assert t["trained on"].tolist() == ["AMD EPYC", "not recorded"]


# ---------------------------------------------------------------- CLI


@pytest.fixture
def fake_data(monkeypatch):
    """A small synthetic Cifar10 stand-in, so the CLI test does not depend on the sample's size."""
    import se_res2net.training.data as data_mod

    images, labels = _images(n_per_class=2)
    fake = SimpleNamespace(test=SimpleNamespace(images=images, labels=labels), source="sample", is_sample=True,
                           fingerprint="synthetic")
    monkeypatch.setattr(data_mod, "load_cifar10", lambda source="auto", data_dir=None, **kw: fake)
    return fake


def _save_untrained(path, name="res2net29", seed=0):
    from se_res2net import create_model
    from se_res2net.training.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = create_model(name)
    save_checkpoint(path, {"model": name, "model_kwargs": {}, "state_dict": model.state_dict(), "epoch": 0,
                           "config": {"seed": seed}})


@pytest.mark.slow
def test_cli_writes_metrics_and_overlay(tmp_path, fake_data, capsys):
    from se_res2net.cli import main

    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    _save_untrained(a, seed=0)
    _save_untrained(b, seed=1)
    out = tmp_path / "out"
    rc = main(["grad-cam", "--checkpoint", str(a), "--checkpoint", str(b), "--out-dir", str(out), "--mosaics", "2",
               "--confidence", "0", "--data", "sample", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((out / "gradcam_metrics.json").read_text())
    assert set(metrics["models"]) == {"res2net29_seed0", "res2net29_seed1"}
    assert metrics["models"]["res2net29_seed0"]["checkpoint"] == str(a)
    assert metrics["settings"]["confidence_filter"].startswith("off")
    assert (out / "gradcam_overlays.png").read_bytes()[:4] == b"\x89PNG"
    assert metrics["overlay_data"] == "gradcam_overlays.npz"
    assert list(g.load_overlay_data(out / "gradcam_overlays.npz").cams) == ["res2net29_seed0", "res2net29_seed1"]
    assert "res2net29_seed1" in capsys.readouterr().out

    # a result already there is never replaced silently: refused before any work, the files untouched
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    args = ["--out-dir", str(out), "--mosaics", "2", "--confidence", "0", "--data", "sample", "--device", "cpu"]
    rc = main(["grad-cam", "--checkpoint", str(tmp_path / "not-read.pt"), *args])  # refused before it reads one
    err = capsys.readouterr().err
    assert rc == 2 and "already holds a Grad-CAM result" in err and "--force" in err and str(a) in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(FileExistsError, match="already holds"):  # the library refuses too (the notebook's path),
        g.save_evaluation(None, out)  # before it reads the result
    # --force replaces it
    assert main(["grad-cam", "--checkpoint", str(b), *args, "--force"]) == 0, capsys.readouterr().err
    replaced = json.loads((out / "gradcam_metrics.json").read_text())["models"]
    assert [e["checkpoint"] for e in replaced.values()] == [str(b)]


def test_cli_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    from se_res2net.cli import main

    rc = main(["grad-cam", "--checkpoint", str(tmp_path / "nope.pt"), "--out-dir", str(tmp_path / "o"),
               "--data", "sample"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nope.pt" in err and "does not exist" in err
    assert not (tmp_path / "o" / "gradcam_metrics.json").exists()


def test_the_books_grad_cam_names_checkpoints_the_repository_holds():
    """The committed metrics say which trained weights they came from: a reader must be able to rerun them, so
    each named file is in the repository and belongs to a complete run (finalize deletes checkpoints)."""
    from pathlib import Path

    from se_res2net.training.records import read_record

    root = Path(__file__).resolve().parents[1]
    metrics = json.loads((root / "book" / "gradcam" / "gradcam_metrics.json").read_text(encoding="utf-8"))
    trained = [e for e in metrics["models"].values() if e.get("trained", True)]
    assert trained, "the book's Grad-CAM names no trained model"
    for entry in trained:
        ckpt = root / entry["checkpoint"]
        assert ckpt.is_file(), f"{entry['checkpoint']} is not in the repository; rerun se-res2net grad-cam on what is"
        record = read_record(ckpt.parent.parent / f"{ckpt.stem}.json")
        assert (record["model"], record["seed"]) == (entry["model"], entry["seed"])
        assert record["status"] == "complete" and len(record["epochs"]) == entry["epoch"]
