"""The bundled photos read two ways: the course's own reader of scikit-image's data files
against ``skimage.data.<name>()``, and its grey against ``skimage.color.rgb2gray``."""

import subprocess
import sys

import numpy as np
import pytest

from fcconv import data
from fcconv.course import faces

COURSE_PHOTOS = sorted({*data.PHOTOS, *faces.FACE_BOXES, *faces.FACE_FREE_TRAIN,
                        *faces.FACE_FREE_HELD_OUT} - set(data.MATPLOTLIB_PHOTOS))


def test_every_photo_the_course_shows_is_read_by_its_own_reader_or_named_as_not():
    assert set(COURSE_PHOTOS) - set(data.SKIMAGE_FILES) == {"horse"}   # skimage makes it bool


@pytest.mark.parametrize("name", sorted(data.SKIMAGE_FILES))
def test_each_file_holds_what_skimage_data_gives(name):
    import skimage.data

    mine, theirs = data._loaded(name), getattr(skimage.data, name)()
    assert mine.dtype == theirs.dtype and mine.shape == theirs.shape, (mine.shape, theirs.shape)
    assert np.array_equal(mine, theirs)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "logo", "colorwheel", "hubble_deep_field",
                                  "horse", "camera"])
def test_grey_is_rgb2grays(name):
    import skimage.color
    import skimage.data

    img = getattr(skimage.data, name)()
    img = img.astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0)
    want = skimage.color.rgb2gray(img[..., :3]) if img.ndim == 3 else img
    assert np.array_equal(data.grey_photo(name), want.astype(np.float32))


def test_reading_the_photos_imports_neither_skimage_io_nor_scipy():
    """skimage.io pulls in SciPy: 0.3 s and 25 MB in every kernel that shows a photo."""
    code = ("import sys\nfrom fcconv import data\n"
            f"for n in {[n for n in COURSE_PHOTOS if n != 'horse']!r}:\n"
            "    data.rgb_photo(n); data.grey_photo(n)\n"
            "data.photo('astronaut', 96)\n"
            "print(sorted(m for m in ('skimage.io', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
