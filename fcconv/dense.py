"""Dense score maps two ways: the reference (the original model on every crop) and the fast
one (a convolutionalized net), plus shift-and-stitch for a finer stride than the net's jump.

A net from ``convolutionalize`` carries ``window`` (the training size it slides) and ``jump``
(the stride of its windows) as public attributes.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from .conversions import expect
from .formulas import checked_int, score_map_side, stitch_factor


def _image(image) -> torch.Tensor:
    expect(image, torch.Tensor, "image")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4:
        raise ValueError(f"image must be (C, H, W) or (N, C, H, W); got shape {tuple(image.shape)}")
    return image


def _pair(name, v) -> tuple[int, int]:
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(pair) != 2 or any(isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 1
                             for p in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them; got {v!r}")
    return tuple(int(p) for p in pair)


@torch.no_grad()
def sliding_windows(model: nn.Module, image: torch.Tensor, window, stride,
                    batch_size: int = 32) -> torch.Tensor:
    """The reference: run ``model`` on every window-sized crop at ``stride``.

    image (N, C, H, W) or (C, H, W) -> scores (N, K, rows, cols), rows = (H - window) // stride + 1,
    K the number of values the model gives per crop. A model that returns a tuple of heads
    (MTCNN's nets: face probability, box offsets) gives a tuple of such maps.
    For a model whose first conv is a Conv1d: sequence (N, C, L) or (C, L), window and stride
    ints -> (N, K, cols). Crops are cut and scored ``batch_size`` at a time: memory holds one
    batch, never every crop.
    """
    expect(model, nn.Module, "model")
    batch_size = checked_int("batch_size", batch_size, 1)
    if _first_conv_is_1d(model):
        seq = _sequence(image)
        w, s = _one("window", window), _one("stride", stride)
        maps = _slide(lambda b: model(b.squeeze(2)), seq.unsqueeze(2), (1, w), (1, s), batch_size)
        return tuple(m.squeeze(2) for m in maps) if isinstance(maps, tuple) else maps.squeeze(2)
    return _slide(model, _image(image), _pair("window", window), _pair("stride", stride),
                  batch_size)


def _slide(model, image: torch.Tensor, window, stride, batch_size: int) -> torch.Tensor:
    (wh, ww), (sh, sw) = window, stride
    n, c, h, w = image.shape
    if wh > h or ww > w:
        raise ValueError(f"window {wh}x{ww} does not fit in the {h}x{w} image" if h > 1 or wh > 1
                         else f"window {ww} does not fit in the sequence of length {w}")
    rows, cols = score_map_side(h, wh, sh), score_map_side(w, ww, sw)
    crops = image.unfold(2, wh, sh).unfold(3, ww, sw)  # a view (N, C, rows, cols, wh, ww): no copy
    heads, several = None, False
    for first in range(0, n * rows * cols, batch_size):
        idx = torch.arange(first, min(first + batch_size, n * rows * cols))
        b, r, col = idx // (rows * cols), idx // cols % rows, idx % cols
        batch = crops[b, :, r, col]                     # (B, C, wh, ww): only this batch copied
        out = model(batch)
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
    maps = tuple(torch.cat(s).reshape(n, rows, cols, -1).permute(0, 3, 1, 2) for s in heads)
    return maps if several else maps[0]


def _what(out) -> str:
    """A short description of what a model returned, for a message."""
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {', '.join(_what(o) for o in out) or 'nothing'}"
    return f"a {type(out).__name__}"


def _first_conv_is_1d(model: nn.Module) -> bool:
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))), None)
    return isinstance(first, nn.Conv1d)


def _sequence(seq) -> torch.Tensor:
    expect(seq, torch.Tensor, "image")
    if seq.dim() == 2:
        seq = seq.unsqueeze(0)
    if seq.dim() != 3:
        raise ValueError(f"the model starts with a Conv1d, so image must be a sequence (C, L) or "
                         f"(N, C, L); got shape {tuple(seq.shape)}")
    return seq


def _one(name, v) -> int:
    v = v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive int for a Conv1d model (one axis); got {v!r}")
    return int(v)


def stitch_passes(jump: int, step: int) -> int:
    """How many shifted passes shift-and-stitch needs: f^2 with f = jump / step."""
    return stitch_factor(jump, step) ** 2


class CropToWindows(nn.Module):
    """Keeps the score-map cells whose window fits in the image: (scores, image) -> scores
    (N, K, rows, cols) with rows = (H - window) // jump + 1. A trunk that ignores the last rows
    of its window (floor pooling) makes extra cells that hang off the image; they go."""

    def __init__(self, window: tuple[int, ...], jump: tuple[int, ...]):
        super().__init__()
        self.window, self.jump = tuple(window), tuple(jump)

    def forward(self, scores: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        sides = [score_map_side(s, w, j) for s, w, j in zip(image.shape[2:], self.window,
                                                           self.jump)]
        return scores[(..., *(slice(0, s) for s in sides))]

    def extra_repr(self) -> str:
        return f"window={self.window}, jump={self.jump}"


def _window_and_jump(fcn: nn.Module) -> tuple[tuple[int, int], int]:
    """The window a convolutionalized net slides and the jump between its windows (its own
    ``.window`` and ``.jump``, recorded by convolutionalize)."""
    window, jump = getattr(fcn, "window", None), getattr(fcn, "jump", None)
    if window is None or jump is None:
        raise ValueError("fcn has no .window: pass a net made by fcconv.convolutionalize, which "
                         "records the window it slides and the jump between windows")
    window = (window, window) if isinstance(window, int) else tuple(window)
    if not isinstance(jump, int):
        raise ValueError(f"the network's jump differs between height and width: {jump}")
    if len(window) != 2:
        raise ValueError(f"shift_and_stitch stitches 2-D score maps; this net slides a "
                         f"{len(window)}-D window {window}")
    return window, jump


@torch.no_grad()
def shift_and_stitch(fcn: nn.Module, image: torch.Tensor, step: int) -> torch.Tensor:
    """A score map at stride ``step`` < jump, from (jump/step)^2 passes over shifted inputs.

    image (N, C, H, W) -> (N, K, rows, cols) with rows = (H - window) // step + 1: equal to
    ``sliding_windows(model, image, window, step)`` for a net without zero padding (a tuple of
    maps for a net with several heads).
    Pass (dy, dx) drops the first dy*step rows and dx*step columns; its cell (i, j) is the window
    at (i*jump + dy*step, j*jump + dx*step), which goes to row i*f + dy, column j*f + dx.
    """
    expect(fcn, nn.Module, "fcn")
    (wh, ww), jump = _window_and_jump(fcn)
    image = _image(image)
    step = checked_int("step", step, 1)
    f = stitch_factor(jump, step)
    h, w = image.shape[2:]
    rows, cols = score_map_side(h, wh, step), score_map_side(w, ww, step)
    outs, several = None, False
    for dy in range(min(f, rows)):
        for dx in range(min(f, cols)):
            p = fcn(image[:, :, dy * step:, dx * step:])
            several = isinstance(p, (tuple, list))
            parts = tuple(p) if several else (p,)
            if outs is None:
                outs = [q.new_empty(*q.shape[:-2], rows, cols) for q in parts]
            for out, q in zip(outs, parts):
                target = out[..., dy::f, dx::f]
                if q.shape[-2:] != target.shape[-2:]:
                    raise ValueError(f"pass ({dy}, {dx}) gave a {tuple(q.shape[-2:])} map where "
                                     f"{tuple(target.shape[-2:])} windows fit: fcn is not the "
                                     "convolutionalized net its .window says")
                target.copy_(q)
    return tuple(outs) if several else outs[0]
