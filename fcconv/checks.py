"""Self-checks for the exercises: run the learner's answer on fresh random cases and say, in
plain words, whether it is right — and if not, the likely mistake. Never a traceback.

Each check prints one verdict line that the grader reads:

    [fcconv-check] 01.1 correct | wrong | not attempted — message

and returns a ``Verdict`` (truthy when correct).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import numpy_ops
from .shapes import conv_output_size

MARK = "[fcconv-check]"


@dataclass
class Verdict:
    exercise: str
    status: str  # "correct", "wrong" or "not attempted"
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def line(self) -> str:
        return f"{MARK} {self.exercise} {self.status} — {self.message}"


class _Stub(Exception):
    """The learner has not written an answer yet."""


def _attempted(answer) -> None:
    if answer is None or answer is Ellipsis:
        raise _Stub


def _call(fn, *args):
    """Run the learner's function; a stub or a crash becomes an exception we can explain."""
    _attempted(fn)
    if not callable(fn):
        raise TypeError(f"expected a function, got {type(fn).__name__}")
    try:
        return fn(*args)
    except NotImplementedError:
        raise _Stub from None


def _verdict(exercise: str, body: Callable[[], str | None]) -> Verdict:
    """Run a check body: None means correct, a string is the 'wrong' message."""
    try:
        problem = body()
        v = (Verdict(exercise, "correct", "well done.") if problem is None
             else Verdict(exercise, "wrong", problem))
    except _Stub:
        v = Verdict(exercise, "not attempted", "replace the stub with your answer, then run "
                                               "this cell again.")
    except Exception as err:  # the learner's code failed: say how, without a traceback
        v = Verdict(exercise, "wrong", f"your code raised {type(err).__name__}: {err}")
    print(v.line())
    return v


def _close(a, b, tol=1e-9) -> bool:
    try:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol))


def _rng(seed: int | None = None) -> np.random.Generator:
    return np.random.default_rng(seed)


# =========================================================================== 01

def fc_to_conv_weight(fn, exercise: str = "01.1") -> Verdict:
    """fn(weight (K, C*H*W), in_shape (C, H, W)) -> filters (K, C, H, W), PyTorch order."""
    def body():
        rng = _rng()
        for _ in range(5):
            k, c, h, w = (int(v) for v in rng.integers(2, 6, size=4))
            weight = rng.standard_normal((k, c * h * w))
            got = np.asarray(_call(fn, weight, (c, h, w)))
            want = numpy_ops.fc_to_conv_weight(weight, (c, h, w))
            if _close(got, want):
                continue
            if _close(got, numpy_ops.fc_to_conv_weight(weight, (c, h, w), "hwc")):
                return "your filter has the channels last: did you flatten H,W,C? PyTorch " \
                       "flattens C, then H, then W."
            if got.shape != want.shape:
                return f"for {k} neurons on a {c}x{h}x{w} volume the filters should have shape " \
                       f"{want.shape}; yours have {got.shape}."
            return "the shape is right but the numbers are in the wrong places: row i of the " \
                   "matrix, cut into C slices of H x W, is filter i."
        return None
    return _verdict(exercise, body)


def linear_via_conv(fn, exercise: str = "01.2") -> Verdict:
    """fn(x (N, C, H, W), weight (K, C*H*W), bias (K,)) -> (N, K), using a convolution."""
    def body():
        rng = _rng()
        for _ in range(4):
            n, k, c, h, w = (int(v) for v in rng.integers(1, 5, size=5))
            x, wt, b = rng.standard_normal((n, c, h, w)), rng.standard_normal((k, c * h * w)), \
                rng.standard_normal(k)
            got = np.asarray(_call(fn, x, wt, b))
            want = numpy_ops.linear(x.reshape(n, -1), wt, b)
            if _close(got, want):
                continue
            if got.shape == (n, k, 1, 1):
                return "the numbers are right but the shape is (N, K, 1, 1): flatten the 1x1 " \
                       "map to (N, K), as an FC layer returns."
            if _close(got, want - b):
                return "you forgot the bias."
            return f"for x of shape {x.shape} the FC output is {want.shape}; yours differs."
        return None
    return _verdict(exercise, body)


def fc_to_1x1(fn, exercise: str = "01.3") -> Verdict:
    """fn(weight (K, N)) -> 1x1 conv filters (K, N, 1, 1)."""
    def body():
        rng = _rng()
        for _ in range(4):
            k, n = (int(v) for v in rng.integers(1, 9, size=2))
            weight = rng.standard_normal((k, n))
            got = np.asarray(_call(fn, weight))
            if _close(got, weight.reshape(k, n, 1, 1)):
                continue
            if got.shape == (n, k, 1, 1):
                return "you swapped outputs and inputs: a conv weight is (out, in, kh, kw)."
            return f"expected shape {(k, n, 1, 1)} holding the same numbers; got {got.shape}."
        return None
    return _verdict(exercise, body)


# =========================================================================== 02

def output_size(fn, exercise: str = "02.1") -> Verdict:
    """fn(W, F, S, P) -> the number of outputs, as PyTorch computes it (floor)."""
    def body():
        for w in range(1, 14):
            for f in range(1, 6):
                for s in range(1, 4):
                    for p in range(0, 3):
                        if f > w + 2 * p:
                            continue
                        want = conv_output_size(w, f, s, p)
                        got = _call(fn, w, f, s, p)
                        if got == want:
                            continue
                        if got == (w - f + 2 * p) / s + 1:
                            return f"for W={w}, F={f}, S={s}, P={p} you return {got}: PyTorch " \
                                   f"rounds the division down, giving {want}."
                        if got == (w - f + p) // s + 1:
                            return "padding goes on both sides: use 2*P."
                        return f"for W={w}, F={f}, S={s}, P={p} the answer is {want}; you gave {got}."
        return None
    return _verdict(exercise, body)


def score_map_side(fn, exercise: str = "02.2") -> Verdict:
    """fn(size) -> the side of VGG16's score map for a size x size input (224 window, jump 32)."""
    def body():
        for size in range(224, 1025, 8):
            want = (size - 224) // 32 + 1
            got = _call(fn, size)
            if got == want:
                continue
            if got == (size - 224) // 32:
                return f"at {size} there are {want} windows per side: count the first one (+1)."
            if got == size // 32:
                return "that is the pool5 side; the 7x7 fc6 kernel then slides over it: " \
                       "subtract the window first."
            return f"at {size} the map is {want}x{want}; you gave {got}."
        return None
    return _verdict(exercise, body)


def receptive_field_recurrence(fn, exercise: str = "02.3") -> Verdict:
    """fn(layers [(kernel, stride, padding), ...]) -> (size, jump, start) of the last layer."""
    from .shapes import receptive_field

    def body():
        rng = _rng()
        for _ in range(6):
            layers = [(int(rng.integers(1, 5)), int(rng.integers(1, 3)), int(rng.integers(0, 2)))
                      for _ in range(int(rng.integers(1, 5)))]
            net = nn.Sequential(*[nn.Conv2d(1, 1, k, s, p) for k, s, p in layers])
            rf = receptive_field(net, (1, 64, 64))
            want = (rf.size, rf.jump, rf.start)
            got = tuple(_call(fn, layers))
            if got == want:
                continue
            if got[:2] == want[:2] and got[2] == -want[2]:
                return "padding moves the first window *before* the image: start goes down " \
                       "by padding * jump."
            if got[0] != want[0] and got[1] == want[1]:
                return "each layer widens the field by (kernel - 1) * jump, using the jump " \
                       "*before* that layer's stride."
            return f"for layers {layers} expected (size, jump, start) = {want}; got {got}."
        return None
    return _verdict(exercise, body)


# =========================================================================== 03

def keras_to_torch_filters(fn, exercise: str = "03.1") -> Verdict:
    """fn(weight (K, H*W*C) learned in Keras, in_shape (C, H, W)) -> PyTorch filters (K, C, H, W)."""
    def body():
        rng = _rng()
        for _ in range(5):
            k, c, h, w = (int(v) for v in rng.integers(2, 6, size=4))
            weight = rng.standard_normal((k, c * h * w))
            got = np.asarray(_call(fn, weight, (c, h, w)))
            want = numpy_ops.fc_to_conv_weight(weight, (c, h, w), "hwc")
            if _close(got, want):
                continue
            if _close(got, numpy_ops.fc_to_conv_weight(weight, (c, h, w), "chw")):
                return "that is the PyTorch (C,H,W) reshape: a Keras weight was flattened " \
                       "H,W,C, so reshape to (K, H, W, C) and move C to axis 1."
            return f"expected filters of shape {want.shape} with Keras's order undone; got {got.shape}."
        return None
    return _verdict(exercise, body)


def fc7_as_conv(fn, exercise: str = "03.2") -> Verdict:
    """fn(linear nn.Linear(N, K)) -> an nn.Conv2d 1x1 that computes the same on (N, C=N, 1, 1)."""
    def body():
        torch.manual_seed(0)
        for n, k in ((8, 5), (16, 3)):
            linear = nn.Linear(n, k).double()
            conv = _call(fn, linear)
            if not isinstance(conv, nn.Conv2d):
                return f"return an nn.Conv2d; got {type(conv).__name__}."
            if tuple(conv.kernel_size) != (1, 1):
                return f"after fc6 the map is 1x1: the kernel must be 1x1, not {conv.kernel_size}."
            x = torch.randn(3, n, 1, 1, dtype=torch.float64)
            with torch.no_grad():
                got = conv.double()(x).flatten(1)
                want = linear(x.flatten(1))
                if conv.bias is None or not torch.allclose(conv.bias.double(), linear.bias, atol=1e-6):
                    return "the weights are there but the bias was not copied."
            if not torch.allclose(got, want, atol=1e-5):
                return "the outputs differ from the Linear's: copy linear.weight reshaped to (K, N, 1, 1)."
        return None
    return _verdict(exercise, body)


def slice_positions(fn, exercise: str = "03.3") -> Verdict:
    """fn(channel, in_shape (C, H, W), order) -> the flattened-input positions (H, W) of that
    channel's slice."""
    def body():
        for c, h, w in ((4, 3, 3), (2, 5, 4)):
            idx = np.arange(c * h * w)
            for order in ("chw", "hwc"):
                cube = idx.reshape(c, h, w) if order == "chw" else idx.reshape(h, w, c).transpose(2, 0, 1)
                for ch in range(c):
                    got = np.asarray(_call(fn, ch, (c, h, w), order))
                    if np.array_equal(got, cube[ch]):
                        continue
                    if order == "hwc":
                        return "in H,W,C order a channel is not one block: its numbers sit every C-th position."
                    return f"channel {ch} of a {c}x{h}x{w} volume in C,H,W order starts at {ch * h * w}."
        return None
    return _verdict(exercise, body)


# =========================================================================== 04

def convolutionalize_by_hand(fn, exercise: str = "04.1") -> Verdict:
    """fn(model: the lenet5 Sequential) -> a fully convolutional version of it."""
    from .models import lenet5

    def body():
        torch.manual_seed(0)
        model = lenet5().double().eval()
        fcn = _call(fn, model)
        if not isinstance(fcn, nn.Module):
            return f"return an nn.Module; got {type(fcn).__name__}."
        fcn.eval()
        x = torch.randn(2, 1, 32, 32, dtype=torch.float64)
        with torch.no_grad():
            out = fcn.double()(x)
            if out.dim() != 4:
                return f"the output has shape {tuple(out.shape)}: a fully convolutional net " \
                       "returns (N, K, 1, 1) — did you keep the Flatten?"
            if not torch.allclose(out.flatten(1), model(x), atol=1e-5):
                return "at 32x32 your network's scores differ from LeNet-5's: check that each " \
                       "conv's weight is the Linear's weight reshaped in C,H,W order."
            big = fcn(torch.randn(1, 1, 48, 48, dtype=torch.float64))
        if tuple(big.shape) != (1, 10, 5, 5):
            return f"on 48x48 the score map should be 1x10x5x5; yours is {tuple(big.shape)}."
        if any(isinstance(m, nn.Linear) for m in fcn.modules()):
            return "a Linear is left: the first becomes a 5x5 conv, the others 1x1 convs."
        return None
    return _verdict(exercise, body)


def bn1d_to_bn2d(fn, exercise: str = "04.2") -> Verdict:
    """fn(bn: nn.BatchNorm1d) -> nn.BatchNorm2d computing the same per channel (eval mode)."""
    def body():
        torch.manual_seed(0)
        bn = nn.BatchNorm1d(6).double()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        nn.init.normal_(bn.weight)
        nn.init.normal_(bn.bias)
        bn.eval()
        new = _call(fn, bn)
        if not isinstance(new, nn.BatchNorm2d):
            return f"return an nn.BatchNorm2d; got {type(new).__name__}."
        new.double().eval()
        x = torch.randn(4, 6, 3, 3, dtype=torch.float64)
        with torch.no_grad():
            want = bn(x.permute(0, 2, 3, 1).reshape(-1, 6)).reshape(4, 3, 3, 6).permute(0, 3, 1, 2)
            got = new(x)
        if torch.allclose(got, want, atol=1e-5):  # float32 copies are fine
            return None
        if torch.allclose(new.running_mean, torch.zeros(6, dtype=torch.float64)):
            return "the running statistics were not copied: copy the state_dict."
        return "the outputs differ: copy weight, bias, running_mean and running_var."
    return _verdict(exercise, body)


def tiny_vgg_map_side(fn, exercise: str = "04.3") -> Verdict:
    """fn(size) -> the score-map side of the convolutionalized Tiny VGG (window 64, jump 4)."""
    from .models import tiny_vgg
    from .shapes import trace
    from .torch_ops import convolutionalize

    def body():
        fcn = convolutionalize(tiny_vgg(device="meta"), (3, 64, 64))
        for size in range(64, 200, 3):
            want = trace(fcn, size).output_shape[1]
            got = _call(fn, size)
            if got == want:
                continue
            if got == (size - 64) // 32 + 1 or got == (size - 64) // 2 + 1:
                return "Tiny VGG has two 2x2 pools: its jump is 2*2 = 4 pixels."
            return f"at {size} the map side is {want}; you gave {got}."
        return None
    return _verdict(exercise, body)


# =========================================================================== 05

def window_of(fn, exercise: str = "05.1") -> Verdict:
    """fn(row, col, jump, window) -> (y0, x0, y1, x1), inclusive pixel bounds of cell (row, col)."""
    def body():
        rng = _rng()
        for _ in range(20):
            r, c = (int(v) for v in rng.integers(0, 10, 2))
            jump, window = int(rng.choice([4, 16, 32])), int(rng.choice([28, 64, 224]))
            want = (r * jump, c * jump, r * jump + window - 1, c * jump + window - 1)
            got = tuple(_call(fn, r, c, jump, window))
            if got == want:
                continue
            if got == (want[0], want[1], want[2] + 1, want[3] + 1):
                return "inclusive bounds: a 224-pixel window starting at 0 ends at 223."
            if got[:2] == (want[1], want[0]):
                return "rows go with y, columns with x: (y0, x0, y1, x1)."
            return f"cell ({r}, {c}) with jump {jump} and window {window} is {want}; you gave {got}."
        return None
    return _verdict(exercise, body)


def passes_needed(fn, exercise: str = "05.2") -> Verdict:
    """fn(jump, step) -> how many shifted passes shift-and-stitch needs for stride ``step``."""
    def body():
        for jump in (4, 8, 16, 32):
            for step in (1, 2, 4, 8, 16, 32):
                if step > jump or jump % step:
                    continue
                want = (jump // step) ** 2
                got = _call(fn, jump, step)
                if got == want:
                    continue
                if got == jump // step:
                    return f"jump {jump}, step {step}: shifts are needed along y *and* x, " \
                           f"so {jump // step} x {jump // step} passes."
                return f"jump {jump}, step {step} needs {want} passes; you gave {got}."
        return None
    return _verdict(exercise, body)


def vgg_field_of(fn, exercise: str = "05.3") -> Verdict:
    """fn(i) -> (first, last) input pixel of the receptive field of VGG16 fc6's cell i."""
    from .models import vgg16
    from .shapes import receptive_field
    from .torch_ops import convolutionalize

    def body():
        rf = receptive_field(convolutionalize(vgg16(device="meta"), (3, 224, 224)), 512)
        for i in range(10):
            want, got = rf.window(i), tuple(_call(fn, i))
            if got == want:
                continue
            if got == (32 * i, 32 * i + 223):
                return "that is the window (224 px); the receptive field is larger and starts " \
                       "in the padding."
            return f"cell {i} sees pixels {want}; you gave {got}."
        return None
    return _verdict(exercise, body)


# =========================================================================== 06

def n_windows(fn, exercise: str = "06.1") -> Verdict:
    """fn(size, window, stride) -> windows of window x window at ``stride`` in a size x size image."""
    def body():
        for size in range(28, 300, 7):
            for window, stride in ((28, 4), (64, 4), (224, 32)):
                if window > size:
                    continue
                want = ((size - window) // stride + 1) ** 2
                got = _call(fn, size, window, stride)
                if got == want:
                    continue
                if got == (size - window) // stride + 1:
                    return "that is the count along one side: windows form a grid, square it."
                if got == ((size - window) // stride) ** 2:
                    return "count the first window too: (size - window) // stride + 1 per side."
                return f"{size}x{size}, window {window}, stride {stride}: {want} windows; you gave {got}."
        return None
    return _verdict(exercise, body)


def mac_ratio(fn, exercise: str = "06.2") -> Verdict:
    """fn(size) -> MACs of all VGG16 crops / MACs of one dense pass at size x size."""
    from .models import vgg16
    from .shapes import trace
    from .torch_ops import convolutionalize

    def body():
        vgg = vgg16(device="meta")
        fcn = convolutionalize(vgg, (3, 224, 224))
        crop = trace(vgg, 224).total_macs
        for size in (256, 384, 512):
            want = ((size - 224) // 32 + 1) ** 2 * crop / trace(fcn, size).total_macs
            got = _call(fn, size)
            if got is not None and math.isclose(float(got), want, rel_tol=1e-3):
                continue
            return f"at {size} the ratio is about {want:.1f}; you gave {got}."
        return None
    return _verdict(exercise, body)


def dress_windows(fn, exercise: str = "06.3") -> Verdict:
    """fn(units_w, units_h, win_w, win_h) -> how many win_w x win_h windows fit in the unit map."""
    def body():
        rng = _rng()
        for _ in range(20):
            uw, uh = (int(v) for v in rng.integers(4, 40, 2))
            ww, wh = (int(v) for v in rng.integers(1, 5, 2))
            want = (uw - ww + 1) * (uh - wh + 1)
            got = _call(fn, uw, uh, ww, wh)
            if got == want:
                continue
            if got == (uw - wh + 1) * (uh - ww + 1):
                return "you paired the window's width with the map's height."
            return f"a {uw}x{uh} map holds {want} windows of {ww}x{wh}; you gave {got}."
        return None
    return _verdict(exercise, body)


# =========================================================================== 07

def conv_matrix_shape(fn, exercise: str = "07.1") -> Verdict:
    """fn(weight_shape (K, C, kh, kw), in_shape (C, H, W), stride, padding) -> (rows, cols)."""
    def body():
        for ws, ins, s, p in (((64, 3, 3, 3), (3, 224, 224), 1, 1), ((8, 2, 5, 5), (2, 20, 16), 2, 0),
                              ((4, 3, 3, 3), (3, 9, 9), 3, 1)):
            want = numpy_ops.conv_matrix_entries(ws, ins, s, p)
            got = tuple(_call(fn, ws, ins, s, p))
            if got == want:
                continue
            if got[1] == ins[1] * ins[2] or got[0] == want[0] // ws[0]:
                return "count every channel: rows are K*H'*W', columns C*H*W."
            return f"for {ws} on {ins}, stride {s}, padding {p}: {want}; you gave {got}."
        return None
    return _verdict(exercise, body)


def my_conv_matrix(fn, exercise: str = "07.2") -> Verdict:
    """fn(weight (K, C, kh, kw), in_shape (C, H, W)) -> M with M @ x.ravel() == conv2d(x).ravel()
    (stride 1, no padding)."""
    def body():
        rng = _rng()
        for _ in range(4):
            k, c = (int(v) for v in rng.integers(1, 3, 2))
            kh, kw = (int(v) for v in rng.integers(1, 4, 2))
            h, w = kh + int(rng.integers(0, 4)), kw + int(rng.integers(0, 4))
            weight, x = rng.standard_normal((k, c, kh, kw)), rng.standard_normal((1, c, h, w))
            m = np.asarray(_call(fn, weight, (c, h, w)))
            want = numpy_ops.conv2d(x, weight).ravel()
            if m.shape != (want.size, x.size):
                return f"M should be {(want.size, x.size)} (outputs x inputs); yours is {m.shape}."
            if not _close(m @ x.ravel(), want):
                flipped = numpy_ops.conv_matrix(weight[:, :, ::-1, ::-1].copy(), (c, h, w))
                if kh * kw > 1 and _close(m, flipped):
                    return "your filter is flipped: PyTorch's conv is a cross-correlation."
                return "M @ x differs from conv2d(x): row r holds the filter at output r's " \
                       "patch, column index (c*H + y)*W + x."
        return None
    return _verdict(exercise, body)


def locally_connected_params(fn, exercise: str = "07.3") -> Verdict:
    """fn(size, kernel, stride, padding) -> weights of a locally connected layer (1 channel in,
    1 out, no bias): one weight per input each output position really sees."""
    def body():
        for size in (5, 8, 11):
            for kernel, stride, padding in ((3, 1, 0), (3, 1, 1), (2, 2, 0), (3, 2, 1)):
                m = numpy_ops.conv_matrix(np.ones((1, 1, kernel, kernel)), (1, size, size),
                                          stride, padding)
                want = int(np.count_nonzero(m))
                got = _call(fn, size, kernel, stride, padding)
                if got == want:
                    continue
                out = conv_output_size(size, kernel, stride, padding)
                if got == out * out * kernel * kernel:
                    return "windows that overlap the padding see fewer real pixels: padding " \
                           "taps have no weight."
                return f"size {size}, kernel {kernel}, stride {stride}, padding {padding}: " \
                       f"{want}; you gave {got}."
        return None
    return _verdict(exercise, body)


# =========================================================================== 08

def iou(fn, exercise: str = "08.1") -> Verdict:
    """fn(a, b) -> intersection over union of inclusive boxes (x0, y0, x1, y1)."""
    from .detect import iou as ref

    def body():
        rng = _rng()
        for _ in range(40):
            a = rng.integers(0, 30, 2)
            b = rng.integers(0, 30, 2)
            a = (*a, *(a + rng.integers(0, 20, 2)))
            b = (*b, *(b + rng.integers(0, 20, 2)))
            a, b = tuple(int(v) for v in a), tuple(int(v) for v in b)
            want, got = ref(a, b), _call(fn, a, b)
            if got is not None and math.isclose(float(got), want, abs_tol=1e-9):
                continue
            return f"iou({a}, {b}) = {want:.4f}; you gave {got}. Inclusive bounds: a box from " \
                   "x0 to x1 is x1 - x0 + 1 pixels wide."
        return None
    return _verdict(exercise, body)


def nms(fn, exercise: str = "08.2") -> Verdict:
    """fn(detections [(x0, y0, x1, y1, label, score)], overlap) -> the kept detections."""
    from .detect import nms as ref

    def body():
        rng = _rng()
        for _ in range(20):
            dets = []
            for _ in range(int(rng.integers(1, 12))):
                x, y = (int(v) for v in rng.integers(0, 60, 2))
                dets.append((x, y, x + 27, y + 27, int(rng.integers(10)), float(rng.random())))
            want = ref(dets, 0.3)
            got = _call(fn, list(dets), 0.3)
            if sorted(map(tuple, got)) == sorted(want):
                continue
            if sorted(map(tuple, got)) == sorted(_greedy_in_given_order(dets, 0.3)):
                return "you took the boxes in the order they came: go through them from the " \
                       "highest score down, so that the best box of a cluster is the one kept."
            if len(got) > len(want):
                return "you keep boxes that overlap a better one: suppress IoU > overlap."
            return "you dropped a box that should stay: go through the boxes from the highest " \
                   "score down, and compare each only with the boxes already kept."
        return None
    return _verdict(exercise, body)


def _greedy_in_given_order(dets, overlap):
    from .detect import iou as ref

    kept = []
    for d in dets:
        if all(ref(d[:4], k[:4]) <= overlap for k in kept):
            kept.append(d)
    return kept


def transposed_size(fn, exercise: str = "08.3") -> Verdict:
    """fn(n, kernel, stride, padding) -> output length of a transposed convolution."""
    def body():
        for n in range(1, 12):
            for k, s, p in ((8, 4, 2), (4, 2, 1), (3, 1, 0), (16, 8, 4), (5, 3, 1)):
                want = (n - 1) * s - 2 * p + k
                if want < 1:
                    continue
                got = _call(fn, n, k, s, p)
                if got == want:
                    continue
                if got == n * s:
                    return f"n * stride is right only for kernel = 2*stride, padding = stride/2; " \
                           f"for n={n}, k={k}, s={s}, p={p} use (n - 1)*s - 2p + k."
                if got == n:
                    return "that is the input size: a transposed conv grows the map."
                return f"n={n}, k={k}, s={s}, p={p}: {want}; you gave {got}."
        return None
    return _verdict(exercise, body)


def cell_box(fn, exercise: str = "05.4") -> Verdict:
    """fn(row, col, jump, window, scale) -> (x0, y0, x1, y1): the window of cell (row, col) of a
    map computed on a photo shrunk by ``scale``, in pixels of the original photo, inclusive;
    each edge may be rounded either way when it falls halfway."""
    def body():
        rng = _rng()
        for _ in range(30):
            r, c = (int(v) for v in rng.integers(0, 30, 2))
            jump, window = int(rng.choice([4, 8, 32])), int(rng.choice([25, 28, 224]))
            scale = float(rng.choice([0.125, 0.25, 0.5])) if _ % 3 == 0 else round(float(rng.uniform(0.1, 0.9)), 3)
            exact = np.array([c * jump / scale, r * jump / scale, (c * jump + window) / scale - 1,
                              (r * jump + window) / scale - 1])
            got = _call(fn, r, c, jump, window, scale)
            try:
                g = np.asarray(got, dtype=float).reshape(-1)
            except (TypeError, ValueError):
                return f"return four numbers (x0, y0, x1, y1); you gave {got!r}."
            if g.shape == (4,) and np.all(np.abs(g - exact) <= 0.5 + 1e-9) and np.all(g == np.round(g)):
                continue
            want = tuple(int(v) for v in np.round(exact))
            if g.shape != (4,):
                return f"return four numbers (x0, y0, x1, y1); you gave {got!r}."
            if np.all(np.abs(g - exact) <= 0.5 + 1e-9):
                return "round each edge to a whole pixel: boxes are in pixels."
            if np.all(g == np.floor(exact)):
                return "int() cuts the fraction off: round each edge to the nearest pixel."
            shrunk = np.array([c * jump, r * jump, c * jump + window - 1, r * jump + window - 1])
            if np.all(np.abs(g - shrunk) <= 1):
                return "those are pixels of the shrunk photo: divide by the scale to get back to " \
                       "the original photo."
            if np.all(np.abs(g - (shrunk + [0, 0, 1, 1]) * scale + [0, 0, 1, 1]) <= 1):
                return "the photo was shrunk by the scale: divide by it, do not multiply."
            if np.all(np.abs(g - exact[[1, 0, 3, 2]]) <= 0.5 + 1e-9):
                return "boxes here are (x0, y0, x1, y1): the column gives x, the row gives y."
            if np.all(np.abs(g - exact - [0, 0, 1, 1]) <= 0.5 + 1e-9):
                return "inclusive bounds: the last pixel of the window is one before its far edge."
            if np.all(np.abs(g[:2] - exact[:2]) <= 0.5 + 1e-9):
                return f"the start is right, the end is not: the window's side in the photo is " \
                       f"window / scale ({window} / {scale} = {window / scale:.1f} px). " \
                       f"Cell ({r}, {c}), jump {jump}, window {window}, scale {scale}: {want}; you gave {got}."
            return f"cell ({r}, {c}), jump {jump}, window {window}, scale {scale}: {want}; you gave {got}."
        return None
    return _verdict(exercise, body)
