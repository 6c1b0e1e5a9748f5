"""Checks of exercises/01_fc_is_a_convolution_exercises.ipynb (NumPy only: they work without PyTorch)."""

from __future__ import annotations

import numpy as np

from ...numpy_ops import conv2d
from ...numpy_ops import fc_to_conv_weight as _reference
from .core import FLOAT32, array, check, close, closeness, compare, float32_only

NO_FC_TO_CONV = ("fcconv.numpy_ops.fc_to_conv_weight", "fcconv.conversions.linear_to_conv")


def weight_cases(rng: np.random.Generator, n: int) -> list[tuple]:
    """(weight (K, C*H*W), in_shape (C, H, W)): a fixed case where K, C, H, W all differ (so
    that every named mistake shows), then ``n`` random ones with H != W."""
    shapes = [(2, 3, 2, 4)]
    while len(shapes) < n + 1:
        k, c, h, w = (int(v) for v in rng.integers(2, 7, size=4))
        if h != w:
            shapes.append((k, c, h, w))
    return [(rng.standard_normal((k, c * h * w)), (c, h, w)) for k, c, h, w in shapes]


# order asked -> (the hint for an answer in the other order, where the numbers go)
ORDER_HINTS = {
    "chw": ("your filter has the channels last: did you flatten H,W,C? PyTorch flattens C, then "
            "H, then W.", "row i of the matrix, cut into C slices of H x W, is filter i."),
    "hwc": ("that is the PyTorch (C,H,W) reshape: a Keras weight was flattened H,W,C, so reshape "
            "to (K, H, W, C) and move C to axis 1.",
            "reshape to (K, H, W, C) as Keras flattened it, then move C to axis 1."),
}


def _reshaped(weight, in_shape, order: str, swap_hw: bool = False, fortran: bool = False,
              transposed: bool = False, keep: bool = False):
    """Filters from an FC weight as a learner might reshape it: flattened in ``order``, with H and
    W swapped, in Fortran order, from the transposed matrix; ``keep``: the axes left as reshaped."""
    (c, h, w), k = in_shape, len(weight)
    h, w = (w, h) if swap_hw else (h, w)
    source = weight.T if transposed else weight
    shape = (k, c, h, w) if order == "chw" else (k, h, w, c)
    out = source.reshape(shape, order="F" if fortran else "C")
    if order == "hwc":
        out = out.transpose(0, 3, 1, 2)
    return out if keep or not swap_hw else out.transpose(0, 1, 3, 2)


def filter_mistakes(order: str) -> list:
    """The ways to get an FC weight's filters wrong, each with its hint (01.1, 03.1)."""
    other = "hwc" if order == "chw" else "chw"
    swap = "you swapped H and W: in_shape is (C, H, W), rows (H) before columns (W)." \
        if order == "chw" else "you reshaped to (K, W, H, C): Keras flattens H first, then W, then " \
                               "C, so reshape to (K, H, W, C), then move C to axis 1."
    return [
        (lambda wt, s: _reference(wt, s, other), ORDER_HINTS[order][0]),
        (lambda wt, s: _reshaped(wt, s, order, swap_hw=True), swap),
        (lambda wt, s: _reshaped(wt, s, order, swap_hw=True, keep=True), swap),
        (lambda wt, s: _reference(wt, s, order)[:, :, ::-1, ::-1],
         "your filters are flipped: an FC layer is a cross-correlation, like PyTorch's conv, so "
         "nothing is flipped; only reshape."),
        (lambda wt, s: _reshaped(wt, s, order, transposed=True),
         "you transposed the weight first: its rows are already the K neurons, (K, C*H*W); "
         "reshape it as it is."),
        (lambda wt, s: _reshaped(wt, s, order, fortran=True),
         "order='F' fills the first axis fastest, but the weight was flattened in C order (last "
         "axis fastest, NumPy's and PyTorch's default): reshape without order='F'."),
    ]


def filters_plan(rng: np.random.Generator, order: str):
    """The plan of 01.1 and 03.1: fn(weight, in_shape) -> filters (K, C, H, W)."""
    def hint(got, want, weight, in_shape):
        if got.shape != want.shape:
            return f"for {len(weight)} neurons on a (C, H, W) = {in_shape} volume the filters " \
                   f"have shape {want.shape} (K, C, H, W); yours have {got.shape}."
        return f"the shape is right but the numbers are in the wrong places: {ORDER_HINTS[order][1]}"
    return compare(weight_cases(rng, 4), lambda wt, s: _reference(wt, s, order), hint, array,
                   close, filter_mistakes(order))


@check("01.1", forbids=NO_FC_TO_CONV)
def fc_to_conv_weight(rng):
    """fn(weight (K, C*H*W), in_shape (C, H, W)) -> filters (K, C, H, W), PyTorch order."""
    return filters_plan(rng, "chw")


def _fc(x, weight, bias, order="chw"):
    """The FC layer through the convolution the exercise asks for: (N, K)."""
    return conv2d(x, _reference(weight, x.shape[1:], order), bias)[:, :, 0, 0]


@check("01.2", forbids=("fcconv.numpy_ops.linear", "@matmul"),
       requires=("fcconv.numpy_ops.conv2d", "@convolution"), required="numpy_ops.conv2d")
def linear_via_conv(rng):
    """fn(x (N, C, H, W), weight (K, C*H*W), bias (K,)) -> (N, K), using a convolution."""
    shapes = [(2, 3, 2, 3, 2)] + [tuple(int(v) for v in rng.integers(1, 5, size=5)) for _ in range(4)]
    cases = [(rng.standard_normal((n, c, h, w)), rng.standard_normal((k, c * h * w)),
              rng.standard_normal(k)) for n, k, c, h, w in shapes]
    terms = 1 + max(x[0].size for x, _, _ in cases)  # a sum of C*H*W products, and the bias

    def hint(got, want, x, weight, bias):
        if float32_only(got, want, terms):
            return FLOAT32
        if got.shape != want.shape:
            return f"for x of shape {x.shape} the FC output is {want.shape} (N, K); yours is " \
                   f"{got.shape}."
        return "the shape is right but the numbers differ: filter k is row k of the weight " \
               "reshaped to (C, H, W), and the bias is added once."
    mistakes = [
        (lambda x, wt, b: _fc(x, wt, b) - b, "you forgot the bias."),
        (lambda x, wt, b: _fc(x, wt, b) + b,
         "you added the bias twice: conv2d(x, filters, bias) adds it already."),
        (lambda x, wt, b: _fc(x, wt, b).T,
         "your output is (K, N): an FC layer returns (N, K), one row per example."),
        (lambda x, wt, b: _fc(x, wt, b)[:, :, None, None],
         "the numbers are right but the shape is (N, K, 1, 1): flatten the 1x1 map to (N, K), as "
         "an FC layer returns."),
        (lambda x, wt, b: _fc(x, wt, b, "hwc"),
         "you reshaped the weight in H,W,C order: PyTorch flattens C, then H, then W."),
    ]
    return compare(cases, _fc, hint, array, closeness(terms), mistakes)


@check("01.3", forbids=NO_FC_TO_CONV)
def fc_to_1x1(rng):
    """fn(weight (K, N)) -> 1x1 conv filters (K, N, 1, 1)."""
    shapes = [(3, 8)] + [tuple(int(v) for v in rng.integers(1, 9, size=2)) for _ in range(4)]
    cases = [(rng.standard_normal(shape),) for shape in shapes]

    def hint(got, want, weight):
        if got.shape != want.shape:
            return f"for a weight of shape {weight.shape} (K, N) the filters have shape " \
                   f"{want.shape} (K, N, 1, 1); yours have {got.shape}."
        return "the shape is right but the numbers moved: filter k, channel n must hold " \
               "weight[k, n]."
    mistakes = [
        (lambda w: w.T[:, :, None, None],
         "you swapped outputs and inputs: a conv weight is (out, in, kh, kw)."),
        (lambda w: w.T.reshape(*w.shape, 1, 1),
         "you transposed the weight before reshaping: it is (K, N) = (out, in) already; only add "
         "the two 1x1 axes: weight[:, :, None, None]."),
    ]
    return compare(cases, lambda w: w[:, :, None, None], hint, array, close, mistakes)
