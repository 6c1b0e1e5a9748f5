"""Notebook 04's explorer: a converted classifier on a growing input; its score map grows.

``score_map_view`` is the plain function; ``ScoreMapExplorer`` wires an input-size slider and a
class picker to it, running the network once per input size (a class change only redraws).
"""

from __future__ import annotations

import ipywidgets as widgets
import torch

from .. import plots
from ..shapes import receptive_field
from .base import Explorer, LiveFigure, kept, never_raise, show_html, show_png


@torch.no_grad()
def score_map_view(fcn, image: torch.Tensor, size: int, cls: int, window: int) -> dict:
    """Run ``fcn`` on the top-left size x size of ``image`` (1, C, H, W); class ``cls``'s map.

    Returns scores (rows, cols), every class's map ``all`` (K, rows, cols), rows, cols, jump,
    windows (rows * cols).
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
    return {"scores": scores[cls].numpy(), "all": scores.numpy(), "rows": rows, "cols": cols,
            "jump": jump, "windows": rows * cols}


class ScoreMapExplorer(Explorer):
    """Input size and class: the converted network's score map for that class."""

    def __init__(self, fcn, image: torch.Tensor, window: int, size: int | None = None,
                 names=None, cls: int = 0):
        self.fcn, self.image, self.window = fcn, image, window
        self._cache: dict[int, dict] = {}
        self._shown: dict[tuple, bytes] = {}  # (size, class) -> picture
        self._live = None                 # one figure, redrawn with new data (faster than anew)
        with torch.no_grad():
            n_classes = fcn(image[:, :, :window, :window]).shape[1]
        self.names = list(names) if names is not None else [str(k) for k in range(n_classes)]
        self.size = widgets.IntSlider(value=size or window, min=window // 2, max=image.shape[-1],
                                      description="input size", continuous_update=False)
        self.cls = widgets.Dropdown(options=[(n, k) for k, n in enumerate(self.names)], value=cls,
                                    description="class")
        self.out, self.text = widgets.Output(), widgets.Output()
        for wdg in (self.size, self.cls):
            wdg.observe(lambda _: self.update(), names="value")
        self.update()
        self.box = widgets.VBox([widgets.HBox([self.size, self.cls]), self.text, self.out])

    def view(self, size: int) -> dict:
        """Every class's map at ``size`` (one pass, kept); keys as ``score_map_view``'s."""
        if size not in self._cache:
            self._cache[size] = score_map_view(self.fcn, self.image, size, 0, self.window)
        return self._cache[size]

    def _draw(self, scores, title: str) -> bytes:
        """PNG of the score map. One figure, kept (a ``LiveFigure``): axes, ticks and labels
        are drawn again only when the map's shape changes; a class change redraws the map,
        its title and its colour bar (whose range follows the class's scores)."""
        if self._live is None:
            fig = plots.score_map(scores, title)
            self._live = LiveFigure(fig, dpi=90)
            ax, bar = fig.axes
            # the map, then what lies over it (the frame), the title, the colour bar
            self._live.changing(ax.images[0], *ax.spines.values(), ax.title, bar)
        ax = self._live.fig.axes[0]
        im = ax.images[0]
        if im.get_array().shape != scores.shape:
            self._live.redraw_all()  # new limits: new ticks
        im.set_data(scores)
        im.set_extent((-0.5, scores.shape[1] - 0.5, scores.shape[0] - 0.5, -0.5))
        im.set_clim(scores.min(), scores.max())
        ax.title.set_text(title)
        return self._live.png()

    @never_raise("text", clear=("out",))
    def update(self) -> None:
        v = dict(self.view(self.size.value))
        v["scores"] = v["all"][self.cls.value]
        show_html(self.text, f"<p>{self.size.value}x{self.size.value} input: "
                             f"({self.size.value} - {self.window}) // {v['jump']} + 1 = {v['rows']} "
                             f"rows of windows, {v['cols']} columns, {v['windows']} windows "
                             "scored in one pass.</p>")
        name = self.names[self.cls.value]
        # two lines: on one, a long class name ran under the colour bar
        title = f"class {name}\none score per {self.window}x{self.window} window"
        png = kept(self._shown, (self.size.value, self.cls.value),
                   lambda: self._draw(v["scores"], title))
        show_png(self.out, png,
                 alt=f"Score map of class {name}: {v['rows']} rows by {v['cols']} columns of "
                     f"windows, scores from {v['scores'].min():.2f} to {v['scores'].max():.2f}, "
                     f"highest at row {int(v['scores'].argmax()) // v['cols']}, column "
                     f"{int(v['scores'].argmax()) % v['cols']}.")
