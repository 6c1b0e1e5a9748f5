"""Checks of exercises/03_weight_reshaping_exercises.ipynb (03.2's module needs PyTorch)."""

from __future__ import annotations

import numpy as np

from . import wire
from .core import CONV2D, Plan, array, check, close, compare, describe, layers, output_close, probed
from .n01 import NO_FC_TO_CONV, filters_plan


@check("03.1", forbids=NO_FC_TO_CONV)
def keras_to_torch_filters(rng):
    """fn(weight (K, H*W*C) learned in Keras, in_shape (C, H, W)) -> PyTorch filters (K, C, H, W)."""
    return filters_plan(rng, "hwc")


def _per_position(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The Linear applied at every position of a map: x (B, N, h, w) -> (B, K, h, w)."""
    return np.einsum("kn,bnhw->bkhw", weight, x) + bias[None, :, None, None]


@check("03.2", forbids=("fcconv.conversions.linear_to_conv", "fcconv.fcn.convolutionalize"),
       needs_torch=True)
def fc7_as_conv(rng):
    """fn(linear nn.Linear(N, K)) -> a module that computes, at every position of a map (B, N, h,
    w), what the Linear computes on a vector: a 1x1 convolution."""
    sizes = [(8, 5), tuple(int(v) for v in rng.integers(2, 17, 2))]
    calls, inputs = [], []
    for n, k in sizes:
        bound = 1 / np.sqrt(n)
        state = {"weight": rng.uniform(-bound, bound, (k, n)), "bias": rng.uniform(-bound, bound, k)}
        calls.append((wire.Module("torch.nn.Linear", (n, k), state),))
        inputs.append([rng.standard_normal((3, n, 1, 1)), rng.standard_normal((2, n, 2, 3))])

    def judge(answers: list) -> str | None:
        for (linear,), xs, got in zip(calls, inputs, answers):
            w, b = linear.state["weight"], linear.state["bias"]
            wants = [_per_position(x, w, b) for x in xs]
            if all(output_close(got, i, want, len(b) + 1) for i, want in enumerate(wants)):
                continue
            return _fc7_hint(got, w, b, wants)
        return None
    return Plan(calls, judge, probed, probe=inputs)


def _fc7_hint(got: wire.Probed, w: np.ndarray, b: np.ndarray, wants: list) -> str:
    """Why the module differs from the Linear: the first thing about its conv that is wrong."""
    (k, n), convs = w.shape, layers(got, CONV2D)
    first = got.outputs[0]
    if not convs:
        return f"return an nn.Conv2d; got {got.facts.get('type')}."
    conv = convs[0]
    attrs, params = conv.get("attrs", {}), conv.get("params", {})
    if tuple(attrs.get("kernel_size", ())) != (1, 1):
        return f"after fc6 the map is 1x1: the kernel must be 1x1, not {attrs.get('kernel_size')}."
    if tuple(attrs.get("padding", (0, 0))) != (0, 0):
        side = 1 + 2 * attrs["padding"][0] if isinstance(attrs["padding"], tuple) else "?"
        return f"with padding={attrs['padding']} a 1x1 map grows to {side}x{side}: a 1x1 conv " \
               "needs no padding (padding=0, the default)."
    if tuple(attrs.get("stride", (1, 1))) != (1, 1):
        return f"with stride={attrs['stride']} the conv skips positions of a bigger map: a 1x1 " \
               "conv standing for an FC layer has stride 1."
    weight, bias = params.get("weight"), params.get("bias")
    if not isinstance(weight, np.ndarray) or weight.size != w.size or not close(weight.reshape(k, n), w):
        return "the weights were not copied: conv.weight must hold linear.weight reshaped to " \
               f"(K, N, 1, 1) = {(k, n, 1, 1)}."
    if bias is None:
        return "the conv has no bias: create it with bias=True (the default), then copy " \
               "linear.bias into it."
    if not close(bias, b):
        return "the weights are there but the bias was not copied."
    if isinstance(first, wire.Raised) or not output_close(got, 0, wants[0], n + 1):
        return f"on a (3, {n}, 1, 1) input your module gives {describe(first)}, not the " \
               "Linear's outputs: copy linear.weight reshaped to (K, N, 1, 1) and linear.bias."
    return f"on a 1x1 map your module matches the Linear, but on a {wants[1].shape[2]}x" \
           f"{wants[1].shape[3]} map it must compute the Linear at every position, as a 1x1 " \
           "conv does."


def positions(channel: int, in_shape, order: str) -> np.ndarray:
    """Where channel ``channel``'s (H, W) slice sits in the flattened input, for order 'chw' or
    'hwc' (computed by flattening an index cube, not by the formula the exercise asks for)."""
    c, h, w = in_shape
    index = np.arange(c * h * w)
    cube = index.reshape(c, h, w) if order == "chw" else index.reshape(h, w, c).transpose(2, 0, 1)
    return cube[channel]


def _step(a: np.ndarray, axis: int) -> str:
    """How far apart neighbouring positions are along ``axis`` ('-' if there is one pixel)."""
    d = np.diff(a, axis=axis)
    return f"{d.flat[0]:g}" if d.size else "-"


def _h_w_swapped(channel: int, in_shape, order: str) -> np.ndarray:
    """The positions with H and W swapped in the flatten (x runs slowest, y fastest)."""
    c, h, w = in_shape
    y, x = np.mgrid[0:h, 0:w]
    return channel * h * w + x * h + y if order == "chw" else (x * h + y) * c + channel


@check("03.3")
def slice_positions(rng):
    """fn(channel, in_shape (C, H, W), order) -> the flattened-input positions (H, W) of that
    channel's slice."""
    shapes = [(4, 3, 5), (2, 5, 4)]
    while len(shapes) < 4:
        c, h, w = (int(v) for v in rng.integers(2, 7, 3))
        if h != w:
            shapes.append((c, h, w))
    cases = [(ch, s, order) for s in shapes for order in ("chw", "hwc") for ch in range(s[0])]

    def hint(got, want, ch, in_shape, order):
        c, h, w = in_shape
        where = f"channel {ch} of a {c}x{h}x{w} volume in {order.upper()} order"
        if got.shape != want.shape:
            return f"{where}: return an (H, W) = {want.shape} array of positions; yours has " \
                   f"shape {got.shape}."
        if got[0, 0] != want[0, 0]:
            return f"{where} starts at position {want[0, 0]}; yours starts at {got[0, 0]:g}."
        return f"{where}: the next pixel along a row is {_step(want, 1)} positions on and the " \
               f"next row {_step(want, 0)} positions on; yours step by {_step(got, 1)} and " \
               f"{_step(got, 0)}."

    def swapped_h_w(got, want, ch, in_shape, order):
        return hint(got, want, ch, in_shape, order)[:-1] + ": did you swap H and W?"
    mistakes = [
        (lambda ch, s, o: positions(ch, s, "chw"),
         "in H,W,C order a channel is not one block: its numbers sit every C-th position."),
        (lambda ch, s, o: positions(ch, s, "hwc" if o == "chw" else "chw"),
         "you swapped the two orders: in 'chw' (PyTorch) a channel is one block of H*W positions; "
         "in 'hwc' (Keras) its positions are C apart."),
        (_h_w_swapped, swapped_h_w),
    ]
    return compare(cases, positions, hint, array, close, mistakes)
