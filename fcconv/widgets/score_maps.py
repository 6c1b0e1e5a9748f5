"""Notebook 05's explorer: the trained face detector over a photo, one pyramid level at a time.
Pick the window side (the scale) and a cell: see the cell's window in the photo and its face
probability.

``cell_view`` is the plain function; ``FaceMapExplorer`` wires the controls, computing each
level once (a later visit to the same scale only redraws).
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import faces, plots
from .base import Explorer, figure_png, never_raise, show_html, show_png


def cell_view(level: faces.Level, cell) -> dict:
    """One cell of one pyramid level: its window in the original photo (x0, y0, x1, y1) and
    its face probability, and the window's IoU with the marked face."""
    rows, cols = level.probs.shape
    r, c = cell
    if not (0 <= r < rows and 0 <= c < cols):
        raise ValueError(f"cell must be within the {rows}x{cols} map of this scale; got ({r}, {c})")
    box = faces.cell_box(r, c, faces.JUMP, faces.WINDOW, level.scale)
    return {"box": box, "p": float(level.probs[r, c]), "iou": faces.face_iou(box),
            "rows": rows, "cols": cols}


def cell_html(level: faces.Level, view: dict, cell) -> str:
    x0, y0, x1, y1 = view["box"]
    sy, sx = level.scale
    return (f"<p>Cell {tuple(cell)} of the {view['rows']}x{view['cols']} map at window side "
            f"{level.side} px (photo shrunk to {level.image.shape[-2]}x{level.image.shape[-1]}, "
            f"scale {sy:.3f}): window x {x0}–{x1}, y {y0}–{y1} in the photo; "
            f"<b>P(face) = {view['p']:.3f}</b>; IoU with the marked face {view['iou']:.2f}.</p>")


class FaceMapExplorer(Explorer):
    """Window side (pyramid level), then a cell by row and column."""

    def __init__(self, fcn, image: np.ndarray, sides=faces.SIDES, side: int | None = None):
        self.fcn, self.image = fcn, image
        self._cache: dict[int, faces.Level] = {}
        self.side = widgets.SelectionSlider(options=list(sides), value=side or sides[0],
                                            description="window side", continuous_update=False)
        self.row = widgets.IntSlider(value=0, min=0, max=0, description="cell row",
                                     continuous_update=False)
        self.col = widgets.IntSlider(value=0, min=0, max=0, description="cell column",
                                     continuous_update=False)
        self.out, self.text = widgets.Output(), widgets.Output()
        self.side.observe(lambda _: self._rescale(), names="value")
        for wdg in (self.row, self.col):
            wdg.observe(lambda _: self.update(), names="value")
        self._rescale()
        self.box = widgets.VBox([self.side, widgets.HBox([self.row, self.col]), self.text,
                                 self.out])

    def level(self, side: int) -> faces.Level:
        """The pyramid level for ``side``, computed once."""
        if side not in self._cache:
            self._cache[side] = faces.pyramid(self.fcn, self.image, (side,))[0]
        return self._cache[side]

    @never_raise("text", clear=("out",))
    def _rescale(self) -> None:
        rows, cols = self.level(self.side.value).probs.shape
        with self.row.hold_trait_notifications(), self.col.hold_trait_notifications():
            self.row.max, self.col.max = rows - 1, cols - 1
        self.update()

    @never_raise("text", clear=("out",))
    def update(self) -> None:
        lv = self.level(self.side.value)
        cell = (self.row.value, self.col.value)
        view = cell_view(lv, cell)
        box = (*view["box"], 1, view["p"])
        fig = plots.face_map(self.image, lv.probs.numpy(), lv.scale, faces.JUMP, faces.WINDOW,
                             [box], faces.FACE_BOX,
                             f"{lv.side} px windows: cell {cell}, P(face) = {view['p']:.3f}")
        x0, y0, x1, y1 = view["box"]
        show_png(self.out, figure_png(fig),
                 alt=f"The photo in grey with the face probability of every {lv.side}-pixel "
                     f"window over it; the window of cell {cell}, x {x0} to {x1}, y {y0} to "
                     f"{y1}, is outlined in orange with its probability {view['p']:.3f}; the "
                     "marked face is a dashed blue box.")
        show_html(self.text, cell_html(lv, view, cell))
