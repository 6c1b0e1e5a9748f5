"""Notebook 07's explorer: a conv as its big, sparse, weight-shared matrix.

``conv_matrix_view`` is the plain function; ``ConvMatrixExplorer`` wires sliders to it.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import numpy_ops, plots
from .base import Explorer, figure_png, kept, never_raise, show_html, show_png


def conv_matrix_view(size: int, kernel: int, stride: int, padding: int, channels: int = 1,
                     filters: int = 1, seed: int = 0) -> dict:
    """A random conv on a (channels, size, size) input as a matrix, and what it costs.

    Returns matrix (K*H'*W', C*H*W), out_size, weights (the conv's), entries (the matrix's),
    nonzero (= weights of a locally connected layer, which shares nothing).
    """
    w = np.random.default_rng(seed).uniform(0.2, 1.0, size=(filters, channels, kernel, kernel))
    m = numpy_ops.conv_matrix(w, (channels, size, size), stride, padding)
    return {"matrix": m, "out_size": int(round((m.shape[0] / filters) ** 0.5)),
            "weights": w.size, "entries": m.size, "nonzero": int(np.count_nonzero(m))}


def view_html(v: dict) -> str:
    rows, cols = v["matrix"].shape
    return (f"<p>Output {v['out_size']}x{v['out_size']}: the matrix is {rows} x {cols} = "
            f"{v['entries']:,} entries; {v['nonzero']:,} are non-zero "
            f"({v['nonzero'] / v['entries']:.1%}). The conv itself has <b>{v['weights']}</b> "
            f"weights, shared by every row. Without sharing (a locally connected layer) the "
            f"non-zeros would all be separate weights: <b>{v['nonzero']:,}</b>.</p>")


def describe(v: dict, kernel: int, stride: int, padding: int) -> str:
    """The picture of ``conv_matrix_view``'s result in words (its alt text)."""
    rows, cols = v["matrix"].shape
    return (f"The {rows} x {cols} matrix of a {kernel}x{kernel} conv (stride {stride}, padding "
            f"{padding}): one row per output, one column per input; {v['nonzero']:,} of "
            f"{v['entries']:,} entries non-zero and coloured, the rest white.")


class ConvMatrixExplorer(Explorer):
    """Input size, kernel, stride and padding: the matrix picture and the counts update."""

    def __init__(self, size: int = 6, kernel: int = 3, stride: int = 1, padding: int = 0):
        self.size = widgets.IntSlider(value=size, min=1, max=12, description="input H=W")
        self.kernel = widgets.IntSlider(value=kernel, min=1, max=7, description="kernel")
        self.stride = widgets.IntSlider(value=stride, min=1, max=4, description="stride")
        self.padding = widgets.IntSlider(value=padding, min=0, max=3, description="padding")
        self.out, self.text = widgets.Output(), widgets.Output()
        self._shown: dict[tuple, tuple] = {}
        self._fig = None
        for wdg in (self.size, self.kernel, self.stride, self.padding):
            wdg.observe(lambda _: self.update(), names="value")
        self.update()
        self.box = widgets.VBox([widgets.HBox([widgets.VBox([self.size, self.kernel]),
                                               widgets.VBox([self.stride, self.padding])]),
                                 self.text, self.out])

    def shown(self, size: int, kernel: int, stride: int, padding: int) -> tuple[str, bytes, str]:
        """(counts as HTML, PNG, alt text) of one setting, drawn once: drawing the matrix is most
        of a move's time, and a learner goes back and forth between a few settings."""
        def draw():
            v = conv_matrix_view(size, kernel, stride, padding)
            self._fig = plots.conv_matrix_picture(v["matrix"], fig=self._fig)  # reused
            png = figure_png(self._fig, dpi=90,
                             margins={"left": 0.75, "right": 0.15, "bottom": 0.55,
                                      "top": 0.3})  # inches
            return view_html(v), png, describe(v, kernel, stride, padding)
        return kept(self._shown, (size, kernel, stride, padding), draw)

    @never_raise("text", clear=("out",))
    def update(self) -> None:
        html, png, alt = self.shown(self.size.value, self.kernel.value, self.stride.value,
                                    self.padding.value)
        show_html(self.text, html)
        show_png(self.out, png, alt)
