"""MTCNN, a face detector built from the course's idea (Zhang, Zhang, Li, Qiao, "Joint Face
Detection and Alignment using Multi-task Cascaded Convolutional Networks", IEEE SPL 2016), with the
trained weights that facenet-pytorch 2.6.0 ships (MIT licence; ``python -m fcconv.course.fetch``).

Three face classifiers of growing size, each with a second head that nudges the box:
1. **P-Net**, a 12x12 classifier that is already fully convolutional, slides over an image pyramid
   (the photo shrunk by 0.709 at a time): one dense pass per scale, a cell every 2 px.
2. **R-Net** (24x24) rescores P-Net's proposals, each cut out and resized.
3. **O-Net** (48x48) rescores R-Net's survivors.
Between stages: a threshold (0.6, 0.7, 0.7), non-maximum suppression, box regression, squaring.

Images are (H, W, 3) uint8 RGB; boxes are (x0, y0, x1, y1) with inclusive pixel bounds in the
photo; detections add (label, probability) with label 1 = face, as ``detect.nms`` expects.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..models import ONet, PNet, RNet
from . import weights
from .detect import iou, nms, one_thread
from .faces import FACE_BOXES, cell_box
from .timing import median_ms

MIN_FACE = 20             # px: the smallest face looked for (facenet-pytorch's default)
FACTOR = 0.709            # each pyramid level is the last one shrunk by this (about 1/sqrt(2))
THRESHOLDS = (0.6, 0.7, 0.7)
WINDOWS = (12, 24, 48)    # the input side each net was trained on
PNET_JUMP = 2             # P-Net's one 2x2 pool: cells 2 px apart
NMS_PER_SCALE, NMS_STAGE = 0.5, 0.7
# O-Net's last NMS measures overlap over the smaller box, not the union ('Min' in the authors'
# MATLAB code and in facenet-pytorch): it also drops a box nested inside a better one.
NMS_LAST_BY = "smaller"


@functools.cache
def nets() -> tuple[PNet, RNet, ONet]:
    """The three nets with their trained weights, read once from the course cache (sha256
    checked; a missing file raises FileNotFoundError saying how to fetch it)."""
    return (weights.load_pretrained(PNet(), "pnet"), weights.load_pretrained(RNet(), "rnet"),
            weights.load_pretrained(ONet(), "onet"))


# --------------------------------------------------------------------------- pixels

# The most pixels a photo may have: the pyramid's first level and P-Net's maps on it take about
# 30 bytes a pixel (a 12000x12000 photo peaked at 4.4 GB), so 40 megapixels stay near 1.2 GB.
MAX_PIXELS = 40_000_000


def check_size(height: int, width: int) -> None:
    """ValueError for a photo of more than MAX_PIXELS pixels (before anything is decoded)."""
    if height * width > MAX_PIXELS:
        raise ValueError(f"the photo is {width}x{height} = {height * width:,} pixels, more than "
                         f"the {MAX_PIXELS:,} this detector takes (its pyramid needs about 30 "
                         "bytes a pixel): scale it down first")


def as_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 pixel values 0-255."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB photo, (H, W, 3) uint8; got {image.shape} {image.dtype}")
    check_size(*image.shape[:2])
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()  # a copy: writable


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """Pixel values 0-255 -> what the nets were trained on: (x - 127.5) / 128."""
    return (pixels - 127.5) / 128


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W), the same numbers stored channel-innermost (``torch.channels_last``): the
    three nets' narrow convs and ceil-mode max pools run 1.3-2.7x faster so on CPU (measured on
    2 cores: R-Net's dense pass over the astronaut's pyramid 164 -> 80 ms, 150 crops 47 -> 17
    ms); the scores agree to float32 rounding."""
    return x.contiguous(memory_format=torch.channels_last)


def scales(height: int, width: int, min_face: float = MIN_FACE, factor: float = FACTOR) -> list[float]:
    """The pyramid: the first scale makes a ``min_face`` face 12 px (P-Net's window), each next
    one is ``factor`` times the last, down to where the shorter side would drop below 12 px."""
    if not 0 < factor < 1:
        raise ValueError(f"factor must be between 0 and 1; got {factor}")
    if min_face < WINDOWS[0]:
        raise ValueError(f"min_face must be at least P-Net's window, {WINDOWS[0]} px; got {min_face}")
    first = WINDOWS[0] / min_face
    count = 0
    while min(height, width) * first * factor ** count >= WINDOWS[0]:
        count += 1
    return [first * factor ** k for k in range(count)]


def resize(pixels: torch.Tensor, scale: float) -> tuple[torch.Tensor, tuple[float, float]]:
    """(1, 3, H, W) -> (1, 3, h, w) with h = ceil(H * scale) (area averaging, as facenet-pytorch),
    and the exact (scale_y, scale_x) = (h/H, w/W)."""
    _, _, height, width = pixels.shape
    h, w = math.ceil(height * scale), math.ceil(width * scale)
    return F.interpolate(pixels, size=(h, w), mode="area"), (h / height, w / width)


# --------------------------------------------------------------------------- boxes

def regress(box, offsets) -> tuple[int, int, int, int]:
    """Move a box's edges by the net's offsets, in units of its width and height (the second
    head's output): x0 + dx0 * w, y0 + dy0 * h, x1 + dx1 * w, y1 + dy1 * h, rounded."""
    x0, y0, x1, y1 = box[:4]
    w, h = x1 - x0 + 1, y1 - y0 + 1
    dx0, dy0, dx1, dy1 = (float(o) for o in offsets)
    return round(x0 + dx0 * w), round(y0 + dy0 * h), round(x1 + dx1 * w), round(y1 + dy1 * h)


def square(box) -> tuple[int, int, int, int]:
    """The square with the box's centre and its longer side (the next net's input is square)."""
    x0, y0, x1, y1 = box[:4]
    side = max(x1 - x0, y1 - y0) + 1
    left, top = round((x0 + x1 - side + 1) / 2), round((y0 + y1 - side + 1) / 2)
    return left, top, left + side - 1, top + side - 1


def crops(pixels: torch.Tensor, boxes, size: int) -> torch.Tensor:
    """Cut each box out of (1, 3, H, W) pixels (zeros outside the photo) and resize it to
    ``size`` x ``size`` (area averaging): (N, 3, size, size), pixel values 0-255."""
    _, _, height, width = pixels.shape
    out = []
    for x0, y0, x1, y1 in (b[:4] for b in boxes):
        (left, right, lo_x, hi_x), (top, bottom, lo_y, hi_y) = (
            inside(x0, x1, width), inside(y0, y1, height))
        patch = F.pad(pixels[:, :, lo_y:hi_y, lo_x:hi_x], (left, right, top, bottom))
        out.append(F.interpolate(patch, size=(size, size), mode="area"))
    return torch.cat(out) if out else pixels.new_zeros(0, 3, size, size)


def inside(first: int, last: int, length: int) -> tuple[int, int, int, int]:
    """Pixels first..last (inclusive) of an axis of ``length``: how many lie before the image,
    how many after, and the slice [lo, hi) of the image they cover (empty when none do)."""
    lo, hi = min(max(first, 0), length), max(min(last + 1, length), 0)
    hi = max(hi, lo)
    before = max(0, min(last + 1, 0) - first)
    return before, (last + 1 - first) - before - (hi - lo), lo, hi


# --------------------------------------------------------------------------- the stages

@dataclass
class Level:
    """One pyramid level: the scale asked for, the exact (scale_y, scale_x) of the resized photo
    (h, w) = ``size``, P-Net's face probability map (rows, cols) and box offsets (4, rows, cols)."""

    scale: float
    exact: tuple[float, float]
    size: tuple[int, int]
    probs: torch.Tensor
    offsets: torch.Tensor


@torch.no_grad()
def pnet_level(pnet: PNet, pixels: torch.Tensor, scale: float) -> Level:
    """One dense pass of P-Net over the photo resized by ``scale``."""
    small, exact = resize(pixels, scale)
    probs, offsets = pnet(channels_last(normalize(small)))
    return Level(scale, exact, tuple(small.shape[2:]), probs[0], offsets[0])


def pyramid(pnet: PNet, image: np.ndarray, min_face: float = MIN_FACE) -> list[Level]:
    """P-Net over every level of the pyramid of an (H, W, 3) uint8 photo: one dense pass each, on
    one torch thread (small convs: on a busy machine two threads that wait for each other at
    every layer are slower, as ``faces.pyramid`` measured)."""
    pixels = as_tensor(image)
    with one_thread():
        return [pnet_level(pnet, pixels, s) for s in scales(*image.shape[:2], min_face)]


def proposals(level: Level, threshold: float = THRESHOLDS[0]) -> list[tuple]:
    """The cells of one level above ``threshold``, each as its 12x12 window in the photo, after
    NMS within the level: [(x0, y0, x1, y1, 1, p, offsets (4,))]."""
    rows, cols = torch.nonzero(level.probs > threshold, as_tuple=True)
    cands = [(*cell_box(r, c, PNET_JUMP, WINDOWS[0], level.exact), 1, float(level.probs[r, c]),
              level.offsets[:, r, c].numpy())
             for r, c in zip(rows.tolist(), cols.tolist())]
    return nms(cands, NMS_PER_SCALE)


def propose(levels: list[Level], threshold: float = THRESHOLDS[0]) -> list[tuple]:
    """P-Net's step: every level's proposals, NMS across levels, then regressed and squared."""
    return next_boxes(nms([d for lv in levels for d in proposals(lv, threshold)], NMS_STAGE))


def regressed(kept: list[tuple]) -> list[tuple]:
    """Each detection with its box regression applied: [(x0, y0, x1, y1, 1, p)]. A box that the
    offsets turn inside out (x1 < x0 or y1 < y0: no pixel left) is dropped."""
    moved = [(*regress(d, d[6]), 1, d[5]) for d in kept]
    return [d for d in moved if d[2] >= d[0] and d[3] >= d[1]]


def next_boxes(kept: list[tuple]) -> list[tuple]:
    """Apply each detection's box regression, then make it square: what the next net looks at."""
    return [(*square(d), 1, d[5]) for d in regressed(kept)]


@torch.no_grad()
def score(net, pixels: torch.Tensor, boxes: list[tuple], size: int, batch: int = 256) -> list[tuple]:
    """Run R-Net or O-Net on each box, cut out and resized to ``size`` (as crops, one per box):
    [(x0, y0, x1, y1, 1, p, offsets (4,))], the box with the net's face probability."""
    scored = []
    for start in range(0, len(boxes), batch):
        chunk = boxes[start:start + batch]
        probs, offsets = net(channels_last(normalize(crops(pixels, chunk, size))))[:2]
        scored += [(*b[:4], 1, float(p), o.numpy()) for b, p, o in zip(chunk, probs, offsets)]
    return scored


def above(scored: list[tuple], threshold: float) -> list[tuple]:
    """The detections whose probability exceeds ``threshold``."""
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be at least 0 and below 1; got {threshold}")
    return [d for d in scored if d[5] > threshold]


def refine(scored: list[tuple], threshold: float) -> list[tuple]:
    """R-Net's step: keep the boxes above ``threshold``, NMS, then regress and square them."""
    return next_boxes(nms(above(scored, threshold), NMS_STAGE))


def finish(scored: list[tuple], threshold: float) -> list[tuple]:
    """O-Net's step: keep the boxes above ``threshold``, regress them, NMS by intersection over
    the smaller box (``NMS_LAST_BY``, as the reference code does): the faces."""
    return nms(regressed(above(scored, threshold)), NMS_STAGE, by=NMS_LAST_BY)


@dataclass
class Cascade:
    """What each stage gave on one photo: the pyramid levels, P-Net's proposals (squared boxes),
    R-Net's survivors (squared), the faces O-Net keeps, and seconds per stage; with R-Net's and
    O-Net's probability for every box they looked at (``score``), so that another threshold is
    a filter (``refine``, ``finish``), not a new pass."""

    levels: list[Level]
    proposals: list[tuple]
    refined: list[tuple]
    faces: list[tuple]
    seconds: dict = field(default_factory=dict)
    rnet_scores: list[tuple] = field(default_factory=list)
    onet_scores: list[tuple] = field(default_factory=list)


def detect(image: np.ndarray, min_face: float = MIN_FACE,
           thresholds: tuple[float, float, float] = THRESHOLDS) -> Cascade:
    """The whole cascade on an (H, W, 3) uint8 RGB photo; ``.faces`` are
    [(x0, y0, x1, y1, 1, p)], best first. Runs on one torch thread (small nets: two threads
    that wait for each other at every layer are slower on a busy machine)."""
    pnet, rnet, onet = nets()
    pixels = as_tensor(image)
    times = {}
    with one_thread():
        start = time.perf_counter()
        levels = pyramid(pnet, image, min_face)
        stage1 = propose(levels, thresholds[0])
        times["P-Net"] = time.perf_counter() - start
        start = time.perf_counter()
        rnet_scores = score(rnet, pixels, stage1, WINDOWS[1])
        stage2 = refine(rnet_scores, thresholds[1])
        times["R-Net"] = time.perf_counter() - start
        start = time.perf_counter()
        onet_scores = score(onet, pixels, stage2, WINDOWS[2])
        stage3 = finish(onet_scores, thresholds[2])
        times["O-Net"] = time.perf_counter() - start
    return Cascade(levels, stage1, stage2, stage3, times, rnet_scores, onet_scores)


# --------------------------------------------------------------------------- dense vs crops

def dense_cost(fcn, pixels: torch.Tensor, levels: list[Level], repeats: int = 3) -> dict:
    """A convolutionalized R-Net or O-Net (``fcn.window``, ``fcn.jump``) as one dense pass per
    pyramid level where its window fits: MACs (``trace``), windows scored, seconds (one thread;
    the median of ``repeats`` runs after a first one)."""
    from ..shapes import trace

    usable = [lv for lv in levels if min(lv.size) >= fcn.window]
    inputs = [channels_last(normalize(resize(pixels, lv.scale)[0])) for lv in usable]  # as score
    with torch.no_grad(), one_thread():
        maps = [fcn(x)[0] for x in inputs]                 # the first run: the warm-up
        seconds = median_ms(lambda: [fcn(x) for x in inputs], repeats, warm_up=False) / 1e3
    return {"macs": sum(trace(fcn, (3, *lv.size)).total_macs for lv in usable),
            "windows": sum(m.numel() for m in maps), "seconds": seconds, "levels": len(usable)}


def crop_cost(net, pixels: torch.Tensor, boxes: list[tuple], window: int, repeats: int = 3) -> dict:
    """R-Net or O-Net on each box as the cascade runs it (``score``): MACs, seconds (one thread),
    and the seconds spent only cutting the boxes out and resizing them; times are the median of
    ``repeats`` runs after a warm-up."""
    from ..shapes import trace

    with one_thread():
        seconds = median_ms(lambda: score(net, pixels, boxes, window), repeats) / 1e3
        cutting = median_ms(lambda: crops(pixels, boxes, window), repeats) / 1e3
    per_crop = trace(net, (3, window, window)).total_macs
    return {"macs": len(boxes) * per_crop, "per_crop": per_crop, "seconds": seconds,
            "cutting": cutting, "boxes": len(boxes)}


def top_iou(faces: list[tuple], truth) -> float:
    """IoU of the most probable detection with the marked face (0 when nothing was found)."""
    return iou(faces[0][:4], truth) if faces else 0.0


def face_iou(name: str, faces: list[tuple]) -> float:
    """``top_iou`` against the face marked in bundled photo ``name`` (faces.FACE_BOXES)."""
    return top_iou(faces, FACE_BOXES[name])


# --------------------------------------------------------------------------- your own photo

def read_photo(path) -> np.ndarray:
    """A JPEG, PNG (or any image Pillow reads) as (H, W, 3) uint8 RGB, turned upright as its EXIF
    orientation says. 16-bit grey is scaled to 8 bits (/257), a float image with values 0..1
    by 255; palette, 1-bit, grey, CMYK and alpha images are converted. A path that is missing,
    a folder, unreadable or not an image, a photo of more than MAX_PIXELS pixels (checked from
    its header, before decoding), or pixels whose range is unknown raise ValueError with a
    sentence saying which."""
    import warnings
    from pathlib import Path

    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise ValueError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit is lower
            with Image.open(path) as im:
                check_size(im.height, im.width)
                return _rgb8(ImageOps.exif_transpose(im), path)
    except Image.DecompressionBombError as err:   # Pillow's own limit, past ours
        raise ValueError(f"{path} is too large: {err}; this detector takes at most "
                         f"{MAX_PIXELS:,} pixels: scale it down first") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image Pillow can read (JPEG, PNG, ...)") from None
    except PermissionError:
        raise ValueError(f"{path} cannot be read: permission denied") from None
    except (OSError, SyntaxError) as err:   # truncated or damaged image data
        raise ValueError(f"{path} could not be decoded as an image: {err}") from None


def _rgb8(im, path) -> np.ndarray:
    """A Pillow image as (H, W, 3) uint8 RGB, its values scaled (Pillow's convert("RGB") clips
    16-bit and float pixels to 0..255 instead)."""
    if im.mode.startswith("I;16"):
        grey = np.round(np.asarray(im, dtype=np.float64) / 257)
    elif im.mode == "F":
        grey = np.asarray(im, dtype=np.float64)
        low, high = float(np.nanmin(grey)), float(np.nanmax(grey))
        if not (np.isfinite(grey).all() and 0 <= low and high <= 1):
            raise ValueError(f"{path} holds floating-point pixels from {low:g} to {high:g}: "
                             "fcconv reads float images with values 0..1; save it as 8-bit")
        grey = np.round(grey * 255)
    elif im.mode == "I":
        raise ValueError(f"{path} holds 32-bit integer pixels, whose range fcconv cannot tell "
                         "(0..255? 0..65535?): save it as an 8- or 16-bit image")
    else:
        try:
            return np.asarray(im.convert("RGB"))
        except ValueError as err:   # a mode Pillow cannot turn into RGB (LAB, HSV, ...)
            raise ValueError(f"{path} is a {im.mode} image that Pillow cannot convert to RGB: "
                             f"{err}") from None
    return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)


def annotated(image: np.ndarray, faces: list[tuple], truth=None):
    """The photo (H, W, 3) uint8 with each face's box and probability drawn on it (orange) and,
    when given, the marked face ``truth`` (blue): a Pillow image. Labels stay inside the photo;
    a label that would cover one already drawn (a more probable box's, when ``faces`` is best
    first) is left out, so none is hidden under another."""
    from PIL import Image, ImageDraw, ImageFont

    from ..plots import OKABE_ITO

    img = Image.fromarray(image)
    draw = ImageDraw.Draw(img)
    width = max(2, round(min(img.size) / 200))
    font = ImageFont.load_default(size=max(12, round(min(img.size) / 40)))
    if truth is not None:
        draw.rectangle(truth[:4], outline=OKABE_ITO[1], width=width)
    for x0, y0, x1, y1, *_ in faces:              # every box first: no box line crosses a label
        draw.rectangle((x0, y0, x1, y1), outline=OKABE_ITO[0], width=width)
    placed: list[tuple] = []
    for x0, y0, _x1, _y1, _label, p in faces:
        label = f"{p:.3f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        y = y0 - bottom - width if y0 - bottom - width >= 0 else y0 + width  # above, or inside
        x = min(max(x0, 0), img.size[0] - right - 3)                          # inside the photo
        y = min(max(y, 0), img.size[1] - bottom - 1)
        rect = (x, y, x + right + 2, y + bottom)
        if any(rect[0] <= r[2] and r[0] <= rect[2] and rect[1] <= r[3] and r[1] <= rect[3]
               for r in placed):
            continue                             # it would cover a label already drawn
        placed.append(rect)
        draw.rectangle(rect, fill=OKABE_ITO[0])
        draw.text((x + 1, y), label, fill="black", font=font)
    return img


def save_png(img, path) -> None:
    """Write a Pillow image as PNG; ValueError saying why when the file cannot be written."""
    try:
        img.save(path, format="PNG")
    except OSError as err:
        raise ValueError(f"cannot write {path}: {err.strerror or err}") from None


def as_records(faces: list[tuple]) -> list[dict]:
    """Detections as plain dicts {x0, y0, x1, y1, probability} (what --json prints)."""
    return [{"x0": x0, "y0": y0, "x1": x1, "y1": y1, "probability": round(p, 6)}
            for x0, y0, x1, y1, _label, p in faces]
