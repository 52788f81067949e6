"""Blocks and networks: shapes, literature parameter counts, the hierarchy, SE gates, bad configs."""

import pytest
import torch
import torch.nn as nn

import se_res2net
from se_res2net import create_model, list_models
from se_res2net.models.blocks import Res2NetBottleneck, SqueezeExcite, StreamSqueezeExcite
from se_res2net.models.complexity import count_params
from se_res2net.models.networks import Res2NetConfig

CIFAR = list_models("cifar")
IMAGENET = list_models("imagenet")


def test_registry_lists_report_models():
    names = set(list_models())
    for n in ("res2net29", "se_res2net29", "resnet56", "se_resnet110", "densenet_bc100",
              "se_res2net29_last_stream", "se_res2net29_streams12", "se_res2net29_output",
              "res2net29_report", "se_res2net29_report", "res2net50_26w_4s", "se_res2net50_26w_4s"):
        assert n in names


def test_report_snippet_import_works():
    from se_res2net import se_res2net29  # the report's FLOPs snippet

    assert se_res2net29 is se_res2net.models.registry.get_factory("se_res2net29")


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError, match="unknown model 'nope'.*res2net29"):
        create_model("nope")


def test_duplicate_registration_is_an_error():
    from se_res2net.models.registry import register_model

    def res2net29():  # same name as a registered factory
        return None

    with pytest.raises(ValueError, match="already registered"):
        register_model()(res2net29)


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, se_res2net; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", CIFAR)
def test_cifar_forward_backward(name):
    torch.manual_seed(0)
    model = create_model(name)
    maps = []  # Grad-CAM's target layer: run in the forward pass, a feature map
    model.cam_target_layer().register_forward_hook(lambda m, a, out: maps.append(out.shape))
    x = torch.randn(2, 3, 32, 32)
    y = model(x)
    assert y.shape == (2, 10) and len(maps) == 1 and len(maps[0]) == 4 and maps[0][0] == 2
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.slow
@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_forward_backward(name):
    model = create_model(name)
    y = model(torch.randn(2, 3, 224, 224))
    assert y.shape == (2, 1000)
    y.sum().backward()


@pytest.mark.parametrize(
    "name, expected, rel",
    [
        ("resnet56", 0.85e6, 0.01),          # He et al. 2016, Table 6
        ("densenet_bc100", 0.8e6, 0.05),     # Huang et al. 2017, Table 2 ("0.8M"; exact 0.769 M)
        ("res2net50_26w_4s", 25.70e6, 0.001),  # Gao et al., Table 2
        ("se_resnet110", 1.74e6, 0.01),      # ResNet-110 1.73 M (He et al.) + SE r=16
    ],
)
def test_parameter_counts_match_literature(name, expected, rel):
    assert count_params(create_model(name)) == pytest.approx(expected, rel=rel)


@pytest.mark.slow
def test_res2net50_26w_4s_has_timms_logits():
    """timm's weights in our network give timm's logits. timm passes the LAST subset through (ours: the first),
    so its conv1 outputs / bn1 / conv3 inputs are rolled by one subset. BN is randomised (timm zero-inits bn3)."""
    import timm  # a dev dependency: a missing timm fails here, it does not skip
    torch.manual_seed(0)
    ref = timm.create_model("res2net50_26w_4s", pretrained=False).eval()
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1)
            m.running_var.data.uniform_(1, 2)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.data.normal_(0, 0.1)
    ours = create_model("res2net50_26w_4s").eval()
    state = {}
    for k, v in ref.state_dict().items():
        if k.startswith("layer"):  # layer<k>.<j>.<name> -> stages.<k-1>.<j>.<name>
            stage, j, name = k[5:].split(".", 2)
            w = ours.stages[int(stage) - 1][int(j)].width
            perm = torch.arange(4 * w).roll(w)  # ours [pass, y2, y3, y4] = timm [y.., pass] rolled
            if name == "conv1.weight" or (name.startswith("bn1.") and v.ndim):
                v = v[perm]
            elif name == "conv3.weight":
                v = v[:, perm]
            k = f"stages.{int(stage) - 1}.{j}.{name}"
        state[k] = v
    ours.load_state_dict(state)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)


def test_densenet_exact_count():
    # The widely quoted exact count of DenseNet-BC (L=100, k=12) on CIFAR-10.
    assert count_params(create_model("densenet_bc100")) == 769162


# --- the hierarchy ---------------------------------------------------------------------------


def _block(recursion, scale=4, width=8):
    torch.manual_seed(0)
    b = Res2NetBottleneck(4 * width, width, base_width=64, scale=scale, recursion=recursion)
    return b.eval()


def _changed_outputs(block, subset_to_perturb):
    torch.manual_seed(1)
    subsets = [torch.randn(1, block.width, 6, 6) for _ in range(block.scale)]
    with torch.no_grad():
        base = block.hierarchy([s.clone() for s in subsets])
        pert = [s.clone() for s in subsets]
        pert[subset_to_perturb][0, 0, 3, 3] += 10.0
        new = block.hierarchy(pert)
    return [i + 1 for i, (a, b) in enumerate(zip(base, new)) if not torch.equal(a, b)]


def test_paper_recursion_subset1_is_pass_through_only():
    # y1 = x1, y2 = K2(x2): x1 reaches no other output.
    assert _changed_outputs(_block("paper"), 0) == [1]


def test_report_recursion_subset1_reaches_every_later_output():
    # y2 = K2(x2 + x1): x1 flows through the whole hierarchy.
    assert _changed_outputs(_block("report"), 0) == [1, 2, 3, 4]


@pytest.mark.parametrize("recursion", ["paper", "report"])
def test_subset2_reaches_outputs_2_to_s(recursion):
    assert _changed_outputs(_block(recursion), 1) == [2, 3, 4]


@pytest.mark.parametrize("recursion", ["paper", "report"])
def test_last_subset_reaches_only_last_output(recursion):
    assert _changed_outputs(_block(recursion), 3) == [4]


def test_recursions_differ_exactly_at_y2_onwards():
    paper, report = _block("paper"), _block("report")
    report.load_state_dict(paper.state_dict())
    torch.manual_seed(2)
    subsets = [torch.randn(1, paper.width, 5, 5) for _ in range(4)]
    with torch.no_grad():
        a, b = paper.hierarchy(subsets), report.hierarchy(subsets)
    assert torch.equal(a[0], b[0])
    assert all(not torch.equal(x, y) for x, y in zip(a[1:], b[1:]))


def test_stage_block_drops_additions_and_pools_pass_through():
    torch.manual_seed(0)
    b = Res2NetBottleneck(16, 8, stride=2, base_width=64, scale=4, stage_block=True,
                          downsample=nn.Conv2d(16, 32, 1, stride=2)).eval()
    subsets = [torch.randn(1, 8, 8, 8) for _ in range(4)]
    with torch.no_grad():
        ys = b.hierarchy(subsets)
        assert ys[0].shape[-1] == 4 and torch.allclose(ys[0], nn.functional.avg_pool2d(subsets[0], 3, 2, 1))
        # no addition: perturbing x2 changes y2 only
        pert = [s.clone() for s in subsets]
        pert[1] += 1.0
        ys2 = b.hierarchy(pert)
    assert [i for i, (u, v) in enumerate(zip(ys, ys2)) if not torch.equal(u, v)] == [1]


# --- SE ---------------------------------------------------------------------------------------


def test_se_gates_lie_in_open_unit_interval():
    torch.manual_seed(0)
    se = SqueezeExcite(32, 16)
    g = se.gate_values(torch.randn(4, 32, 5, 5) * 10)
    assert g.shape == (4, 32, 1, 1)
    assert torch.all(g > 0) and torch.all(g < 1)


def test_stream_se_leaves_other_channels_untouched():
    torch.manual_seed(0)
    se = StreamSqueezeExcite(width=4, scale=4, ratio=4, streams=(4,))
    x = torch.randn(2, 16, 3, 3)
    y = se(x)
    assert torch.equal(y[:, :12], x[:, :12])
    assert not torch.equal(y[:, 12:], x[:, 12:])
    # the gate is computed only from the chosen stream: changing another stream leaves it alone
    x2 = x.clone()
    x2[:, :12] += 5.0
    assert torch.equal(se(x2)[:, 12:], y[:, 12:])


@pytest.mark.parametrize("name, placement, streams", [
    ("se_res2net29", "fused", (1, 2, 3, 4)), ("se_res2net29_last_stream", "fused", (4,)),
    ("se_res2net29_streams12", "fused", (1, 2)), ("se_res2net29_output", "output", None)])
def test_se_gate_sits_where_its_placement_says(name, placement, streams):
    """Hooks: 'fused' gates Z (the concatenated y_1..y_s; only the chosen streams) and feeds conv3;
    'output' gates BN3's output, and the gated tensor is what the residual add receives."""
    torch.manual_seed(0)
    block = create_model(name).stages[0][1].eval()  # not a stage block: identity shortcut
    seen = {}
    for key in ("se", "conv3", "bn3"):
        getattr(block, key).register_forward_hook(
            lambda m, a, out, key=key: seen.update({key + "_in": a[0].clone(), key + "_out": out.clone()}))
    hierarchy = block.hierarchy
    block.hierarchy = lambda subsets: seen.setdefault("ys", hierarchy(subsets))
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        out = block(x)
    z = torch.cat(seen["ys"], 1)
    gated = (seen["se_out"] != seen["se_in"]).any(3).any(2).any(0)  # per channel
    if placement == "fused":
        assert torch.equal(seen["se_in"], z), "the fused gate's input is not Z"
        assert torch.equal(seen["conv3_in"], seen["se_out"]), "conv3 does not receive the gated Z"
        assert torch.equal(out, torch.relu(seen["bn3_out"] + x))
        w = block.width
        assert gated.tolist() == [c // w + 1 in streams for c in range(4 * w)], "the gate touches other streams"
    else:
        assert torch.equal(seen["conv3_in"], z), "conv3 does not receive the ungated Z"
        assert torch.equal(seen["se_in"], seen["bn3_out"]), "the output gate's input is not BN3's output"
        assert torch.equal(out, torch.relu(seen["se_out"] + x)) and gated.all(), "the add gets no gated output"


def test_ablation_parameter_order():
    p = {n: count_params(create_model(n)) for n in
         ("res2net29", "se_res2net29_last_stream", "se_res2net29_streams12", "se_res2net29")}
    assert p["res2net29"] < p["se_res2net29_last_stream"] < p["se_res2net29_streams12"] < p["se_res2net29"]


def test_cardinality_and_scale_overrides():
    m = create_model("res2net29", cardinality=2, scale=6)
    blk = m.stages[0][0]
    assert blk.scale == 6 and blk.convs[0].groups == 2
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_config_from_depth_and_seed004_options():
    cfg = Res2NetConfig.from_depth(38, num_classes=100, scale=8, cardinality=1, se_ratio=8, attn_layer=SqueezeExcite)
    assert cfg.layers == (4, 4, 4) and cfg.depth == 38
    model = se_res2net.models.networks.Res2Net(cfg)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 100)
    assert Res2NetConfig.from_depth(50, stem="imagenet").layers == (3, 4, 6, 3)


# --- bad configurations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"scale": 0}, "scale s=0"),
        ({"cardinality": 0}, "cardinality"),
        ({"base_width": 3}, "subset width 0"),
        ({"base_width": 0}, "base_width"),
        ({"se_ratio": 1000}, "larger than the"),
        ({"se_ratio": 0}, "must be ≥ 1"),
        ({"recursion": "magic"}, "recursion"),
        ({"se_placement": "middle"}, "se_placement"),
        ({"se_streams": (0, 9)}, "not within 1..s"),
        ({"num_classes": 0}, "num_classes"),
        ({"input_size": 2}, "input_size"),
        ({"layers": (3, 3)}, "same length"),
        ({"widht": 3}, "unknown configuration option"),
        ({"stem": "pyramid"}, "stem"),
    ],
)
def test_bad_configurations_raise_clear_value_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        create_model("se_res2net29", **overrides)


def test_bad_baseline_depths():
    with pytest.raises(ValueError, match="6n \\+ 2"):
        create_model("resnet56", depth=57)
    with pytest.raises(ValueError, match="6n \\+ 4"):
        create_model("densenet_bc100", depth=99)
    with pytest.raises(ValueError, match="9n \\+ 2"):
        Res2NetConfig.from_depth(30)
