"""Dense score maps two ways: the reference (the original model on every crop) and the fast
one (a convolutionalized net), plus shift-and-stitch for a finer stride than the net's jump.

A net from ``convolutionalize`` carries ``window`` (the training size it slides) and ``jump``
(the stride of its windows) as public attributes.
"""

from __future__ import annotations

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
    if len(pair) != 2 or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them; got {v!r}")
    return pair


@torch.no_grad()
def sliding_windows(model: nn.Module, image: torch.Tensor, window, stride,
                    batch_size: int = 32) -> torch.Tensor:
    """The reference: run ``model`` on every window-sized crop at ``stride``.

    image (N, C, H, W) or (C, H, W) -> scores (N, K, rows, cols), rows = (H - window) // stride + 1.
    Crops are cut and scored ``batch_size`` at a time: memory holds one batch, never every crop.
    """
    expect(model, nn.Module, "model")
    image = _image(image)
    (wh, ww), (sh, sw) = _pair("window", window), _pair("stride", stride)
    batch_size = checked_int("batch_size", batch_size, 1)
    n, c, h, w = image.shape
    if wh > h or ww > w:
        raise ValueError(f"window {wh}x{ww} does not fit in the {h}x{w} image")
    rows, cols = score_map_side(h, wh, sh), score_map_side(w, ww, sw)
    crops = image.unfold(2, wh, sh).unfold(3, ww, sw)  # a view (N, C, rows, cols, wh, ww): no copy
    scores = []
    for first in range(0, n * rows * cols, batch_size):
        idx = torch.arange(first, min(first + batch_size, n * rows * cols))
        b, r, col = idx // (rows * cols), idx // cols % rows, idx % cols
        batch = crops[b, :, r, col]                     # (B, C, wh, ww): only this batch copied
        scores.append(model(batch).reshape(len(idx), -1))
    return torch.cat(scores).reshape(n, rows, cols, -1).permute(0, 3, 1, 2)


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


def _window_and_jump(fcn: nn.Module, image: torch.Tensor) -> tuple[tuple[int, int], int]:
    from .shapes import receptive_field

    window = getattr(fcn, "window", None)
    if window is None:
        raise ValueError("fcn has no .window: pass a net made by fcconv.convolutionalize, which "
                         "records the window it slides")
    window = (window, window) if isinstance(window, int) else tuple(window)
    jump = receptive_field(fcn, tuple(image.shape[1:])).jump
    if not isinstance(jump, int):
        raise ValueError(f"the network's jump differs between height and width: {jump}")
    return window, jump


@torch.no_grad()
def shift_and_stitch(fcn: nn.Module, image: torch.Tensor, step: int) -> torch.Tensor:
    """A score map at stride ``step`` < jump, from (jump/step)^2 passes over shifted inputs.

    image (N, C, H, W) -> (N, K, rows, cols) with rows = (H - window) // step + 1: equal to
    ``sliding_windows(model, image, window, step)`` for a net without zero padding.
    Pass (dy, dx) drops the first dy*step rows and dx*step columns; its cell (i, j) is the window
    at (i*jump + dy*step, j*jump + dx*step), which goes to row i*f + dy, column j*f + dx.
    """
    expect(fcn, nn.Module, "fcn")
    image = _image(image)
    step = checked_int("step", step, 1)
    (wh, ww), jump = _window_and_jump(fcn, image)
    f = stitch_factor(jump, step)
    h, w = image.shape[2:]
    rows, cols = score_map_side(h, wh, step), score_map_side(w, ww, step)
    out = None
    for dy in range(min(f, rows)):
        for dx in range(min(f, cols)):
            p = fcn(image[:, :, dy * step:, dx * step:])
            if out is None:
                out = p.new_empty(p.shape[0], p.shape[1], rows, cols)
            target = out[:, :, dy::f, dx::f]
            if p.shape[2:] != target.shape[2:]:
                raise ValueError(f"pass ({dy}, {dx}) gave a {tuple(p.shape[2:])} map where "
                                 f"{tuple(target.shape[2:])} windows fit: fcn is not the "
                                 "convolutionalized net its .window says")
            target.copy_(p)
    return out
