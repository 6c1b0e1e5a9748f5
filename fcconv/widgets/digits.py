"""Notebook 08's explorer: generate a canvas, pick a class and a threshold; the heat map and
the boxes update. ``detector_view`` is the plain function."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import plots
from ..data import make_canvas
from ..detect import detect, match, probabilities
from ..shapes import receptive_field
from .base import Explorer, figure_png, never_raise, show_html, show_png


def detector_view(fcn, digits: np.ndarray, labels: np.ndarray, seed: int, n_digits: int,
                  noise: float, cls: int | None, threshold: float) -> dict:
    """Canvas, heat map (class ``cls``'s probability, or the best digit's if None), detections,
    and (tp, fp, fn) against the canvas's ground truth."""
    canvas = make_canvas(digits, labels, n_digits=n_digits, noise=noise, seed=seed)
    probs = probabilities(fcn, canvas.image)
    jump = receptive_field(fcn, (1, *canvas.image.shape)).jump
    heat = probs[:10].max(0).values if cls is None else probs[cls]
    dets = detect(probs, jump, threshold)
    if cls is not None:
        dets = [d for d in dets if d[4] == cls]
    truth = canvas.boxes if cls is None else [b for b in canvas.boxes if b[4] == cls]
    return {"canvas": canvas, "heat": heat.numpy(), "detections": dets, "jump": jump,
            "counts": match(dets, truth)}


ALL_DIGITS = -1  # a Dropdown shows no label for the value None: "all digits" needs a real value


class DigitDetectorExplorer(Explorer):
    """Seed, number of digits and noise make a canvas; class and threshold pick what is shown."""

    def __init__(self, fcn, digits: np.ndarray, labels: np.ndarray, seed: int = 0):
        self.fcn, self.digits, self.labels = fcn, digits, labels
        self.seed = widgets.BoundedIntText(value=seed, min=0, max=10**6, description="seed")
        self.n = widgets.IntSlider(value=6, min=0, max=15, description="digits")
        self.noise = widgets.FloatSlider(value=0.1, min=0, max=0.4, step=0.02, description="noise")
        self.cls = widgets.Dropdown(options=[("all digits", ALL_DIGITS)]
                                    + [(str(k), k) for k in range(10)],
                                    value=ALL_DIGITS, description="class")
        self.threshold = widgets.FloatSlider(value=0.9, min=0.05, max=0.99, step=0.01,
                                             description="threshold", continuous_update=False)
        self.out, self.text = widgets.Output(), widgets.Output()
        for wdg in (self.seed, self.n, self.noise, self.cls, self.threshold):
            wdg.observe(lambda _: self.update(), names="value")
        self.update()
        self.box = widgets.VBox([widgets.HBox([self.seed, self.n, self.noise]),
                                 widgets.HBox([self.cls, self.threshold]), self.text, self.out])

    @never_raise("text", clear=("out",))
    def update(self) -> None:
        cls = None if self.cls.value == ALL_DIGITS else self.cls.value
        v = detector_view(self.fcn, self.digits, self.labels, self.seed.value, self.n.value,
                          self.noise.value, cls, self.threshold.value)
        tp, fp, fn = v["counts"]
        show_html(self.text, f"<p>{len(v['detections'])} detections: {tp} right, {fp} wrong, "
                             f"{fn} digits missed (IoU &ge; 0.5, label must match).</p>")
        show_png(self.out, figure_png(plots.digits_canvas(
            v["canvas"].image, [b for b in v["canvas"].boxes
                                if cls is None or b[4] == cls],
            v["detections"], v["heat"], v["jump"])))
