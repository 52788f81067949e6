"""Profiles: the report's protocol, the budget schedule rule, the smoke fallback."""

import pytest

from se_res2net.training.profiles import (
    ABLATION_MODELS,
    DEFAULT_SEEDS,
    PROFILES,
    REPORT_MODELS,
    get_profile,
    scaled_milestones,
)


def test_full_is_the_report_protocol():
    p = get_profile("full")
    assert (p.epochs, p.milestones, p.batch_size, p.lr, p.weight_decay) == (300, (150, 225), 128, 0.1, 1e-4)
    assert p.train_subset is None and p.test_subset is None
    c = p.train_config("se_res2net29", 1)
    assert (c.epochs, c.milestones, c.batch_size, c.lr, c.weight_decay, c.momentum, c.gamma) == (
        300, (150, 225), 128, 0.1, 1e-4, 0.9, 0.1)
    assert c.profile == "full" and c.seed == 1 and c.train_subset is None


@pytest.mark.parametrize("epochs", [2, 4, 10, 30, 60, 100, 300])
def test_schedule_scaling_rule(epochs):
    expected = tuple(m for m in (round(epochs * 150 / 300), round(epochs * 225 / 300)) if 1 <= m <= epochs - 1)
    assert scaled_milestones(epochs) == expected


def test_budget_schedule():
    p = get_profile("budget")
    assert p.epochs == 30 and p.milestones == (15, 22) == scaled_milestones(30)
    assert p.train_subset is None and p.test_subset is None
    assert "15" in p.description and "22" in p.description
    assert scaled_milestones(1) == ()
    assert scaled_milestones(300) == (150, 225)


def test_overriding_epochs_rescales_the_schedule():
    c = get_profile("full").train_config("resnet56", 0, epochs=40, data_source="sample")
    assert c.milestones == (20, 30)
    c = get_profile("full").train_config("resnet56", 0, epochs=40, milestones=(10,), data_source="sample")
    assert c.milestones == (10,)


def test_smoke_falls_back_to_the_sample(monkeypatch, tmp_path):
    from se_res2net.training import data

    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "_torchvision_present", lambda root: False)
    p = get_profile("smoke")
    assert p.epochs <= 2 and p.train_subset <= 500
    assert p.train_config("res2net29", 0).data_source == "sample"
    # a configured data set wins
    assert p.train_config("res2net29", 0, data_dir=str(tmp_path)).data_source == "auto"
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    assert p.train_config("res2net29", 0).data_source == "auto"
    # budget / full never fall back silently
    monkeypatch.delenv(data.DATA_DIR_ENV)
    assert get_profile("budget").train_config("res2net29", 0).data_source == "auto"


def test_unknown_profile():
    with pytest.raises(ValueError, match="smoke, budget, full"):
        get_profile("fast")


def test_model_lists():
    from se_res2net.models.registry import list_models

    assert set(PROFILES) == {"smoke", "budget", "full"}
    assert len(REPORT_MODELS) == 5 and len(ABLATION_MODELS) == 5
    assert set(REPORT_MODELS + ABLATION_MODELS) <= set(list_models())
    assert DEFAULT_SEEDS == (0, 1, 2)


def test_smoke_profile_fits_the_embedded_sample(monkeypatch):
    # With no dataset configured the smoke profile falls back to the sample: its subsets must fit in it.
    from se_res2net.training import data
    from se_res2net.training.profiles import get_profile

    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "_torchvision_present", lambda root: False)
    smoke = get_profile("smoke")
    cfg = smoke.train_config("res2net29", 0)
    assert cfg.data_source == "sample"
    sample = data.load_cifar10("sample", progress=False)
    sub = sample.subset(train=cfg.train_subset, test=cfg.test_subset, seed=0)
    assert len(sub.train) == cfg.train_subset and len(sub.test) == cfg.test_subset


def test_sweep_titles_each_run_notebook(tmp_path):
    import nbformat

    from se_res2net.training.sweep import _retitle

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Generic title\n\nbody")])
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, str(path))
    _retitle(path, "res2net29, seed 2 (smoke profile)")
    src = nbformat.read(str(path), as_version=4).cells[0].source
    assert src.splitlines()[0] == "# res2net29, seed 2 (smoke profile)" and "body" in src
