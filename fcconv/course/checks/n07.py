"""Checks of exercises/07_conv_to_fc_exercises.ipynb (NumPy only: they work without PyTorch)."""

from __future__ import annotations

import numpy as np

from ...formulas import conv_output_size
from ...numpy_ops import conv2d, conv_matrix
from .core import FLOAT32, Plan, check, close, compare, float32_only, ints, matrix


@check("07.1", forbids=("fcconv.numpy_ops.conv_matrix_entries", "fcconv.numpy_ops.conv_matrix"))
def conv_matrix_shape(rng):
    """fn(weight_shape (K, C, kh, kw), in_shape (C, H, W), stride, padding) -> (rows, cols)."""
    cases = [((64, 3, 3, 3), (3, 224, 224), 1, 1), ((8, 2, 5, 5), (2, 20, 16), 2, 0),
             ((4, 3, 3, 3), (3, 9, 9), 3, 1)]
    while len(cases) < 10:
        k, c, kernel, s, p = (int(v) for v in rng.integers(1, [65, 9, 8, 4, 4]))
        h, w = (int(v) for v in rng.integers(kernel, 300, 2))
        cases.append(((k, c, kernel, kernel), (c, h, w), s, p))

    def outputs(ws, ins, s, p):
        return conv_output_size(ins[1], ws[2], s, p) * conv_output_size(ins[2], ws[3], s, p)

    def want(ws, ins, s, p):
        return ws[0] * outputs(ws, ins, s, p), ins[0] * ins[1] * ins[2]

    def hint(got, want, ws, ins, s, p):
        return f"for {ws} on {ins}, stride {s}, padding {p}: {want}; you gave {got}."
    mistakes = [
        (lambda ws, ins, s, p: (outputs(ws, ins, s, p), ins[1] * ins[2]),
         "count every channel: rows are K*H'*W', columns C*H*W."),
        (lambda ws, ins, s, p: (ws[0] * outputs(ws, ins, s, p), ins[1] * ins[2]),
         "count every input channel: the columns are the C*H*W input values."),
        (lambda ws, ins, s, p: (outputs(ws, ins, s, p), ins[0] * ins[1] * ins[2]),
         "count every output channel: the rows are the K*H'*W' output values."),
        (lambda ws, ins, s, p: (ws[0] * outputs(ws, ins, s, p),
                                ins[0] * (ins[1] + 2 * p) * (ins[2] + 2 * p)),
         "padding adds no columns: the columns are the input's C*H*W values (the padding's zeros "
         "multiply nothing)."),
        (lambda ws, ins, s, p: want(ws, ins, s, p)[::-1],
         "rows are the outputs (K*H'*W'), columns the inputs (C*H*W): M @ x.ravel() gives the "
         "output."),
    ]
    return compare(cases, want, hint, ints(2), mistakes=mistakes)


def _matrix_of(weight: np.ndarray, in_shape, out_order="kyx", in_order="chw") -> np.ndarray:
    """The conv's matrix, computed from conv2d on every basis image (one column each), with its
    rows or columns in another order as a learner might lay them out."""
    c, h, w = in_shape
    eye = np.eye(c * h * w).reshape(-1, c, h, w)
    m = conv2d(eye, weight).reshape(c * h * w, -1).T  # rows (k, y, x), columns (c, y, x)
    if out_order == "yxk":
        k, oh, ow = weight.shape[0], h - weight.shape[2] + 1, w - weight.shape[3] + 1
        m = m.reshape(k, oh, ow, -1).transpose(1, 2, 0, 3).reshape(k * oh * ow, -1)
    if in_order == "yxc":
        m = m.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(len(m), -1)
    return m


@check("07.2", forbids=("fcconv.numpy_ops.conv_matrix", "fcconv.numpy_ops.conv_matrix_entries",
                         "fcconv.numpy_ops._tap_positions", "fcconv.numpy_ops.conv2d",
                         "fcconv.conversions.*", "fcconv.fcn.*", "fcconv.dense.*", "@convolution"))
def my_conv_matrix(rng):
    """fn(weight (K, C, kh, kw), in_shape (C, H, W)) -> M, the conv's matrix given by its entries
    (a NumPy array or a scipy.sparse matrix), with M @ x.ravel() == conv2d(x).ravel() (stride 1,
    no padding), built from the weights without calling a convolution. Judged entry by entry."""
    shapes = [(2, 2, 2, 3, 3, 4)]
    for _ in range(3):
        k, c = (int(v) for v in rng.integers(1, 3, 2))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        shapes.append((k, c, kh, kw, kh + int(rng.integers(0, 4)), kw + int(rng.integers(0, 4))))
    calls = [(rng.standard_normal((k, c, kh, kw)), (c, h, w)) for k, c, kh, kw, h, w in shapes]

    def judge(answers: list) -> str | None:
        for (weight, in_shape), got in zip(calls, answers):
            problem = _matrix_problem(got, weight, in_shape)
            if problem:
                return problem
        return None
    return Plan(calls, judge, matrix)


def _matrix_problem(m: np.ndarray, weight: np.ndarray, in_shape) -> str | None:
    """Why M is not the conv's matrix (None: it is), from its entries."""
    want = _matrix_of(weight, in_shape)
    if m.shape != want.shape:
        return f"M should be {want.shape} (outputs x inputs) for filters {weight.shape} on " \
               f"{tuple(in_shape)}; yours is {m.shape}."
    if close(m, want):
        return None
    if float32_only(m, want):
        return FLOAT32
    for order, says in (
            (dict(out_order="yxk"), "your rows are ordered by position first, (y, x, k): "
                                    "conv2d's output is flattened as (K, H', W'), so row "
                                    "(k*H' + y)*W' + x holds filter k at (y, x)."),
            (dict(in_order="yxc"), "your columns are in (H, W, C) order: x.ravel() is (C, H, W), "
                                   "so column (c*H + y)*W + x is input channel c at (y, x).")):
        if close(m, _matrix_of(weight, in_shape, **order)):
            return says
    flipped = conv_matrix(weight[:, :, ::-1, ::-1].copy(), in_shape)
    if weight.shape[2] * weight.shape[3] > 1 and close(m, flipped):
        return "your filter is flipped: PyTorch's conv is a cross-correlation."
    return "M @ x differs from conv2d(x): row r holds the filter at output r's patch, column " \
           "index (c*H + y)*W + x."


@check("07.3")
def locally_connected_params(rng):
    """fn(size, kernel, stride, padding) -> weights of a locally connected layer (1 channel in,
    1 out, no bias): one weight per input each output position really sees."""
    cases = [(size, *ksp) for size in (5, 8, 11) for ksp in ((3, 1, 0), (3, 1, 1), (2, 2, 0), (3, 2, 1))]
    while len(cases) < 22:
        size, kernel, stride, padding = (int(v) for v in rng.integers([2, 1, 1, 0], [40, 6, 4, 3]))
        if kernel <= size + 2 * padding and padding < kernel:
            cases.append((size, kernel, stride, padding))

    def want(size, kernel, stride, padding):
        m = conv_matrix(np.ones((1, 1, kernel, kernel)), (1, size, size), stride, padding)
        return int(np.count_nonzero(m))

    def hint(got, want, size, kernel, stride, padding):
        return f"size {size}, kernel {kernel}, stride {stride}, padding {padding}: {want}; you " \
               f"gave {got}."
    mistakes = [
        (lambda n, k, s, p: conv_output_size(n, k, s, p) ** 2 * k * k,
         "windows that overlap the padding see fewer real pixels: padding taps have no weight."),
        (lambda n, k, s, p: k * k,
         "that is a conv's count, one shared filter: a locally connected layer has its own "
         "weights at every output position."),
    ]
    return compare(cases, want, hint, mistakes=mistakes)
