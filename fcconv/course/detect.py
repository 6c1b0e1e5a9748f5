"""The capstone's machinery: train a digit classifier with a background class, then use its
convolutionalized self as a detector (score maps -> threshold -> non-maximum suppression) and,
with a bilinear transposed conv, as a coarse segmenter.

Boxes are (x0, y0, x1, y1) with inclusive pixel bounds; detections add (label, score).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import BACKGROUND, load_digits, make_canvas
from ..formulas import cell_window, checked_int
from . import weights

WINDOW = 28


def digit_net(seed: int = 0) -> nn.Sequential:
    """LeNet-like, unpadded, with an FC head: (N, 1, 28, 28) -> (N, 11) logits (10 digits +
    background). No zero padding, so its dense score map equals sliding windows exactly."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(64, BACKGROUND + 1))


# --------------------------------------------------------------------------- training data

def split(digits: np.ndarray, labels: np.ndarray, n_test: int = 1000, seed: int = 0):
    """Shuffle once with ``seed``; the last ``n_test`` digits are held out for testing."""
    order = np.random.default_rng(seed).permutation(len(digits))
    train, test = order[:-n_test], order[-n_test:]
    return (digits[train], labels[train]), (digits[test], labels[test])


def _shift(batch: torch.Tensor, dy: np.ndarray, dx: np.ndarray) -> torch.Tensor:
    """Translate each (28, 28) image by (dy, dx) pixels, filling with zeros."""
    pad = int(max(np.abs(dy).max(), np.abs(dx).max(), 1))
    padded = F.pad(batch, (pad,) * 4)
    return torch.stack([padded[i, :, pad - y:pad - y + WINDOW, pad - x:pad - x + WINDOW]
                        for i, (y, x) in enumerate(zip(dy, dx))])


def training_batch(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                   size: int = 128, background: float = 0.4):
    """One augmented batch: centred digits (shift <= 2 px) with their labels, and BACKGROUND
    examples: noise alone, or a digit shifted 9-14 px off-centre (so that only a centred
    digit scores high, which makes the score map peak where the digit is). Noise on all."""
    n_bg = int(size * background)
    idx = rng.integers(len(digits), size=size)
    x = torch.from_numpy(digits[idx])[:, None]
    y = torch.from_numpy(labels[idx]).clone()
    dy, dx = rng.integers(-2, 3, size), rng.integers(-2, 3, size)
    far = rng.integers(9, 15, n_bg) * rng.choice([-1, 1], n_bg)
    axis = rng.integers(0, 3, n_bg)             # shift along y, x, or both
    dy[:n_bg] = np.where(axis != 1, far, dy[:n_bg])
    dx[:n_bg] = np.where(axis != 0, far * rng.choice([-1, 1], n_bg), dx[:n_bg])
    x = _shift(x, dy, dx)
    empty = rng.random(n_bg) < 0.4               # some backgrounds are noise alone
    x[:n_bg][torch.from_numpy(empty)] = 0
    y[:n_bg] = BACKGROUND
    noise = torch.from_numpy(rng.uniform(0, 0.2, (size, 1, 1, 1)).astype(np.float32))
    x = (x + noise * torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))).clamp(0, 1)
    return x, y


def fit_steps(model: nn.Module, next_batch, opt, sched, steps: int,
              progress: bool = False) -> list[float]:
    """``steps`` of cross-entropy training: each takes ``next_batch()`` -> (x (N, ...), y (N,)),
    steps ``opt`` then ``sched``; returns every step's loss. Shared by the digit and face nets."""
    from tqdm.auto import tqdm

    model.train()
    losses = []
    for _ in tqdm(range(steps), desc="training", disable=not progress, mininterval=0.5):
        x, y = next_batch()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def train(model: nn.Module, digits: np.ndarray, labels: np.ndarray, steps: int = 2200,
          lr: float = 2e-3, seed: int = 0, progress: bool = True) -> list[float]:
    """Adam on augmented batches (``training_batch``); returns the loss of every step.

    Deterministic for a given seed (and thread count).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    losses = fit_steps(model, lambda: training_batch(digits, labels, rng), opt, sched, steps,
                       progress)
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, digits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of centred digits classified as the right digit (background counts as wrong)."""
    model.eval()
    pred = model(torch.from_numpy(digits)[:, None]).argmax(1).numpy()
    return float((pred == labels).mean())


@dataclass
class Trained:
    model: nn.Module
    test_accuracy: float
    source: str
    loaded_from: Path | None


def train_fresh(steps: int = 2200, seed: int = 0, source: str = "mnist",
                progress: bool = True) -> Trained:
    """Train ``digit_net(seed)`` from scratch on one thread (faster on a busy 2-core machine,
    and the same seed gives the same weights); test accuracy on the held-out digits."""
    digits, labels, used = load_digits(source)
    (train_x, train_y), (test_x, test_y) = split(digits, labels, seed=seed)
    model = digit_net(seed)
    with one_thread():
        train(model, train_x, train_y, steps=steps, seed=seed, progress=progress)
    return Trained(model, accuracy(model, test_x, test_y), used, None)


def trained(retrain: bool = False, seed: int = 0) -> Trained:
    """The course's digit detector: the committed weights ``fcconv/course/trained/digit_net.pt``
    (sha256 checked, ``torch.load(weights_only=True)``), or, with ``retrain``, trained afresh
    from ``seed`` (the file is left alone; ``make weights`` rewrites it)."""
    if retrain:
        return train_fresh(seed=seed)
    digits, labels, used = load_digits("mnist")
    _, (test_x, test_y) = split(digits, labels, seed=seed)
    model = weights.load(digit_net(seed), "digit_net")
    return Trained(model, accuracy(model, test_x, test_y), used, weights.FOLDER / "digit_net.pt")


def train_and_save(seed: int = 0) -> dict:
    """Train from ``seed`` and write ``fcconv/course/trained/digit_net.pt`` (``make weights``)."""
    start = time.perf_counter()
    t = train_fresh(seed=seed, progress=False)
    return weights.save(t.model, "digit_net", seed=seed, steps=2200, source=t.source,
                        held_out_accuracy=t.test_accuracy, held_out_digits=1000,
                        train_seconds=round(time.perf_counter() - start, 1))


# --------------------------------------------------------------------------- detection

@contextlib.contextmanager
def one_thread():
    """Run torch on one thread inside the block. The digit net is small: on a machine whose
    cores are busy with other programs (a classroom server), two threads that wait for each
    other at every layer made its dense pass over a 256x256 canvas about 10x slower (150 ms
    instead of 13 ms); on one thread it is as fast as on two on an idle machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def probabilities(fcn: nn.Module, image: np.ndarray) -> torch.Tensor:
    """One dense pass over a (H, W) canvas: class probabilities per window, (11, rows, cols)."""
    with one_thread():
        return fcn(torch.from_numpy(image)[None, None]).softmax(dim=1)[0]


def iou(a, b) -> float:
    """Intersection over union of two inclusive boxes (x0, y0, x1, y1)."""
    for name, box in (("a", a), ("b", b)):
        if len(box) < 4 or box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"box {name} must be (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0 "
                             f"(inclusive bounds: at least one pixel); got {tuple(box)}")
    return float(ious(a[:4], [b[:4]])[0])


def ious(box, boxes, by: str = "union") -> np.ndarray:
    """IoU of one inclusive box (x0, y0, x1, y1) with each of ``boxes`` (k, 4): (k,) floats.
    The formula: the overlap's pixels over the pixels of the two boxes together; with
    ``by="smaller"``, over the pixels of the smaller box instead (MTCNN's 'Min' overlap: a box
    nested inside another overlaps it fully, however small it is)."""
    if by not in ("union", "smaller"):
        raise ValueError(f'by must be "union" or "smaller"; got {by!r}')
    a, b = np.asarray(box, dtype=np.float64), np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]) + 1
    h = np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]) + 1
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    area = lambda r: (r[..., 2] - r[..., 0] + 1) * (r[..., 3] - r[..., 1] + 1)  # noqa: E731
    if by == "smaller":
        return inter / np.minimum(area(a), area(b))
    return inter / (area(a) + area(b) - inter)


def nms(detections: list[tuple], overlap: float = 0.3, by: str = "union") -> list[tuple]:
    """Greedy non-maximum suppression: keep the best-scoring box, drop every box overlapping a
    kept one by IoU > ``overlap`` (``by="smaller"``: by intersection over the smaller box, see
    ``ious``). detections: (x0, y0, x1, y1, label, score)."""
    order = sorted(detections, key=lambda d: -d[5])
    boxes = np.array([d[:4] for d in order], dtype=np.float64).reshape(-1, 4)
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        raise ValueError(f"every box must be (x0, y0, x1, y1) with x1 >= x0 and y1 >= y0 "
                         f"(inclusive bounds: at least one pixel); got {order[int(bad.argmax())][:4]}")
    kept: list[int] = []
    for i in range(len(order)):   # IoU with the kept boxes at once: the same test, vectorized
        if not kept or (ious(boxes[i], boxes[kept], by) <= overlap).all():
            kept.append(i)
    return [order[i] for i in kept]


def detect(probs: torch.Tensor, jump: int, threshold: float = 0.9, overlap: float = 0.3,
           window: int = WINDOW) -> list[tuple]:
    """Cells whose best digit probability exceeds ``threshold``, as boxes, after NMS."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1; got {threshold}")
    jump, window = checked_int("jump", jump, 1), checked_int("window", window, 1)
    digit_probs = probs[:BACKGROUND]
    score, label = digit_probs.max(dim=0)
    rows, cols = torch.nonzero(score > threshold, as_tuple=True)
    cands = [(x0, y0, x1, y1, int(label[r, c]), float(score[r, c]))
             for r, c in zip(rows, cols)
             for y0, x0, y1, x1 in [cell_window((int(r), int(c)), window, jump)]]
    return nms(cands, overlap)


def match(detections: list[tuple], boxes: list[tuple], min_iou: float = 0.5) -> tuple[int, int, int]:
    """(true positives, false positives, misses): a detection is right when its label matches a
    not-yet-matched ground-truth box with IoU >= ``min_iou``."""
    free = list(boxes)
    tp = 0
    for d in sorted(detections, key=lambda d: -d[5]):
        best = max(free, key=lambda b: iou(d[:4], b[:4]) if b[4] == d[4] else -1, default=None)
        if best is not None and best[4] == d[4] and iou(d[:4], best[:4]) >= min_iou:
            free.remove(best)
            tp += 1
    return tp, len(detections) - tp, len(free)


def evaluate(fcn: nn.Module, digits: np.ndarray, labels: np.ndarray, n_canvases: int = 100,
             first_seed: int = 10_000, threshold: float = 0.9, **canvas_kw) -> dict:
    """Precision and recall at IoU >= 0.5 over ``n_canvases`` random canvases (held-out digits)."""
    from ..shapes import receptive_field

    tp = fp = fn = 0
    jump = None
    for s in range(first_seed, first_seed + n_canvases):
        canvas = make_canvas(digits, labels, seed=s, **canvas_kw)
        if jump is None:
            jump = receptive_field(fcn, (1, *canvas.image.shape)).jump
        a, b, c = match(detect(probabilities(fcn, canvas.image), jump, threshold), canvas.boxes)
        tp, fp, fn = tp + a, fp + b, fn + c
    return {"precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
            "tp": tp, "fp": fp, "fn": fn, "canvases": n_canvases}


# --------------------------------------------------------------------------- segmentation

def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A transposed conv that upsamples each channel by ``factor`` with bilinear weights.

    (N, C, h, w) -> (N, C, H', W'), H' = (h - 1)*factor - 2*padding + kernel = h * factor
    with kernel = 2*factor and padding = factor // 2 (factor even).
    """
    kernel = 2 * factor
    up = nn.ConvTranspose2d(channels, channels, kernel, stride=factor, padding=factor // 2,
                            groups=channels, bias=False)
    centre = (kernel - 1) / 2
    ramp = 1 - torch.abs(torch.arange(kernel, dtype=torch.float32) - centre) / factor
    with torch.no_grad():
        up.weight.copy_((ramp[:, None] * ramp[None, :]).expand(channels, 1, kernel, kernel))
    return up


@torch.no_grad()
def segment(probs: torch.Tensor, jump: int, canvas_shape, window: int = WINDOW) -> np.ndarray:
    """Per-pixel labels from the coarse map (11, rows, cols).

    A cell vouches for its whole window, not just its centre, so each digit's probability is
    first spread over the cells whose windows overlap (a max over window/jump neighbours); then
    bilinear upsampling by ``jump`` (a transposed conv), shifted so that each cell lands on its
    window's centre. Pixels outside every window are BACKGROUND.
    """
    jump, window = checked_int("jump", jump, 1), checked_int("window", window, 1)
    reach = (window // jump) | 1                       # odd, so the max is centred
    spread = F.max_pool2d(probs[None, :BACKGROUND], reach, stride=1, padding=reach // 2)[0]
    background = 1 - spread.max(dim=0, keepdim=True).values
    coarse = torch.cat([spread, background])
    up = bilinear_upsampler(coarse.shape[0], jump)(coarse[None])[0]
    labels = np.full(canvas_shape, BACKGROUND, np.int64)
    off = window // 2 - jump // 2
    h = min(up.shape[1], canvas_shape[0] - off)
    w = min(up.shape[2], canvas_shape[1] - off)
    labels[off:off + h, off:off + w] = up[:, :h, :w].argmax(0).numpy()
    return labels


def transposed_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of ConvTranspose: (size - 1)*stride - 2*padding + kernel."""
    out = (size - 1) * stride - 2 * padding + kernel
    if out < 1:
        raise ValueError(f"no output: ({size} - 1)*{stride} - 2*{padding} + {kernel} = {out}")
    return out

