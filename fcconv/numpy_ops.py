"""The layers of a classifier in plain NumPy (NCHW arrays, float32 or float64).

Convolution is im2col plus one matrix product: ``sliding_window_view`` gives every kh x kw patch
as a view (no copy), and ``tensordot`` contracts each patch with every filter. An FC layer is the
same dot product with one patch that covers the whole input: that is the course in one line.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .formulas import checked_shape, conv_output_size

# How a (C, H, W) map was flattened: PyTorch reads C,H,W; Keras/TensorFlow H,W,C; a weight read
# column by column (MTCNN's R-Net and O-Net, converted from TensorFlow) W,H,C. Any order of the
# three axes is a valid flatten.
ORDERS = ("chw", "hwc", "whc", "cwh", "hcw", "wch")
MAX_BYTES = 2 * 1024**3  # the most one call may allocate: a laptop's memory, with room to spare


# --------------------------------------------------------------------------- argument checks

def _array(name: str, a, ndim: int, meaning: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array {meaning}; got {type(a).__name__}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {meaning}; got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"{name} must be float32 or float64; got {a.dtype}")
    return a


def _pair(name: str, v, minimum: int) -> tuple[int, int]:
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(pair) != 2 or any(isinstance(p, bool) or not isinstance(p, (int, np.integer))
                             for p in pair):
        raise TypeError(f"{name} must be an int or a pair of ints; got {v!r}")
    if any(p < minimum for p in pair):
        raise ValueError(f"{name} must be >= {minimum}; got {v!r}")
    return int(pair[0]), int(pair[1])


def check_order(order) -> str:
    """``order`` if it names the three axes in flatten order: "chw" (PyTorch), "hwc"
    (Keras/TensorFlow), "whc" (column by column), ...; ValueError otherwise."""
    if not isinstance(order, str) or order not in ORDERS:
        raise ValueError(f"order must be 'chw' (PyTorch), 'hwc' (Keras/TensorFlow) or another "
                         f"order of the letters c, h, w (e.g. 'whc'); got {order!r}")
    return order


def to_chw(order: str) -> tuple[int, int, int, int]:
    """The axes that take a (K, *axes in ``order``) array to (K, C, H, W): for np.transpose."""
    return (0, *(1 + check_order(order).index(a) for a in "chw"))


def _in_shape(in_shape) -> tuple[int, int, int]:
    return checked_shape("in_shape", in_shape, (3,))


def _bias(bias, k: int) -> np.ndarray:
    bias = _array("bias", bias, 1, "(K,)")
    if bias.shape[0] != k:
        raise ValueError(f"bias must have one entry per output channel, ({k},); got shape "
                         f"{bias.shape}")
    return bias


def _affordable(parts: dict[str, int], itemsize: int, advice: str) -> None:
    """Refuse before allocating: what one call holds at once (``parts``: what -> values) would
    exceed MAX_BYTES, or NumPy would fail deep inside. Each part, then all of them together."""
    for what, n_values in parts.items():
        if n_values * itemsize > MAX_BYTES:
            raise ValueError(f"{what} would need {_human_bytes(n_values * itemsize)} of memory "
                             f"(the limit is {_human_bytes(MAX_BYTES)}); {advice}")
    total = sum(parts.values()) * itemsize
    if total > MAX_BYTES:
        listed = ", ".join(f"{what} {_human_bytes(v * itemsize)}" for what, v in parts.items()
                           if v)
        raise ValueError(f"this call would hold {_human_bytes(total)} at once ({listed}; the limit "
                         f"is {_human_bytes(MAX_BYTES)}); {advice}")


def _human_bytes(n: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = 1024 ** ("KMGT".index(unit[0]) + 1)
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _out_size(size: int, k: int, s: int, p: int, axis: str, d: int = 1) -> int:
    try:
        return conv_output_size(size, k, s, p, d)
    except ValueError as err:
        raise ValueError(f"{axis}: {err}") from None


# --------------------------------------------------------------------------- layers

def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
           stride=1, padding=0) -> np.ndarray:
    """Cross-correlation, as PyTorch's conv2d: x (N, C, H, W), weight (K, C, kh, kw) -> (N, K, H', W').

    H' = (H + 2*padding - kh) // stride + 1. bias: (K,) or None.
    """
    x = _array("x", x, 4, "(N, C, H, W)")
    weight = _array("weight", weight, 4, "(K, C, kh, kw)")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"weight expects {weight.shape[1]} input channels but x has {x.shape[1]} "
                         f"(x {x.shape}, weight {weight.shape})")
    if x.shape[1] == 0:  # PyTorch answers an empty (N, 0, H', W'), not K maps of the bias
        raise ValueError(f"x has no channels (shape {x.shape}): a convolution over 0 channels "
                         "has nothing to sum, and PyTorch gives no output channels for it")
    (sh, sw), (ph, pw) = _pair("stride", stride, 1), _pair("padding", padding, 0)
    (n, c, h, w), (k, _, kh, kw) = x.shape, weight.shape
    oh, ow = _out_size(h, kh, sh, ph, "height"), _out_size(w, kw, sw, pw, "width")
    if bias is not None:
        bias = _bias(bias, k)
    # What NumPy holds at once: the padded copy, the patches (tensordot copies the strided view
    # into one matrix), the output and its (N, K, H', W') copy.
    _affordable({f"padding {h}x{w} by {ph},{pw}": n * c * (h + 2 * ph) * (w + 2 * pw) if ph or pw
                 else 0,
                 f"the {n * oh * ow:,} patches of {c}x{kh}x{kw}": n * c * oh * ow * kh * kw,
                 f"the output of {n}x{k}x{oh}x{ow} (and its copy)": 2 * n * k * oh * ow},
                max(x.itemsize, weight.itemsize), "use a smaller input, fewer filters or padding")
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    patches = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # (N,C,H',W',kh,kw)
    out = np.tensordot(patches, weight, axes=([1, 4, 5], [1, 2, 3]))           # (N,H',W',K)
    if bias is not None:
        out = out + bias
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Fully connected layer: x (N, D), weight (K, D), bias (K,) -> (N, K) = x @ weight.T + bias."""
    x = _array("x", x, 2, "(N, D)")
    weight = _array("weight", weight, 2, "(K, D)")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"Linear expects {weight.shape[1]} inputs but x has {x.shape[1]} "
                         f"(x {x.shape}, weight {weight.shape})")
    _affordable({f"the output of {x.shape[0]}x{weight.shape[0]} (and its copy with the bias)":
                 2 * x.shape[0] * weight.shape[0]}, max(x.itemsize, weight.itemsize),
                "use fewer examples or outputs")
    out = x @ weight.T
    return out if bias is None else out + _bias(bias, weight.shape[0])


def max_pool2d(x: np.ndarray, kernel, stride=None) -> np.ndarray:
    """Max over kernel windows (floor mode): x (N, C, H, W) -> (N, C, H', W').

    stride defaults to the kernel (non-overlapping windows).
    """
    x = _array("x", x, 4, "(N, C, H, W)")
    kh, kw = _pair("kernel", kernel, 1)
    sh, sw = _pair("stride", kernel if stride is None else stride, 1)
    oh, ow = _out_size(x.shape[2], kh, sh, 0, "height"), _out_size(x.shape[3], kw, sw, 0, "width")
    n, c = x.shape[:2]
    _affordable({f"the output of {n}x{c}x{oh}x{ow}": n * c * oh * ow}, x.itemsize,
                "use a smaller input or a larger stride")
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return windows.max(axis=(4, 5))


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), elementwise; any shape."""
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"x must be a NumPy array of numbers; got {type(x).__name__}"
                        + (f" of {x.dtype}" if isinstance(x, np.ndarray) else ""))
    return np.maximum(x, 0)


# --------------------------------------------------------------------------- weight reshapes

def fc_to_conv_weight(weight: np.ndarray, in_shape, order: str = "chw") -> np.ndarray:
    """An FC weight (K, C*H*W) as K filters (K, C, H, W): row i of the matrix is filter i.

    order: how the FC's input was flattened, "chw" (PyTorch), "hwc" (Keras/TensorFlow), "whc"...
    """
    weight = _array("weight", weight, 2, "(K, D)")
    c, h, w = _in_shape(in_shape)
    if weight.shape[1] != c * h * w:
        raise ValueError(f"Linear expects {weight.shape[1]} inputs but in_shape {c}x{h}x{w} "
                         f"(C x H x W) gives {c * h * w}")
    sizes = {"c": c, "h": h, "w": w}
    axes = to_chw(order)
    return weight.reshape(weight.shape[0], *(sizes[a] for a in order)).transpose(axes)


def conv_to_fc_weight(weight: np.ndarray, order: str = "chw") -> np.ndarray:
    """K filters (K, C, H, W) as an FC weight (K, C*H*W), flattening each filter in ``order``."""
    weight = _array("weight", weight, 4, "(K, C, H, W)")
    weight = weight.transpose(0, *(1 + "chw".index(a) for a in check_order(order)))
    return weight.reshape(weight.shape[0], -1)


def conv_matrix(weight: np.ndarray, in_shape, stride=1, padding=0, dilation=1) -> np.ndarray:
    """The conv as a dense (Toeplitz-like) matrix M, so that M @ x.ravel() == conv2d(x).ravel().

    weight (K, C, kh, kw), in_shape (C, H, W) -> M of shape (K*H'*W', C*H*W). Each row holds one
    filter's weights at one position, zeros elsewhere: sparse, and the same weights in every row.
    """
    weight = _array("weight", weight, 4, "(K, C, kh, kw)")
    c, h, w = _in_shape(in_shape)
    if weight.shape[1] != c:
        raise ValueError(f"weight expects {weight.shape[1]} input channels but in_shape has {c}")
    (sh, sw), (ph, pw) = _pair("stride", stride, 1), _pair("padding", padding, 0)
    dh, dw = _pair("dilation", dilation, 1)
    k, _, kh, kw = weight.shape
    oh = _out_size(h, kh, sh, ph, "height", dh)
    ow = _out_size(w, kw, sw, pw, "width", dw)
    # The matrix is all this call allocates: it is filled one filter tap at a time.
    _affordable({f"the dense matrix of {k * oh * ow:,} x {c * h * w:,}": k * oh * ow * c * h * w},
                weight.itemsize, "use a smaller input, fewer filters or a larger stride")
    m = np.zeros((k, oh, ow, c, h, w), dtype=weight.dtype)  # (filter, position) x (pixel)
    for ky in range(kh):
        oy, iy = _tap_positions(oh, sh, ph, ky * dh, h)
        for kx in range(kw):
            ox, ix = _tap_positions(ow, sw, pw, kx * dw, w)
            # every (output row, column) whose tap lands in the image gets w[:, :, ky, kx]
            m[:, oy[:, None], ox[None, :], :, iy[:, None], ix[None, :]] = weight[:, :, ky, kx]
    return m.reshape(k * oh * ow, c * h * w)


def _tap_positions(n_out: int, stride: int, padding: int, offset: int, size: int):
    """For one tap at ``offset`` along one axis: the outputs whose tap lands inside the input
    (not on the zero padding), and the input pixel each lands on."""
    out = np.arange(n_out)
    pixel = out * stride - padding + offset
    inside = (pixel >= 0) & (pixel < size)
    return out[inside], pixel[inside]


def conv_matrix_entries(weight_shape, in_shape, stride=1, padding=0) -> tuple[int, int]:
    """(rows, columns) of ``conv_matrix`` without building it: (K*H'*W', C*H*W)."""
    k, c, kh, kw = weight_shape
    _, h, w = _in_shape(in_shape)
    (sh, sw), (ph, pw) = _pair("stride", stride, 1), _pair("padding", padding, 0)
    oh, ow = _out_size(h, kh, sh, ph, "height"), _out_size(w, kw, sw, pw, "width")
    return k * oh * ow, math.prod((c, h, w))
