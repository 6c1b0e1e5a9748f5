"""Notebook 08's explorer: generate a canvas, pick a class and a threshold; the heat map and
the boxes update. ``detector_view`` is the plain function; the explorer runs the network once
per canvas (class and threshold changes reuse its probabilities)."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .. import plots
from ..course.detect import detect, match, one_thread, probabilities
from ..data import make_canvas
from ..shapes import receptive_field
from .base import Explorer, LiveFigure, kept, never_raise, show_html, show_jpeg


def scan(fcn, digits: np.ndarray, labels: np.ndarray, seed: int, n_digits: int,
         noise: float, jump: int | None = None) -> tuple:
    """Make the canvas and run the one dense pass: (canvas, probs (11, rows, cols), jump).
    ``jump``: the windows' step if already known (it depends on the canvas's shape only)."""
    canvas = make_canvas(digits, labels, n_digits=n_digits, noise=noise, seed=seed)
    if jump is None:
        jump = receptive_field(fcn, (1, *canvas.image.shape)).jump
    return canvas, probabilities(fcn, canvas.image), jump


def detector_view(fcn, digits: np.ndarray, labels: np.ndarray, seed: int, n_digits: int,
                  noise: float, cls: int | None, threshold: float, scanned=None) -> dict:
    """Canvas, heat map (class ``cls``'s probability, or the best digit's if None), detections,
    and (tp, fp, fn) against the canvas's ground truth. ``scanned``: ``scan``'s result, reused."""
    canvas, probs, jump = scanned or scan(fcn, digits, labels, seed, n_digits, noise)
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
        self._cache: dict[tuple, tuple] = {}  # (seed, digits, noise) -> scan's result
        self._shown: dict[tuple, tuple] = {}  # every control's value -> what is shown
        self._live = None                 # one figure, redrawn with new data (faster than anew)
        self._jump = None                 # the windows' step: the same for every canvas
        self.seed = widgets.BoundedIntText(value=seed, min=0, max=10**6, description="seed")
        self.n = widgets.IntSlider(value=6, min=0, max=15, description="digits",
                                   continuous_update=False)
        self.noise = widgets.FloatSlider(value=0.1, min=0, max=0.4, step=0.02, description="noise",
                                         continuous_update=False)
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

    def scanned(self) -> tuple:
        """``scan`` for the current canvas settings, computed once per setting."""
        key = (self.seed.value, self.n.value, self.noise.value)
        scanned = kept(self._cache, key, lambda: scan(self.fcn, self.digits, self.labels, *key,
                                                       jump=self._jump), limit=16)  # 0.7 MB each
        self._jump = scanned[2]
        return scanned

    def _draw(self, v: dict, truth) -> bytes:
        """JPEG of canvas, heat map and boxes: axes, ticks and labels are drawn once (a
        ``LiveFigure``); later calls swap the two images' data and redraw only them, the frame
        over them and the boxes. JPEG: the noisy canvas made a 160 kB PNG (``LiveFigure.jpeg``)."""
        if self._live is None:
            self._live = LiveFigure(plots.digits_canvas(
                v["canvas"].image, heat=v["heat"], jump=v["jump"],
                caption="dashed blue: true boxes, orange: detections"), dpi=90)
            ax = self._live.fig.axes[0]
            self._live.changing(*ax.images, *ax.spines.values())
        ax = self._live.fig.axes[0]
        photo, heat = ax.images
        photo.set_data(v["canvas"].image)
        heat.set_data(plots.probability_rgba(v["heat"]))
        self._live.forget(*ax.patches, *ax.texts)
        plots.digits_boxes(ax, truth, v["detections"])
        for artist in [*ax.patches, *ax.texts]:
            self._live.changing(artist)
        return self._live.jpeg()

    @never_raise("text", clear=("out",))
    def update(self) -> None:
        key = (self.seed.value, self.n.value, self.noise.value, self.cls.value,
               self.threshold.value)
        html, jpeg, alt = kept(self._shown, key, lambda: self._view(*key))
        show_html(self.text, html)
        show_jpeg(self.out, jpeg, alt)

    def _view(self, seed: int, n: int, noise: float, cls: int,
              threshold: float) -> tuple[str, bytes, str]:
        """(counts as HTML, picture, alt text) of one setting; the counts are shown at once,
        while the picture is drawn."""
        cls = None if cls == ALL_DIGITS else cls
        with one_thread():  # small tensors: a busy machine's second thread only makes them wait
            v = detector_view(self.fcn, self.digits, self.labels, seed, n, noise, cls, threshold,
                              self.scanned())
        tp, fp, fn = v["counts"]
        html = (f"<p>{len(v['detections'])} detections: {tp} right, {fp} wrong, "
                f"{fn} digits missed (IoU &ge; 0.5, label must match).</p>")
        show_html(self.text, html)
        what = "the best digit's" if cls is None else f"digit {cls}'s"
        truth = [b for b in v["canvas"].boxes if cls is None or b[4] == cls]
        return html, self._draw(v, truth), (
            f"Canvas (seed {seed}) with {len(v['canvas'].boxes)} digits, "
            f"{what} probability over every window, true boxes dashed and "
            f"{len(v['detections'])} detections above {threshold:.2f} in orange "
            f"({tp} right, {fp} wrong, {fn} missed).")
