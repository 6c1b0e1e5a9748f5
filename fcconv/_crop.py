"""The one layer a convolutionalized net may hold that PyTorch lacks (private): CropToWindows.

It sits below ``_walk`` (which must know it when it traces a converted net) and ``dense`` (which
re-exports it), so that neither imports the other.
"""

from __future__ import annotations

import torch
from torch import nn

from .formulas import score_map_side


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
