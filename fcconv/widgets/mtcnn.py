"""Notebook 09's explorer: MTCNN's cascade one stage at a time. Pick a photo, the stage (P-Net,
R-Net, O-Net), a pyramid scale and the stage's threshold; see P-Net's map at that scale painted on
the photo and the boxes the stage keeps.

``stage_view`` is the plain function; ``CascadeExplorer`` wires the controls. Each photo's nets run
once (``Scored``); a threshold or a scale only filters their outputs again and draws boxes on a
picture painted once per scale, so a move stays far below the cost of running a net.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from ..course import mtcnn
from ..course.detect import nms
from ..course.faces import FACE_BOXES
from ..data import rgb_photo
from .base import Explorer, never_raise, photo_jpeg, show_html, show_jpeg
from .score_maps import paint

STAGES = ("P-Net", "R-Net", "O-Net")


@dataclass
class Scored:
    """One bundled photo and its cascade at the standard thresholds, which keeps R-Net's and
    O-Net's probability for every box they looked at: any other threshold for one stage is then
    a filter, not a new pass."""

    name: str
    image: np.ndarray
    cascade: mtcnn.Cascade

    @classmethod
    def of(cls, name: str, cascade: mtcnn.Cascade | None = None) -> Scored:
        """Bundled photo ``name`` through the cascade (or ``cascade``, its result already at hand)."""
        image = rgb_photo(name)
        return cls(name, image, cascade or mtcnn.detect(image))

    @property
    def levels(self) -> list:
        return self.cascade.levels


def stage_view(s: Scored, stage: str, level: int, threshold: float) -> dict:
    """What ``stage`` keeps at ``threshold`` (the other stages at their standard thresholds):
    boxes [(x0, y0, x1, y1, 1, p)], with the numbers behind them. P-Net: the cells of pyramid
    ``level`` above the threshold, after NMS within the level; R-Net / O-Net: the boxes that
    survive that stage, over all levels."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}; got {stage!r}")
    if not 0 <= level < len(s.levels):
        raise ValueError(f"scale must be one of the {len(s.levels)} pyramid levels; got {level}")
    lv = s.levels[level]
    if stage == "P-Net":
        above = int((lv.probs > threshold).sum())
        boxes = [d[:6] for d in mtcnn.proposals(lv, threshold)]
        looked = lv.probs.numel()
    elif stage == "R-Net":
        scored = s.cascade.rnet_scores
        boxes = [d[:6] for d in nms(mtcnn.above(scored, threshold), mtcnn.NMS_STAGE)]
        above, looked = len(mtcnn.above(scored, threshold)), len(scored)
    else:
        scored = s.cascade.onet_scores
        boxes = mtcnn.finish(scored, threshold)
        above, looked = len(mtcnn.above(scored, threshold)), len(scored)
    truth = FACE_BOXES.get(s.name)
    top = mtcnn.top_iou(boxes, truth) if truth and boxes else None
    return {"boxes": boxes, "looked": looked, "above": above, "side": mtcnn.WINDOWS[0] / lv.scale,
            "map": tuple(lv.probs.shape), "truth": truth, "top_iou": top}


def pyramid_figure(image: np.ndarray, levels: list, picks, truth=None):
    """P-Net's face probability at the pyramid levels ``picks`` (indices), each painted on the
    photo (H, W, 3) uint8 where its windows are centred, the marked face in blue: one panel each."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(picks), figsize=(2.9 * len(picks), 3.3), squeeze=False)
    for ax, k in zip(axes[0], picks):
        lv = levels[k]
        rows, cols = lv.probs.shape
        ax.imshow(mtcnn.annotated(paint(image, lv.probs.numpy(), lv.exact, mtcnn.WINDOWS[0],
                                        mtcnn.PNET_JUMP), [], truth))
        ax.set_title(f"window {mtcnn.WINDOWS[0] / lv.scale:.0f} px: {rows}x{cols} map\n"
                     f"highest P(face) {lv.probs.max().item():.3f}", fontsize=8)
        ax.axis("off")
    fig.suptitle("P-Net's map at each scale (clear at 0, purple to yellow towards 1; blue: the "
                 "marked face)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))          # room for the title above the panels' own
    return fig


def gallery(pictures, titles, columns: int = 3):
    """Pictures (H, W, 3) uint8 or Pillow images side by side, each with its title."""
    import matplotlib.pyplot as plt

    rows = -(-len(pictures) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.1 * columns, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, pic, title in zip(axes.flat, pictures, titles):
        ax.imshow(pic)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def picture_jpeg(picture: np.ndarray, boxes, truth=None) -> bytes:
    """``picture`` (H, W, 3) uint8 with the boxes (orange, with probability) and the marked face
    (blue), as JPEG bytes (a photo: see ``photo_jpeg``)."""
    return photo_jpeg(mtcnn.annotated(picture, boxes, truth))


def view_html(s: Scored, stage: str, threshold: float, v: dict) -> str:
    what = {"P-Net": f"P-Net at window side {v['side']:.0f} px (a {v['map'][0]}x{v['map'][1]} "
                     f"map): {v['looked']:,} cells, {v['above']:,} above {threshold:.2f}, "
                     f"{len(v['boxes'])} after NMS within this scale",
            "R-Net": f"R-Net on P-Net's {v['looked']} proposals (all scales), each cut out and "
                     f"resized to 24x24: {v['above']} above {threshold:.2f}, "
                     f"{len(v['boxes'])} after NMS",
            "O-Net": f"O-Net on R-Net's {v['looked']} boxes, each resized to 48x48: {v['above']} "
                     f"above {threshold:.2f}, <b>{len(v['boxes'])} "
                     f"face{'s' * (len(v['boxes']) != 1)}</b> after box regression and NMS"}[stage]
    iou = "" if v["top_iou"] is None else f" Top box's IoU with the marked face: {v['top_iou']:.2f}."
    blue = "; blue: the marked face" if v["truth"] else " (no face in this photo)"
    return (f"<p>{s.name}: {what}.{iou} Colour: P-Net's face probability at this scale, clear at "
            f"0, more opaque and from purple to yellow towards 1; orange: the boxes kept, with their "
            f"probability (a label that would cover a likelier box's is left out){blue}.</p>")


class CascadeExplorer(Explorer):
    """Photo, stage, scale and threshold: the boxes a stage keeps, on P-Net's map at that scale."""

    def __init__(self, photos=("astronaut", "camera", "grace_hopper", "hubble_deep_field", "grass"),
                 photo: str | None = None, stage: str = "P-Net", level: int = 0,
                 cascades: dict | None = None):
        self._cascades = dict(cascades or {})  # photo name -> mtcnn.detect's result, if at hand
        self._scored: dict[str, Scored] = {}
        self._pictures: dict[tuple[str, int], np.ndarray] = {}
        self.photo = widgets.Dropdown(options=list(photos), value=photo or photos[0],
                                      description="photo")
        self.stage = widgets.SelectionSlider(options=list(STAGES), value=stage,
                                             description="stage", continuous_update=False)
        self.level = widgets.SelectionSlider(options=[("-", 0)], description="scale",  # window side
                                             continuous_update=False)
        self.threshold = widgets.FloatSlider(value=mtcnn.THRESHOLDS[STAGES.index(stage)],
                                             min=0.05, max=0.99, step=0.01, readout_format=".2f",
                                             description="threshold", continuous_update=False)
        self.out, self.text = widgets.Output(), widgets.Output()
        self._start_level, self._quiet = level, False
        self.photo.observe(lambda _: self._new_photo(), names="value")
        self.stage.observe(lambda _: self._new_stage(), names="value")
        for wdg in (self.level, self.threshold):
            wdg.observe(lambda _: self._quiet or self.update(), names="value")
        self._new_photo()
        self.box = widgets.VBox([widgets.HBox([self.photo, self.stage]),
                                 widgets.HBox([self.level, self.threshold]), self.text, self.out])

    def scored(self, name: str) -> Scored:
        """The photo's cascade outputs, computed once."""
        if name not in self._scored:
            try:
                self._scored[name] = Scored.of(name, self._cascades.get(name))
            except FileNotFoundError as err:   # the nets not fetched: say how, as a message
                raise ValueError(str(err)) from None
        return self._scored[name]

    def picture(self, s: Scored, level: int) -> np.ndarray:
        """The photo with P-Net's map at ``level`` painted on it, painted once."""
        if (s.name, level) not in self._pictures:
            lv = s.levels[level]
            self._pictures[s.name, level] = paint(s.image, lv.probs.numpy(), lv.exact,
                                                  mtcnn.WINDOWS[0], mtcnn.PNET_JUMP)
        return self._pictures[s.name, level]

    @never_raise("text", clear=("out",))
    def _new_photo(self) -> None:
        s = self.scored(self.photo.value)
        options = [(f"{mtcnn.WINDOWS[0] / lv.scale:.0f} px", k) for k, lv in enumerate(s.levels)]
        # the scale asked for at the start, then the one shown (as near as the new photo has)
        keep = min(self._start_level if self._start_level is not None else self.level.value,
                   len(options) - 1)
        self._start_level = None
        self._quiet = True                      # one redraw for the new photo, not one per trait
        try:
            self.level.options = options
            self.level.value = keep
        finally:
            self._quiet = False
        self.update()

    def _new_stage(self) -> None:
        self._quiet = True
        try:
            self.threshold.value = mtcnn.THRESHOLDS[STAGES.index(self.stage.value)]
        finally:
            self._quiet = False
        self.update()

    @never_raise("text", clear=("out",))
    def update(self) -> None:
        s = self.scored(self.photo.value)
        stage, level, t = self.stage.value, self.level.value, self.threshold.value
        v = stage_view(s, stage, level, t)
        show_jpeg(self.out, picture_jpeg(self.picture(s, level), v["boxes"], v["truth"]),
                 alt=f"The photo {s.name} with P-Net's face probability at window side "
                     f"{v['side']:.0f} px painted over it (clear at 0, purple to yellow towards "
                     f"1), and the {len(v['boxes'])} boxes "
                     f"{stage} keeps at threshold {t:.2f} outlined in orange"
                     + ("; the marked face in blue." if v["truth"] else "."))
        show_html(self.text, view_html(s, stage, t, v))
