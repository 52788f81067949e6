"""The trainer's fast path, proven on CPU: every switch that CUDA turns on also runs here.

* ``resolve_fast_path`` gives CUDA bf16 + channels-last + fused SGD, CPU the fp32 for-loop;
* step parity: a few steps of each switch from the same weights and batches follow eager fp32 up to
  rounding (fp32 switches tight, bf16 looser);
* curve parity: a few epochs of each switch stay within :data:`se_res2net.training.parity.FP32_TOL` /
  :data:`~se_res2net.training.parity.BF16_TOL` of eager fp32, and the reference learns;
* seed noise: the parity check also trains the reference at the next seeds, and a switch passes within its
  tolerance or within that seed-to-seed difference (verdicts on curves built by hand, one tiny real run);
* the record's test error is fp32 and ``se-res2net test CHECKPOINT`` reproduces it exactly, even for a run
  trained with bf16 + channels-last + fused SGD + CUDA-graph compilation;
* no host synchronisation inside an epoch: no blocking op reaches the dispatcher, no synchronising Python
  call is made, and the loop's source has none (plus ``torch.cuda.set_sync_debug_mode`` where CUDA exists).
"""

from __future__ import annotations

import ast
import collections
import inspect
import json
import textwrap

import pytest

torch = pytest.importorskip("torch")

from se_res2net.training import data as data_mod  # noqa: E402
from se_res2net.training import parity  # noqa: E402
from se_res2net.models.registry import create_model  # noqa: E402
from se_res2net.training.trainer import (  # noqa: E402
    COMPILE_MODES,
    TrainConfig,
    _derive_seed,
    evaluate_checkpoint,
    make_optimizer,
    prepare_model,
    resolve_fast_path,
    train,
    train_epoch,
    train_step,
)

TINY = {"layers": (1, 1, 1), "planes": (4, 8, 16), "stem_width": 8}
# Small enough for CPU, long enough that the eager fp32 loss drops well beyond the tolerances.
BASE = TrainConfig(model="res2net29", model_kwargs=TINY, epochs=4, milestones=(), lr=0.05, batch_size=32,
                   data_source="sample", train_subset=256, test_subset=100, device="cpu", checkpoint_every=10)
CPU = torch.device("cpu")


def _config(variant: str, **kw) -> TrainConfig:
    return BASE.replace(**parity.VARIANTS[variant], **kw)


# ----------------------------------------------------------------------------- resolution
def test_cuda_defaults_resolve_to_the_fast_path_and_cpu_to_fp32():
    cfg = TrainConfig("se_res2net29")
    assert resolve_fast_path(cfg, "cuda").to_dict() == {
        "bf16": True, "channels_last": True, "sgd_impl": "fused", "compile_mode": None}
    assert resolve_fast_path(cfg, "cpu").to_dict() == {
        "bf16": False, "channels_last": False, "sgd_impl": "forloop", "compile_mode": None}
    explicit = cfg.replace(bf16=False, channels_last=False, sgd_impl="foreach", compile=True,
                           compile_mode="reduce-overhead")
    fp = resolve_fast_path(explicit, "cuda")
    assert (fp.bf16, fp.channels_last, fp.sgd_impl, fp.compile_mode, fp.cudagraphs) == (
        False, False, "foreach", "reduce-overhead", True)
    # the CPU-run variant that stands for CUDA's defaults really is what CUDA resolves to
    stand_in = resolve_fast_path(_config("bf16_channels_last_fused"), "cpu")
    assert stand_in == resolve_fast_path(cfg, "cuda")


@pytest.mark.parametrize("mode", COMPILE_MODES)
def test_the_step_treats_as_cuda_graphs_every_mode_whose_inductor_options_turn_them_on(mode):
    """The step marks iterations and clones its outputs for CUDA-graph trees: needed in every compile mode that
    uses them (inductor's own option table says which), not only in reduce-overhead."""
    from torch._inductor import list_mode_options

    fp = resolve_fast_path(TrainConfig("res2net29", compile=True, compile_mode=mode), "cuda")
    assert fp.cudagraphs == bool(list_mode_options(mode).get("triton.cudagraphs", False))


def test_fast_path_settings_are_validated():
    with pytest.raises(ValueError, match="compile_mode"):
        TrainConfig("res2net29", compile=True, compile_mode="fastest")
    with pytest.raises(ValueError, match="sgd_impl"):
        TrainConfig("res2net29", sgd_impl="adam")
    with pytest.raises(ValueError, match="compile must be"):
        TrainConfig("res2net29", compile="reduce-overhead")
    # a string such as "false" (a --set value that did not parse as JSON) would be truthy: refused, not read as on
    with pytest.raises(ValueError, match=r"bf16 must be None \(the device's default\), True or False, got 'false'"):
        TrainConfig("res2net29", bf16="false")
    with pytest.raises(ValueError, match="channels_last must be None"):
        TrainConfig("res2net29", channels_last=1)
    for v in (None, True, False):
        assert TrainConfig("res2net29", bf16=v, channels_last=v).bf16 is v


# ----------------------------------------------------------------------------- step parity
def _fresh(variant: str):
    """(fast path, model, what the step calls, optimiser, sample data) of a variant, from seed 0 weights."""
    cfg = _config(variant)
    fast = resolve_fast_path(cfg, "cpu")
    torch.manual_seed(0)
    model, step_model = prepare_model(create_model("res2net29", **TINY), CPU, fast)
    return fast, model, step_model, make_optimizer(model, cfg, fast), data_mod.load_sample()


def _steps(variant: str, n_steps: int = 3):
    """Losses and final weights after ``n_steps`` train_step calls from the same init and batches."""
    fast, model, step_model, opt, sample = _fresh(variant)
    images = torch.from_numpy(sample.train.images)
    labels = torch.from_numpy(sample.train.labels)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    aug = torch.Generator().manual_seed(_derive_seed(0, "augment"))
    losses = []
    for i in range(n_steps):
        idx = order[i * 32 : (i + 1) * 32]
        loss, _ = train_step(step_model, opt, images[idx], labels[idx], aug, fast)
        losses.append(float(loss))
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return losses, weights


@pytest.fixture(scope="module")
def eager_steps():
    return _steps("eager_fp32")


# (variant, relative tolerance on the 3 step losses, tolerance on |Δ weights| / |eager fp32 update|).
# Measured on CPU (torch 2.15, lr 0.05 / 0.1): fused/foreach SGD are bit-identical or 1e-10; compile
# 2e-7 / 0.006; channels-last 7e-5 / 0.016 (other conv kernels, amplified by batch norm on 32 images);
# bf16 3e-3 / 0.24. A step that does not update, or updates with another rule, is off by about 1 in the
# weight measure.
STEP_TOLERANCES = [
    ("sgd_fused", 1e-6, 1e-6), ("sgd_foreach", 1e-6, 1e-6),
    ("compile", 1e-4, 0.05), ("compile_max_autotune_no_cudagraphs", 1e-4, 0.05),
    ("channels_last", 5e-4, 0.1),
    ("bf16", 2e-2, 0.5), ("bf16_channels_last_fused", 2e-2, 0.5), ("cuda_defaults_cudagraphs", 2e-2, 0.5),
]


@pytest.mark.slow
@pytest.mark.parametrize("variant,loss_tol,weight_tol", STEP_TOLERANCES)
def test_each_switch_takes_the_same_steps_as_eager_fp32(variant, loss_tol, weight_tol, eager_steps):
    ref_losses, ref_w = eager_steps
    losses, w = _steps(variant)
    assert losses == pytest.approx(ref_losses, rel=loss_tol)
    # the updates themselves: weights after 3 steps, relative to how far eager fp32 moved them
    torch.manual_seed(0)
    w0 = torch.cat([p.detach().reshape(-1) for p in create_model("res2net29", **TINY).parameters()])
    moved = (ref_w - w0).norm()
    assert moved > 0
    assert float((w - ref_w).norm() / moved) <= weight_tol


# ----------------------------------------------------------------------------- curve parity
@pytest.fixture(scope="module")
def curves(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity")
    variants = ["channels_last", "sgd_fused", "sgd_foreach", "bf16", "compile", "cuda_defaults_cudagraphs"]
    return parity.compare(BASE, variants, out_dir=str(out))


@pytest.mark.slow
def test_loss_curves_match_eager_fp32_within_the_stated_tolerance(curves):
    assert curves["reference_learns"], f"eager fp32 loss only dropped {curves['reference_drop']:.3f}"
    report = parity.format_report(curves)
    for name, run in curves["runs"].items():
        assert len(run["train_loss"]) == BASE.epochs
        assert run["within_tolerance"], report
    assert curves["runs"]["bf16"]["tolerance"] == parity.BF16_TOL > parity.FP32_TOL
    assert curves["runs"]["compile"]["fast_path"]["compile_mode"] == "default"
    assert curves["noise"]["seeds"] == [BASE.seed + 1]  # the default: one other seed of the reference
    assert curves["ok"]
    json.dumps(curves)


@pytest.mark.slow
def test_record_error_is_fp32_and_reproduced_by_se_res2net_test(curves, capsys):
    """A bf16 + channels-last + fused + CUDA-graph-compiled run: its record's error is what a plain
    fp32 evaluation of its checkpoint gives, to the last bit, through the library and the CLI."""
    from se_res2net.cli import main
    from se_res2net.training.records import read_record

    run = curves["runs"]["cuda_defaults_cudagraphs"]
    assert run["fast_path"] == {"bf16": True, "channels_last": True, "sgd_impl": "fused",
                                "compile_mode": "reduce-overhead"}
    ckpt = run["checkpoint"]
    record = read_record(ckpt.replace("/checkpoints/", "/").replace(".pt", ".json"))
    assert record["provenance"]["eval_precision"] == "fp32" and record["provenance"]["bf16"] is True
    last = record["epochs"][-1]
    got = evaluate_checkpoint(ckpt, device="cpu")
    assert got["same_data_as_run"] is True and got["test_size"] == BASE.test_subset
    assert got["test_error"] == record["final_test_error"] == last["test_error"]
    assert got["test_loss"] == last["test_loss"]  # exact: same weights, same fp32 arithmetic
    assert main(["test", ckpt, "--device", "cpu", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["test_error"] == record["final_test_error"] and cli["test_loss"] == last["test_loss"]


# ----------------------------------------------------------------------------- no host sync
# Ops that make the host wait for the device on CUDA (or, for lift_fresh, copy Python data to it).
BLOCKING_OPS = {"_local_scalar_dense", "item", "is_nonzero", "nonzero", "masked_select", "unique", "_unique",
                "_unique2", "unique_consecutive", "lift_fresh", "lift_fresh_copy", "equal", "allclose",
                "repeat_interleave"}
SYNC_METHODS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__", "__repr__",
                "__format__")


def _epoch_inputs(variant: str):
    fast, _model, step_model, opt, sample = _fresh(variant)
    images = torch.from_numpy(sample.train.images[:80])
    labels = torch.from_numpy(sample.train.labels[:80])
    perm = torch.randperm(80, generator=torch.Generator().manual_seed(2))
    aug = torch.Generator().manual_seed(3)
    return (step_model, opt, images, labels, perm, aug, 32, fast)  # 80 = 2 full batches + a smaller one


class _OpLog(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("variant", ["eager_fp32", "bf16_channels_last_fused", "sgd_foreach"])
def test_no_blocking_op_inside_an_epoch(variant):
    args = _epoch_inputs(variant)
    train_epoch(*args)  # first epoch: lazy state (momentum buffers, cached constants)
    with _OpLog() as log:
        loss_sum, correct = train_epoch(*args)
    assert log.ops["convolution_backward"] > 0  # the mode saw the step
    assert not (set(log.ops) & BLOCKING_OPS), {k: log.ops[k] for k in set(log.ops) & BLOCKING_OPS}
    assert loss_sum.dtype == torch.float64 and correct.dtype == torch.int64


class _SyncCounter:
    """Counts calls of the Tensor methods that read a value back to Python (a sync on CUDA)."""

    def __init__(self):
        self.calls = collections.Counter()
        self._saved = {}

    def __enter__(self):
        for name in SYNC_METHODS:
            orig = getattr(torch.Tensor, name)
            self._saved[name] = orig

            def wrapper(t, *a, __name=name, __orig=orig, **k):
                self.calls[__name] += 1
                return __orig(t, *a, **k)

            setattr(torch.Tensor, name, wrapper)
        return self

    def __exit__(self, *exc):
        for name, orig in self._saved.items():
            setattr(torch.Tensor, name, orig)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["eager_fp32", "bf16_channels_last_fused", "cuda_defaults_cudagraphs"])
def test_no_synchronising_python_call_inside_an_epoch(variant):
    args = _epoch_inputs(variant)
    train_epoch(*args)  # compiles (when compiling) and creates lazy state
    with _SyncCounter() as counter:
        train_epoch(*args)
    assert not counter.calls, dict(counter.calls)
    with _SyncCounter() as counter:  # the counter does count: reading the loss is a sync
        loss_sum, _ = train_epoch(*args)
        loss_sum.item()
    assert counter.calls["item"] == 1


LOOP_FUNCTIONS = [train_epoch, train_step, data_mod.augment, data_mod.augment_params, data_mod.crop_flip,
                  data_mod.normalize]
FORBIDDEN_ATTRS = {"item", "tolist", "numpy", "cpu", "synchronize", "tensor", "as_tensor", "nonzero"}
FORBIDDEN_NAMES = {"print", "float", "int", "bool"}


def _sync_calls(fn):
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in FORBIDDEN_ATTRS:
                found.append(f"{fn.__name__}: .{f.attr}() at line {node.lineno}")
            if isinstance(f, ast.Name) and f.id in FORBIDDEN_NAMES:
                found.append(f"{fn.__name__}: {f.id}() at line {node.lineno}")
    return found


def test_loop_source_has_no_synchronising_call():
    assert [c for fn in LOOP_FUNCTIONS for c in _sync_calls(fn)] == []
    # the check can fail: the epoch loop of train() reads the loss once per epoch, outside train_epoch
    from se_res2net.training import trainer

    assert any(".item()" in c for c in _sync_calls(trainer._train_locked))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (runs on the GPU machine)")
@pytest.mark.parametrize("variant", ["cuda_defaults", "cuda_defaults_cudagraphs"])
def test_cuda_epoch_makes_no_synchronising_call(variant):
    cfg = BASE.replace(device="cuda", **parity.VARIANTS[variant])
    dev = torch.device("cuda")
    fast = resolve_fast_path(cfg, "cuda")
    torch.manual_seed(0)
    model, step_model = prepare_model(create_model("res2net29", **TINY), dev, fast)
    opt = make_optimizer(model, cfg, fast)
    sample = data_mod.load_sample()
    images = torch.from_numpy(sample.train.images).to(dev)
    labels = torch.from_numpy(sample.train.labels).to(dev)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(2)).to(dev)
    aug = torch.Generator(device=dev).manual_seed(3)
    args = (step_model, opt, images, labels, perm, aug, 32, fast)
    train_epoch(*args)
    train_epoch(*args)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_epoch(*args)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


def test_short_training_run_records_its_fast_path(tmp_path):
    rec = train(_config("bf16_channels_last_fused", epochs=1), tmp_path, progress=False)
    prov = rec["provenance"]
    assert (prov["bf16"], prov["channels_last"], prov["sgd_impl"], prov["compile_mode"]) == (
        True, True, "fused", None)
    assert prov["eval_precision"] == "fp32"


@pytest.mark.skipif(not hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision"),
                    reason="torch < 2.9 has only the legacy allow_tf32 flags")
def test_fp32_evaluation_switches_tf32_off_with_one_api_and_restores_it():
    """On CUDA, evaluation turns TF32 off through torch's fp32_precision settings only: touching the legacy
    allow_tf32 flags as well makes torch (and inductor) raise since 2.9. Checked here with a stand-in device."""
    import warnings
    from types import SimpleNamespace

    from se_res2net.training.trainer import _fp32_numerics, _numerics

    b = torch.backends

    def state():
        return (b.cudnn.benchmark, b.cudnn.deterministic, b.cuda.matmul.fp32_precision,
                b.cudnn.conv.fp32_precision, b.cudnn.rnn.fp32_precision)

    before = state()
    cuda = SimpleNamespace(type="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a legacy-flag access warns (deprecated) and would fail here
        with _numerics(cuda):
            assert b.cudnn.benchmark
            with _fp32_numerics(cuda):
                assert (b.cuda.matmul.fp32_precision, b.cudnn.conv.fp32_precision) == ("ieee", "ieee")
                assert not b.cudnn.benchmark and b.cudnn.deterministic
            assert b.cudnn.benchmark and b.cudnn.conv.fp32_precision == before[3]
    assert state() == before


@pytest.mark.skipif(not hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision"),
                    reason="torch < 2.9 has only the legacy allow_tf32 flags")
def test_fp32_evaluation_after_a_callers_set_float32_matmul_precision_does_not_mix_the_apis():
    """`torch.set_float32_matmul_precision("high")` (inductor's hint, common in training scripts) sets the legacy and
    the new matmul flag; evaluation must switch TF32 off without leaving them mixed, or every cuBLAS call raises
    ("mix of the legacy and new APIs"). torch reads the flags on CPU too, so a stand-in device shows it here."""
    from types import SimpleNamespace

    from se_res2net.training.trainer import _fp32_numerics

    b = torch.backends
    saved = (torch.get_float32_matmul_precision(), b.cuda.matmul.fp32_precision)
    try:
        torch.set_float32_matmul_precision("high")
        before = (torch.get_float32_matmul_precision(), b.cuda.matmul.fp32_precision)
        with _fp32_numerics(SimpleNamespace(type="cuda")):
            assert torch._C._get_cublas_allow_tf32() is False  # what cuBLAS asks for at each handle; raised when mixed
            assert b.cudnn.conv.fp32_precision == "ieee"
        assert (torch.get_float32_matmul_precision(), b.cuda.matmul.fp32_precision) == before == ("high", "tf32")
        assert torch._C._get_cublas_allow_tf32() is True
    finally:
        torch.set_float32_matmul_precision(saved[0])
        b.cuda.matmul.fp32_precision = saved[1]


def _report_of(drop: float, diffs: dict) -> str:
    runs = {name: {"max_abs_diff": d, "tolerance": parity.FP32_TOL, "within_tolerance": d <= parity.FP32_TOL,
                   "final_test_error": 50.0, "describe": "fp32"} for name, d in diffs.items()}
    learns = drop >= parity.MIN_DROP
    result = {"model": "res2net29", "seed": 0, "epochs": 2, "device": "cpu", "reference": parity.REFERENCE,
              "reference_drop": drop, "reference_learns": learns, "runs": runs,
              "ok": learns and all(r["within_tolerance"] for r in runs.values())}
    return parity.format_report(result)


def test_a_failed_parity_report_says_which_cause_and_the_fix():
    """'Did not learn' (too few epochs or images: a setup to change) reads differently from 'outside tolerance'
    (the finding); a pass says neither."""
    ok = _report_of(1.0, {"eager_fp32": 0.0, "compile": 0.0})
    assert ok.endswith("all within tolerance") and "FAILED" not in ok
    flat = _report_of(-0.2, {"eager_fp32": 0.0, "compile": 0.0})
    assert "PARITY FAILED: the reference did not learn" in flat and "--epochs" in flat and "--subset" in flat
    assert "outside tolerance" not in flat
    off = _report_of(1.0, {"eager_fp32": 0.0, "compile": 1.0, "bf16": 0.5})
    assert off.splitlines()[-1] == "PARITY FAILED: outside tolerance: compile, bf16" and "did not learn" not in off


# ----------------------------------------------------------------------------- seed noise
# Curves built by hand: the reference (seed 0), the same configuration at seed 1, and two switches.
REF_CURVE = [2.30, 2.00, 1.70]
SEED1_CURVE = [2.30, 2.06, 1.72]  # the seed noise: 0.06 at epoch 2
FP32 = {"bf16": False, "channels_last": False, "sgd_impl": "forloop", "compile_mode": None}
BF16 = {**FP32, "bf16": True}


def test_a_switch_outside_its_tolerance_but_within_the_seed_noise_passes_and_one_beyond_both_fails():
    runs = {"eager_fp32": {"train_loss": REF_CURVE, "fast_path": FP32},
            "bf16": {"train_loss": [2.30, 2.05, 1.70], "fast_path": BF16},  # 0.05: > BF16_TOL, < noise
            "channels_last": {"train_loss": [2.30, 2.30, 2.30], "fast_path": FP32}}  # 0.6: beyond both
    noise = parity.noise_scale(REF_CURVE, {"1": SEED1_CURVE})
    assert noise == pytest.approx(0.06)
    got = parity.verdicts(runs, REF_CURVE, noise)
    assert got["bf16"]["within_tolerance"] is False and got["bf16"]["within_noise"] is True
    assert got["bf16"]["limit"] == pytest.approx(0.06) and got["bf16"]["ok"] is True
    assert got["channels_last"]["ok"] is False and got["channels_last"]["within_noise"] is False
    assert got["eager_fp32"] == {"max_abs_diff": 0.0, "tolerance": parity.FP32_TOL, "within_tolerance": True,
                                 "limit": pytest.approx(0.06), "within_noise": True, "ok": True}
    # noise below the tolerance: the tolerance is the limit
    small = parity.verdicts(runs, REF_CURVE, 0.001)
    assert small["bf16"]["limit"] == parity.BF16_TOL and small["bf16"]["ok"] is False


def test_without_noise_seeds_the_verdict_is_the_fixed_tolerance_one():
    runs = {"eager_fp32": {"train_loss": REF_CURVE, "fast_path": FP32},
            "bf16": {"train_loss": [2.30, 2.05, 1.70], "fast_path": BF16},
            "compile": {"train_loss": [2.31, 2.01, 1.69], "fast_path": FP32}}
    assert parity.noise_scale(REF_CURVE, {}) is None
    for name, v in parity.verdicts(runs, REF_CURVE, None).items():
        assert v["limit"] == v["tolerance"] and v["within_noise"] is None
        assert v["ok"] == v["within_tolerance"] == (v["max_abs_diff"] <= v["tolerance"]), name
    assert [v["ok"] for v in parity.verdicts(runs, REF_CURVE, None).values()] == [True, False, True]


def _fake_train(curves: dict):
    """A stand-in for ``trainer.train`` that returns the curve of its (variant, seed) without training."""
    calls = []

    def train(config, out_dir, **kw):
        key = ("bf16" if config.bf16 else "fp32", config.seed)
        calls.append(key)
        return {"epochs": [{"train_loss": x, "test_loss": x, "test_error": 50.0} for x in curves[key]],
                "final_test_error": 50.0, "checkpoint": "c.pt"}

    return train, calls


@pytest.mark.parametrize("noise_seeds", [0, 1, 2])
def test_compare_trains_the_reference_at_the_next_seeds_and_judges_by_tolerance_or_noise(monkeypatch, noise_seeds):
    from se_res2net.training import trainer

    curves = {("fp32", 0): REF_CURVE, ("bf16", 0): [2.30, 2.05, 1.70], ("fp32", 1): SEED1_CURVE,
              ("fp32", 2): [2.30, 1.99, 1.71]}
    train, calls = _fake_train(curves)
    monkeypatch.setattr(trainer, "train", train)
    result = parity.compare(BASE.replace(epochs=3), ["bf16"], noise_seeds=noise_seeds)
    assert calls == [("fp32", 0), ("bf16", 0)] + [("fp32", k) for k in range(1, noise_seeds + 1)]
    noise = result["noise"]
    assert noise["seeds"] == list(range(1, noise_seeds + 1))
    assert list(noise["train_loss"]) == [str(k) for k in noise["seeds"]]
    bf16 = result["runs"]["bf16"]
    assert bf16["within_tolerance"] is False  # 0.05 > BF16_TOL, whatever the noise
    if noise_seeds == 0:  # the old behaviour, exactly: fixed tolerances only
        assert noise == {"seeds": [], "train_loss": {}, "max_abs_diff": None}
        assert bf16["limit"] == parity.BF16_TOL and bf16["within_noise"] is None and bf16["ok"] is False
        assert result["ok"] is False
        assert parity.format_report(result).splitlines()[-1] == "PARITY FAILED: outside tolerance: bf16"
    else:  # seed 1 moves the reference by 0.06 > 0.05
        assert noise["max_abs_diff"] == pytest.approx(0.06)
        assert bf16["limit"] == pytest.approx(0.06) and bf16["within_noise"] is True and bf16["ok"] is True
        assert result["ok"] is True
        report = parity.format_report(result)
        assert f"seed(s) {', '.join(map(str, noise['seeds']))} against seed 0" in report and "0.0600" in report
        assert "yes (noise)" in report and report.endswith("all within tolerance or seed noise")
    json.dumps(result)


def test_a_report_with_noise_names_the_switches_outside_their_limit(monkeypatch):
    from se_res2net.training import trainer

    curves = {("fp32", 0): REF_CURVE, ("bf16", 0): [2.30, 2.30, 2.30], ("fp32", 1): SEED1_CURVE}
    monkeypatch.setattr(trainer, "train", _fake_train(curves)[0])
    result = parity.compare(BASE.replace(epochs=3), ["bf16"], noise_seeds=1)
    assert result["ok"] is False and result["runs"]["bf16"]["ok"] is False
    report = parity.format_report(result)
    assert report.splitlines()[-1] == "PARITY FAILED: outside tolerance and seed noise: bf16"
    assert "0.6000" in report and "NO" in report


def test_negative_noise_seeds_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="noise_seeds must be an integer >= 0.*--noise-seeds 0"):
        parity.compare(BASE, ["bf16"], noise_seeds=-1)


def test_a_small_cpu_run_measures_the_noise_at_the_next_seed(tmp_path):
    """Real training, tiny: the reference again at seed 1 gives another curve; its distance from seed 0 is the
    noise, and each switch's limit is the larger of its tolerance and that noise."""
    base = BASE.replace(epochs=2, train_subset=128, test_subset=50)
    result = parity.compare(base, ["sgd_foreach"], out_dir=str(tmp_path), noise_seeds=1)
    noise = result["noise"]
    assert noise["seeds"] == [1] and list(noise["train_loss"]) == ["1"] and len(noise["train_loss"]["1"]) == 2
    ref = result["runs"]["eager_fp32"]["train_loss"]
    assert noise["max_abs_diff"] == max(abs(a - b) for a, b in zip(noise["train_loss"]["1"], ref)) > 0
    assert (tmp_path / "eager_fp32_seed1" / "res2net29_seed1.json").exists()
    for run in result["runs"].values():
        assert run["limit"] == max(run["tolerance"], noise["max_abs_diff"])
        assert run["ok"] == (run["max_abs_diff"] <= run["limit"])
    assert result["ok"] == (result["reference_learns"] and all(r["ok"] for r in result["runs"].values()))
    # the data as the reference run resolved it, not as asked for (the H200's record said only "auto")
    assert result["data"]["data_source"] == "sample" and result["data"]["data_is_sample"] is True
    assert result["data"]["train_size"] == 128
    json.dumps(result)
