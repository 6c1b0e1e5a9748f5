"""Notebook 03's explorer: neuron i's weight row, channel c's H x W slice, and where it sits.

``row_view`` is the plain function; ``WeightRowExplorer`` wires sliders and an order toggle.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import numpy_ops, plots
from .base import Explorer, LiveFigure, never_raise, show_html, show_png


def row_view(weight: np.ndarray, in_shape, neuron: int, channel: int, order: str = "chw") -> dict:
    """Row ``neuron`` of an FC weight (K, C*H*W) as a filter; channel ``channel``'s slice.

    Returns row (C*H*W,), filter (C, H, W), slice (H, W), positions: the flattened-input indices
    (H, W) that hold the slice's numbers in ``order``.
    """
    c, h, w = in_shape
    k = weight.shape[0]
    if not 0 <= neuron < k:
        raise ValueError(f"neuron must be between 0 and {k - 1}; got {neuron}")
    if not 0 <= channel < c:
        raise ValueError(f"channel must be between 0 and {c - 1}; got {channel}")
    filt = numpy_ops.fc_to_conv_weight(weight[neuron:neuron + 1], in_shape, order)[0]
    yy, xx = np.mgrid[0:h, 0:w]
    positions = (channel * h + yy) * w + xx if order == "chw" else (yy * w + xx) * c + channel
    return {"row": weight[neuron], "filter": filt, "slice": filt[channel], "positions": positions}


def positions_html(view: dict, order: str) -> str:
    pos = view["positions"]
    first = ", ".join(map(str, pos.ravel()[:5]))
    c = view["filter"].shape[0]
    spread = "one contiguous block" if order == "chw" else f"spread out, one in every {c}"
    return (f"<p>The {pos.shape[0]}x{pos.shape[1]} slice is made of the input positions "
            f"{first}, ... {pos.ravel()[-1]} ({order.upper()} order): "
            f"{spread}."
            f" Check: row[positions] equals the slice exactly: "
            f"<b>{bool(np.array_equal(view['row'][pos], view['slice']))}</b>.</p>")


def describe(view: dict, neuron: int, channel: int, order: str) -> str:
    """The picture of ``row_view``'s result in words (its alt text)."""
    pos = view["positions"].ravel()
    h, w = view["slice"].shape
    return (f"Neuron {neuron}'s weight row of {view['row'].size} numbers in {order.upper()} "
            f"order; channel {channel}'s {h}x{w} slice highlighted at input positions {pos[0]} to "
            f"{pos[-1]}{'' if order == 'chw' else ', spread out'}; below, that slice as a "
            f"{h}x{w} image.")


class WeightRowExplorer(Explorer):
    """Pick neuron i and channel c of an FC layer on a (C, H, W) volume; flip the flatten order."""

    def __init__(self, weight: np.ndarray, in_shape, neuron: int = 0, channel: int = 0):
        self.weight, self.in_shape = np.asarray(weight), tuple(in_shape)
        self.neuron = widgets.IntSlider(value=neuron, min=0, max=len(self.weight) - 1,
                                        description="neuron i")
        self.channel = widgets.IntSlider(value=channel, min=0, max=self.in_shape[0] - 1,
                                         description="channel c")
        self.order = widgets.ToggleButtons(options=[("PyTorch C,H,W", "chw"),
                                                    ("Keras H,W,C", "hwc")], value="chw",
                                           description="flatten order")
        self.out, self.text = widgets.Output(), widgets.Output()
        self._figures: dict[str, tuple] = {}  # one live figure per flatten order
        for wdg in (self.neuron, self.channel, self.order):
            wdg.observe(lambda _: self.update(), names="value")
        self.update()
        self.box = widgets.VBox([widgets.HBox([self.neuron, self.channel]), self.order,
                                 self.out, self.text])

    @never_raise(clear=("text",))
    def update(self) -> None:
        v = row_view(self.weight, self.in_shape, self.neuron.value, self.channel.value,
                     self.order.value)
        show_png(self.out, self.picture(v["row"], self.channel.value, self.order.value),
                 describe(v, self.neuron.value, self.channel.value, self.order.value))
        show_html(self.text, positions_html(v, self.order.value))

    def picture(self, row: np.ndarray, channel: int, order: str) -> bytes:
        """PNG of ``plots.row_into_cube``; the axes of each order are drawn once, on the scale of
        the whole weight matrix, and only the data are redrawn."""
        if not self._figures:  # both orders up front: the toggle then costs what a slider does
            limit = max(float(self.weight.max()), -float(self.weight.min())) or 1.0
            for o in ("chw", "hwc"):
                fig, parts = plots.row_into_cube_parts(self.in_shape, o, limit)
                fig.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.92)
                live = LiveFigure(fig)
                live.changing(*plots.draw_row(parts, row, channel))
                live.png()  # draws the background now
                self._figures[o] = (live, parts)
        live, parts = self._figures[order]
        plots.draw_row(parts, row, channel)
        return live.png()
