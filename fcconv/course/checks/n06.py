"""Checks of exercises/06_efficiency_exercises.ipynb (06.2's reference, VGG16's MACs, needs PyTorch)."""

from __future__ import annotations

import functools

from ...formulas import score_map_side
from .core import SIZE_FORMULAS, check, close, compare, number, optional

fcn = optional("fcconv.fcn")
models = optional("fcconv.models")
shapes = optional("fcconv.shapes")


@check("06.1", forbids=SIZE_FORMULAS)
def n_windows(rng):
    """fn(size, window, stride) -> windows of window x window at ``stride`` in a size x size image."""
    cases = [(size, window, stride) for size in range(28, 300, 7)
             for window, stride in ((28, 4), (64, 4), (224, 32)) if window <= size]
    for _ in range(10):
        window = int(rng.integers(1, 300))
        cases.append((window + int(rng.integers(0, 5000)), window, int(rng.integers(1, 65))))

    def hint(got, want, size, window, stride):
        return (f"{size}x{size}, window {window}, stride {stride}: {want} "
                f"window{'s' * (want != 1)}; you gave {got}.")
    mistakes = [
        (lambda size, window, stride: score_map_side(size, window, stride),
         "that is the count along one side: windows form a grid, square it."),
        (lambda size, window, stride: ((size - window) // stride) ** 2,
         "count the first window too: (size - window) // stride + 1 per side."),
        (lambda size, window, stride: (size // window) ** 2,
         "windows overlap: a new one starts every stride pixels, not every window pixels, so "
         "(size - window) // stride + 1 per side."),
    ]
    return compare(cases, lambda *case: score_map_side(*case) ** 2, hint, mistakes=mistakes)


@functools.cache
def vgg_macs(size: int, convolutionalized: bool) -> int:
    """MACs of VGG16 (as it is, or convolutionalized at 224) on a size x size image."""
    vgg = models.vgg16(device="meta")
    net = fcn.convolutionalize(vgg, (3, 224, 224)) if convolutionalized else vgg
    return shapes.trace(net, size).total_macs


def _crops(size: int) -> int:
    return score_map_side(size, 224, 32) ** 2 * vgg_macs(224, False)


@check("06.2", needs_torch=True)
def mac_ratio(rng):
    """fn(size) -> MACs of all VGG16 crops / MACs of one dense pass at size x size."""
    sizes = [256, 384, *(int(s) for s in rng.integers(225, 1024, 2))]

    def hint(got, want, size):
        return f"at {size} the ratio is {want:.4f}; you gave {float(got):.4f}."
    mistakes = [
        (lambda size: _crops(size) / vgg_macs(size, False),
         lambda got, want, size: f"at {size} you gave {float(got):.4f}, the ratio is {want:.4f}: "
                                 "you traced VGG16 as it is, whose AdaptiveAvgPool2d averages "
                                 "pool5 down to 7x7 so that the head runs once. Convolutionalize "
                                 "it first: the dense pass runs the head at every window."),
        (lambda size: vgg_macs(size, True) / _crops(size),
         "you divided the other way: the crops' MACs over the dense pass's."),
        (lambda size: ((size - 224) // 32) ** 2 * vgg_macs(224, False) / vgg_macs(size, True),
         "count the first window too: (size - 224) // 32 + 1 windows per side."),
    ]
    return compare([(s,) for s in sizes], lambda size: _crops(size) / vgg_macs(size, True), hint,
                   number, close, mistakes)


@check("06.3")
def dress_windows(rng):
    """fn(units_w, units_h, win_w, win_h) -> how many win_w x win_h windows fit in the unit map."""
    cases = [(20, 12, 4, 2)] + [(*(int(v) for v in rng.integers(4, 40, 2)),
                                 *(int(v) for v in rng.integers(1, 5, 2))) for _ in range(20)]

    def hint(got, want, uw, uh, ww, wh):
        return f"a {uw}x{uh} map holds {want} window{'s' * (want != 1)} of {ww}x{wh}; you gave {got}."
    mistakes = [
        (lambda uw, uh, ww, wh: (uw - wh + 1) * (uh - ww + 1),
         "you paired the window's width with the map's height."),
        (lambda uw, uh, ww, wh: (uw - ww) * (uh - wh),
         "count the first window too: units - window + 1 positions along each axis."),
    ]
    return compare(cases, lambda uw, uh, ww, wh: (uw - ww + 1) * (uh - wh + 1), hint,
                   mistakes=mistakes)
