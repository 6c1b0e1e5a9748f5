"""One layer at a time: a Linear as the conv that computes the same numbers, and back.

A Linear on a flattened (C, H, W) volume is a conv whose kernel covers the whole volume
(``linear_to_conv``); any conv on a fixed input is a Linear whose matrix is sparse and
weight-shared (``conv_to_linear``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import numpy_ops
from ._model import uninitialised
from .formulas import checked_bool, checked_shape

Shape = tuple[int, ...]


def expect(obj, cls, name: str) -> None:
    """TypeError naming the argument when ``obj`` is not a ``cls``."""
    if not isinstance(obj, cls):
        where = "torch.nn" if issubclass(cls, nn.Module) else "torch"
        raise TypeError(f"{name} must be a {where}.{cls.__name__}; got {type(obj).__name__}")


def expect_input(model: nn.Module, x: torch.Tensor, name: str = "model") -> None:
    """ValueError when ``x`` cannot go through ``model``: a real tensor for a model on the meta
    device (shapes, no weights; every parameter and buffer is looked at), or another dtype or
    device than its weights."""
    tensors = [(n, t) for n, t in (*model.named_parameters(), *model.named_buffers())
               if t is not None and t.is_floating_point()]
    if not tensors:
        return
    meta = [n for n, t in tensors if t.is_meta]
    if x.is_meta:
        if len(meta) < len(tensors):
            raise ValueError(f"the image is on the meta device (a shape, no values) but {name} "
                             "has weights: pass a real image (fcconv.trace follows shapes)")
        return
    if meta:
        some = "" if len(meta) == len(tensors) else f" (in part: {', '.join(meta[:3])})"
        raise ValueError(f"{name} is on the meta device{some}: it has shapes but no weights, so "
                         "it cannot score a real image (fcconv.trace works on it); build it on "
                         "the CPU (device='cpu')")
    w = tensors[0][1]
    if not x.is_floating_point():
        raise TypeError(f"the image must hold floating-point values; got {x.dtype} "
                        f"(image.to({w.dtype}) converts it)")
    if x.dtype != w.dtype:
        raise ValueError(f"the image is {x.dtype} but {name}'s weights are {w.dtype}: convert "
                         f"one (image.to({w.dtype}) or {name}.to({x.dtype}))")
    if x.device != w.device:
        raise ValueError(f"the image is on {x.device} but {name}'s weights are on {w.device}: "
                         f"move one (image.to('{w.device}'))")


def spelled(shape: Shape) -> str:
    """(512, 7, 7) -> '25088 = 512x7x7' (C x H x W, PyTorch's flatten order)."""
    return f"{math.prod(shape)} = " + "x".join(map(str, shape))


# oneDNN, PyTorch's default CPU convolution, copies the weight into a layout of its own at every
# call: for a converted Linear that copy is the whole matrix (411 MB for VGG16's fc6: the
# kernel's peak memory) and costs more than the product itself. A conv made from a Linear runs
# on PyTorch's own kernel instead (unfold, then one matrix product: the same numbers up to the
# order of the float sums). Hooks, not a subclass: it stays a plain nn.Conv2d to print and trace.
_onednn_was: list[bool] = []


def _onednn_off(module, args) -> None:
    _onednn_was.append(torch.backends.mkldnn.enabled)
    torch.backends.mkldnn.enabled = False  # (its flags() context would also set TF32: a warning)


def _onednn_back(module, args, output) -> None:
    torch.backends.mkldnn.enabled = _onednn_was.pop()


# fcconv's walk follows forward() only and refuses a layer with hooks unless they change no value
# (fcconv_checks_only): these two change only which kernel computes the same numbers.
_onednn_off.fcconv_checks_only = _onednn_back.fcconv_checks_only = True


def without_onednn(conv: nn.Module) -> nn.Module:
    """``conv`` (in place), made to run without oneDNN: no copy of its weight at each call."""
    conv.register_forward_pre_hook(_onednn_off)
    conv.register_forward_hook(_onednn_back, always_call=True)  # an error inside: restored too
    return conv


def linear_to_conv(linear: nn.Linear, in_shape, order: str = "chw",
                   share_weights: bool = False) -> nn.Module:
    """A Linear on a flattened (C, H, W) volume as the conv that computes the same numbers.

    in_shape (C, H, W) -> Conv2d(C, K, kernel=(H, W)): x (N, C, H, W) -> (N, K, 1, 1).
    in_shape (C, L) -> Conv1d(C, K, kernel=L); (C,) -> Conv2d(C, K, 1), a 1x1 conv.
    order: the axes in the order the Linear's input was flattened: "chw" for torch.flatten,
    "hwc" for Keras/TensorFlow (channels last), "whc" for x.permute(0, 3, 2, 1).flatten(1), ...
    For (C, L): "chw" (C then L) or "hwc" (L then C).
    share_weights: the conv's weight and bias are views of the Linear's (the same memory, no
    copy: a change to one shows in the other); by default they are copies.
    """
    expect(linear, nn.Linear, "linear")
    checked_bool("share_weights", share_weights)
    uninitialised(linear, "linear")
    if type(linear).forward is not nn.Linear.forward:
        raise ValueError(f"linear is a {type(linear).__name__}, whose forward is its own, not "
                         "nn.Linear's: a conv holding its weight would compute something else")
    shape = checked_shape("in_shape", in_shape)
    numpy_ops.check_order(order)
    if linear.in_features != math.prod(shape):
        raise ValueError(f"Linear expects {linear.in_features} inputs but in_shape "
                         f"{'x'.join(map(str, shape))} gives {spelled(shape)}")
    k, w = linear.out_features, linear.weight.detach()
    # Built on the meta device (no memory, no init), then given the Linear's tensors: views if
    # shared, else copies.
    if len(shape) == 2:
        if order not in ("chw", "hwc"):
            raise ValueError(f"a (C, L) input is flattened 'chw' (C then L) or 'hwc' (L then C); "
                             f"got order {order!r}")
        c, length = shape
        conv = nn.Conv1d(c, k, length, bias=linear.bias is not None, device="meta",
                         dtype=w.dtype)
        weight = w.reshape(k, c, length) if order == "chw" else \
            w.reshape(k, length, c).permute(0, 2, 1)
    else:
        c, h, wd = shape if len(shape) == 3 else (shape[0], 1, 1)
        conv = nn.Conv2d(c, k, (h, wd), bias=linear.bias is not None, device="meta",
                         dtype=w.dtype)
        sizes = {"c": c, "h": h, "w": wd}
        weight = w.reshape(k, *(sizes[a] for a in order)).permute(numpy_ops.to_chw(order))
    if share_weights:  # splitting the input axis (then permuting) is always a view, never a copy
        conv.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
        if linear.bias is not None:
            conv.bias = nn.Parameter(linear.bias.detach(), requires_grad=linear.bias.requires_grad)
    else:
        conv.weight = nn.Parameter(weight.clone(memory_format=torch.contiguous_format))
        if linear.bias is not None:
            conv.bias = nn.Parameter(linear.bias.detach().clone())
    conv.train(linear.training)
    return without_onednn(conv)


def conv_to_linear(conv: nn.Conv2d, in_shape) -> nn.Linear:
    """Any Conv2d on a fixed (C, H, W) input as one Linear: its dense, weight-shared matrix.

    x.flatten(1) (N, C*H*W) -> (N, K*H'*W'), equal to conv(x).flatten(1). Groups, stride,
    dilation, padding='same' or 'valid', and every padding_mode: a padded pixel that copies an
    image pixel (reflect, replicate, circular) adds its weight to that pixel's column.
    """
    expect(conv, nn.Conv2d, "conv")
    uninitialised(conv, "conv")
    if type(conv).forward is not nn.Conv2d.forward or \
            type(conv)._conv_forward is not nn.Conv2d._conv_forward:
        raise ValueError(f"conv is a {type(conv).__name__}, whose forward is its own, not "
                         "nn.Conv2d's (a weight standardised, a padding of its own): the matrix "
                         "of its weight would compute something else")
    c, h, w = checked_shape("in_shape", in_shape, (3,))
    if conv.in_channels != c:
        raise ValueError(f"conv expects {conv.in_channels} input channels but in_shape has {c}")
    if conv.weight.is_meta:
        raise ValueError("conv is on the meta device: it has shapes but no weights to put in a "
                         "matrix; build it on the CPU (device='cpu')")
    weight = _ungrouped(conv).numpy()
    (top, bottom), (left, right) = _pads(conv)
    if conv.padding_mode == "zeros" and (top, left) == (bottom, right):
        m = numpy_ops.conv_matrix(weight, (c, h, w), conv.stride, (top, left), conv.dilation)
    else:  # pad an image of pixel numbers the same way: each padded cell says whose copy it is
        numbers = torch.arange(1, c * h * w + 1, dtype=torch.float64).reshape(1, c, h, w)
        mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        try:
            padded = F.pad(numbers, (left, right, top, bottom), mode=mode)[0]
        except (RuntimeError, ValueError) as err:  # reflect / circular beyond the input's side
            raise ValueError(f"conv cannot pad a {h}x{w} input with padding_mode="
                             f"{conv.padding_mode!r} by {conv.padding}: "
                             f"{str(err).strip().splitlines()[0]}") from None
        source = padded.reshape(-1).long().numpy() - 1          # -1: zero padding
        m_padded = numpy_ops.conv_matrix(weight, tuple(padded.shape), conv.stride, 0,
                                         conv.dilation)   # (it checks its size; m is smaller)
        m = np.zeros((m_padded.shape[0], c * h * w), dtype=weight.dtype)
        inside = source >= 0
        np.add.at(m, (slice(None), source[inside]), m_padded[:, inside])
    positions = m.shape[0] // conv.out_channels
    fc = nn.Linear(m.shape[1], m.shape[0], bias=conv.bias is not None,
                   device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(m))
        if conv.bias is not None:  # one bias per channel, repeated at every position
            fc.bias.copy_(conv.bias.repeat_interleave(positions))
    return fc


def _ungrouped(conv: nn.Conv2d) -> torch.Tensor:
    """The weight as (K, C, kh, kw) in float64, zeros where a filter does not see a channel
    (groups: filter k sees only the channels of its group)."""
    weight = conv.weight.detach().cpu().double()
    if conv.groups == 1:
        return weight
    k, per, *kernel = weight.shape
    full = torch.zeros(k, per * conv.groups, *kernel, dtype=torch.float64)
    out_per = k // conv.groups
    for g in range(conv.groups):
        full[g * out_per:(g + 1) * out_per, g * per:(g + 1) * per] = \
            weight[g * out_per:(g + 1) * out_per]
    return full


def _pads(conv: nn.Conv2d) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) as PyTorch pads: 'same' puts the odd one on the right."""
    if conv.padding == "valid":
        return (0, 0), (0, 0)
    if conv.padding == "same":
        totals = [d * (k - 1) for k, d in zip(conv.kernel_size, conv.dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    return tuple((p, p) for p in conv.padding)
