"""Real data that ships with installed packages (nothing is downloaded): photos and canvases.

``photo`` gives a scikit-image sample photo as a (3, S, S) float tensor in [0, 1];
``imagenet_normalize`` applies the mean/std VGG was trained with.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def photo(name: str = "astronaut", size: int = 384) -> torch.Tensor:
    """A bundled scikit-image photo, centre-cropped to a square and resized: (3, size, size)."""
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"photo must be one of {', '.join(PHOTOS)}; got {name!r}")
    if size < 1:
        raise ValueError(f"size must be positive; got {size}")
    img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = torch.from_numpy(np.ascontiguousarray(img[top:top + side, left:left + side]))
    square = square.permute(2, 0, 1)[None]
    return F.interpolate(square, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


def imagenet_normalize(image: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) in [0, 1] -> zero-mean, unit-std per channel, as VGG expects."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype).view(3, 1, 1)
    return (image - mean) / std
