"""Dense score maps two ways: the reference (the original model on every crop) and the fast
one (a convolutionalized net), plus shift-and-stitch for a finer stride than the net's jump.

A net from ``convolutionalize`` carries ``window`` (the training size it slides) and ``jump``
(the stride of its windows) as public attributes. ``CropToWindows`` (the layer that drops cells
whose window hangs off the image) is defined in ``_crop`` and re-exported here.
"""

from __future__ import annotations

import itertools
import math
import numbers
import weakref

import torch
from torch import nn

from ._crop import CropToWindows
from ._fx import graph_on_shapes
from ._model import spatial_axes, spatial_layers
from ._notes import in_training
from ._walk import analyse
from .conversions import expect, expect_input
from .formulas import checked_int, format_shape, score_map_side, stitch_factor

__all__ = ["CropToWindows", "shift_and_stitch", "sliding_windows", "stitch_passes"]


@torch.no_grad()
def sliding_windows(model: nn.Module, image: torch.Tensor, window, stride,
                    batch_size: int = 32) -> torch.Tensor:
    """The reference: run ``model`` on every window-sized crop at ``stride``.

    image (N, C, H, W) or (C, H, W) -> scores (N, K, rows, cols), rows = (H - window) // stride + 1,
    K the number of values the model gives per crop. A model that returns a tuple of heads
    (MTCNN's nets: face probability, box offsets) gives a tuple of such maps.
    For a model whose first layer is 1-D (Conv1d, MaxPool1d, ...): sequence (N, C, L) or (C, L)
    -> (N, K, cols); 3-D (Conv3d, ...): volume (N, C, D, H, W) -> (N, K, D', rows, cols). Window
    and stride: an int, or one per axis. Crops are cut and scored ``batch_size`` at a time:
    memory holds one batch, never every crop. A model whose scores depend on more than each
    crop (BatchNorm in training mode, dropout that drops) is refused: it has no reference.
    """
    expect(model, nn.Module, "model")
    batch_size = checked_int("batch_size", batch_size, 1)
    nsp = spatial_axes(model, getattr(image, "ndim", None))
    image = _batch(image, nsp, model)
    window, stride = _sizes("window", window, nsp), _sizes("stride", stride, nsp)
    expect_input(model, image)
    sides = tuple(image.shape[2:])
    if any(w > s for w, s in zip(window, sides)):
        raise ValueError(f"window {'x'.join(map(str, window))} does not fit in the "
                         f"{'x'.join(map(str, sides))} {_what_image(nsp)}")
    # The first window of the first image and the last of the last: scored together and alone
    # where some batch holds two crops (then the pair costs no more memory than a batch).
    first = image[(slice(0, 1), slice(None), *(slice(0, w) for w in window))]
    last = image[(slice(-1, None), slice(None), *(slice(s - w, s) for w, s in zip(window, sides)))]
    crops = image.shape[0] * math.prod(score_map_side(s, w, st)
                                       for s, w, st in zip(sides, window, stride))
    why = _in_training(model, first, last if min(crops, batch_size) > 1 else None)
    if why:
        raise ValueError(f"sliding_windows cannot give the reference here: {why}")
    # A stride past the last window gives the one window either way (and unfold takes no more).
    stride = tuple(min(st, s) for st, s in zip(stride, sides))
    return _slide(model, image, window, stride, batch_size)


def _slide(model, image: torch.Tensor, window, stride, batch_size: int):
    n, c, *sides = image.shape
    counts = [score_map_side(s, w, st) for s, w, st in zip(sides, window, stride)]
    crops = image
    for axis, (w, st) in enumerate(zip(window, stride)):  # a view (N, C, *counts, *window)
        crops = crops.unfold(2 + axis, w, st)
    per_image = math.prod(counts)
    heads, several = None, False
    for first in range(0, n * per_image, batch_size):
        idx = torch.arange(first, min(first + batch_size, n * per_image))
        at, rest = [idx // per_image], idx % per_image
        for k in range(len(counts)):                       # the crop's position along each axis
            inner = math.prod(counts[k + 1:])
            at.append(rest // inner)
            rest = rest % inner
        batch = crops[(at[0], slice(None), *at[1:])]       # (B, C, *window): only this batch copied
        out = _score(model, batch, first == 0)
        several = isinstance(out, (tuple, list))
        parts = tuple(out) if several else (out,)
        if not parts or not all(isinstance(p, torch.Tensor) and p.dim() >= 1 and
                                p.shape[0] == len(idx) for p in parts):
            raise ValueError(f"the model returned {_what(out)} for a batch of {len(idx)} crops: "
                             "sliding_windows needs a tensor (or a tuple of tensors) with one "
                             "row per crop")
        heads = heads or [[] for _ in parts]
        for scores, p in zip(heads, parts):
            scores.append(p.reshape(len(idx), -1))
    nsp = len(counts)
    maps = tuple(torch.cat(s).reshape(n, *counts, -1).permute(0, nsp + 1, *range(1, nsp + 1))
                 for s in heads)
    return maps if several else maps[0]


def _what_image(nsp: int) -> str:
    return {1: "sequence", 2: "image", 3: "volume"}[nsp]


def _in_training(model: nn.Module, crop: torch.Tensor, other: torch.Tensor | None) -> str:
    """Why the model's scores depend on more than each crop ('' if they do not): a layer in
    training mode, or random numbers in forward (F.dropout that drops, torch.rand): found by
    the walk, or, where the walk cannot follow forward, by scoring ``crop`` twice; or a model
    that mixes the examples of a batch: ``crop`` and ``other`` scored together and alone.

    That takes milliseconds, as much as scoring a few crops: the answer is kept for the model
    as long as its layers keep their modes and plain attributes (a dropout rate, a flag forward
    reads), so that timing the reference times the crops.
    """
    why = in_training(model)
    if why:
        return why
    key = (tuple(crop.shape[1:]), other is not None, tuple(
        (m.training, tuple((k, v) for k, v in vars(m).items()
                           if isinstance(v, (bool, int, float, str)))) for m in model.modules()))
    answers = _WALKED.setdefault(model, {})
    if key not in answers:
        try:
            graph = analyse(model, tuple(crop.shape[1:]))
            answers[key] = next((s.notes["random"] for s in graph.steps.values()
                                 if "random" in s.notes), "")
        except ValueError:
            answers[key] = _differs_twice(model, crop)
        if other is not None and not answers[key]:
            answers[key] = _mixes_examples(model, torch.cat([crop, other]))
    return answers[key]


def _mixes_examples(model: nn.Module, pair: torch.Tensor) -> str:
    """'' if each crop of ``pair`` gets the same scores in a batch of two as alone (up to the
    rounding a batch size may change); else that the model mixes the examples of a batch."""
    try:
        both = _parts(model(pair.clone()))   # clones: a model may change its input in place
        alone = [_parts(model(pair[i:i + 1].clone())) for i in range(2)]
    except Exception:  # noqa: BLE001  (the first batch of crops reports it, with the layer)
        return ""
    for i in range(2):
        for p, q in zip(both, alone[i]):
            if not (isinstance(p, torch.Tensor) and isinstance(q, torch.Tensor)) or \
                    p.dim() == 0 or p.shape[0] != 2 or q.shape[0] != 1:
                continue
            eps = torch.finfo(q.dtype).eps ** 0.5 if q.is_floating_point() else 0
            together = p[i:i + 1]
            if not torch.isclose(together, q, rtol=eps, atol=eps, equal_nan=True).all():
                gap = (together - q).abs().nan_to_num(nan=float("inf")).max()
                off = "scored alone, is NaN" if gap.isinf() else \
                    f"scored beside another, is {gap.item():.3g} off its score alone"
                return (f"the model's scores for a crop depend on the other crops in its batch "
                        f"(crop {i}, {off}): forward mixes examples (a statistic over dim 0, as a "
                        "minibatch-stddev feature computes), so no score belongs to one crop; "
                        "compute it per example")
    return ""


def _differs_twice(model: nn.Module, crop: torch.Tensor, copies: int = 32) -> str:
    """'' if the model gives a batch of ``copies`` copies of ``crop`` the same scores twice (or
    cannot score it: the crops say why); else that it draws random numbers. A mask that keeps
    an example with probability 0.8 is the same in both calls for all 32 copies with
    probability 0.68**32, about 4e-6."""
    batch = crop.repeat(copies, *(1,) * (crop.dim() - 1))
    try:
        first, second = _parts(model(batch)), _parts(model(batch))
    except Exception:  # noqa: BLE001  (the first batch of crops reports it, with the layer)
        return ""
    same = all(torch.equal(p, q) for p, q in zip(first, second)
               if isinstance(p, torch.Tensor) and isinstance(q, torch.Tensor))
    return "" if same else ("the model gives other scores each time it scores the same crop "
                            "(random numbers in forward: dropout, noise, stochastic depth); call "
                            "model.eval(), or draw them only in training")


def _parts(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


_WALKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # model -> {key: answer}


def _score(model, batch: torch.Tensor, first: bool):
    """model(batch); on the first batch, a model that cannot take a crop of this shape gets a
    message naming the crop (and, where fcconv can follow the model, the layer that fails)."""
    if not first:
        return model(batch)
    try:
        return model(batch)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        crop = tuple(batch.shape[1:])
        raise ValueError(f"the model cannot score a {format_shape(crop)} crop: "
                         f"{_why_not(model, crop, err)}") from err


def _why_not(model: nn.Module, crop: tuple[int, ...], err: Exception) -> str:
    """The walk's account of why ``model`` cannot run on ``crop`` (it names the layer), or the
    first line of PyTorch's."""
    try:
        analyse(model, crop)
    except ValueError as walk_err:
        return str(walk_err)
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _what(out) -> str:
    """A short description of what a model returned, for a message."""
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {', '.join(_what(o) for o in out) or 'nothing'}"
    return f"a {type(out).__name__}"


def _batch(image, nsp: int, model: nn.Module) -> torch.Tensor:
    """image as (N, C, *spatial), or a clear error: (C, H, W) gets a batch of one."""
    expect(image, torch.Tensor, "image")
    if image.dim() == nsp + 1:
        image = image.unsqueeze(0)
    if image.dim() != nsp + 2:
        want = {1: "a sequence (C, L) or (N, C, L)", 2: "(C, H, W) or (N, C, H, W)",
                3: "a volume (C, D, H, W) or (N, C, D, H, W)"}[nsp]
        layers = spatial_layers(model)
        because = f"the model's layers ({layers}) take {nsp} spatial axes, so " \
            if layers != "none" else ""
        raise ValueError(f"{because}image must be {want}; got shape {tuple(image.shape)}")
    if image.shape[0] == 0:
        raise ValueError(f"image is an empty batch, shape {tuple(image.shape)}: nothing to score")
    return image


def _sizes(name: str, v, nsp: int) -> tuple[int, ...]:
    """window / stride as one positive int per spatial axis (an int means the same on each)."""
    sizes = tuple(v) if isinstance(v, (tuple, list)) else (v,) * nsp
    if len(sizes) != nsp or any(isinstance(p, bool) or not isinstance(p, numbers.Integral) or
                                p < 1 for p in sizes):
        one = "a positive int for a 1-D model (one axis)" if nsp == 1 else \
            f"a positive int or {nsp} of them (one per axis)"
        raise ValueError(f"{name} must be {one}; got {v!r}")
    return tuple(int(p) for p in sizes)


def stitch_passes(jump: int, step: int) -> int:
    """How many shifted passes shift-and-stitch needs: f^2 with f = jump / step."""
    return stitch_factor(jump, step) ** 2


def _window_and_jump(fcn: nn.Module, nsp: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The window a convolutionalized net slides and the jump between its windows, per axis
    (its own ``.window`` and ``.jump``, recorded by convolutionalize)."""
    window, jump = getattr(fcn, "window", None), getattr(fcn, "jump", None)
    if window is None or jump is None:
        raise ValueError("fcn has no .window: pass a net made by fcconv.convolutionalize, which "
                         "records the window it slides and the jump between windows")
    return _sizes("fcn.window", window, nsp), _sizes("fcn.jump", jump, nsp)


@torch.no_grad()
def shift_and_stitch(fcn: nn.Module, image: torch.Tensor, step) -> torch.Tensor:
    """A score map at stride ``step`` < jump, from (jump/step)^2 passes over shifted inputs.

    image (N, C, H, W) -> (N, K, rows, cols) with rows = (H - window) // step + 1: equal to
    ``sliding_windows(model, image, window, step)`` for a net without zero padding (a tuple of
    maps for a net with several heads; (N, C, L) -> (N, K, cols) and jump/step passes for a 1-D
    net). ``step``: an int, or one per axis; it must divide the jump along each axis (a net
    whose jump differs between height and width takes (jump_h/step_h) * (jump_w/step_w)
    passes). Pass (dy, dx) drops the first dy*step rows and dx*step columns; its cell (i, j) is
    the window at (i*jump + dy*step, j*jump + dx*step), which goes to row i*f + dy, column j*f + dx.
    """
    expect(fcn, nn.Module, "fcn")
    nsp = spatial_axes(fcn, getattr(image, "ndim", None))
    window, jump = _window_and_jump(fcn, nsp)
    image = _batch(image, nsp, fcn)
    expect_input(fcn, image, "fcn")
    steps = _sizes("step", step, nsp)
    f = [stitch_factor(j, st) for j, st in zip(jump, steps)]
    sides = [score_map_side(s, w, st) for s, w, st in zip(image.shape[2:], window, steps)]
    outs, several = None, False
    for shift in itertools.product(*(range(min(fa, n)) for fa, n in zip(f, sides))):
        p = _run(fcn, image[(slice(None), slice(None),
                             *(slice(d * st, None) for d, st in zip(shift, steps)))])
        several = isinstance(p, (tuple, list))
        parts = tuple(p) if several else (p,)
        if outs is None:
            outs = [q.new_empty(*q.shape[:-nsp], *sides) for q in parts]
        for out, q in zip(outs, parts):
            target = out[(..., *(slice(d, None, fa) for d, fa in zip(shift, f)))]
            if q.shape[-nsp:] != target.shape[-nsp:]:
                raise ValueError(f"pass {shift} gave a {tuple(q.shape[-nsp:])} map where "
                                 f"{tuple(target.shape[-nsp:])} windows fit: fcn is not the "
                                 "convolutionalized net its .window says")
            target.copy_(q)
    return tuple(outs) if several else outs[0]



def _run(fcn: nn.Module, x: torch.Tensor):
    """fcn(x); a meta x (shapes only) through a converted net: its graph call by call
    (``graph_on_shapes``), without PyTorch's meta kernels (a second and 70 MB in a kernel)."""
    out = graph_on_shapes(fcn, x)
    return fcn(x) if out is None else out
