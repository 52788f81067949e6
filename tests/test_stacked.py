"""N models stacked into one (se_res2net.training.stacked): one stacked step is the N models' own steps."""

import pytest
import torch
import torch.nn.functional as F

from se_res2net.models.registry import create_model
from se_res2net.training import data as data_mod
from se_res2net.training.stacked import StackedModels, stacked_train_step
from se_res2net.training.trainer import FastPath, TrainConfig, make_optimizer

N, B = 2, 6
FP32_CPU = FastPath(bf16=False, channels_last=False, sgd_impl="forloop", compile_mode=None)


def _models(name="res2net29", dtype=torch.float32):
    out = []
    for k in range(N):
        torch.manual_seed(k)
        out.append(create_model(name).to(dtype).train())
    return out


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (N, B, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (N, B), generator=g)
    return images, labels


@pytest.mark.parametrize("dtype,steps,rtol", [(torch.float64, 2, 1e-9), (torch.float32, 1, 2e-2)])
def test_one_stacked_step_is_each_models_own_step(monkeypatch, dtype, steps, rtol):
    """The same augmented images, the same SGD (momentum, weight decay): after a step, model k's weights and
    BatchNorm statistics in the stack moved as those of model k stepped alone. In float64 the two agree to rounding;
    in float32 BatchNorm's backward at a batch of 6 amplifies rounding to about 1 % of one step's change (and to
    about 3 % over two), so float32 is checked over one step."""
    augment = data_mod.augment
    monkeypatch.setattr(data_mod, "augment", lambda x, g: augment(x, g).to(dtype))
    config = TrainConfig("res2net29")
    alone = _models(dtype=dtype)
    initial = [{n: t.clone() for n, t in m.state_dict().items()} for m in alone]
    stack = StackedModels(_models(dtype=dtype)).train()
    images, labels = _batch()
    aug = torch.Generator().manual_seed(1)

    for _ in range(steps):  # a second step also tests momentum
        x = data_mod.augment(images.flatten(0, 1), torch.Generator().manual_seed(aug.initial_seed()))
        losses = []
        for k, model in enumerate(alone):
            opt = getattr(model, "_opt", None) or make_optimizer(model, config, FP32_CPU)
            model._opt = opt
            loss = F.cross_entropy(model(x[k * B:(k + 1) * B]), labels[k])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        opt = getattr(stack, "_opt", None) or make_optimizer(stack, config, FP32_CPU)
        stack._opt = opt
        per_model, correct = stacked_train_step(stack, opt, images, labels,
                                                torch.Generator().manual_seed(aug.initial_seed()), FP32_CPU)
        assert per_model.shape == (N,) and correct.shape == (N,)
        torch.testing.assert_close(per_model, torch.stack(losses), rtol=rtol, atol=1e-12)

    for k, model in enumerate(alone):
        mine, theirs, before = stack.state_dict_of(k), model.state_dict(), initial[k]
        assert mine.keys() == theirs.keys()
        floats = [n for n in theirs if theirs[n].is_floating_point()]
        # what the two steps changed, all tensors together (a zero-initialised bias alone is too small to compare)
        moved_alone = torch.cat([(theirs[n] - before[n]).double().flatten() for n in floats])
        moved_stacked = torch.cat([(mine[n] - before[n]).double().flatten() for n in floats])
        gap = float((moved_stacked - moved_alone).norm() / moved_alone.norm())
        assert gap < rtol, f"model {k}: the stacked steps' change is {gap:.2e} (relative) away from the model's own"
        assert all(torch.equal(mine[n], theirs[n]) for n in theirs if n not in floats)  # num_batches_tracked


def test_eval_mode_and_the_weights_of_one_model():
    """In eval mode each slice runs on its own running statistics; state_dict_of(k) loads into the architecture and
    gives that slice's logits."""
    models = _models()
    for k, m in enumerate(models):  # distinct running statistics per model
        with torch.no_grad():
            m(torch.randn(8, 3, 32, 32) + k)
    stack = StackedModels(models).eval()
    x = torch.randn(N, 4, 3, 32, 32)
    with torch.no_grad():
        out = stack(x)
        assert out.shape == (N, 4, 10)
        for k in range(N):
            fresh = create_model("res2net29").eval()
            fresh.load_state_dict(stack.state_dict_of(k))
            torch.testing.assert_close(out[k], fresh(x[k]), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="0..1"):
        stack.state_dict_of(N)


def test_only_one_architecture_stacks():
    with pytest.raises(ValueError, match="one architecture"):
        StackedModels([create_model("res2net29"), create_model("se_res2net29")])
    with pytest.raises(ValueError, match="at least one"):
        StackedModels([])


def test_channels_last_lays_out_each_models_weights_and_steps_the_same():
    """``nn.Module.to(memory_format=channels_last)`` refuses the 5-d stacked weights; to_channels_last lays out each
    slice as a single model's, and a step in that layout (the CUDA default) is the NCHW step."""
    with pytest.raises(RuntimeError, match="rank 4"):
        StackedModels(_models()).to(memory_format=torch.channels_last)
    config = TrainConfig("res2net29")
    nchw, nhwc = StackedModels(_models()).train(), StackedModels(_models()).train().to_channels_last()
    convs = [p for p in nhwc.stacked_params if p.dim() == 5]
    assert convs and all(p[k].is_contiguous(memory_format=torch.channels_last) for p in convs for k in range(N))
    assert all(torch.equal(a, b) for a, b in zip(nchw.stacked_params, nhwc.stacked_params))
    images, labels = _batch()
    cl = FastPath(bf16=False, channels_last=True, sgd_impl="forloop", compile_mode=None)
    for model, fast in ((nchw, FP32_CPU), (nhwc, cl)):
        stacked_train_step(model, make_optimizer(model, config, fast), images, labels,
                           torch.Generator().manual_seed(1), fast)
    before = StackedModels(_models())
    for k in range(N):
        a, b, start = nchw.state_dict_of(k), nhwc.state_dict_of(k), before.state_dict_of(k)
        floats = [n for n in a if a[n].is_floating_point()]
        gap = torch.cat([(b[n] - a[n]).flatten() for n in floats]).norm()
        step = torch.cat([(a[n] - start[n]).flatten() for n in floats]).norm()
        assert float(gap / step) < 2e-2, f"model {k}: the channels-last step is {float(gap / step):.2e} off the NCHW one"
