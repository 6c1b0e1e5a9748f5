"""A face detector trained in the course: a small CNN classifies 25x25 grey patches as face or
not; convolutionalized, it scores every 25x25 window of a photo in one pass, and an image
pyramid (the photo resized several times) lets the fixed window fit faces of any size.

Training data, all bundled with scikit-image (nothing is downloaded): ``lfw_subset``'s 100 real
faces and 100 non-faces, plus negatives cut from photos that contain no face. Windows are fed
as grey values in [0, 1], not normalised per window: instead the training patches are randomly
brightened, darkened and contrast-changed, so that the net does not depend on the exposure.

Boxes are (x0, y0, x1, y1) with inclusive pixel bounds in the original photo; detections add
(label, score) with label 1 = face, as ``detect.nms`` expects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import grey_photo
from ..formulas import cell_window
from . import weights
from .detect import fit_steps, iou, nms, one_thread

WINDOW = 25
JUMP = 4            # two 2x2 max pools
TEST_PHOTO = "astronaut"
# The face in skimage.data.astronaut() (512x512): from the top of the eyebrows to the chin and
# cheek to cheek, read off a 4x enlargement of the photo by eye (the way lfw_subset crops faces).
FACE_BOX = (180, 80, 270, 178)
# Every bundled photo with a face, marked by the same rule: camera (512x512, a man in profile at
# his camera: from his ear's front edge to the tip of his nose) read off a 5x enlargement with a
# 10 px grid; matplotlib's grace_hopper.jpg (512 wide, 600 high; glasses hide the eyebrows, so from
# the glasses' top rim) off a 3x one. By eye, as FACE_BOX: IoU >= 0.5 is the test, not 0.9.
FACE_BOXES = {"astronaut": FACE_BOX, "camera": (196, 141, 253, 196),
              "grace_hopper": (163, 172, 365, 320)}
# Photos with no human face. Negatives are mined from the first group only; the second is never
# seen in training, so its false positives are an honest estimate.
FACE_FREE_TRAIN = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "text", "page",
                   "moon", "horse", "coins")
FACE_FREE_HELD_OUT = ("hubble_deep_field", "immunohistochemistry", "logo", "clock", "cell",
                      "colorwheel", "checkerboard")
# Window sides scanned, in pixels of the original photo (a factor of 1.25 apart): the pyramid.
SIDES = (60, 75, 94, 117, 146, 183, 229)
THRESHOLD = 0.9


def face_net(seed: int = 0) -> nn.Sequential:
    """Two unpadded 4x4 convs with 2x2 pools and an FC head: (N, 1, 25, 25) -> (N, 2) logits
    (0 = not a face, 1 = face). 25 -> 22 -> 11 -> 8 -> 4: the pools drop no pixel, so the
    receptive field is the 25x25 window and dense scores equal sliding windows exactly."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 2))


# --------------------------------------------------------------------------- data

@dataclass
class Patches:
    """25x25 grey patches in [0, 1] with labels (1 = face), and negatives from face-free photos."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    photo_negatives: np.ndarray


def lfw_split(n_test: int = 20, seed: int = 0):
    """lfw_subset shuffled once: ``n_test`` faces and ``n_test`` non-faces held out.

    Returns (train_x (160, 25, 25), train_y, test_x (40, 25, 25), test_y), labels 1 = face.
    """
    import skimage.data

    x = skimage.data.lfw_subset().astype(np.float32)
    y = np.r_[np.ones(100, np.int64), np.zeros(100, np.int64)]    # the first 100 are faces
    rng = np.random.default_rng(seed)
    faces, others = rng.permutation(100), 100 + rng.permutation(100)
    test = np.r_[faces[:n_test], others[:n_test]]
    train = np.r_[faces[n_test:], others[n_test:]]
    return x[train], y[train], x[test], y[test]


def resize(image: np.ndarray, side: float) -> tuple[torch.Tensor, tuple[float, float]]:
    """Shrink a (H, W) photo so that a ``side`` px square becomes the 25 px window.

    Returns the resized (1, 1, h, w) tensor and the exact (scale_y, scale_x) = (h/H, w/W).
    """
    h, w = (max(WINDOW, round(n * WINDOW / side)) for n in image.shape)
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    small = F.interpolate(t, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return small.clamp(0, 1), (h / image.shape[0], w / image.shape[1])


def random_crops(names, n_per_photo: int, rng: np.random.Generator) -> np.ndarray:
    """Random 25x25 windows of the pyramid levels of each named photo: (N, 25, 25)."""
    crops = []
    for name in names:
        levels = [resize(grey_photo(name), s)[0][0, 0].numpy() for s in SIDES]
        for _ in range(n_per_photo):
            lv = levels[rng.integers(len(levels))]
            y, x = rng.integers(lv.shape[0] - WINDOW + 1), rng.integers(lv.shape[1] - WINDOW + 1)
            crops.append(lv[y:y + WINDOW, x:x + WINDOW])
    return np.stack(crops)


def shift(x: torch.Tensor, dy: np.ndarray, dx: np.ndarray) -> torch.Tensor:
    """Move each (N, 1, 25, 25) patch by (dy, dx) px, repeating the edge pixels."""
    pad = int(max(np.abs(dy).max(), np.abs(dx).max(), 1))
    padded = F.pad(x, (pad,) * 4, mode="replicate")
    return torch.stack([padded[i, :, pad - y:pad - y + WINDOW, pad - s:pad - s + WINDOW]
                        for i, (y, s) in enumerate(zip(dy, dx))])


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """(N, 1, 25, 25): random horizontal flips, shifts of up to 2 px, and a random exposure:
    contrast x0.6-1.4 about the patch mean, brightness -0.15 to +0.15."""
    n = len(x)
    flip = torch.from_numpy(rng.random(n) < 0.5)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    x = shift(x, rng.integers(-2, 3, n), rng.integers(-2, 3, n))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = torch.from_numpy(rng.uniform(0.6, 1.4, (n, 1, 1, 1)).astype(np.float32))
    bright = torch.from_numpy(rng.uniform(-0.15, 0.15, (n, 1, 1, 1)).astype(np.float32))
    return ((x - mean) * contrast + mean + bright).clamp(0, 1)


def off_centre(faces: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Faces moved 8-12 px off the window's centre: negatives, so that only a centred face
    scores high and the best window sits on the face (the digit capstone's trick)."""
    n = len(faces)
    far = rng.integers(8, 13, n) * rng.choice([-1, 1], n)
    axis = rng.integers(0, 3, n)                   # move along y, x, or both
    dy = np.where(axis != 1, far, rng.integers(-2, 3, n))
    dx = np.where(axis != 0, far * rng.choice([-1, 1], n), rng.integers(-2, 3, n))
    return shift(torch.from_numpy(faces)[:, None], dy, dx)[:, 0].numpy()


def batch(data: Patches, rng: np.random.Generator, size: int = 128):
    """Half faces; the other half lfw non-faces, off-centre faces and photo negatives (1:1:2);
    all augmented. Returns x (size, 1, 25, 25), y (size,)."""
    faces = data.train_x[data.train_y == 1]
    others = data.train_x[data.train_y == 0]
    pick = lambda a, n: a[rng.integers(len(a), size=n)]  # noqa: E731
    half, eighth = size // 2, size // 8
    x = np.concatenate([pick(faces, half), pick(others, eighth),
                        off_centre(pick(faces, eighth), rng),
                        pick(data.photo_negatives, size - half - 2 * eighth)])
    y = np.r_[np.ones(half, np.int64), np.zeros(size - half, np.int64)]
    return augment(torch.from_numpy(x)[:, None], rng), torch.from_numpy(y)


# --------------------------------------------------------------------------- training

def fit(model: nn.Module, data: Patches, steps: int, rng: np.random.Generator,
        lr: float = 3e-3) -> list[float]:
    """Adam with a cosine-decayed learning rate on ``batch``es; returns every step's loss."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    return fit_steps(model, lambda: batch(data, rng), opt, sched, steps)


@torch.no_grad()
def hard_negatives(model: nn.Module, names, threshold: float = 0.3, per_photo: int = 300):
    """The windows of the named face-free photos that ``model`` calls a face (p > threshold),
    worst first, at most ``per_photo`` each: (N, 25, 25)."""
    from ..torch_ops import convolutionalize

    fcn = convolutionalize(model.eval(), (1, WINDOW, WINDOW))
    found = []
    for name in names:
        image, cands = grey_photo(name), []
        for side in SIDES:
            small, _ = resize(image, side)
            p = face_probability(fcn, small)
            for r, c in zip(*torch.nonzero(p > threshold, as_tuple=True)):
                y0, x0, y1, x1 = cell_window((int(r), int(c)), WINDOW, JUMP)
                win = small[0, 0, y0:y1 + 1, x0:x1 + 1]
                cands.append((float(p[r, c]), win.numpy().copy()))
        cands.sort(key=lambda t: -t[0])
        found += [w for _, w in cands[:per_photo]]
    return np.stack(found) if found else np.zeros((0, WINDOW, WINDOW), np.float32)


def train(seed: int = 0, steps: int = 1200, rounds: int = 4, mine_steps: int = 400) -> tuple:
    """Train ``face_net(seed)``: ``steps`` on lfw + random photo negatives, then ``rounds`` of
    hard-negative mining on FACE_FREE_TRAIN, ``mine_steps`` each. Runs on one thread, so the
    same seed gives the same weights. Returns (model, data, facts)."""
    with one_thread():  # faster for so small a net on a busy machine, and reproducible
        return _train(seed, steps, rounds, mine_steps)


def _train(seed: int, steps: int, rounds: int, mine_steps: int) -> tuple:
    rng = np.random.default_rng(seed)
    tx, ty, vx, vy = lfw_split(seed=seed)
    data = Patches(tx, ty, vx, vy, random_crops(FACE_FREE_TRAIN, 500, rng))
    model = face_net(seed)
    start = time.perf_counter()
    fit(model, data, steps, rng)
    mined = []
    for _ in range(rounds):
        found = hard_negatives(model, FACE_FREE_TRAIN)
        mined.append(len(found))
        if len(found):
            data.photo_negatives = np.concatenate([data.photo_negatives, found])
        fit(model, data, mine_steps, rng, lr=1e-3)
    model.eval()
    facts = {"seed": seed, "steps": steps, "rounds": rounds, "mine_steps": mine_steps,
             "hard_negatives_per_round": mined, "held_out_accuracy": accuracy(model, vx, vy),
             "held_out_patches": len(vy), "train_seconds": round(time.perf_counter() - start, 1)}
    return model, data, facts


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of (N, 25, 25) patches classified right."""
    model.eval()
    return float((model(torch.from_numpy(x)[:, None]).argmax(1).numpy() == y).mean())


def train_and_save(seed: int = 0) -> dict:
    """Train from ``seed``; write ``fcconv/course/trained/face_net.pt`` (``make weights``)."""
    model, _, facts = train(seed)
    return weights.save(model, "face_net", **facts)


def trained(retrain: bool = False, seed: int = 0) -> nn.Module:
    """The course's face classifier: the committed weights (checksum checked), or retrained
    from ``seed`` when ``retrain`` (about 15-30 s on 2 cores) without touching the file."""
    if retrain:
        return train(seed)[0]
    return weights.load(face_net(seed), "face_net")


# --------------------------------------------------------------------------- detection

@torch.no_grad()
def face_probability(fcn: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """One dense pass: (1, 1, h, w) -> (rows, cols), the face probability of every window."""
    return fcn(image.to(next(fcn.parameters()).dtype)).softmax(dim=1)[0, 1]


def cell_box(row: int, col: int, jump: int, window: int, scale) -> tuple[int, int, int, int]:
    """Cell (row, col) of a map computed on a photo resized by ``scale`` (one number, or
    (scale_y, scale_x)) -> its window in the original photo, inclusive (x0, y0, x1, y1).

    The window covers resized pixels [i*jump, i*jump + window): divided by the scale, its edges
    are rounded to the nearest original pixel.
    """
    sy, sx = (scale, scale) if np.isscalar(scale) else scale
    if min(sy, sx) <= 0:
        raise ValueError(f"scale must be positive; got {scale}")
    y0, x0, y1, x1 = cell_window((row, col), window, jump)
    # Edges (first pixel, one past the last) map back to the original photo; round to a pixel.
    return round(x0 / sx), round(y0 / sy), round((x1 + 1) / sx) - 1, round((y1 + 1) / sy) - 1


@dataclass
class Level:
    """One pyramid level: the window side it stands for, the exact scale, the resized photo
    (1, 1, h, w) and its face-probability map (rows, cols)."""

    side: int
    scale: tuple[float, float]
    image: torch.Tensor
    probs: torch.Tensor


def pyramid(fcn: nn.Module, image: np.ndarray, sides=SIDES) -> list[Level]:
    """Score a (H, W) grey photo at every window side in ``sides``: one dense pass per level.

    Runs on one torch thread: the net is small, and on a busy machine two threads that wait
    for each other at every layer made ``false_positives`` 14 s instead of 0.8 s."""
    levels = []
    with one_thread():
        for side in sides:
            small, scale = resize(image, side)
            levels.append(Level(side, scale, small, face_probability(fcn, small)))
    return levels


def detections(levels: list[Level], threshold: float = THRESHOLD, overlap: float = 0.3):
    """Every cell above ``threshold`` at every level, as a box in the original photo, then
    non-maximum suppression across levels: [(x0, y0, x1, y1, 1, p)], best first."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1; got {threshold}")
    cands = []
    for lv in levels:
        for r, c in zip(*torch.nonzero(lv.probs > threshold, as_tuple=True)):
            cands.append((*cell_box(int(r), int(c), JUMP, WINDOW, lv.scale), 1,
                           float(lv.probs[r, c])))
    return nms(cands, overlap)


def best_window(levels: list[Level]) -> tuple:
    """The highest-probability window over all levels: (x0, y0, x1, y1, 1, p), level index."""
    i = max(range(len(levels)), key=lambda k: levels[k].probs.max().item())
    lv = levels[i]
    r, c = divmod(int(lv.probs.argmax()), lv.probs.shape[1])
    return (*cell_box(r, c, JUMP, WINDOW, lv.scale), 1, float(lv.probs[r, c])), i


def false_positives(fcn: nn.Module, names, threshold: float = THRESHOLD) -> dict[str, int]:
    """Detections (after NMS) on each named face-free photo: every one is a false positive."""
    return {name: len(detections(pyramid(fcn, grey_photo(name)), threshold)) for name in names}


def face_iou(box) -> float:
    """IoU of a box with the marked face in the test photo."""
    return iou(box[:4], FACE_BOX)
