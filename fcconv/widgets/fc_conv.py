"""Notebook 01's explorer: an FC layer and the conv with F = H = W, P = 0, side by side.

``fc_vs_conv`` is the plain function; ``FCvsConvExplorer`` wires sliders to it.
"""

from __future__ import annotations

from html import escape

import ipywidgets as widgets
import numpy as np

from .. import numpy_ops, plots
from .base import Explorer, LiveFigure, never_raise, set_image, show_html, show_png

MAX_INPUTS = 4096  # keeps the picture readable and the update instant
COLOUR_LIMIT = 3.0  # the weights are standard normal draws: a fixed scale keeps one colour bar


def fc_vs_conv(c: int, h: int, w: int, k: int, seed: int = 0) -> dict:
    """Random x (1, C, H, W), FC weight (K, C*H*W): the FC output and the conv output.

    Returns x, weight, bias, filters (K, C, H, W), fc (K,), conv (K,), max_diff.
    """
    for name, v in (("C", c), ("H", h), ("W", w), ("K", k)):
        if v < 1:
            raise ValueError(f"{name} must be at least 1; got {v}")
    if c * h * w > MAX_INPUTS:
        raise ValueError(f"C*H*W = {c * h * w} inputs is more than this picture shows "
                         f"({MAX_INPUTS}); choose a smaller volume")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, c, h, w))
    weight, bias = rng.standard_normal((k, c * h * w)), rng.standard_normal(k)
    fc = numpy_ops.linear(x.reshape(1, -1), weight, bias)[0]
    filters = numpy_ops.fc_to_conv_weight(weight, (c, h, w))
    conv_out = numpy_ops.conv2d(x, filters, bias)
    return {"x": x, "weight": weight, "bias": bias, "filters": filters, "fc": fc,
            "conv": conv_out[0, :, 0, 0], "conv_shape": conv_out.shape,
            "max_diff": float(np.abs(fc - conv_out[0, :, 0, 0]).max())}


def summary_html(r: dict) -> str:
    """The two outputs and how far apart they are, as a small table."""
    cells = "".join(f"<tr><td>{i}</td><td>{a:+.6f}</td><td>{b:+.6f}</td></tr>"
                    for i, (a, b) in enumerate(zip(r["fc"], r["conv"])))
    return (f"<p>FC: x flattened to {r['weight'].shape[1]} numbers, times a "
            f"{r['weight'].shape[0]}x{r['weight'].shape[1]} matrix. Conv: {r['filters'].shape[0]} "
            f"filters of {'x'.join(map(str, r['filters'].shape[1:]))}, output "
            f"{escape(str(r['conv_shape']))}.</p><table><tr><th>neuron</th><th>FC</th>"
            f"<th>conv</th></tr>{cells}</table>"
            f"<p><b>largest difference: {r['max_diff']:.1e}</b> (float64 rounding)</p>")


class MatrixPicture:
    """The weight matrix and the same numbers as filters, drawn live: the axes and the colour
    bar once; the two images and the labels at each update (at most ``k`` filters of ``c``)."""

    def __init__(self, c: int = 4, k: int = 6):
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(11, 4.6))
        left, right = fig.add_axes((0.07, 0.16, 0.5, 0.72)), fig.add_axes((0.64, 0.16, 0.26, 0.72))
        cax = fig.add_axes((0.93, 0.25, 0.012, 0.55))
        kw = {"cmap": plots.DIVERGING, "vmin": -COLOUR_LIMIT, "vmax": COLOUR_LIMIT,
              "interpolation": "nearest"}
        self.matrix = left.imshow(np.zeros((1, 1)), aspect="auto", **kw)
        self.mosaic = right.imshow(np.zeros((1, 1)), aspect="auto", **kw)
        fig.colorbar(self.matrix, cax=cax, label=f"weight (scale fixed at +-{COLOUR_LIMIT:g})")
        left.set_title("FC weight matrix: one row per neuron", fontsize=9, y=1.05)
        left.set_ylabel("neuron (row)")
        left.yaxis.set_label_coords(-0.035, 0.5)
        right.set_facecolor("white")
        for ax in (left, right):
            ax.set_xticks([])
            ax.set_yticks([])
        for spine in right.spines.values():  # no frame: it would cross the filter labels
            spine.set_visible(False)
        self.live = LiveFigure(fig)
        self.xlabel = left.text(0.5, -0.06, "", ha="center", va="top", transform=left.transAxes)
        self.title = right.text(0.5, 1.08, "", ha="center", va="bottom", fontsize=9,
                                transform=right.transAxes)
        self.neurons = [left.text(-0.008, 0, str(i), ha="right", va="center", fontsize=8,
                                  transform=left.get_yaxis_transform()) for i in range(k)]
        self.channels = [right.text(0, 0, f"ch {j}", ha="center", va="bottom", fontsize=8)
                         for j in range(c)]
        self.filters = [right.text(0, 0, f"filter {i}", ha="right", va="center", fontsize=8)
                        for i in range(k)]
        self.live.changing(self.matrix, self.mosaic, self.xlabel, self.title, *self.neurons,
                           *self.channels, *self.filters)

    def png(self, weight: np.ndarray, filters: np.ndarray) -> bytes:
        """PNG of ``weight`` (K, C*H*W) beside ``filters`` (K, C, H, W)."""
        k, c, h, w = filters.shape
        set_image(self.matrix, weight, square=False)
        set_image(self.mosaic, plots.filter_mosaic(filters))
        self.xlabel.set_text(f"input index (C*H*W = {c}*{h}*{w} = {c * h * w})")
        self.title.set_text(f"the same rows as {k} filters of {c}x{h}x{w}")
        for i, t in enumerate(self.neurons):
            t.set_visible(i < k)
            t.set_y(i)
        for j, t in enumerate(self.channels):
            t.set_visible(j < c)
            t.set_position((j * (w + 1) + (w - 1) / 2, -0.7))
        for i, t in enumerate(self.filters):
            t.set_visible(i < k)
            t.set_position((-0.7, i * (h + 1) + (h - 1) / 2))
        return self.live.png()


def describe(r: dict) -> str:
    """The picture of ``fc_vs_conv``'s result in words (its alt text)."""
    k, n = r["weight"].shape
    c, h, w = r["filters"].shape[1:]
    low, high = plots.scale_ends(plots.DIVERGING)
    return (f"Left: the FC weight matrix, {k} rows (neurons) by {n} columns (inputs). Right: the "
            f"same numbers as {k} filters of {c} channels, each {h}x{w}; colour is the weight "
            f"({low} negative, white zero, {high} positive).")


class FCvsConvExplorer(Explorer):
    """Sliders for C, H, W and K; the weight matrix, the filters and both outputs update."""

    def __init__(self, c: int = 2, h: int = 3, w: int = 3, k: int = 4):
        self.c = widgets.IntSlider(value=c, min=1, max=4, description="channels C")
        self.h = widgets.IntSlider(value=h, min=1, max=8, description="height H")
        self.w = widgets.IntSlider(value=w, min=1, max=8, description="width W")
        self.k = widgets.IntSlider(value=k, min=1, max=6, description="neurons K")
        self.picture = MatrixPicture(self.c.max, self.k.max)
        self.out, self.text = widgets.Output(), widgets.Output()
        for s in (self.c, self.h, self.w, self.k):
            s.observe(lambda _: self.update(), names="value")
        self.update()
        self.box = widgets.VBox([widgets.HBox([widgets.VBox([self.c, self.h]),
                                               widgets.VBox([self.w, self.k])]),
                                 self.out, self.text])

    @never_raise(clear=("text",))
    def update(self) -> None:
        r = fc_vs_conv(self.c.value, self.h.value, self.w.value, self.k.value)
        show_png(self.out, self.picture.png(r["weight"], r["filters"]), describe(r))
        show_html(self.text, summary_html(r))
