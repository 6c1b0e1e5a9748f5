"""Notebook 04's explorer: a converted classifier on a growing input; its score map grows.

``score_map_view`` is the plain function; ``ScoreMapExplorer`` wires an input-size slider and a
class picker to it.
"""

from __future__ import annotations

import ipywidgets as widgets
import torch

from .. import plots
from ..shapes import receptive_field
from .base import Explorer, figure_png, never_raise, show_html, show_png


@torch.no_grad()
def score_map_view(fcn, image: torch.Tensor, size: int, cls: int, window: int) -> dict:
    """Run ``fcn`` on the top-left size x size of ``image`` (1, C, H, W); class ``cls``'s map.

    Returns scores (rows, cols), rows, cols, jump, windows (rows * cols).
    """
    if size < window:
        raise ValueError(f"input {size}x{size} is smaller than the {window}x{window} window the "
                         "classifier was trained on: no window fits")
    if size > image.shape[-1]:
        raise ValueError(f"input size must be at most {image.shape[-1]}; got {size}")
    scores = fcn(image[:, :, :size, :size])[0]
    if not 0 <= cls < scores.shape[0]:
        raise ValueError(f"class must be between 0 and {scores.shape[0] - 1}; got {cls}")
    jump = receptive_field(fcn, (image.shape[1], size, size)).jump
    rows, cols = scores.shape[1:]
    return {"scores": scores[cls].numpy(), "rows": rows, "cols": cols, "jump": jump,
            "windows": rows * cols}


class ScoreMapExplorer(Explorer):
    """Input size and class: the converted network's score map for that class."""

    def __init__(self, fcn, image: torch.Tensor, window: int, size: int | None = None):
        self.fcn, self.image, self.window = fcn, image, window
        n_classes = fcn(image[:, :, :window, :window]).shape[1]
        self.size = widgets.IntSlider(value=size or window, min=window // 2, max=image.shape[-1],
                                      description="input size", continuous_update=False)
        self.cls = widgets.IntSlider(value=0, min=0, max=n_classes - 1, description="class")
        self.out, self.text = widgets.Output(), widgets.Output()
        for wdg in (self.size, self.cls):
            wdg.observe(lambda _: self.update(), names="value")
        self.update()
        self.box = widgets.VBox([widgets.HBox([self.size, self.cls]), self.text, self.out])

    @never_raise("text", clear=("out",))
    def update(self) -> None:
        v = score_map_view(self.fcn, self.image, self.size.value, self.cls.value, self.window)
        show_html(self.text, f"<p>{self.size.value}x{self.size.value} input: "
                             f"({self.size.value} - {self.window}) // {v['jump']} + 1 = {v['rows']} "
                             f"rows of windows, {v['cols']} columns, {v['windows']} windows "
                             "scored in one pass.</p>")
        title = f"class {self.cls.value}: one score per {self.window}x{self.window} window"
        show_png(self.out, figure_png(plots.score_map(v["scores"], title)))
