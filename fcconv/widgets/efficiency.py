"""Notebook 06's explorer: at each image size, windows, MACs and measured time, both ways.

``cost_at`` is the plain function; ``EfficiencyExplorer`` wires an image-size slider to it.
"""

from __future__ import annotations

import statistics
import time

import ipywidgets as widgets
import torch

from ..shapes import human_macs, receptive_field, trace
from ..torch_ops import sliding_windows
from .base import Explorer, never_raise, show_html


def median_ms(fn, repeats: int = 7) -> float:
    """Median wall time of ``fn()`` in milliseconds, after one warm-up call."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


@torch.no_grad()
def cost_at(model, fcn, window: int, channels: int, size: int, measure: bool = True,
            repeats: int = 3) -> dict:
    """Windows, MACs (from trace) and, if ``measure``, median ms for crops and one dense pass."""
    if size < window:
        raise ValueError(f"image {size}x{size} is smaller than the {window}x{window} window")
    jump = receptive_field(fcn, (channels, size, size)).jump
    side = (size - window) // jump + 1
    windows = side * side
    r = {"size": size, "jump": jump, "windows": windows,
         "dense_macs": trace(fcn, (channels, size, size)).total_macs,
         "crops_macs": windows * trace(model, (channels, window, window)).total_macs}
    if measure:
        dtype = next(model.parameters()).dtype
        image = torch.randn(1, channels, size, size, dtype=dtype)
        r["dense_ms"] = median_ms(lambda: fcn(image), repeats)
        r["crops_ms"] = median_ms(lambda: sliding_windows(model, image, window, jump, 256),
                                   repeats)
    return r


def cost_html(r: dict) -> str:
    rows = [("windows scored", f"{r['windows']:,}", "1 image"),
            ("MACs", human_macs(r["crops_macs"]), human_macs(r["dense_macs"]))]
    if "dense_ms" in r:
        rows.append(("measured time (median)", f"{r['crops_ms']:.1f} ms", f"{r['dense_ms']:.1f} ms"))
    body = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    ratio = f"{r['crops_macs'] / r['dense_macs']:.1f}x fewer MACs"
    if "dense_ms" in r:
        ratio += f", {r['crops_ms'] / r['dense_ms']:.1f}x faster on this machine"
    return (f"<table><tr><th>{r['size']}x{r['size']}</th><th>crops</th><th>dense pass</th></tr>"
            f"{body}</table><p><b>dense: {ratio}</b></p>")


class EfficiencyExplorer(Explorer):
    """An image-size slider: windows, MACs and measured time for crops and for one dense pass."""

    def __init__(self, model, fcn, window: int, channels: int, max_size: int, step: int = 8):
        self.model, self.fcn, self.window, self.channels = model, fcn, window, channels
        self.size = widgets.IntSlider(value=window, min=window, max=max_size, step=step,
                                      description="image size", continuous_update=False)
        self.out = widgets.Output()
        self._measured: dict[int, dict] = {}  # size -> cost_at: each size is timed once
        self.size.observe(lambda _: self.update(), names="value")
        self.update()
        self.box = widgets.VBox([self.size, self.out])

    @never_raise()
    def update(self) -> None:
        size = self.size.value
        if size not in self._measured:  # counts at once, then the timing (seconds on big images)
            counts = cost_at(self.model, self.fcn, self.window, self.channels, size, measure=False)
            show_html(self.out, cost_html(counts) + "<p><i>&#8987; timing both ways on this "
                                                    "machine...</i></p>")
            self._measured[size] = cost_at(self.model, self.fcn, self.window, self.channels, size)
        show_html(self.out, cost_html(self._measured[size]))
