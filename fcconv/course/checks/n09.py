"""Checks of exercises/09_mtcnn_exercises.ipynb: box regression, R-Net's FC head as a convolution,
P-Net's windows over the whole pyramid (plain NumPy / Python answers; the references of 09.1 and 09.3
live in fcconv.course.mtcnn, which needs PyTorch)."""

from __future__ import annotations

import math

import numpy as np

from ...formulas import score_map_side
from .core import array, check, close, compare, ints, optional

mtcnn = optional("fcconv.course.mtcnn")


# --------------------------------------------------------------------------- 09.2

def whc_to_conv(weight: np.ndarray, channels: int, height: int, width: int) -> np.ndarray:
    """The reference: a Linear's (K, W*H*C) weight, read in (W, H, C) order -> (K, C, H, W)."""
    return weight.reshape(len(weight), width, height, channels).transpose(0, 3, 2, 1)


def _read_as(order: str):
    """A learner's reshape in another order: ``order`` names the flatten they assumed."""
    def convert(weight, c, h, w):
        sizes = {"c": c, "h": h, "w": w}
        return weight.reshape(len(weight), *(sizes[a] for a in order)).transpose(
            0, *(1 + order.index(a) for a in "chw"))
    return convert


@check("09.2", forbids=("fcconv.numpy_ops.fc_to_conv_weight", "fcconv.conversions.linear_to_conv",
                        "fcconv.torch_ops.linear_to_conv"))
def whc_weight(rng):
    """fn(weight (K, W*H*C), C, H, W) -> the conv weight (K, C, H, W) that computes, on the
    (C, H, W) volume, what the Linear computes on its (W, H, C) flatten."""
    shapes = [(4, 3, 2, 5), (3, 2, 3, 3), (2, 4, 5, 2), (5, 64, 3, 3)]   # H != W, and R-Net's own
    shapes += [tuple(int(v) for v in rng.integers(1, 6, 4)) for _ in range(4)]
    cases = [(rng.standard_normal((k, w * h * c)), c, h, w) for k, c, h, w in shapes]

    def hint(got, want, weight, c, h, w):
        if got.shape != want.shape:
            return (f"for C={c}, H={h}, W={w} the conv weight is (K, C, H, W) = {want.shape}; "
                    f"you returned {got.shape}.")
        k, cc, y, x = np.argwhere(~np.isclose(got, want))[0]
        return (f"C={c}, H={h}, W={w}: weight[{k}, {cc}, {y}, {x}] should be the Linear's input "
                f"number (x * H + y) * C + c = {(x * h + y) * c + cc} of row {k}.")
    mistakes = [
        (_read_as("chw"), "you reshaped as PyTorch flattens, (C, H, W): R-Net's head reads its "
                          "volume as x.permute(0, 3, 2, 1).flatten(1), (W, H, C): reshape to "
                          "(K, W, H, C), then move the axes to (K, C, H, W)."),
        (_read_as("hwc"), "you read the flatten as Keras's (H, W, C): R-Net's is (W, H, C), width "
                          "first. Reshape to (K, W, H, C)."),
        (lambda weight, c, h, w: weight.reshape(len(weight), w, h, c).transpose(0, 3, 1, 2),
         "you reshaped to (K, W, H, C) but then moved the axes to (K, C, W, H): the conv weight is "
         "(K, C, H, W), so H comes before W: transpose(0, 3, 2, 1)."),
    ]
    return compare(cases, whc_to_conv, hint, array, close, mistakes)


# --------------------------------------------------------------------------- 09.1

def _moved(box, offsets, one=1, swap=False, scaled=True, rounding=round):
    """A box moved by the second head's offsets, right (the defaults) or with one mistake."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0 + one, y1 - y0 + one
    if swap:
        w, h = h, w
    if not scaled:
        w = h = 1
    dx0, dy0, dx1, dy1 = offsets
    return (rounding(x0 + dx0 * w), rounding(y0 + dy0 * h), rounding(x1 + dx1 * w),
            rounding(y1 + dy1 * h))


def _no_half(box, offsets) -> bool:
    """No moved edge lands on a half pixel, where rounding rules differ (and neither do the
    mistakes' edges)."""
    edges = [v for one in (0, 1) for swap in (False, True)
             for v in _moved(box, offsets, one, swap, rounding=float)]
    return all(abs(v % 1 - 0.5) > 1e-6 for v in edges)


@check("09.1", forbids=("fcconv.course.mtcnn.regress",), needs_torch=True)
def box_regression(rng):
    """fn(box (x0, y0, x1, y1), offsets (dx0, dy0, dx1, dy1)) -> the box the second head's
    offsets move it to, inclusive pixel bounds, each edge rounded to the nearest pixel."""
    cases = [((100, 40, 159, 129), (0.1, -0.2, 0.3, 0.05)),      # 60 wide, 90 high
             ((10, 20, 19, 39), (0.12, -0.11, -0.07, 0.23)), ((0, 0, 11, 11), (0.3, 0.2, -0.4, 0.1)),
             ((165, 73, 273, 182), (0.112, -0.025, -0.115, -0.045)),     # the notebook's best cell
             ((2, 3, 21, 42), (-0.33, -0.21, 0.14, 0.08))]     # edges below 0: int() is not floor
    while len(cases) < 30:
        x0, y0 = (int(v) for v in rng.integers(0, 400, 2))
        w, h = (int(v) for v in rng.integers(12, 200, 2))
        cases.append(((x0, y0, x0 + w - 1, y0 + h - 1),
                      tuple(float(v) for v in np.round(rng.uniform(-0.3, 0.3, 4), 4))))
    cases = [c for c in cases if _no_half(*c)]

    def hint(got, want, box, offsets):
        x0, y0, x1, y1 = box
        return (f"box {box} ({x1 - x0 + 1} px wide, {y1 - y0 + 1} px high), offsets {offsets}: "
                f"{want}; you gave {got}.")
    mistakes = [
        (lambda b, o: _moved(b, o, one=0),
         "inclusive bounds: a box from x0 to x1 is x1 - x0 + 1 pixels wide (and y1 - y0 + 1 high)."),
        (lambda b, o: _moved(b, o, swap=True),
         "the x offsets scale with the box's width, the y offsets with its height: you swapped them."),
        (lambda b, o: _moved(b, o, scaled=False),
         "the offsets are fractions of the box's size: multiply dx by its width and dy by its "
         "height before adding them."),
        (lambda b, o: _moved(b, o, rounding=math.floor),
         "round each edge to the nearest pixel: math.floor() and int() cut the fraction off."),
        (lambda b, o: _moved(b, o, rounding=int),
         "round each edge to the nearest pixel: int() and math.floor() cut the fraction off."),
        (lambda b, o: _moved(b, o, rounding=float),
         "right, before rounding: a box's edges are whole pixels, round each to the nearest."),
    ]
    return compare(cases, lambda b, o: mtcnn.regress(b, o), hint, ints(4), mistakes=mistakes)


# --------------------------------------------------------------------------- 09.3

def _levels(height, width, first=0.6, stop=12, size=math.ceil):
    """The pyramid's level sizes, right (the defaults) or with one mistake."""
    out, k = [], 0
    while min(height, width) * first * 0.709 ** k >= stop:
        s = first * 0.709 ** k
        out.append((size(height * s), size(width * s)))
        k += 1
    return out


def _windows(height, width, jump=2, levels=_levels, per_side=None):
    per_side = per_side or (lambda n: (n - 12) // jump + 1)
    return sum(per_side(h) * per_side(w) for h, w in levels(height, width))


def _fair(height, width) -> bool:
    """The pyramid is the same however its scales are computed (0.6 * 0.709**k, or multiplied
    step by step): no level's size or the last level's test sits on a rounding edge."""
    s, k = 0.6, 0
    while True:
        a = 0.6 * 0.709 ** k
        if abs(a - s) > 1e-12:
            return False
        for n in (height * a, width * a, min(height, width) * a - 12):
            if abs(n - round(n)) < 1e-6:
                return False
        if min(height, width) * a < 12:
            return True
        s, k = s * 0.709, k + 1


@check("09.3", forbids=("fcconv.course.mtcnn.scales", "fcconv.course.mtcnn.pyramid"),
       needs_torch=True)
def pnet_windows(rng):
    """fn(height, width) -> how many 12x12 windows, 2 px apart, P-Net scores over the whole
    pyramid of a height x width photo (faces of 20 px and up, factor 0.709)."""
    cases = [(512, 512), (600, 512), (19, 40), (20, 20), (37, 101), (480, 640), (1000, 872)]
    while len(cases) < 25:
        cases.append(tuple(int(v) for v in rng.integers(15, 1200, 2)))
    cases = [c for c in cases if _fair(*c)]

    def want(height, width):
        return sum(score_map_side(math.ceil(height * s), 12, 2) *
                   score_map_side(math.ceil(width * s), 12, 2) for s in mtcnn.scales(height, width))

    def hint(got, want, height, width):
        sizes = _levels(height, width)
        return (f"a {height}x{width} photo: {len(sizes)} levels, {sizes[:3]}...; {want:,} windows "
                f"in all; you gave {got}." if sizes else
                f"a {height}x{width} photo: no level fits a 12 px window (0 windows); you gave {got}.")
    as_is = lambda n: math.ceil((n - 4) / 2) - 3  # noqa: E731  P-Net's cells with its ceil-mode pool
    mistakes = [
        (lambda h, w: _windows(h, w, jump=1),
         "P-Net's cells are 2 px apart (its one 2x2 pool): (n - 12) // 2 + 1 windows along a side "
         "of n pixels, not n - 11."),
        (lambda h, w: _windows(h, w, levels=lambda h, w: _levels(h, w, size=math.floor)),
         "a level is ceil(height * scale) by ceil(width * scale) pixels (rounded up, as MTCNN "
         "resizes), not rounded down."),
        (lambda h, w: _windows(h, w, levels=lambda h, w: _levels(h, w, size=round)),
         "a level is ceil(height * scale) by ceil(width * scale) pixels (rounded up), not rounded "
         "to the nearest."),
        (lambda h, w: _windows(h, w, levels=lambda h, w: _levels(h, w, first=1.0)),
         "the first level is not the photo itself: it shrinks a 20 px face to P-Net's 12 px, "
         "scale 12/20 = 0.6."),
        (lambda h, w: _windows(h, w, per_side=as_is),
         "that counts the cells of P-Net as it is, whose ceil-mode pool adds a cell whose window "
         "hangs past the level's edge: count only the windows that fit, (n - 12) // 2 + 1."),
        (lambda h, w: _windows(h, w, levels=lambda h, w: _levels(h, w)[:1]),
         "that is the first level only: add the windows of every level of the pyramid."),
    ]
    return compare(cases, want, hint, mistakes=mistakes)

