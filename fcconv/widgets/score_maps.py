"""Notebook 05's explorer: a convolutionalized classifier over a photo; pick a cell, see its
window, its receptive field and its top scores.

Plain functions: ``dense_scores`` and ``cell_view``; ``PhotoScoreExplorer`` wires the controls.
"""

from __future__ import annotations

import ipywidgets as widgets
import torch

from .. import plots
from ..data import imagenet_normalize, photo
from ..formulas import cell_window
from ..shapes import receptive_field
from .base import Explorer, figure_png, never_raise, show_html, show_png


@torch.no_grad()
def dense_scores(fcn, image: torch.Tensor) -> torch.Tensor:
    """One pass of the fully convolutional net: image (3, H, W) in [0, 1] -> (K, rows, cols)."""
    x = imagenet_normalize(image)[None].to(next(fcn.parameters()).dtype)
    return fcn(x)[0]


def cell_view(scores: torch.Tensor, cell, window: int, jump: int, rf, top: int = 5) -> dict:
    """What one cell of the score map means: its window, its receptive field, its top classes.

    scores (K, rows, cols). Returns window (y0, x0, y1, x1), field (y0, x0, y1, x1), top
    [(class, score)], and the best score of every cell (rows, cols).
    """
    k, rows, cols = scores.shape
    r, c = cell
    if not (0 <= r < rows and 0 <= c < cols):
        raise ValueError(f"cell must be within the {rows}x{cols} score map; got ({r}, {c})")
    values, classes = scores[:, r, c].topk(min(top, k))
    (fy0, fy1), (fx0, fx1) = rf.window(r), rf.window(c)
    return {"window": cell_window((r, c), window, jump),
            "field": (fy0, fx0, fy1, fx1),
            "top": list(zip(classes.tolist(), values.tolist())),
            "best": scores.max(dim=0).values.numpy()}


def cell_html(view: dict, cell) -> str:
    (y0, x0, y1, x1), (fy0, fx0, fy1, fx1) = view["window"], view["field"]
    rows = "".join(f"<tr><td>class {c}</td><td>{s:+.4f}</td></tr>" for c, s in view["top"])
    return (f"<p>Cell {tuple(cell)}: window rows {y0}–{y1}, columns {x0}–{x1} (what the classifier "
            f"was trained to look at); receptive field rows {fy0}–{fy1}, columns {fx0}–{fx1} "
            f"(every pixel that can change this score; negative = zero padding).</p>"
            f"<table><tr><th>top classes</th><th>score</th></tr>{rows}</table>")


class PhotoScoreExplorer(Explorer):
    """Input size, and a cell picked by row and column: the picture and the cell's top scores."""

    def __init__(self, fcn, window: int, sizes=(224, 512), step: int = 32,
                 photo_name: str = "astronaut", size: int | None = None):
        self.fcn, self.window, self.photo_name = fcn, window, photo_name
        self._cache: dict[int, tuple] = {}
        self.size = widgets.IntSlider(value=size or sizes[0], min=sizes[0], max=sizes[1], step=step,
                                      description="input size", continuous_update=False)
        self.row = widgets.IntSlider(value=0, min=0, max=0, description="cell row")
        self.col = widgets.IntSlider(value=0, min=0, max=0, description="cell column")
        self.out, self.text = widgets.Output(), widgets.Output()
        self.size.observe(lambda _: self._resize(), names="value")
        for wdg in (self.row, self.col):
            wdg.observe(lambda _: self.update(), names="value")
        self._resize()
        self.box = widgets.VBox([self.size, widgets.HBox([self.row, self.col]), self.out,
                                 self.text])

    def state(self, size: int):
        """(photo, scores, jump, field) at ``size``, computed once per size."""
        if size not in self._cache:
            image = photo(self.photo_name, size)
            scores = dense_scores(self.fcn, image)
            rf = receptive_field(self.fcn, (3, size, size))
            self._cache[size] = (image, scores, rf.jump, rf)
        return self._cache[size]

    @never_raise("text", clear=("out",))
    def _resize(self) -> None:
        _, scores, _, _ = self.state(self.size.value)
        self.row.max, self.col.max = scores.shape[1] - 1, scores.shape[2] - 1
        self.update()

    @never_raise("text", clear=("out",))
    def update(self) -> None:
        image, scores, jump, rf = self.state(self.size.value)
        cell = (self.row.value, self.col.value)
        view = cell_view(scores, cell, self.window, jump, rf)
        show_png(self.out, figure_png(plots.windows_on_photo(image, self.window, jump, cell, rf,
                                                             scores=view["best"])))
        show_html(self.text, cell_html(view, cell))
