"""Notebook 05's explorer: the trained face detector over a photo, one pyramid level at a time.
Pick the window side (the scale) and a cell: see the cell's window in the photo and its face
probability.

``cell_view`` is the plain function; ``FaceMapExplorer`` wires the controls. Each level is
computed and painted once (photo + probabilities, ``overlay``); a cell move only draws two boxes
on that picture with Pillow, which keeps a move well under matplotlib's cost of a new figure.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import plots
from ..course import faces
from .base import Explorer, never_raise, photo_jpeg, show_html, show_jpeg


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


def overlay(image: np.ndarray, level: faces.Level) -> np.ndarray:
    """The grey photo (H, W) with the level's face probabilities painted (``plots.probability_rgba``:
    viridis, clear at 0) over the part of the photo nearest each window's centre: (H, W, 3) uint8."""
    return paint(image, level.probs.numpy(), level.scale, faces.WINDOW, faces.JUMP)


def paint(image: np.ndarray, probs: np.ndarray, scale, window: int, jump: int) -> np.ndarray:
    """A photo, grey (H, W) or RGB (H, W, 3), floats in [0, 1] or uint8, with a map of
    probabilities (rows, cols) painted (``plots.probability_rgba``: viridis, clear at 0) where
    each cell's window is centred; the map was computed on the photo resized by ``scale`` =
    (sy, sx), cells ``jump`` px apart, each a ``window`` px square there: (H, W, 3) uint8."""
    rows, cols = probs.shape
    sy, sx = scale
    half = window / 2 - jump / 2
    r = np.floor((np.arange(image.shape[0]) * sy - half) / jump).astype(int)
    c = np.floor((np.arange(image.shape[1]) * sx - half) / jump).astype(int)
    inside = ((r >= 0) & (r < rows))[:, None] & ((c >= 0) & (c < cols))[None, :]
    heat = probs[r.clip(0, rows - 1)][:, c.clip(0, cols - 1)]
    rgba = plots.probability_rgba(heat)
    alpha = np.where(inside, rgba[..., 3], 0)[..., None]   # the photo shows where nothing fires
    photo = image / 255.0 if image.dtype == np.uint8 else image
    base = photo if photo.ndim == 3 else np.repeat(photo[..., None], 3, axis=2)
    mixed = (1 - alpha) * base + alpha * rgba[..., :3]
    return (mixed * 255).round().astype(np.uint8)


def boxes_jpeg(picture: np.ndarray, window, truth) -> bytes:
    """``picture`` with the picked ``window`` (orange) and the marked face ``truth`` (blue),
    both inclusive (x0, y0, x1, y1): JPEG bytes (a photo: see ``photo_jpeg``)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(picture)
    draw = ImageDraw.Draw(img)
    draw.rectangle(truth[:4], outline=plots.OKABE_ITO[1], width=2)
    draw.rectangle(window[:4], outline=plots.OKABE_ITO[0], width=3)
    return photo_jpeg(img)


def cell_html(level: faces.Level, view: dict, cell) -> str:
    x0, y0, x1, y1 = view["box"]
    sy, sx = level.scale
    return (f"<p>Cell {tuple(cell)} of the {view['rows']}x{view['cols']} map at window side "
            f"{level.side} px (photo shrunk to {level.image.shape[-2]}x{level.image.shape[-1]}, "
            f"scale {sy:.3f}): window x {x0}–{x1}, y {y0}–{y1} in the photo; "
            f"<b>P(face) = {view['p']:.3f}</b>; IoU with the marked face {view['iou']:.2f}. "
            "Orange: this window; blue: the marked face; colour: P(face) of the window centred "
            "there, clear at 0, more opaque and from purple to yellow towards 1.</p>")


class FaceMapExplorer(Explorer):
    """Window side (pyramid level), then a cell by row and column."""

    def __init__(self, fcn, image: np.ndarray, sides=faces.SIDES, side: int | None = None):
        self.fcn, self.image = fcn, image
        self._cache: dict[int, tuple[faces.Level, np.ndarray]] = {}
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
        """The pyramid level for ``side``, computed (and painted) once."""
        if side not in self._cache:
            lv = faces.pyramid(self.fcn, self.image, (side,))[0]
            self._cache[side] = (lv, overlay(self.image, lv))
        return self._cache[side][0]

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
        x0, y0, x1, y1 = view["box"]
        show_jpeg(self.out, boxes_jpeg(self._cache[lv.side][1], view["box"], faces.FACE_BOX),
                 alt=f"The photo in grey with the face probability of every {lv.side}-pixel "
                     f"window painted over it (clear at 0, purple to yellow towards 1); the "
                     f"window of cell {cell}, "
                     f"x {x0} to {x1}, y {y0} to {y1}, is outlined in orange, probability "
                     f"{view['p']:.3f}; the marked face is outlined in blue.")
        show_html(self.text, cell_html(lv, view, cell))
