"""Complexity counting: params, thop MACs, the FlopCounter cross-check, tables, the Res2Net-29 search."""

import json

import pytest
import torch.nn as nn

from se_res2net import create_model
from se_res2net.cli import main
from se_res2net.models.complexity import (
    block_table,
    complexity_table,
    count_flops_torch,
    count_macs,
    count_params,
    model_complexity,
    search_res2net29,
)
from se_res2net.models.networks import CIFAR_BASE


def test_counts_of_a_hand_computable_model():
    # conv 3→8 3×3 no bias on 32×32 (padding 1): 216 params, 216·1024 MACs; linear 8→2: 18 params, 16 MACs
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    assert count_params(model) == 216 + 18
    assert count_flops_torch(model) == 2 * (216 * 1024 + 16)
    macs = count_macs(model)
    assert 216 * 1024 + 16 <= macs <= 216 * 1024 + 16 + 8 * 1024 + 16  # thop may add the pooling
    assert not any(hasattr(m, "total_ops") for m in model.modules())  # thop did not touch the caller's model


def test_thop_and_flopcounter_agree_for_res2net29():
    c = model_complexity("res2net29")
    assert c.params == count_params(create_model("res2net29"))
    assert abs(c.cross_check_diff) < 0.05, c.cross_check_diff
    assert c.flops == 2 * c.macs


def test_imagenet_models_measured_at_224():
    row = [r for r in complexity_table(["res2net50_26w_4s"])][0]
    assert row["input"] == "224x224"
    # Gao et al. report 4.2 GFLOPs (multiply-adds) for Res2Net-50-26w-4s
    assert row["macs_M"] == pytest.approx(4200, rel=0.05)


def test_block_table_matches_hand_counts():
    rows = {r["block"]: r for r in block_table(channels=64, scale=4, se_ratio=16, resolution=32)}
    resnet = rows["ResNet (2 conv)"]["params"]
    assert resnet == 2 * 64 * 64 * 9 + 2 * 2 * 64  # two 3×3 convs + two BNs
    se = rows["SE-ResNet (r=16)"]["params"]
    assert se - resnet == 64 * 4 + 4 + 4 * 64 + 64  # W1, b1, W2, b2
    r2 = rows["Res2Net (s=4)"]["params"]
    # 1×1 64→64, three 3×3 16→16, 1×1 64→64, BNs (64 + 3·16 + 64 channels)
    assert r2 == 64 * 64 + 3 * 16 * 16 * 9 + 64 * 64 + 2 * (64 + 48 + 64)
    assert rows["SE-Res2Net"]["params"] - r2 == 64 * 4 + 4 + 4 * 64 + 64


def test_block_table_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="divisible"):
        block_table(channels=66)


def test_default_config_is_the_search_optimum():
    rows = search_res2net29()
    best = rows[0]
    assert best["stem_width"] == CIFAR_BASE.stem_width
    assert tuple(best["planes"]) == CIFAR_BASE.planes
    assert best["base_width"] == CIFAR_BASE.base_width
    assert best["scale"] == CIFAR_BASE.scale
    assert [r["distance"] for r in rows] == sorted(r["distance"] for r in rows)


def test_cli_complexity_json(capsys):
    assert main(["complexity", "--json", "--models", "res2net29", "se_res2net29", "--blocks"]) == 0
    out = json.loads(capsys.readouterr().out)
    names = [r["model"] for r in out["models"]]
    assert names == ["res2net29", "se_res2net29"]
    assert out["models"][1]["params"] > out["models"][0]["params"]
    assert len(out["blocks"]) == 4


def test_cli_complexity_table_lists_every_model(capsys):
    from se_res2net import list_models

    assert main(["complexity"]) == 0
    text = capsys.readouterr().out
    for name in list_models():
        assert name in text


def test_cli_unknown_model_is_one_clear_line(capsys):
    assert main(["complexity", "--models", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "Traceback" not in err
