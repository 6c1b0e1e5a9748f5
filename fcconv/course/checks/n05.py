"""Checks of exercises/05_score_maps_exercises.ipynb (05.3's reference, VGG16's field, needs PyTorch)."""

from __future__ import annotations

import functools

import numpy as np

from ...formulas import cell_window
from .core import Plan, check, compare, ints, optional

fcn = optional("fcconv.fcn")
models = optional("fcconv.models")
shapes = optional("fcconv.shapes")


@check("05.1", forbids=("fcconv.formulas.cell_window",))
def window_of(rng):
    """fn(row, col, jump, window) -> (y0, x0, y1, x1), inclusive pixel bounds of cell (row, col)."""
    cases = [(1, 3, 16, 64)] + [(*(int(v) for v in rng.integers(0, 40, 2)), int(rng.choice([4, 16, 32])),
                                 int(rng.choice([28, 64, 224]))) for _ in range(20)]

    def hint(got, want, r, c, jump, window):
        return f"cell ({r}, {c}) with jump {jump} and window {window} is {want}; you gave {got}."
    mistakes = [
        (lambda r, c, j, w: (r * j, c * j, r * j + w, c * j + w),
         lambda got, want, r, c, jump, window: f"inclusive bounds: a {window}-pixel window "
                                               f"starting at 0 ends at {window - 1}."),
        (lambda r, c, j, w: (c * j, r * j, c * j + w - 1, r * j + w - 1),
         "rows go with y, columns with x: (y0, x0, y1, x1)."),
        (lambda r, c, j, w: (r * w, c * w, r * w + w - 1, c * w + w - 1),
         "a cell's window starts at row * jump, not row * window: cells are jump pixels apart, "
         "and their windows overlap."),
    ]
    return compare(cases, lambda r, c, jump, window: cell_window((r, c), window, jump), hint,
                   ints(4), mistakes=mistakes)


@check("05.2", forbids=("fcconv.formulas.stitch_factor", "fcconv.dense.stitch_passes"))
def passes_needed(rng):
    """fn(jump, step) -> how many shifted passes shift-and-stitch needs for stride ``step``
    (a whole number: 16.0 counts as 16)."""
    cases = [(jump, step) for jump in (4, 8, 16, 32) for step in (1, 2, 4, 8, 16, 32)
             if step <= jump and jump % step == 0]
    for _ in range(10):
        jump = int(rng.integers(1, 513))
        divisors = [d for d in range(1, jump + 1) if jump % d == 0]
        cases.append((jump, int(rng.choice(divisors))))

    def hint(got, want, jump, step):
        return f"jump {jump}, step {step} needs {want} passes; you gave {got}."
    mistakes = [
        (lambda jump, step: jump // step,
         lambda got, want, jump, step: f"jump {jump}, step {step}: shifts are needed along y "
                                       f"*and* x, so {jump // step} x {jump // step} passes."),
        (lambda jump, step: 2 * (jump // step),
         "the shifts along y and along x combine: every y shift with every x shift, so "
         "(jump / step) times (jump / step) passes, not their sum."),
    ]
    return compare(cases, lambda jump, step: (jump // step) ** 2, hint, mistakes=mistakes)


@functools.cache
def vgg_field():
    """VGG16's fc6 receptive field, convolutionalized (autograd, on meta tensors)."""
    return shapes.receptive_field(fcn.convolutionalize(models.vgg16(device="meta"), (3, 224, 224)),
                                  512)


@check("05.3", needs_torch=True)
def vgg_field_of(rng):
    """fn(i) -> (first, last) input pixel of the receptive field of VGG16 fc6's cell i."""
    cells = [*range(10), *(int(i) for i in rng.integers(10, 100_000, 10))]

    def hint(got, want, i):
        return f"cell {i} sees pixels {want}; you gave {got}."
    mistakes = [
        (lambda i: (32 * i, 32 * i + 223),
         "that is the window (224 px); the receptive field is larger and starts in the padding."),
        (lambda i: (32 * i - 90, 32 * i + 314),
         "inclusive bounds: a field of 404 pixels that starts at `first` ends at first + 403."),
        (lambda i: (32 * i, 32 * i + 403),
         "the field starts in the zero padding, before pixel 32 * i: start = 32 * i - 90."),
    ]
    return compare([(i,) for i in cells], lambda i: vgg_field().window(i), hint, ints(2),
                   mistakes=mistakes)


@check("05.4", forbids=("fcconv.course.faces.cell_box",))
def cell_box(rng):
    """fn(row, col, jump, window, scale) -> (x0, y0, x1, y1): the window of cell (row, col) of a
    map computed on a photo shrunk by ``scale``, in pixels of the original photo, inclusive;
    an edge that falls halfway may be rounded either way."""
    cases = []
    for t in range(30):
        r, c = (int(v) for v in rng.integers(0, 30, 2))
        jump, window = int(rng.choice([4, 8, 32])), int(rng.choice([25, 28, 224]))
        scale = float(rng.choice([0.125, 0.25, 0.5])) if t % 3 == 0 else \
            round(float(rng.uniform(0.1, 0.9)), 3)
        cases.append((r, c, jump, window, scale))

    def judge(answers: list) -> str | None:
        for (r, c, jump, window, scale), got in zip(cases, answers):
            problem = _box_problem(got, r, c, jump, window, scale)
            if problem:
                return problem
        return None
    return Plan(cases, judge, ints(4))


def _box_problem(got: tuple, r: int, c: int, jump: int, window: int, scale: float) -> str | None:
    """Why a box is not cell (r, c)'s window in the original photo (None: it is)."""
    g = np.array([float(v) for v in got])
    exact = np.array([c * jump, r * jump, c * jump + window, r * jump + window]) / scale - [0, 0, 1, 1]
    within = lambda box: bool(np.all(np.abs(g - box) <= 0.5 + 1e-9))  # noqa: E731
    if within(exact) and np.all(g == np.round(g)):
        return None
    want = tuple(int(v) for v in np.round(exact))
    shrunk = np.array([c * jump, r * jump, c * jump + window - 1, r * jump + window - 1])
    said = f"cell ({r}, {c}), jump {jump}, window {window}, scale {scale}: {want}; you gave {got}."
    if within(exact):
        return "round each edge to a whole pixel: boxes are in pixels."
    if np.all(g == np.floor(exact)):
        return "int() cuts the fraction off: round each edge to the nearest pixel."
    if np.all(np.abs(g - shrunk) <= 1):
        return "those are pixels of the shrunk photo: divide by the scale to get back to the " \
               "original photo."
    if np.all(np.abs(g - (shrunk + [0, 0, 1, 1]) * scale + [0, 0, 1, 1]) <= 1):
        return "the photo was shrunk by the scale: divide by it, do not multiply."
    if within(exact[[1, 0, 3, 2]]):
        return "boxes here are (x0, y0, x1, y1): the column gives x, the row gives y."
    if within(exact + [0, 0, 1, 1]):
        return "inclusive bounds: the last pixel of the window is one before its far edge."
    if np.all(np.abs(g[:2] - exact[:2]) <= 0.5 + 1e-9):
        return f"the start is right, the end is not: the window's side in the photo is window / " \
               f"scale ({window} / {scale} = {window / scale:.1f} px). {said}"
    return said
