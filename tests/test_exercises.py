"""Exercises: generated from solutions/, marked for nbgrader, and every check is fair (rejects a
plausible wrong answer with a hint naming the real mistake, accepts a correct one written
differently, never raises, and gives nothing to an answer that cheats by type or by editing its
inputs). The grader itself is tested in test_grade.py, nbgrader in test_nbgrader.py."""

import copy
import re
import sys

import nbformat
import numpy as np
import pytest
import torch
from conftest import ROOT
from torch import nn

from fcconv.course import checks
from tools import exercises

SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_exercises_are_up_to_date_with_the_generator(capsys):
    assert exercises.main(["--check"]) == 0, capsys.readouterr().out


def test_every_walkthrough_has_an_exercise_notebook_with_3_to_6_exercises():
    walkthroughs = {p.name[:2] for p in (ROOT / "notebooks").glob("0[1-8]_*.ipynb")}
    assert {p.name[:2] for p in SOLUTIONS} == walkthroughs
    for path in SOLUTIONS:
        ids = exercises.exercise_ids(nbformat.read(path, as_version=4))
        assert 3 <= len(ids) <= 6 and len(set(ids)) == len(ids)


def test_stub_source_keeps_functions_runnable():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert exercises.stub_source(src) == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    assert exercises.stub_source("### BEGIN SOLUTION\nside = 6\n### END SOLUTION", "side = ...") \
        == "# YOUR CODE HERE\nside = ..."
    with pytest.raises(ValueError, match="no '### BEGIN SOLUTION' marker"):
        exercises.stub_source("x = 1")


# --------------------------------------------------------------------------- every check is fair

def _conv_via_loops(weight, in_shape):
    k = weight.shape[0]
    c, h, w = in_shape
    out = np.zeros((k, c, h, w))
    for i in range(k):
        for j in range(c * h * w):
            out[i, j // (h * w), (j // w) % h, j % w] = weight[i, j]
    return out


def _hwc(weight, in_shape):
    c, h, w = in_shape
    return weight.reshape(weight.shape[0], h, w, c).transpose(0, 3, 1, 2)


def _fc7_no_bias(linear):
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1)
    with torch.no_grad():
        conv.weight.copy_(linear.weight[:, :, None, None])
    return conv


def _fc7_alt(linear):
    import fcconv
    return fcconv.linear_to_conv(linear, (linear.in_features,))


def _lenet_keeps_flatten(model):
    return copy.deepcopy(model)


def _lenet_alt(model):
    import fcconv
    return fcconv.convolutionalize(model, (1, 32, 32))


def _bn_no_stats(bn):
    new = nn.BatchNorm2d(bn.num_features)
    with torch.no_grad():
        new.weight.copy_(bn.weight)
        new.bias.copy_(bn.bias)
    return new


def _bn_alt(bn):
    new = nn.BatchNorm2d(bn.num_features, eps=bn.eps).double()
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new, name).data = getattr(bn, name).data.clone()
    return new


def _iou_exclusive(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / max(area(a) + area(b) - inter, 1)


def _iou_alt(a, b):
    xs = set(range(a[0], a[2] + 1)) & set(range(b[0], b[2] + 1))
    ys = set(range(a[1], a[3] + 1)) & set(range(b[1], b[3] + 1))
    inter = len(xs) * len(ys)
    return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)


def _nms_unsorted(dets, overlap):
    from fcconv.course.detect import iou
    kept = []
    for d in dets:
        if all(iou(d[:4], k[:4]) <= overlap for k in kept):
            kept.append(d)
    return kept


def _nms_alt(dets, overlap):
    from fcconv.course.detect import iou
    left = sorted(dets, key=lambda d: d[5])
    kept = []
    while left:
        best = left.pop()
        kept.append(best)
        left = [d for d in left if iou(d[:4], best[:4]) <= overlap]
    return kept


def _matrix_shape_one_channel(ws, ins, s, p):
    oh, ow = ((ins[1] - ws[2] + 2 * p) // s + 1), ((ins[2] - ws[3] + 2 * p) // s + 1)
    return ws[0] * oh * ow, ins[1] * ins[2]          # forgot the C input channels


def _conv_matrix_flipped(weight, in_shape):
    from fcconv import numpy_ops
    return numpy_ops.conv_matrix(weight[:, :, ::-1, ::-1].copy(), in_shape)


def _conv_matrix_alt(weight, in_shape):
    from fcconv import numpy_ops
    c, h, w = in_shape
    eye = np.eye(c * h * w).reshape(-1, c, h, w)      # conv of each basis image = one column
    return numpy_ops.conv2d(eye, weight).reshape(c * h * w, -1).T


def _rf_alt(layers):
    size, jump, start = 1, 1, 0
    for k, s, p in layers:
        start, size, jump = start - p * jump, size + (k - 1) * jump, jump * s
    return (size, jump, start)


def _rf_plus_padding(layers):
    size, jump, start = 1, 1, 0
    for k, s, p in layers:
        size, start, jump = size + (k - 1) * jump, start + p * jump, jump * s
    return size, jump, start


def _vgg_field_alt(i):
    return 32 * i - 90, 32 * i + 313


def _mac_ratio_alt(size):
    import fcconv
    from fcconv.widgets.efficiency import cost_at
    vgg = fcconv.vgg16(device="meta")
    r = cost_at(vgg, fcconv.convolutionalize(vgg, (3, 224, 224)), 224, 3, size, measure=False)
    return r["crops_macs"] / r["dense_macs"]


def _lc_alt(size, kernel, stride, padding):
    from fcconv.shapes import conv_output_size
    n = conv_output_size(size, kernel, stride, padding)
    covered = lambda o: sum(0 <= o * stride - padding + t < size for t in range(kernel))  # noqa: E731
    return sum(covered(i) * covered(j) for i in range(n) for j in range(n))


CASES = {  # check: (plausible wrong answer, hint it must give, correct answer written differently)
    "fc_to_conv_weight": (_hwc, "channels last", _conv_via_loops),
    "linear_via_conv": (lambda x, w, b: x.reshape(len(x), -1) @ w.T, "forgot the bias",
                        lambda x, w, b: np.einsum("nchw,kchw->nk", x, w.reshape(len(w), *x.shape[1:])) + b),
    "fc_to_1x1": (lambda w: w.T[:, :, None, None], "swapped", lambda w: w.reshape(*w.shape, 1, 1)),
    "output_size": (lambda W, F, S, P: (W - F + 2 * P) / S + 1, "rounds the division down",
                    lambda W, F, S, P: int(np.floor((W - F + 2 * P) / S)) + 1),
    "score_map_side": (lambda s: (s - 224) // 32, "+1", lambda s: len(range(0, s - 224 + 1, 32))),
    "receptive_field_recurrence": (_rf_plus_padding, "before* the image", _rf_alt),
    "keras_to_torch_filters": (lambda w, s: w.reshape(w.shape[0], *s), "Keras weight was flattened",
                               lambda w, s: np.moveaxis(w.reshape(w.shape[0], s[1], s[2], s[0]), 3, 1)),
    "fc7_as_conv": (_fc7_no_bias, "bias was not copied", _fc7_alt),
    "slice_positions": (lambda ch, s, o: np.arange(s[1] * s[2]).reshape(s[1], s[2]) + ch * s[1] * s[2],
                        "every C-th position",
                        lambda ch, s, o: np.arange(np.prod(s)).reshape(s if o == "chw" else (s[1], s[2], s[0]))[
                            (ch, slice(None), slice(None)) if o == "chw" else (slice(None), slice(None), ch)]),
    "convolutionalize_by_hand": (_lenet_keeps_flatten, "did you keep the Flatten", _lenet_alt),
    "bn1d_to_bn2d": (_bn_no_stats, "running statistics were not copied", _bn_alt),
    "tiny_vgg_map_side": (lambda s: (s - 64) // 2 + 1, "jump is 2*2 = 4", lambda s: (s - 60) // 4),
    "window_of": (lambda r, c, j, w: (r * j, c * j, r * j + w, c * j + w), "inclusive bounds",
                  lambda r, c, j, w: tuple(int(v) for v in np.array([r, c, r, c]) * j + [0, 0, w - 1, w - 1])),
    "passes_needed": (lambda j, s: j // s, "*and* x", lambda j, s: len([(a, b) for a in range(0, j, s) for b in range(0, j, s)])),
    "vgg_field_of": (lambda i: (32 * i, 32 * i + 223), "that is the window", _vgg_field_alt),
    "n_windows": (lambda n, w, s: (n - w) // s + 1, "square it", lambda n, w, s: len(range(0, n - w + 1, s)) ** 2),
    "mac_ratio": (lambda s: ((s - 224) // 32 + 1) ** 2, "the ratio is 3.0128", _mac_ratio_alt),
    "dress_windows": (lambda uw, uh, ww, wh: (uw - wh + 1) * (uh - ww + 1), "width with the map's height",
                      lambda uw, uh, ww, wh: sum(1 for _ in range(uw - ww + 1) for _ in range(uh - wh + 1))),
    "conv_matrix_shape": (_matrix_shape_one_channel, "count every channel",
                          lambda ws, ins, s, p: __import__("fcconv").numpy_ops.conv_matrix_entries(ws, ins, s, p)),
    "my_conv_matrix": (_conv_matrix_flipped, "flipped", _conv_matrix_alt),
    "locally_connected_params": (lambda n, k, s, p: __import__("fcconv").conv_output_size(n, k, s, p) ** 2 * k * k,
                                 "padding taps have no weight", _lc_alt),
    "iou": (_iou_exclusive, "Inclusive bounds", _iou_alt),
    "nms": (_nms_unsorted, "highest score down", _nms_alt),
    "transposed_size": (lambda n, k, s, p: n * s, "n * stride is right only", lambda n, k, s, p: s * n - s - 2 * p + k),
    "cell_box": (lambda r, c, j, w, s: (c * j, r * j, c * j + w - 1, r * j + w - 1), "pixels of the shrunk photo",
                 lambda r, c, j, w, s: tuple(int(np.floor(v + 0.5)) for v in
                                             (np.array([c, r, c, r]) * j + [0, 0, w, w]) / s - [0, 0, 1, 1])),
}


def test_every_check_is_declared_once_and_has_a_fairness_case():
    assert {check.__name__ for check in checks.CHECKS.values()} == set(CASES)
    for ex, check in checks.CHECKS.items():
        assert getattr(checks, check.__name__) is check and check(...).exercise == ex


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_rejects_a_wrong_answer_with_a_hint_and_accepts_another_correct_one(name):
    wrong, hint, alternative = CASES[name]
    check = getattr(checks, name)
    verdict = check(wrong)
    assert verdict.status == "wrong" and hint in verdict.message, verdict
    assert check(alternative).status == "correct", check(alternative)
    assert check(...).status == "not attempted"


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_stub_or_a_crash_never_raises(name):
    check = getattr(checks, name)

    def stub(*args):
        raise NotImplementedError()

    def crash(*args):
        return 1 / 0

    assert check(stub).status == "not attempted"
    v = check(crash)
    assert v.status == "wrong" and "ZeroDivisionError" in v.message


def test_a_verdict_reads_as_its_line_and_fails_the_check_cells_assertion():
    right, wrong = checks.Verdict("01.1", "correct", "well done."), checks.Verdict("01.1", "wrong", "a hint")
    assert right and not wrong and str(wrong) == repr(wrong) == "01.1 wrong — a hint"
    with pytest.raises(AssertionError, match="01.1 wrong — a hint"):
        exec("assert verdict, verdict", {"verdict": wrong})


# --------------------------------------------------------------------------- hints that misled

def _keras_w_h_swapped(w, s):
    return w.reshape(w.shape[0], s[2], s[1], s[0]).transpose(0, 3, 2, 1)


def _slices_h_w_swapped(ch, s, o):
    C, H, W = s
    y, x = np.mgrid[0:H, 0:W]
    return ch * H * W + x * H + y if o == "chw" else (x * H + y) * C + ch


def _lenet_no_biases(model):
    fcn = _lenet_alt(model)
    with torch.no_grad():
        for conv in [m for m in fcn.modules() if isinstance(m, nn.Conv2d)][-3:]:  # the three from Linears
            conv.bias.normal_()                      # a fresh conv's bias: never copied
    return fcn


def _bn_default_eps(bn):
    new = nn.BatchNorm2d(bn.num_features)
    new.load_state_dict(bn.state_dict())
    return new


def _mac_ratio_adaptive_pool(size):
    import fcconv
    vgg = fcconv.vgg16(device="meta")
    return ((size - 224) // 32 + 1) ** 2 * fcconv.trace(vgg, 224).total_macs / fcconv.trace(vgg, size).total_macs


def _iou_min_area(a, b):
    from fcconv.course.detect import iou
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    inter = iou(a, b) * (area(a) + area(b)) / (1 + iou(a, b))
    return inter / min(area(a), area(b))


def _nms_per_label(dets, overlap):
    from fcconv.course.detect import nms
    return [d for label in {d[4] for d in dets} for d in nms([e for e in dets if e[4] == label], overlap)]


MISLED = {  # check: (the wrong answer that got a misleading hint, what the hint must say, must not say)
    "keras_to_torch_filters": (_keras_w_h_swapped, "you reshaped to (K, W, H, C)", "got ("),
    "slice_positions": (_slices_h_w_swapped, "did you swap H and W", "starts at"),
    "convolutionalize_by_hand": (_lenet_no_biases, "bias of Linear number 1 (400 -> 120) was not copied", "C,H,W order"),
    "mac_ratio": (_mac_ratio_adaptive_pool, "AdaptiveAvgPool2d", "about"),
    "iou": (_iou_min_area, "smaller box", "Inclusive bounds"),
    "nms": (_nms_per_label, "labels are ignored", "dropped a box"),
    "bn1d_to_bn2d": (_bn_default_eps, "eps was not copied", "running statistics"),
}


@pytest.mark.parametrize("name", sorted(MISLED))
def test_a_hint_that_misled_now_names_the_real_mistake(name):
    wrong, says, never = MISLED[name]
    verdict = getattr(checks, name)(wrong)
    assert verdict.status == "wrong" and says in verdict.message and never not in verdict.message, verdict


def test_the_mac_ratio_hint_gives_enough_digits_to_see_the_difference():
    message = checks.mac_ratio(_mac_ratio_adaptive_pool).message
    assert f"you gave {_mac_ratio_adaptive_pool(256):.4f}, the ratio is {_mac_ratio_alt(256):.4f}" in message


# --------------------------------------------------------------------------- no free marks

class AlwaysEqual:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


class IntEqualToAll(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


CHEATS = [AlwaysEqual(), IntEqualToAll(1), *[(AlwaysEqual(),) * n for n in (2, 3, 4)],
          [(AlwaysEqual(),) * 6], np.array(AlwaysEqual(), dtype=object)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_object_equal_to_everything_scores_nothing(name):
    check = getattr(checks, name)
    for cheat in CHEATS:
        verdict = check(lambda *args, cheat=cheat: cheat)
        assert verdict.status == "wrong", (cheat, verdict)


def _zeroing(answer):
    """Zero every array and every module's tensors the answer is given, then answer from them."""
    def cheat(*args):
        for a in args:
            if isinstance(a, np.ndarray):
                a[...] = 0
            if isinstance(a, nn.Module):
                with torch.no_grad():
                    for t in [*a.parameters(), *a.buffers()]:
                        t.zero_()
        return answer(*args)
    return cheat


TAKES_ARRAYS = ["fc_to_conv_weight", "linear_via_conv", "fc_to_1x1", "keras_to_torch_filters", "fc7_as_conv",
                "convolutionalize_by_hand", "bn1d_to_bn2d", "my_conv_matrix"]


@pytest.mark.parametrize("name", TAKES_ARRAYS)
def test_zeroing_the_inputs_in_place_scores_nothing(name):
    verdict = getattr(checks, name)(_zeroing(CASES[name][2]))
    assert verdict.status == "wrong", verdict


# --------------------------------------------------------------------------- nbgrader metadata

def test_solutions_carry_nbgrader_metadata_and_assert_their_verdicts():
    for path in SOLUTIONS:
        nb = nbformat.read(path, as_version=4)
        assert not exercises.mark(copy.deepcopy(nb)), f"{path.name}: run python -m tools.exercises --mark"
        for cell in nb.cells:
            meta = cell.metadata.get("fcconv", {})
            if meta.get("role") == "check":
                m = re.fullmatch(r"verdict = checks\.(\w+)\(\w+\)\nassert verdict, verdict\nprint\(verdict\)",
                                 cell.source)
                assert m and checks.CHECKS[meta["exercise"]].__name__ == m.group(1), (path.name, cell.source)


def _steal(*args):
    """Read the expected answer off the check's stack instead of computing it."""
    frame = sys._getframe(1)
    while frame is not None:
        if "want" in frame.f_locals:
            return frame.f_locals["want"]
        frame = frame.f_back
    return None


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_expected_answer_is_not_on_the_stack_while_the_answer_runs(name):
    assert getattr(checks, name)(_steal).status == "wrong"


class _ZerosAt48(nn.Module):
    """LeNet-5 at 32x32 (the Linear hidden in a list, out of .modules()), zeros of the right
    shape at any other size."""

    def __init__(self, model):
        super().__init__()
        self.hidden = [model]

    def forward(self, x):
        if x.shape[-1] == 32:
            return self.hidden[0](x)[:, :, None, None]
        return torch.zeros(len(x), 10, (x.shape[-2] - 32) // 4 + 1, (x.shape[-1] - 32) // 4 + 1,
                           dtype=x.dtype)


def test_a_score_map_that_is_not_the_model_on_every_crop_scores_nothing():
    v = checks.convolutionalize_by_hand(_ZerosAt48)
    assert v.status == "wrong" and "every 32x32 crop 4 pixels apart" in v.message, v


def test_a_float32_answer_is_told_to_compute_in_float64():
    def in_float32(x, w, b):
        return CASES["linear_via_conv"][2](x.astype(np.float32), w.astype(np.float32), b.astype(np.float32))
    v = checks.linear_via_conv(in_float32)
    assert v.status == "wrong" and "float32" in v.message and "float64" in v.message, v


def test_the_inclusive_bounds_hint_names_the_window_given():
    v = checks.window_of(CASES["window_of"][0])
    window = int(v.message.split("a ")[1].split("-pixel")[0])
    assert f"ends at {window - 1}." in v.message and window in (28, 64, 224), v


def test_a_float_equal_to_the_int_is_rejected_and_the_hint_says_why():
    v = checks.output_size(lambda W, F, S, P: float((W - F + 2 * P) // S + 1))
    assert v.status == "wrong" and "rejected on purpose" in v.message, v
