"""N networks of one architecture trained as one module: a measurement of whether it would pay on a GPU.

Why: on one GPU, concurrent training processes take turns (CUDA's default time-slicing runs one context's
kernels at a time; MPS, which would overlap them, may not start in a container). A CIFAR-sized step of these
networks is many small kernels (the Res2Net streams make it more), so a GPU running one run's kernels at a time
leaves most of its SMs idle. Stacking the N runs' parameters along a leading dimension and ``torch.func.vmap``-ing
one forward over them turns each conv into one grouped conv of N times the work (vmap's batching rule for
``conv2d`` with batched weights), each BatchNorm into one over N times the channels, and each SGD update into one
over the stacked tensors: N times fewer launches for the same arithmetic. Whether the bigger kernels beat the
permutes vmap adds is a question for the device, so ``se-res2net bench --stacked N ...`` measures it beside the
N-process concurrency bench; the sweep does not train this way.

The stacked step is the N runs' steps exactly, not an approximation: each model sees its own batch (its slice of
the input), BatchNorm normalises each model over its own batch and updates its own running statistics, and the
loss is the *sum* of the per-model mean losses, so each slice of a stacked parameter gets the gradient its model
alone would get, and SGD's momentum and weight decay act element by element on it. ``tests/test_stacked.py``
checks one step against the N separate ones in float64 (equal to rounding) and float32.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Sequence, Tuple

import torch
from torch import nn

__all__ = ["StackedModels", "stacked_train_step"]


class StackedModels(nn.Module):
    """``len(models)`` networks of one architecture as one module (``torch.func.stack_module_state``).

    ``forward(x)`` takes ``x`` of shape ``(N, B, C, H, W)`` (model ``k`` sees ``x[k]``) and returns ``(N, B, classes)``.
    The parameters are ``N``-stacked leaves, so one optimizer over :meth:`parameters` steps every model.
    :meth:`state_dict_of` gives model ``k``'s weights in its own architecture's ``state_dict`` layout.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        from torch.func import stack_module_state

        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("StackedModels needs at least one model")
        kinds = {type(m) for m in models}
        shapes = {tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()) for m in models}
        if len(kinds) != 1 or len(shapes) != 1:
            raise ValueError("StackedModels stacks networks of one architecture; got different types or shapes")
        params, buffers = stack_module_state(models)
        self.n = len(models)
        self._param_names: List[str] = list(params)
        self._buffer_names: List[str] = list(buffers)
        self.stacked_params = nn.ParameterList(nn.Parameter(params[k].detach().clone()) for k in self._param_names)
        for i, k in enumerate(self._buffer_names):
            self.register_buffer(f"stacked_buffer_{i}", buffers[k].clone())
        # the architecture without storage: functional_call runs its code on the stacked tensors' slices. Kept
        # in a tuple so that nn.Module does not register it (its meta tensors are not this module's state)
        self._skeleton: Tuple[nn.Module] = (copy.deepcopy(models[0]).to(torch.device("meta")),)

    def _tensors(self) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        params = dict(zip(self._param_names, self.stacked_params))
        buffers = {k: getattr(self, f"stacked_buffer_{i}") for i, k in enumerate(self._buffer_names)}
        return params, buffers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call, vmap

        skeleton = self._skeleton[0]
        skeleton.train(self.training)  # train / eval mode decides BatchNorm's behaviour inside functional_call
        params, buffers = self._tensors()

        def one(p: Dict[str, Any], b: Dict[str, Any], xi: torch.Tensor) -> torch.Tensor:
            return functional_call(skeleton, (p, b), (xi,))

        return vmap(one)(params, buffers, x)

    def to_channels_last(self) -> "StackedModels":
        """Each model's 4-d weights in channels-last layout, as ``model.to(memory_format=torch.channels_last)`` lays
        out a single model's. ``nn.Module.to`` cannot do it here: the stacked weights are 5-d (``N`` first), and
        torch's ``channels_last`` takes 4-d tensors only. The layout is per slice (``N``, out, kh, kw, in), so that
        vmap's grouped conv, which flattens ``N`` into the output channels, sees a channels-last weight."""
        with torch.no_grad():
            for p in self.stacked_params:
                if p.dim() == 5:
                    p.data = p.data.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
        return self

    def state_dict_of(self, k: int) -> Dict[str, torch.Tensor]:
        """Model ``k``'s parameters and buffers, keyed as its architecture's ``state_dict``."""
        if not 0 <= k < self.n:
            raise ValueError(f"model index must be in 0..{self.n - 1}, got {k}")
        params, buffers = self._tensors()
        return {name: t[k].detach().clone() for name, t in {**params, **buffers}.items()}


def stacked_train_step(
    model: Any, optimizer: Any, images_uint8: torch.Tensor, labels: torch.Tensor, aug_gen: Any, fast: Any,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`se_res2net.training.trainer.train_step` for a :class:`StackedModels` of ``N`` models.

    ``images_uint8``: ``(N, B, 3, H, W)``, ``labels``: ``(N, B)``, model ``k``'s batch at ``[k]``. The batch is
    augmented as one ``N·B`` batch (one draw per image, as the trainer draws per image). The loss minimised is the
    sum over models of each model's mean cross-entropy, so each model's slice gets its own gradient. Returns the
    per-model mean losses ``(N,)`` and correct predictions ``(N,)`` as device tensors.
    """
    import torch.nn.functional as F

    from .trainer import _autocast, sgd_update, step_input

    n, b = labels.shape
    x = step_input(images_uint8.flatten(0, 1), aug_gen, fast).unflatten(0, (n, b))
    with _autocast(images_uint8.device, fast.bf16):
        out = model(x)
        per_model = F.cross_entropy(out.flatten(0, 1), labels.flatten(), reduction="none").view(n, b).mean(1)
    # sgd_update minimises the sum of the per-model means: each model's slice gets its own gradient
    return sgd_update(optimizer, per_model, fast), (out.detach().argmax(-1) == labels).sum(1)
