"""Checks of what reaches a layer during the walk (private): a ValueError that names the layer
and the arithmetic, before PyTorch would fail deep inside.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import fx, nn

from ._fx import BATCH, where
from ._geometry import per_axis, shape_text
from ._graph import Step
from ._ops import BINARY, CONV, POOL, WINDOW_FUNCS, ZERO_PAD, bind
from .formulas import conv_output_size, format_shape


def module_input(step: Step, x) -> None:
    """Raise a ValueError that names the layer and the arithmetic, before PyTorch would fail."""
    mod = step.module
    if not isinstance(x, torch.Tensor):
        return
    here = f"layer {step.name!r} ({step.kind})"
    if isinstance(mod, nn.Linear) and x.dim() == 2 and x.shape[0] != BATCH:
        raise ValueError(f"{here} gets a ({', '.join(map(str, x.shape))}) tensor whose first "
                         f"axis is not the batch: a reshape before it folds the batch into the "
                         "features (x.view(1, -1)?); flatten each example with x.flatten(1) or "
                         "x.view(x.size(0), -1)")
    if isinstance(mod, nn.Linear) and x.shape[-1] != mod.in_features:
        raise ValueError(f"{here} expects {mod.in_features} inputs but gets {x.shape[-1]} "
                         f"(a {format_shape(tuple(x.shape[1:]))} tensor)")
    if isinstance(mod, CONV) and (x.dim() < 2 or x.shape[1] != mod.in_channels):
        raise ValueError(f"{here} expects {mod.in_channels} input channels but gets "
                         f"{x.shape[1] if x.dim() > 1 else 'a vector'}")
    if isinstance(mod, ZERO_PAD):
        _crop_fits(here, x, mod.padding)
    if isinstance(mod, CONV + POOL) and not isinstance(getattr(mod, "padding", 0), str):
        _fits(here, x, mod.kernel_size, getattr(mod, "stride", None) or mod.kernel_size,
                    getattr(mod, "padding", 0), getattr(mod, "dilation", 1),
                    getattr(mod, "ceil_mode", False))


def function_input(step: Step, args, kwargs) -> None:
    t = step.node.target
    if t not in WINDOW_FUNCS or not args or not isinstance(args[0], torch.Tensor):
        return
    a = bind(WINDOW_FUNCS[t], args, kwargs)
    if "weight" in a:
        kernel, stride = tuple(a["weight"].shape[2:]), a.get("stride", 1)
    else:
        kernel = a["kernel_size"]
        stride = a.get("stride") or kernel
    pad = a.get("padding", 0)
    if not isinstance(pad, str):
        _fits(f"{step.kind} {step.name!r}", args[0], kernel, stride, pad,
                    a.get("dilation", 1), a.get("ceil_mode", False))


def _fits(here: str, x: torch.Tensor, kernel, stride, padding, dilation, ceil) -> None:
    n = x.dim() - 2
    for size, k, s, p, d in zip(x.shape[2:], *(per_axis(v, n) for v in
                                               (kernel, stride, padding, dilation))):
        try:
            conv_output_size(int(size), int(k), int(s), int(p), int(d), bool(ceil))
        except ValueError as err:
            raise ValueError(f"{here} on a {format_shape(tuple(x.shape[1:]))} map: {err}") \
                from None


def _crop_fits(here: str, x: torch.Tensor, pad) -> None:
    """Negative padding crops: it cannot take more cells than a side has."""
    sides = list(x.shape[2:])[::-1]  # PyTorch lists (left, right) pairs from the last axis
    for size, (left, right) in zip(sides, zip(pad[::2], pad[1::2])):
        if size + left + right < 0:
            raise ValueError(f"{here} pads a {size}-cell side by {left} and {right}: a crop of "
                             f"{-min(left, 0) - min(right, 0)} cells, more than it has")


def operands(step: Step, args, steps: dict[fx.Node, Step]) -> None:
    """Tensors added (multiplied, ...) must broadcast: say which, and what they are, before
    PyTorch would fail on them."""
    if step.node.target not in BINARY:
        return
    tensors = [(a, t) for a, t in zip(step.node.args, args) if isinstance(t, torch.Tensor)]
    try:  # NumPy's rule is PyTorch's (whose own broadcast_shapes imports sympy)
        np.broadcast_shapes(*(tuple(t.shape) for _, t in tensors))
    except ValueError:
        live = [a in steps and steps[a].geo.kind != "other" for a, _ in tensors]
        what = " and ".join(f"{steps[a].geo.kind} {shape_text(t)}" if is_live else
                            f"a constant of shape {tuple(t.shape)}"
                            for (a, t), is_live in zip(tensors, live))
        advice = "flatten maps of the same shape, the same way" if all(live) else \
            "give the constant one value per channel (or per class of the scores)"
        raise ValueError(f"{where(step.node)} combines tensors that do not line up ({what}): "
                         f"{advice}") from None


def nonempty(step: Step) -> None:
    """A layer that leaves a map with no cells (a crop or a stride past the end of a small
    input): the input is too small, whatever comes after."""
    if step.out is not None and 0 in step.out[1:]:
        raise ValueError(f"{where(step.node, step.name)} leaves an empty "
                         f"{format_shape(step.out[1:])} tensor: the input is too small for it")
