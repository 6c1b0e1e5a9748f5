"""Self-checks for the exercises: run the learner's answer on fresh random cases and say, in
plain words, whether it is right — and if not, the likely mistake. Never a traceback from here.

Each check is declared once, with the exercise it checks:

    @check("02.1")
    def output_size(answer):
        ...                     # None when right, else the hint (a string)

Calling it returns a ``Verdict``, truthy only when correct. An exercise's check cell reads

    verdict = checks.output_size(my_output_size)
    assert verdict, verdict
    print(verdict)

so a wrong answer fails as an assertion whose message is the hint (what nbgrader reports), and a
right one prints "02.1 correct — well done." (printed, not the cell's value: nbgrader would read a
value as partial credit). To add an exercise: declare its check here, add its answer and check
cells to solutions/, then ``python -m tools.exercises --mark`` (nbgrader's metadata) and
``python -m tools.exercises`` (exercises/). ``CHECKS`` maps every exercise id to its check: the
grader (``fcconv.course.grade``) calls the checks itself and never reads what a notebook prints.
Most checks compare answers exactly on a list of cases (``_compare``): a check then says only what
the cases are, what is expected, and the hint for a wrong answer.

The checks of the NumPy exercises (notebooks 01 and 07) need no torch; a check declared
``needs_torch=True`` says so plainly where PyTorch is not installed.

Fairness rules every check follows: the learner's function runs first, on private copies of the
inputs, and the expected value is computed afterwards from the originals (an answer that edits its
inputs in place changes nothing here, and no expected value is on the stack while it runs); only
the type asked for is accepted (a NumPy array, an int, a tuple of ints, a module): an object that
claims to equal everything is not a number.
"""

from __future__ import annotations

import copy
import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# The checks' own references, bound when this module is loaded: the grader loads its copy before
# the learner's code runs, so replacing fcconv.numpy_ops.linear (say) later does not reach them.
from ..formulas import cell_window as _ref_cell_window
from ..formulas import conv_output_size
from ..formulas import score_map_side as _ref_score_map_side
from ..numpy_ops import conv2d, conv_matrix, conv_matrix_entries, linear
from ..numpy_ops import fc_to_conv_weight as _ref_fc_to_conv_weight

try:  # the PyTorch exercises' references; the NumPy exercises' checks work without them
    import torch
    from torch import nn

    from ..dense import sliding_windows
    from ..fcn import convolutionalize
    from ..models import lenet5, tiny_vgg, vgg16
    from ..shapes import receptive_field, trace
    from .detect import iou as _ref_iou
    from .detect import nms as _ref_nms
except ModuleNotFoundError as err:
    if err.name != "torch":
        raise
    torch = None

_HAVE_TORCH = torch is not None
CHECKS: dict[str, Callable[[object], Verdict]] = {}  # exercise id -> check, filled by @check


@dataclass(frozen=True)
class Verdict:
    exercise: str
    status: str  # "correct", "wrong", "not attempted", or "not checked" (no PyTorch here)
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        return f"{self.exercise} {self.status} — {self.message}"

    __repr__ = __str__  # what a check cell shows, and the assertion's message


class _Stub(Exception):
    """The learner has not written an answer yet."""


class _Wrong(Exception):
    """The answer is wrong in a way found before any comparison (its type, say)."""


def _call(fn, *args):
    """Run the learner's function on private copies of the inputs."""
    if fn is None or fn is Ellipsis:
        raise _Stub
    if not callable(fn):
        raise _Wrong(f"expected a function, got {_describe(fn)}")
    try:
        return fn(*copy.deepcopy(args))
    except NotImplementedError:
        raise _Stub from None


def _verdict(exercise: str, body: Callable[[object], str | None], answer) -> Verdict:
    """Run a check body: None means correct, a string is the 'wrong' message."""
    try:
        problem = body(answer)
        if problem is None:
            return Verdict(exercise, "correct", "well done.")
        return Verdict(exercise, "wrong", problem)
    except _Stub:
        return Verdict(exercise, "not attempted", "replace the stub with your answer, then run "
                                                  "this cell again.")
    except _Wrong as err:
        return Verdict(exercise, "wrong", str(err))
    except Exception as err:  # the learner's code failed: say how, without a traceback
        return Verdict(exercise, "wrong", f"your code raised {type(err).__name__}: {err}")


_NO_TORCH = "this check needs PyTorch, which is not installed here (checks of NumPy-only " \
            "answers work without it): install the course with `make lab`."


def check(exercise: str, needs_torch: bool = False):
    """Declare the check of ``exercise``: body(answer) -> None when right, else the hint;
    ``needs_torch``: the check needs PyTorch. The declared function takes the answer and returns a
    Verdict."""
    def declare(body):
        @functools.wraps(body)
        def run(answer, exercise: str = exercise) -> Verdict:
            if needs_torch and not _HAVE_TORCH:
                return Verdict(exercise, "not checked", _NO_TORCH)
            return _verdict(exercise, body, answer)

        CHECKS[exercise] = run
        return run
    return declare


# --------------------------------------------------------------------------- what came back

def _describe(x) -> str:
    text = repr(x) if isinstance(x, (int, float, str, tuple, list, np.generic)) else ""
    return f"{type(x).__name__} {text[:60]}".strip()


def _array(x) -> np.ndarray:
    """A NumPy array of numbers, as a private float64 copy (its shape is checked by the caller)."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        raise _Wrong(f"return a NumPy array of numbers; got {_describe(x)}")
    return np.array(x, dtype=np.float64)


def _number(x) -> int | float:
    """A plain int or float: an int stays an int (``_ints_only`` tells the two apart)."""
    if isinstance(x, (bool, np.bool_)):
        raise _Wrong(f"return a number; got {_describe(x)}")
    if isinstance(x, (int, np.integer)):
        return operator.index(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    raise _Wrong(f"return a number; got {_describe(x)}")


def _numbers(x, n: int) -> tuple:
    """A tuple (or list) of ``n`` numbers, as a plain tuple."""
    if not isinstance(x, (tuple, list)) or len(x) != n:
        raise _Wrong(f"return a tuple of {n} ints; got {_describe(x)}")
    return tuple(_number(v) for v in x)


def _ints_only(answers) -> str | None:
    """Every answer was right: complain only if some numbers were floats rather than ints."""
    values = [v for a in answers for v in (a if isinstance(a, tuple) else (a,))]
    floats = [v for v in values if type(v) is float]
    return f"the values are right, but return ints: you gave {floats[0]!r}, a float (a size or a " \
           "count is an int; a float equal to one is rejected on purpose)." if floats else None


def _tensor(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise _Wrong(f"the network should return a tensor; got {_describe(x)}")
    return x.detach().to(torch.float64).clone()


def _close(a: np.ndarray, b: np.ndarray, tol: float = 1e-9) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol))


_FLOAT32 = "your numbers agree only to float32 precision (about 1e-6): compute in float64 " \
           "(torch.from_numpy keeps float64; torch.tensor(..., dtype=torch.float32) does not)."


def _float32(a: np.ndarray, b: np.ndarray) -> bool:
    """Right to float32 precision but not to float64's: the answer computed in float32."""
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-5))


def _rng() -> np.random.Generator:
    return np.random.default_rng()


def _ints(n: int) -> Callable[[object], tuple]:
    """Reads an answer that is a tuple of ``n`` numbers."""
    return lambda x: _numbers(x, n)


def _compare(fn, cases, want, hint, read=_number, same=operator.eq) -> str | None:
    """The body of most checks: run ``fn`` on every case (all answers first, on private copies),
    then compare each with ``want(*case)``. The first that differs gets ``hint(got, want, *case)``;
    all right: None, or a complaint if some numbers came as floats.

    read: what the answer must be (``_number``, ``_ints(n)``, ``_array``); same: the comparison."""
    cases = [tuple(case) for case in cases]
    answers = [read(_call(fn, *case)) for case in cases]
    for case, got in zip(cases, answers):
        expected = want(*case)
        if not same(got, expected):
            return hint(got, expected, *case)
    return _ints_only(answers)


# =========================================================================== 01

def _weight_cases(rng: np.random.Generator, n: int, square: bool = True) -> list[tuple]:
    """``n`` cases (weight (K, C*H*W), in_shape (C, H, W)); ``square=False``: H != W, so that a
    swap of the two shows."""
    cases = []
    for _ in range(n):
        k, c, h, w = (int(v) for v in rng.integers(2, 6, size=4))
        while not square and h == w:
            w = int(rng.integers(2, 6))
        cases.append((rng.standard_normal((k, c * h * w)), (c, h, w)))
    return cases


# order asked -> (the hint for an answer in the other order, where the numbers go)
_ORDER_HINTS = {
    "chw": ("your filter has the channels last: did you flatten H,W,C? PyTorch flattens C, then "
            "H, then W.", "row i of the matrix, cut into C slices of H x W, is filter i."),
    "hwc": ("that is the PyTorch (C,H,W) reshape: a Keras weight was flattened H,W,C, so reshape "
            "to (K, H, W, C) and move C to axis 1.",
            "reshape to (K, H, W, C) as Keras flattened it, then move C to axis 1."),
}


def _filters(fn, cases, order: str, also=lambda got, weight, in_shape: None) -> str | None:
    """Check fn(weight, in_shape) -> filters (K, C, H, W) for a weight flattened in ``order``;
    ``also(got, weight, in_shape)``: a further hint, tried before the last resort."""
    other = "hwc" if order == "chw" else "chw"

    def hint(got, want, weight, in_shape):
        if _close(got, _ref_fc_to_conv_weight(weight, in_shape, other)):
            return _ORDER_HINTS[order][0]
        if got.shape != want.shape:
            return f"for {len(weight)} neurons on a (C, H, W) = {in_shape} volume the filters " \
                   f"have shape {want.shape} (K, C, H, W); yours have {got.shape}."
        return also(got, weight, in_shape) or \
            f"the shape is right but the numbers are in the wrong places: {_ORDER_HINTS[order][1]}"
    return _compare(fn, cases, lambda weight, in_shape: _ref_fc_to_conv_weight(weight, in_shape, order),
                    hint, _array, _close)


@check("01.1")
def fc_to_conv_weight(fn):
    """fn(weight (K, C*H*W), in_shape (C, H, W)) -> filters (K, C, H, W), PyTorch order."""
    return _filters(fn, _weight_cases(_rng(), 5), "chw")


@check("01.2")
def linear_via_conv(fn):
    """fn(x (N, C, H, W), weight (K, C*H*W), bias (K,)) -> (N, K), using a convolution."""
    rng = _rng()
    cases = [(rng.standard_normal((n, c, h, w)), rng.standard_normal((k, c * h * w)),
              rng.standard_normal(k))
             for n, k, c, h, w in (rng.integers(1, 5, size=5).tolist() for _ in range(4))]

    def hint(got, want, x, wt, b):
        if _float32(got, want):
            return _FLOAT32
        if got.shape == (*want.shape, 1, 1):
            return "the numbers are right but the shape is (N, K, 1, 1): flatten the 1x1 " \
                   "map to (N, K), as an FC layer returns."
        if _close(got, want - b):
            return "you forgot the bias."
        return f"for x of shape {x.shape} the FC output is {want.shape}; yours differs."
    return _compare(fn, cases, lambda x, wt, b: linear(x.reshape(len(x), -1), wt, b), hint,
                    _array, _close)


@check("01.3")
def fc_to_1x1(fn):
    """fn(weight (K, N)) -> 1x1 conv filters (K, N, 1, 1)."""
    rng = _rng()
    cases = [(rng.standard_normal(rng.integers(1, 9, size=2)),) for _ in range(4)]

    def hint(got, want, weight):
        if got.shape == (weight.shape[1], weight.shape[0], 1, 1):
            return "you swapped outputs and inputs: a conv weight is (out, in, kh, kw)."
        return f"expected shape {want.shape} holding the same numbers; got {got.shape}."
    return _compare(fn, cases, lambda w: w.reshape(*w.shape, 1, 1), hint, _array, _close)


# =========================================================================== 02

@check("02.1")
def output_size(fn):
    """fn(W, F, S, P) -> the number of outputs, as PyTorch computes it (floor)."""
    cases = [(w, f, s, p) for w in range(1, 14) for f in range(1, 6) for s in range(1, 4)
             for p in range(0, 3) if f <= w + 2 * p]

    def hint(got, want, w, f, s, p):
        if got == (w - f + 2 * p) / s + 1:
            return f"for W={w}, F={f}, S={s}, P={p} you return {got}: PyTorch " \
                   f"rounds the division down, giving {want}."
        if got == (w - f + p) // s + 1:
            return "padding goes on both sides: use 2*P."
        return f"for W={w}, F={f}, S={s}, P={p} the answer is {want}; you gave {got}."
    return _compare(fn, cases, conv_output_size, hint)


@check("02.2")
def score_map_side(fn):
    """fn(size) -> the side of VGG16's score map for a size x size input (224 window, jump 32)."""
    def hint(got, want, size):
        if got == (size - 224) // 32:
            return f"at {size} there are {want} windows per side: count the first one (+1)."
        if got == size // 32:
            return "that is the pool5 side; the 7x7 fc6 kernel then slides over it: " \
                   "subtract the window first."
        return f"at {size} the map is {want}x{want}; you gave {got}."
    return _compare(fn, [(s,) for s in range(224, 1025, 8)],
                    lambda size: _ref_score_map_side(size, 224, 32), hint)


def _field_of(layers) -> tuple[int, int, int] | None:
    """(size, jump, start) of a stack of 1-channel convs, or None where strides leave gaps."""
    try:
        rf = receptive_field(nn.Sequential(*[nn.Conv2d(1, 1, k, s, p) for k, s, p in layers]),
                             (1, 64, 64))
    except ValueError:  # a stride larger than the field leaves gaps: no window to compare
        return None
    return rf.size, rf.jump, rf.start


@check("02.3", needs_torch=True)
def receptive_field_recurrence(fn):
    """fn(layers [(kernel, stride, padding), ...]) -> (size, jump, start) of the last layer."""
    rng = _rng()
    cases = []
    while len(cases) < 6:
        layers = [(int(rng.integers(1, 5)), int(rng.integers(1, 3)), int(rng.integers(0, 2)))
                  for _ in range(int(rng.integers(1, 5)))]
        if _field_of(layers) is not None:  # only whether it has one: no value kept
            cases.append((layers,))

    def hint(got, want, layers):
        if got[:2] == want[:2] and got[2] == -want[2]:
            return "padding moves the first window *before* the image: start goes down " \
                   "by padding * jump."
        if got[0] != want[0] and got[1] == want[1]:
            return "each layer widens the field by (kernel - 1) * jump, using the jump " \
                   "*before* that layer's stride."
        return f"for layers {layers} expected (size, jump, start) = {want}; got {got}."
    return _compare(fn, cases, _field_of, hint, _ints(3))


# =========================================================================== 03

@check("03.1")
def keras_to_torch_filters(fn):
    """fn(weight (K, H*W*C) learned in Keras, in_shape (C, H, W)) -> PyTorch filters (K, C, H, W)."""
    def swapped(got, weight, in_shape):
        (c, h, w), k = in_shape, len(weight)
        if _close(got, weight.reshape(k, w, h, c).transpose(0, 3, 2, 1)):
            return "you reshaped to (K, W, H, C): Keras flattens H first, then W, then C, so " \
                   "reshape to (K, H, W, C), then move C to axis 1."
        return None
    return _filters(fn, _weight_cases(_rng(), 5, square=False), "hwc", swapped)


@check("03.2", needs_torch=True)
def fc7_as_conv(fn):
    """fn(linear nn.Linear(N, K)) -> an nn.Conv2d 1x1 that computes the same on (N, C=N, 1, 1)."""
    torch.manual_seed(0)
    for n, k in ((8, 5), (16, 3)):
        linear = nn.Linear(n, k).double()
        x = torch.randn(3, n, 1, 1, dtype=torch.float64)
        conv = _call(fn, linear)
        with torch.no_grad():
            want = linear(x.flatten(1))
        if not isinstance(conv, nn.Conv2d):
            return f"return an nn.Conv2d; got {_describe(conv)}."
        if tuple(conv.kernel_size) != (1, 1):
            return f"after fc6 the map is 1x1: the kernel must be 1x1, not {conv.kernel_size}."
        with torch.no_grad():
            got = _tensor(conv.double()(x.clone())).flatten(1)
            if conv.bias is None or not torch.allclose(conv.bias.double(), linear.bias, atol=1e-6):
                return "the weights are there but the bias was not copied."
        if not torch.allclose(got, want, atol=1e-5):
            return "the outputs differ from the Linear's: copy linear.weight reshaped to (K, N, 1, 1)."
    return None


@check("03.3")
def slice_positions(fn):
    """fn(channel, in_shape (C, H, W), order) -> the flattened-input positions (H, W) of that
    channel's slice."""
    for c, h, w in ((4, 3, 5), (2, 5, 4)):
        idx = np.arange(c * h * w)
        for order in ("chw", "hwc"):
            for ch in range(c):
                got = _array(_call(fn, ch, (c, h, w), order))
                cube = idx.reshape(c, h, w) if order == "chw" else idx.reshape(h, w, c).transpose(2, 0, 1)
                want = cube[ch]
                if np.array_equal(got, want):
                    continue
                where = f"channel {ch} of a {c}x{h}x{w} volume in {order.upper()} order"
                if got.shape != want.shape:
                    return f"{where}: return an (H, W) = {want.shape} array of positions; " \
                           f"yours has shape {got.shape}."
                if order == "hwc" and np.array_equal(got, idx.reshape(c, h, w)[ch]):
                    return "in H,W,C order a channel is not one block: its numbers sit every C-th position."
                if got[0, 0] != want[0, 0]:
                    return f"{where} starts at position {want[0, 0]}; yours starts at {got[0, 0]:g}."
                return f"{where}: the next pixel along a row is {_step(want, 1)} positions on and " \
                       f"the next row {_step(want, 0)} positions on; yours step by " \
                       f"{_step(got, 1)} and {_step(got, 0)}: did you swap H and W?"
    return None


def _step(a: np.ndarray, axis: int) -> str:
    """How far apart neighbouring positions are along ``axis`` ('-' if there is one pixel)."""
    d = np.diff(a, axis=axis)
    return f"{d.flat[0]:g}" if d.size else "-"


# =========================================================================== 04

@check("04.1", needs_torch=True)
def convolutionalize_by_hand(fn):
    """fn(model: the lenet5 Sequential) -> a fully convolutional version of it."""

    torch.manual_seed(0)
    model = lenet5().double().eval()
    x, image = torch.randn(2, 1, 32, 32, dtype=torch.float64), torch.randn(1, 1, 48, 48, dtype=torch.float64)
    fcn = _call(fn, model)  # a copy: the original computes the expected values afterwards
    if not isinstance(fcn, nn.Module):
        return f"return an nn.Module; got {_describe(fcn)}."
    fcn.double().eval()
    with torch.no_grad():
        out = _tensor(fcn(x.clone()))
        big = _tensor(fcn(image.clone())) if out.dim() == 4 else None
        want = model(x)
    if out.dim() != 4:
        return f"the output has shape {tuple(out.shape)}: a fully convolutional net " \
               "returns (N, K, 1, 1) — did you keep the Flatten?"
    if out.shape[1:] != (10, 1, 1) or not torch.allclose(out.flatten(1), want, atol=1e-5):
        return _lenet_difference(model, fcn)
    # the 48x48 map must be LeNet-5 itself on every 32x32 crop, one per jump of its features
    jump = receptive_field(model[:6], (1, 32, 32)).jump
    crops = sliding_windows(model, image, 32, jump)
    if big.shape != crops.shape:
        return f"on 48x48 the score map should be {tuple(crops.shape)}; yours is {tuple(big.shape)}."
    if not torch.allclose(big, crops, atol=1e-5):
        return "at 32x32 your scores match, but at 48x48 your map is not LeNet-5 run on every " \
               f"32x32 crop {jump} pixels apart: each Linear must become a convolution that slides."
    if any(isinstance(m, nn.Linear) for m in fcn.modules()):
        return "a Linear is left: the first becomes a 5x5 conv, the others 1x1 convs."
    return None


def _lenet_difference(model: nn.Module, fcn: nn.Module) -> str:
    """Name the first Linear whose conv got the wrong weight or no bias."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    convs = [m for m in fcn.modules() if isinstance(m, nn.Conv2d)][-len(linears):]
    for i, (lin, conv) in enumerate(zip(linears, convs)):
        name = f"Linear number {i + 1} ({lin.in_features} -> {lin.out_features})"
        if conv.weight.numel() != lin.weight.numel():
            break
        w = conv.weight.detach().double().reshape(lin.weight.shape)
        if not torch.allclose(w, lin.weight, atol=1e-6):
            return f"at 32x32 your scores differ from LeNet-5's: the conv replacing {name} " \
                   "should hold its weight reshaped in C,H,W order."
        if conv.bias is None or not torch.allclose(conv.bias.detach().double(), lin.bias, atol=1e-6):
            return f"the weights are right but the bias of {name} was not copied: copy " \
                   "linear.bias into conv.bias."
    return "at 32x32 your network's scores differ from LeNet-5's: check that each conv's " \
           "weight is the Linear's weight reshaped in C,H,W order, and its bias copied."


@check("04.2", needs_torch=True)
def bn1d_to_bn2d(fn):
    """fn(bn: nn.BatchNorm1d) -> nn.BatchNorm2d computing the same per channel (eval mode)."""
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(6, eps=0.1).double()  # not the default eps: copying it must matter
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.05, 0.5)
    nn.init.normal_(bn.weight)
    nn.init.normal_(bn.bias)
    bn.eval()
    x = torch.randn(4, 6, 3, 3, dtype=torch.float64)
    new = _call(fn, bn)
    with torch.no_grad():
        want = bn(x.permute(0, 2, 3, 1).reshape(-1, 6)).reshape(4, 3, 3, 6).permute(0, 3, 1, 2)
    if not isinstance(new, nn.BatchNorm2d):
        return f"return an nn.BatchNorm2d; got {_describe(new)}."
    new.double().eval()
    with torch.no_grad():
        got = _tensor(new(x.clone()))
    if got.shape == want.shape and torch.allclose(got, want, atol=1e-5):  # float32 copies are fine
        return None
    if torch.allclose(new.running_mean, torch.zeros(6, dtype=torch.float64)):
        return "the running statistics were not copied: copy the state_dict."
    if new.eps != bn.eps:
        return f"eps was not copied: this BatchNorm1d has eps={bn.eps}, yours {new.eps}; " \
               "pass eps=bn.eps to BatchNorm2d (the state_dict does not hold it)."
    return "the outputs differ: copy weight, bias, running_mean, running_var and eps."


@check("04.3", needs_torch=True)
def tiny_vgg_map_side(fn):
    """fn(size) -> the score-map side of the convolutionalized Tiny VGG (window 64, jump 4)."""
    fcn = functools.cache(lambda: convolutionalize(tiny_vgg(device="meta"), (3, 64, 64)))

    def hint(got, want, size):
        if got == (size - 64) // 32 + 1 or got == (size - 64) // 2 + 1:
            return "Tiny VGG has two 2x2 pools: its jump is 2*2 = 4 pixels."
        return f"at {size} the map side is {want}; you gave {got}."
    return _compare(fn, [(s,) for s in range(64, 200, 3)],
                    lambda size: trace(fcn(), size).output_shape[1], hint)


# =========================================================================== 05

@check("05.1")
def window_of(fn):
    """fn(row, col, jump, window) -> (y0, x0, y1, x1), inclusive pixel bounds of cell (row, col)."""
    rng = _rng()
    cases = [(*rng.integers(0, 10, 2).tolist(), int(rng.choice([4, 16, 32])),
              int(rng.choice([28, 64, 224]))) for _ in range(20)]

    def hint(got, want, r, c, jump, window):
        if got == (want[0], want[1], want[2] + 1, want[3] + 1):
            return f"inclusive bounds: a {window}-pixel window starting at 0 ends at {window - 1}."
        if got[:2] == (want[1], want[0]):
            return "rows go with y, columns with x: (y0, x0, y1, x1)."
        return f"cell ({r}, {c}) with jump {jump} and window {window} is {want}; you gave {got}."
    return _compare(fn, cases, lambda r, c, jump, window: _ref_cell_window((r, c), window, jump),
                    hint, _ints(4))


@check("05.2")
def passes_needed(fn):
    """fn(jump, step) -> how many shifted passes shift-and-stitch needs for stride ``step``."""
    cases = [(jump, step) for jump in (4, 8, 16, 32) for step in (1, 2, 4, 8, 16, 32)
             if step <= jump and jump % step == 0]

    def hint(got, want, jump, step):
        if got == jump // step:
            return f"jump {jump}, step {step}: shifts are needed along y *and* x, " \
                   f"so {jump // step} x {jump // step} passes."
        return f"jump {jump}, step {step} needs {want} passes; you gave {got}."
    return _compare(fn, cases, lambda jump, step: (jump // step) ** 2, hint)


@check("05.3", needs_torch=True)
def vgg_field_of(fn):
    """fn(i) -> (first, last) input pixel of the receptive field of VGG16 fc6's cell i."""
    rf = functools.cache(lambda: receptive_field(convolutionalize(vgg16(device="meta"),
                                                                  (3, 224, 224)), 512))

    def hint(got, want, i):
        if got == (32 * i, 32 * i + 223):
            return "that is the window (224 px); the receptive field is larger and starts " \
                   "in the padding."
        return f"cell {i} sees pixels {want}; you gave {got}."
    return _compare(fn, [(i,) for i in range(10)], lambda i: rf().window(i), hint, _ints(2))


# =========================================================================== 06

@check("06.1")
def n_windows(fn):
    """fn(size, window, stride) -> windows of window x window at ``stride`` in a size x size image."""
    cases = [(size, window, stride) for size in range(28, 300, 7)
             for window, stride in ((28, 4), (64, 4), (224, 32)) if window <= size]

    def hint(got, want, size, window, stride):
        if got == _ref_score_map_side(size, window, stride):
            return "that is the count along one side: windows form a grid, square it."
        if got == ((size - window) // stride) ** 2:
            return "count the first window too: (size - window) // stride + 1 per side."
        return f"{size}x{size}, window {window}, stride {stride}: {want} windows; you gave {got}."
    return _compare(fn, cases, lambda *case: _ref_score_map_side(*case) ** 2, hint)


@check("06.2", needs_torch=True)
def mac_ratio(fn):
    """fn(size) -> MACs of all VGG16 crops / MACs of one dense pass at size x size."""
    sizes = (256, 384, 512)
    answers = [_number(_call(fn, size)) for size in sizes]  # all answers first
    vgg = vgg16(device="meta")
    fcn = convolutionalize(vgg, (3, 224, 224))
    crop = trace(vgg, 224).total_macs
    for size, got in zip(sizes, answers):
        crops = _ref_score_map_side(size, 224, 32) ** 2 * crop
        want = crops / trace(fcn, size).total_macs
        if math.isclose(got, want, rel_tol=1e-6):
            continue
        if math.isclose(got, crops / trace(vgg, size).total_macs, rel_tol=1e-6):
            return f"at {size} you gave {got:.4f}, the ratio is {want:.4f}: you traced VGG16 " \
                   "as it is, whose AdaptiveAvgPool2d averages pool5 down to 7x7 so that the " \
                   "head runs once. Convolutionalize it first: the dense pass runs the head " \
                   "at every window."
        return f"at {size} the ratio is {want:.4f}; you gave {got:.4f}."
    return None


@check("06.3")
def dress_windows(fn):
    """fn(units_w, units_h, win_w, win_h) -> how many win_w x win_h windows fit in the unit map."""
    rng = _rng()
    cases = [(*rng.integers(4, 40, 2).tolist(), *rng.integers(1, 5, 2).tolist()) for _ in range(20)]

    def hint(got, want, uw, uh, ww, wh):
        if got == (uw - wh + 1) * (uh - ww + 1):
            return "you paired the window's width with the map's height."
        return f"a {uw}x{uh} map holds {want} windows of {ww}x{wh}; you gave {got}."
    return _compare(fn, cases, lambda uw, uh, ww, wh: (uw - ww + 1) * (uh - wh + 1), hint)


# =========================================================================== 07

@check("07.1")
def conv_matrix_shape(fn):
    """fn(weight_shape (K, C, kh, kw), in_shape (C, H, W), stride, padding) -> (rows, cols)."""
    cases = (((64, 3, 3, 3), (3, 224, 224), 1, 1), ((8, 2, 5, 5), (2, 20, 16), 2, 0),
             ((4, 3, 3, 3), (3, 9, 9), 3, 1))

    def hint(got, want, ws, ins, s, p):
        if got[1] == ins[1] * ins[2] or got[0] == want[0] // ws[0]:
            return "count every channel: rows are K*H'*W', columns C*H*W."
        return f"for {ws} on {ins}, stride {s}, padding {p}: {want}; you gave {got}."
    return _compare(fn, cases, conv_matrix_entries, hint, _ints(2))


@check("07.2")
def my_conv_matrix(fn):
    """fn(weight (K, C, kh, kw), in_shape (C, H, W)) -> M with M @ x.ravel() == conv2d(x).ravel()
    (stride 1, no padding)."""
    rng = _rng()
    for _ in range(4):
        k, c = (int(v) for v in rng.integers(1, 3, 2))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        h, w = kh + int(rng.integers(0, 4)), kw + int(rng.integers(0, 4))
        weight, x = rng.standard_normal((k, c, kh, kw)), rng.standard_normal((1, c, h, w))
        m = _array(_call(fn, weight, (c, h, w)))
        want = conv2d(x, weight).ravel()
        if m.shape != (want.size, x.size):
            return f"M should be {(want.size, x.size)} (outputs x inputs); yours is {m.shape}."
        if not _close(m @ x.ravel(), want):
            if _float32(m @ x.ravel(), want):
                return _FLOAT32
            flipped = conv_matrix(weight[:, :, ::-1, ::-1].copy(), (c, h, w))
            if kh * kw > 1 and _close(m, flipped):
                return "your filter is flipped: PyTorch's conv is a cross-correlation."
            return "M @ x differs from conv2d(x): row r holds the filter at output r's " \
                   "patch, column index (c*H + y)*W + x."
    return None


@check("07.3")
def locally_connected_params(fn):
    """fn(size, kernel, stride, padding) -> weights of a locally connected layer (1 channel in,
    1 out, no bias): one weight per input each output position really sees."""
    cases = [(size, *ksp) for size in (5, 8, 11) for ksp in ((3, 1, 0), (3, 1, 1), (2, 2, 0), (3, 2, 1))]

    def want(size, kernel, stride, padding):
        m = conv_matrix(np.ones((1, 1, kernel, kernel)), (1, size, size), stride, padding)
        return int(np.count_nonzero(m))

    def hint(got, want, size, kernel, stride, padding):
        out = conv_output_size(size, kernel, stride, padding)
        if got == out * out * kernel * kernel:
            return "windows that overlap the padding see fewer real pixels: padding " \
                   "taps have no weight."
        return f"size {size}, kernel {kernel}, stride {stride}, padding {padding}: " \
               f"{want}; you gave {got}."
    return _compare(fn, cases, want, hint)


# =========================================================================== 08

@check("08.1", needs_torch=True)
def iou(fn):
    """fn(a, b) -> intersection over union of inclusive boxes (x0, y0, x1, y1)."""

    rng = _rng()
    for _ in range(40):
        a = rng.integers(0, 30, 2)
        b = rng.integers(0, 30, 2)
        a = (*a, *(a + rng.integers(0, 20, 2)))
        b = (*b, *(b + rng.integers(0, 20, 2)))
        a, b = tuple(int(v) for v in a), tuple(int(v) for v in b)
        got = _number(_call(fn, a, b))
        want = _ref_iou(a, b)
        if math.isclose(got, want, abs_tol=1e-9):
            continue
        said = f"iou({a}, {b}) = {want:.4f}; you gave {got:.4f}."
        inter, union, smaller = _overlap_areas(a, b)
        ex_inter, ex_union, _ = _overlap_areas(a, b, inclusive=False)
        if math.isclose(got, ex_inter / max(ex_union, 1), abs_tol=1e-9):
            return f"{said} Inclusive bounds: a box from x0 to x1 is x1 - x0 + 1 pixels wide."
        if math.isclose(got, inter / smaller, abs_tol=1e-9):
            return f"{said} You divided by the smaller box's area: IoU divides the " \
                   "intersection by the union, area(a) + area(b) - intersection."
        if math.isclose(got, inter / (union + inter), abs_tol=1e-9):
            return f"{said} The union counts the intersection once: area(a) + area(b) - " \
                   "intersection."
        return said
    return None


def _overlap_areas(a, b, inclusive: bool = True) -> tuple[int, int, int]:
    """(intersection, union, smaller area) of two boxes; inclusive bounds add one pixel."""
    one = 1 if inclusive else 0
    w = min(a[2], b[2]) - max(a[0], b[0]) + one
    h = min(a[3], b[3]) - max(a[1], b[1]) + one
    inter = max(w, 0) * max(h, 0)
    area_a, area_b = ((r[2] - r[0] + one) * (r[3] - r[1] + one) for r in (a, b))
    return inter, area_a + area_b - inter, min(area_a, area_b)


def _detections(x) -> list[tuple]:
    """A list of (x0, y0, x1, y1, label, score) detections, as plain tuples."""
    if not isinstance(x, (list, tuple)):
        raise _Wrong(f"return a list of detections; got {_describe(x)}")
    return [_numbers(d, 6) for d in x]


@check("08.2", needs_torch=True)
def nms(fn):
    """fn(detections [(x0, y0, x1, y1, label, score)], overlap) -> the kept detections."""

    rng = _rng()
    for _ in range(20):
        dets = []
        for _ in range(int(rng.integers(1, 12))):
            x, y = (int(v) for v in rng.integers(0, 60, 2))
            dets.append((x, y, x + 27, y + 27, int(rng.integers(10)), float(rng.random())))
        got = sorted(_detections(_call(fn, list(dets), 0.3)))
        want = sorted(_ref_nms(dets, 0.3))
        if got == want:
            continue
        if got == sorted(_greedy(dets, 0.3, by_score=False)):
            return "you took the boxes in the order they came: go through them from the " \
                   "highest score down, so that the best box of a cluster is the one kept."
        if got == sorted(_greedy(dets, 0.3, per_label=True)):
            return "you suppressed only boxes with the same label: here labels are ignored, " \
                   "a box suppresses every lower-scoring box it overlaps, whatever its label."
        if len(got) > len(want):
            return "you keep boxes that overlap a better one: suppress IoU > overlap."
        return "you dropped a box that should stay: go through the boxes from the highest " \
               "score down, and compare each only with the boxes already kept."
    return None


def _greedy(dets, overlap, by_score: bool = True, per_label: bool = False):
    """Greedy suppression, as a learner might write it: in the given order, or label by label."""

    kept = []
    for d in sorted(dets, key=lambda d: -d[5]) if by_score else dets:
        rivals = [k for k in kept if k[4] == d[4]] if per_label else kept
        if all(_ref_iou(d[:4], k[:4]) <= overlap for k in rivals):
            kept.append(d)
    return kept


@check("08.3")
def transposed_size(fn):
    """fn(n, kernel, stride, padding) -> output length of a transposed convolution."""
    cases = [(n, *ksp) for n in range(1, 12)
             for ksp in ((8, 4, 2), (4, 2, 1), (3, 1, 0), (16, 8, 4), (5, 3, 1))
             if (n - 1) * ksp[1] - 2 * ksp[2] + ksp[0] >= 1]

    def hint(got, want, n, k, s, p):
        if got == n * s:
            return f"n * stride is right only for kernel = 2*stride, padding = stride/2; " \
                   f"for n={n}, k={k}, s={s}, p={p} use (n - 1)*s - 2p + k."
        if got == n:
            return "that is the input size: a transposed conv grows the map."
        return f"n={n}, k={k}, s={s}, p={p}: {want}; you gave {got}."
    return _compare(fn, cases, lambda n, k, s, p: (n - 1) * s - 2 * p + k, hint)


@check("05.4")
def cell_box(fn):
    """fn(row, col, jump, window, scale) -> (x0, y0, x1, y1): the window of cell (row, col) of a
    map computed on a photo shrunk by ``scale``, in pixels of the original photo, inclusive;
    an edge that falls halfway may be rounded either way."""
    rng = _rng()
    gots = []
    for t in range(30):
        r, c = (int(v) for v in rng.integers(0, 30, 2))
        jump, window = int(rng.choice([4, 8, 32])), int(rng.choice([25, 28, 224]))
        scale = float(rng.choice([0.125, 0.25, 0.5])) if t % 3 == 0 else round(float(rng.uniform(0.1, 0.9)), 3)
        got = _numbers(_call(fn, r, c, jump, window, scale), 4)
        exact = np.array([c * jump / scale, r * jump / scale, (c * jump + window) / scale - 1,
                          (r * jump + window) / scale - 1])
        gots += got
        g = np.array(got, dtype=float)
        if np.all(np.abs(g - exact) <= 0.5 + 1e-9) and np.all(g == np.round(g)):
            continue
        want = tuple(int(v) for v in np.round(exact))
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
                   f"window / scale ({window} / {scale} = {window / scale:.1f} px). Cell ({r}, " \
                   f"{c}), jump {jump}, window {window}, scale {scale}: {want}; you gave {got}."
        return f"cell ({r}, {c}), jump {jump}, window {window}, scale {scale}: {want}; you gave {got}."
    return _ints_only(gots)
