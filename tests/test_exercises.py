"""Exercises: generated from solutions/, marked for nbgrader, and every check is fair: a plausible
wrong answer gets a hint naming the mistake actually made, a right answer written another way (or
in another numeric type) is accepted, nothing raises, and nothing that cheats by type gets a mark.
The wrong answers here are written as a learner would write them, not taken from the checks. The
grader, across its process boundary, is tested in test_grade.py; nbgrader in test_nbgrader.py."""

import copy
import math
import re
import sys
from fractions import Fraction

import nbformat
import numpy as np
import pytest
import torch
from conftest import ROOT
from torch import nn

import fcconv
from fcconv import numpy_ops
from fcconv.course import checks
from fcconv.course.checks import wire
from tools import exercises

SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_exercises_are_up_to_date_with_the_generator(capsys):
    assert exercises.main(["--check"]) == 0, capsys.readouterr().out


def test_every_walkthrough_has_an_exercise_notebook_with_3_to_6_exercises():
    walkthroughs = {p.name[:2] for p in (ROOT / "notebooks").glob("0[1-9]_*.ipynb")}
    assert {p.name[:2] for p in SOLUTIONS} >= walkthroughs
    for path in SOLUTIONS:
        ids = exercises.exercise_ids(nbformat.read(path, as_version=4))
        assert 3 <= len(ids) <= 6 and len(set(ids)) == len(ids)


def test_an_exercise_tab_never_reads_like_its_walkthrough():
    # JupyterLab names a tab after the file: 02_shapes.ipynb and 02_shapes_exercises.ipynb
    walkthroughs = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    for path in SOLUTIONS:
        assert path.name not in walkthroughs and path.stem.endswith("_exercises"), path.name
        assert (ROOT / "notebooks" / path.name.replace("_exercises", "")).exists(), path.name


def test_each_notebooks_checks_live_in_its_own_module():
    for path in SOLUTIONS:
        for ex in exercises.exercise_ids(nbformat.read(path, as_version=4)):
            assert ex[:2] == path.name[:2] and checks.CHECKS[ex].__module__.endswith(f".n{ex[:2]}")


def test_the_generator_refuses_a_check_cell_that_calls_no_declared_check():
    nb = nbformat.read(SOLUTIONS[0], as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("fcconv", {}).get("role") == "check")
    cell.source = cell.source.replace("verdict = checks.", "verdict = checks.not_")
    with pytest.raises(ValueError, match="should start with 'verdict = checks"):
        exercises.make_exercise(nb)


def test_stub_source_keeps_functions_runnable():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert exercises.stub_source(src) == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    assert exercises.stub_source("### BEGIN SOLUTION\nside = 6\n### END SOLUTION", "side = ...") \
        == "# YOUR CODE HERE\nside = ..."
    with pytest.raises(ValueError, match="no '### BEGIN SOLUTION' marker"):
        exercises.stub_source("x = 1")


def test_no_statement_renders_an_asterisk_product_as_italics():
    # `i*jump` or C*H*W outside code spans: Markdown reads *...* as emphasis
    for path in SOLUTIONS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                prose = re.sub(r"`[^`]*`", "", cell.source)
                assert not re.search(r"\w\*\w", prose), (path.name, cell.source)


# --------------------------------------------------------------------------- answers, right and wrong

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


class PerPosition(nn.Module):
    """A Linear applied at every position of a map (permute, Linear, permute back): what a 1x1
    conv computes, written another way."""

    def __init__(self, linear):
        super().__init__()
        self.linear = linear

    def forward(self, x):
        return self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _lenet_keeps_flatten(model):
    return copy.deepcopy(model)


def _lenet_per_position(model):
    """The first Linear as a 5x5 conv, the later ones kept as Linears applied per position."""
    first = nn.Conv2d(16, 120, 5)
    with torch.no_grad():
        first.weight.copy_(model[7].weight.reshape(120, 16, 5, 5))
        first.bias.copy_(model[7].bias)
    return nn.Sequential(*model[:6], first, nn.ReLU(), PerPosition(model[9]), nn.ReLU(),
                         PerPosition(model[11]))


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
    kept = []
    for d in dets:
        if all(_iou_alt(d[:4], k[:4]) <= overlap for k in kept):
            kept.append(d)
    return kept


def _nms_alt(dets, overlap, ties_suppressed=False):
    """08.2 right; with ``ties_suppressed``, the mistake of >= where the statement says above."""
    left = sorted(dets, key=lambda d: d[5])
    kept = []
    while left:
        best = left.pop()
        kept.append(best)
        left = [d for d in left if (_iou_alt(d[:4], best[:4]) < overlap if ties_suppressed
                                    else _iou_alt(d[:4], best[:4]) <= overlap)]
    return kept


def _matrix_shape_one_channel(ws, ins, s, p):
    oh, ow = ((ins[1] - ws[2] + 2 * p) // s + 1), ((ins[2] - ws[3] + 2 * p) // s + 1)
    return ws[0] * oh * ow, ins[1] * ins[2]          # forgot the C input channels


def _conv_matrix_flipped(weight, in_shape):
    return _conv_matrix_alt(weight[:, :, ::-1, ::-1].copy(), in_shape)


def _conv_matrix_alt(weight, in_shape):
    k, c, kh, kw = weight.shape                     # each filter tap placed at once, no conv called
    _, h, w = in_shape
    oh, ow = h - kh + 1, w - kw + 1
    m = np.zeros((k, oh, ow, c, h, w))
    for y in range(oh):
        for x in range(ow):
            for dy in range(kh):
                for dx in range(kw):
                    m[:, y, x, :, y + dy, x + dx] = weight[:, :, dy, dx]
    return m.reshape(k * oh * ow, c * h * w)


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
    from fcconv.widgets.efficiency import cost_at
    vgg = fcconv.vgg16(device="meta")
    r = cost_at(vgg, fcconv.convolutionalize(vgg, (3, 224, 224)), 224, 3, size, measure=False)
    return r["crops_macs"] / r["dense_macs"]


def _lc_alt(size, kernel, stride, padding):
    n = fcconv.conv_output_size(size, kernel, stride, padding)
    covered = lambda o: sum(0 <= o * stride - padding + t < size for t in range(kernel))  # noqa: E731
    return sum(covered(i) * covered(j) for i in range(n) for j in range(n))


def _linear_via_conv_alt(x, w, b):
    n, k = len(x), len(w)
    return numpy_ops.conv2d(x, w.reshape(k, *x.shape[1:])).reshape(n, k) + b


def _regress_exclusive(box, offsets):
    """09.1 as a learner might write it, with the width counted x1 - x0."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return tuple(round(v) for v in (x0 + offsets[0] * w, y0 + offsets[1] * h,
                                    x1 + offsets[2] * w, y1 + offsets[3] * h))


def _regress_alt(box, offsets):
    """09.1 right, with NumPy: edges plus offsets times (w, h, w, h), rounded, as an array."""
    b = np.array(box, dtype=np.float64)
    size = np.array([b[2] - b[0] + 1, b[3] - b[1] + 1] * 2)
    return np.rint(b + np.array(offsets) * size).astype(np.int64)


def _whc_alt(w, c, h, wd):
    """09.2 right, element by element: the conv tap (k, ch, y, x) is input (x * H + y) * C + ch."""
    out = np.empty((len(w), c, h, wd))
    for ch in range(c):
        for y in range(h):
            for x in range(wd):
                out[:, ch, y, x] = w[:, (x * h + y) * c + ch]
    return out


def _pyramid_sides(height, width, step=1.0):
    """The levels (h, w) of MTCNN's pyramid, scales multiplied step by step (not 0.6 * 0.709**k)."""
    import math

    s, out = 0.6, []
    while min(height, width) * s >= 12:
        out.append((math.ceil(height * s), math.ceil(width * s)))
        s *= 0.709
    return out


def _windows_stride_1(height, width):
    return sum((h - 11) * (w - 11) for h, w in _pyramid_sides(height, width))


def _windows_alt(height, width):
    return sum(len(range(0, h - 11, 2)) * len(range(0, w - 11, 2))
               for h, w in _pyramid_sides(height, width))


CASES = {  # check: (plausible wrong answer, hint it must give, correct answer written differently)
    "fc_to_conv_weight": (_hwc, "channels last", _conv_via_loops),
    "linear_via_conv": (lambda x, w, b: x.reshape(len(x), -1) @ w.T, "forgot the bias", _linear_via_conv_alt),
    "fc_to_1x1": (lambda w: w.T[:, :, None, None], "swapped", lambda w: w.reshape(*w.shape, 1, 1)),
    "output_size": (lambda W, F, S, P: (W - F + 2 * P) / S + 1, "rounds the division down",
                    lambda W, F, S, P: int(np.floor((W - F + 2 * P) / S)) + 1),
    "score_map_side": (lambda s: (s - 224) // 32, "+1", lambda s: len(range(0, s - 224 + 1, 32))),
    "receptive_field_recurrence": (_rf_plus_padding, "before* the image", _rf_alt),
    "keras_to_torch_filters": (lambda w, s: w.reshape(w.shape[0], *s), "Keras weight was flattened",
                               lambda w, s: np.moveaxis(w.reshape(w.shape[0], s[1], s[2], s[0]), 3, 1)),
    "fc7_as_conv": (_fc7_no_bias, "bias was not copied", PerPosition),
    "slice_positions": (lambda ch, s, o: np.arange(s[1] * s[2]).reshape(s[1], s[2]) + ch * s[1] * s[2],
                        "every C-th position",
                        lambda ch, s, o: np.arange(np.prod(s)).reshape(s if o == "chw" else (s[1], s[2], s[0]))[
                            (ch, slice(None), slice(None)) if o == "chw" else (slice(None), slice(None), ch)]),
    "convolutionalize_by_hand": (_lenet_keeps_flatten, "did you keep the Flatten", _lenet_per_position),
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
    "conv_matrix_shape": (_matrix_shape_one_channel, "count every input channel",
                          lambda ws, ins, s, p: (ws[0] * ((ins[1] - ws[2] + 2 * p) // s + 1) *
                                                 ((ins[2] - ws[3] + 2 * p) // s + 1), int(np.prod(ins)))),
    "my_conv_matrix": (_conv_matrix_flipped, "flipped", _conv_matrix_alt),
    "locally_connected_params": (lambda n, k, s, p: fcconv.conv_output_size(n, k, s, p) ** 2 * k * k,
                                 "padding taps have no weight", _lc_alt),
    "iou": (_iou_exclusive, "Inclusive bounds", _iou_alt),
    "nms": (_nms_unsorted, "highest score down", _nms_alt),
    "transposed_size": (lambda n, k, s, p: n * s, "n * stride is right only", lambda n, k, s, p: s * n - s - 2 * p + k),
    "cell_box": (lambda r, c, j, w, s: (c * j, r * j, c * j + w - 1, r * j + w - 1), "pixels of the shrunk photo",
                 lambda r, c, j, w, s: tuple(int(np.floor(v + 0.5)) for v in
                                             (np.array([c, r, c, r]) * j + [0, 0, w, w]) / s - [0, 0, 1, 1])),
    "box_regression": (_regress_exclusive, "x1 - x0 + 1 pixels wide", _regress_alt),
    "whc_weight": (lambda w, c, h, wd: w.reshape(len(w), c, h, wd), "(W, H, C)", _whc_alt),
    "pnet_windows": (_windows_stride_1, "2 px apart", _windows_alt),
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


# --------------------------------------------------------------------------- every named mistake

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fixed_cases_tell_every_named_mistake_from_the_right_answer(seed):
    """Whatever the random cases, some case differs for every mistake a check names (02.3 used
    to tell a padding scaled after the stride apart in 3 runs of 100)."""
    for check in checks.CHECKS.values():
        plan = check.plan(np.random.default_rng(seed))
        for mistake, says in plan.mistakes:
            assert any(not plan.same(_safe(mistake, c), plan.want(*c)) for c in plan.calls), \
                (check.exercise, says)


def _safe(fn, case):
    try:
        return fn(*case)
    except Exception as err:
        return err


@pytest.mark.parametrize("ex", sorted(checks.CHECKS))
def test_each_named_mistake_gets_its_own_hint(ex):
    """No earlier mistake in a check's list shadows a later one: an answer that is mistake m on
    every case gets m's hint."""
    plan = checks.CHECKS[ex].plan(np.random.default_rng(7))
    for mistake, says in plan.mistakes:
        answers = [plan.read(wire.decode(wire.encode(_safe(mistake, c)))) for c in plan.calls]
        first = next(i for i, (g, c) in enumerate(zip(answers, plan.calls)) if not plan.same(g, plan.want(*c)))
        want = says(answers[first], plan.want(*plan.calls[first]), *plan.calls[first]) if callable(says) else says
        assert plan.judge(answers) == want


# issue 23's list: (check, a learner's wrong answer, what the hint must say, what it must not say)
def _rf_padding_after_stride(layers):
    size, jump, start = 1, 1, 0
    for k, s, p in layers:
        size += (k - 1) * jump
        jump *= s
        start -= p * jump
    return size, jump, start


def _rf_no_padding(layers):
    size, jump = 1, 1
    for k, s, _ in layers:
        size, jump = size + (k - 1) * jump, jump * s
    return size, jump, 0


def _fc7_nothing_copied(linear):
    return nn.Conv2d(linear.in_features, linear.out_features, 1)


def _fc7_padding_1(linear):
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, padding=1)
    with torch.no_grad():
        conv.weight.copy_(linear.weight[:, :, None, None])
        conv.bias.copy_(linear.bias)
    return conv


def _slices_orders_swapped(ch, s, o):
    C, H, W = s
    y, x = np.mgrid[0:H, 0:W]
    return (y * W + x) * C + ch if o == "chw" else (ch * H + y) * W + x


def _slices_h_w_swapped(ch, s, o):
    C, H, W = s
    y, x = np.mgrid[0:H, 0:W]
    return ch * H * W + x * H + y if o == "chw" else (x * H + y) * C + ch


def _lenet_no_relus(model):
    fcn = _lenet_per_position(model)
    return nn.Sequential(*[m for i, m in enumerate(fcn) if i not in (7, 9)])


def _lenet_no_biases(model):
    fcn = _lenet_per_position(model)
    with torch.no_grad():
        fcn[6].bias.normal_()                        # a fresh conv's bias: never copied
    return fcn


def _lenet_hwc_first(model):
    fcn = _lenet_per_position(model)
    with torch.no_grad():
        fcn[6].weight.copy_(model[7].weight.reshape(120, 5, 5, 16).permute(0, 3, 1, 2))
    return fcn


def _conv_matrix_rows_yxk(weight, in_shape):
    k, c, kh, kw = weight.shape
    _, h, w = in_shape
    oh, ow = h - kh + 1, w - kw + 1
    m = np.zeros((oh * ow * k, c * h * w))
    for y in range(oh):
        for x in range(ow):
            for f in range(k):
                row = np.zeros((c, h, w))
                row[:, y:y + kh, x:x + kw] = weight[f]
                m[(y * ow + x) * k + f] = row.ravel()
    return m


def _iou_no_clamp(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def _iou_floor(a, b):
    return int(_iou_alt(a, b) * 10**9) // 10**9  # what // gives: 0 unless the boxes are one


def _iou_min_area(a, b):
    iou = _iou_alt
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    inter = iou(a, b) * (area(a) + area(b)) / (1 + iou(a, b))
    return inter / min(area(a), area(b))


def _nms_per_label(dets, overlap):
    return [d for label in {d[4] for d in dets} for d in _nms_alt([e for e in dets if e[4] == label], overlap)]


def _bn_default_eps(bn):
    new = nn.BatchNorm2d(bn.num_features)
    new.load_state_dict(bn.state_dict())
    return new


def _mac_ratio_adaptive_pool(size):
    vgg = fcconv.vgg16(device="meta")
    return ((size - 224) // 32 + 1) ** 2 * fcconv.trace(vgg, 224).total_macs / fcconv.trace(vgg, size).total_macs


MISTAKES = [
    # accepted although wrong
    ("receptive_field_recurrence", _rf_padding_after_stride, "jump *before* that layer's stride", "kernel - 1"),
    # hints that named the wrong mistake
    ("fc_to_1x1", lambda w: w.T.reshape(*w.shape, 1, 1), "transposed the weight before reshaping", "expected shape"),
    ("fc7_as_conv", _fc7_nothing_copied, "weights were not copied", "bias"),
    ("fc7_as_conv", _fc7_padding_1, "padding", "size of tensor"),
    ("slice_positions", _slices_orders_swapped, "swapped the two orders", "H and W"),
    ("slice_positions", _slices_h_w_swapped, "did you swap H and W", "starts at"),
    ("convolutionalize_by_hand", _lenet_no_relus, "dropped the ReLU", "bias"),
    ("convolutionalize_by_hand", _lenet_no_biases, "bias of Linear number 1 (400 -> 120) was not copied", "C,H,W order should"),
    ("convolutionalize_by_hand", _lenet_hwc_first, "Linear number 1 (400 -> 120) should hold its weight reshaped in C,H,W", "bias"),
    ("n_windows", lambda n, w, s: (n // w) ** 2, "windows overlap", "count the first window"),
    ("my_conv_matrix", _conv_matrix_rows_yxk, "rows are ordered by position first", "column index"),
    ("nms", lambda dets, o: [d[:4] for d in _nms_alt(dets, o)], "not only their boxes", "6 ints"),
    ("keras_to_torch_filters", lambda w, s: w.reshape(w.shape[0], s[2], s[1], s[0]).transpose(0, 3, 2, 1),
     "you reshaped to (K, W, H, C)", "got ("),
    ("mac_ratio", _mac_ratio_adaptive_pool, "AdaptiveAvgPool2d", "about"),
    ("iou", _iou_min_area, "smaller box", "Inclusive bounds"),
    ("nms", _nms_per_label, "labels are ignored", "dropped a box"),
    ("nms", lambda dets, o: _nms_alt(dets, o, ties_suppressed=True), "equals overlap", "dropped a box"),
    ("bn1d_to_bn2d", _bn_default_eps, "eps was not copied", "running statistics"),
    # vague hints, now naming the mistake
    ("fc_to_conv_weight", lambda w, s: w.reshape(len(w), *s)[:, :, ::-1, ::-1], "flipped", "wrong places"),
    ("fc_to_conv_weight", lambda w, s: w.reshape(len(w), s[0], s[2], s[1]), "swapped H and W", "wrong places"),
    ("fc_to_conv_weight", lambda w, s: w.reshape(len(w), s[0], s[2], s[1]).swapaxes(2, 3), "swapped H and W", "wrong places"),
    ("fc_to_conv_weight", lambda w, s: w.T.reshape(len(w), *s), "transposed the weight", "wrong places"),
    ("fc_to_conv_weight", lambda w, s: np.reshape(w, (len(w), *s), order="F"), "order='F'", "wrong places"),
    ("linear_via_conv", lambda x, w, b: _linear_via_conv_alt(x, _hwc_rows(w, x.shape[1:]), b), "H,W,C order", "differ"),
    ("linear_via_conv", lambda x, w, b: _linear_via_conv_alt(x, w, b) + b, "bias twice", "differ"),
    ("linear_via_conv", lambda x, w, b: _linear_via_conv_alt(x, w, b).T, "(K, N)", "differ"),
    ("output_size", lambda W, F, S, P: int(np.ceil((W - F + 2 * P) / S)) + 1, "rounded the division up", "the answer is"),
    ("output_size", lambda W, F, S, P: round((W - F + 2 * P) / S) + 1, "round()", "the answer is"),
    ("output_size", lambda W, F, S, P: (W - F + 2 * P) // S, "count the first position", "the answer is"),
    ("score_map_side", lambda s: (s - 224) / 32 + 1, "whole number of cells", "the map is"),
    ("receptive_field_recurrence", _rf_no_padding, "ignored padding", "expected (size"),
    ("conv_matrix_shape", lambda ws, ins, s, p: (CASES["conv_matrix_shape"][2](ws, ins, s, p)[0],
                                                 ins[0] * (ins[1] + 2 * p) * (ins[2] + 2 * p)),
     "padding adds no columns", "you gave"),
    ("iou", _iou_no_clamp, "clamp", "Inclusive"),
    ("iou", _iou_floor, "not //", "Inclusive"),
    ("transposed_size", lambda n, k, s, p: (n - 1) * s + k, "forgot the padding", "you gave"),
    ("transposed_size", lambda n, k, s, p: (n - 1) * s - p + k, "not p", "you gave"),
    # 09: each mistake a learner makes gets its own hint
    ("box_regression", lambda b, o: tuple(round(b[i] + o[i] * (b[3 - i % 2] - b[1 - i % 2] + 1)) for i in range(4)),
     "you swapped them", "you gave"),
    ("box_regression", lambda b, o: tuple(int(b[i] + o[i] * (b[2 + i % 2] - b[i % 2] + 1)) for i in range(4)),
     "int() and math.floor() cut", "you gave"),
    ("box_regression", lambda b, o: tuple(round(b[i] + o[i]) for i in range(4)), "fractions of the box's size", "you gave"),
    ("whc_weight", lambda w, c, h, wd: w.reshape(len(w), h, wd, c).transpose(0, 3, 1, 2), "Keras's (H, W, C)", "input number"),
    ("whc_weight", lambda w, c, h, wd: w.reshape(len(w), wd, h, c).transpose(0, 3, 1, 2), "(K, C, W, H)", "input number"),
    ("pnet_windows", lambda H, W: sum(((math.floor(H * 0.6 * 0.709**k) - 12) // 2 + 1) *
                                      ((math.floor(W * 0.6 * 0.709**k) - 12) // 2 + 1)
                                      for k in range(40) if min(H, W) * 0.6 * 0.709**k >= 12),
     "rounded up", "you gave"),
    ("pnet_windows", lambda H, W: ((math.ceil(H * 0.6) - 12) // 2 + 1) * ((math.ceil(W * 0.6) - 12) // 2 + 1)
     if min(H, W) * 0.6 >= 12 else 0, "first level only", "you gave"),
]


def _hwc_rows(w, in_shape):
    """A weight read as if it had been flattened H, W, C: the rows PyTorch order would give."""
    c, h, wd = in_shape
    return w.reshape(len(w), h, wd, c).transpose(0, 3, 1, 2).reshape(len(w), -1)


@pytest.mark.parametrize("name, wrong, says, never", MISTAKES,
                         ids=[f"{m[0]}-{m[2][:24]}" for m in MISTAKES])
def test_a_wrong_answer_gets_the_hint_of_its_mistake(name, wrong, says, never):
    for _ in range(3):  # fresh random cases each time: the hint must not depend on luck
        verdict = getattr(checks, name)(wrong)
        assert verdict.status == "wrong" and says in verdict.message and never not in verdict.message, verdict


def test_a_count_hint_says_one_window_not_one_windows():
    """06.1 and 06.3: a hint about a case with one window reads '1 window', not '1 windows'."""
    def n_windows_wrong_at_one(size, window, stride):
        n = ((size - window) // stride + 1) ** 2
        return 2 if n == 1 else n
    verdict = checks.n_windows(n_windows_wrong_at_one)
    assert verdict.status == "wrong" and ": 1 window; you gave 2" in verdict.message, verdict

    def dress_wrong_at_one(uw, uh, ww, wh):
        n = (uw - ww + 1) * (uh - wh + 1)
        return 2 if n == 1 else n + 1       # wrong everywhere; the first case's count is not 1
    verdict = checks.dress_windows(dress_wrong_at_one)
    assert verdict.status == "wrong" and " windows of " in verdict.message, verdict


def test_the_mac_ratio_hint_gives_enough_digits_to_see_the_difference():
    message = checks.mac_ratio(_mac_ratio_adaptive_pool).message
    assert f"you gave {_mac_ratio_adaptive_pool(256):.4f}, the ratio is {_mac_ratio_alt(256):.4f}" in message


def test_the_inclusive_bounds_hint_names_the_window_given():
    v = checks.window_of(CASES["window_of"][0])
    window = int(v.message.split("a ")[1].split("-pixel")[0])
    assert f"ends at {window - 1}." in v.message and window in (28, 64, 224), v


# --------------------------------------------------------------------------- right, written another way

def _sparse_conv_matrix(weight, in_shape):
    sparse = pytest.importorskip("scipy.sparse")
    return sparse.csr_matrix(_conv_matrix_alt(weight, in_shape))


def _fc7_float32(linear):
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1)  # float32, as nn.Conv2d makes it
    with torch.no_grad():
        conv.weight.copy_(linear.weight[:, :, None, None])
        conv.bias.copy_(linear.bias)
    return conv


def _bn_float32(bn):
    new = nn.BatchNorm2d(bn.num_features, eps=bn.eps)
    new.load_state_dict(bn.state_dict())
    return new


def _iou_fraction(a, b):
    xs = set(range(a[0], a[2] + 1)) & set(range(b[0], b[2] + 1))
    ys = set(range(a[1], a[3] + 1)) & set(range(b[1], b[3] + 1))
    inter = len(xs) * len(ys)
    return Fraction(inter, (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)


RIGHT = [  # issue 23's and issue 25's unfair rejections, and other types that behave as asked
    ("fc_to_conv_weight", lambda w, s: w.reshape(len(w), *s).astype(np.float32)),
    ("fc_to_conv_weight", lambda w, s: torch.from_numpy(w).reshape(len(w), *s)),
    ("fc_to_1x1", lambda w: w.astype(np.float32)[:, :, None, None]),
    ("linear_via_conv", lambda x, w, b: _linear_via_conv_alt(*(a.astype(np.float32) for a in (x, w, b)))),
    ("linear_via_conv", lambda x, w, b: _linear_via_conv_alt(x, w, b).tolist()),
    ("output_size", lambda W, F, S, P: np.int64((W - F + 2 * P) // S + 1)),
    ("output_size", lambda W, F, S, P: float((W - F + 2 * P) // S + 1)),
    ("receptive_field_recurrence", lambda layers: np.array(_rf_alt(layers))),
    ("receptive_field_recurrence", lambda layers: list(_rf_alt(layers))),
    ("passes_needed", lambda jump, step: (jump / step) ** 2),
    ("passes_needed", lambda jump, step: Fraction(jump, step) ** 2),
    ("fc7_as_conv", _fc7_float32),
    ("fc7_as_conv", lambda linear: nn.Sequential(_fc7_float32(linear))),
    ("convolutionalize_by_hand", lambda model: _lenet_per_position(model).float()),
    ("bn1d_to_bn2d", _bn_float32),
    ("window_of", lambda r, c, j, w: [r * j, c * j, r * j + w - 1, c * j + w - 1]),
    ("slice_positions", lambda ch, s, o: CASES["slice_positions"][2](ch, s, o).astype(np.float32)),
    ("my_conv_matrix", _sparse_conv_matrix),
    ("my_conv_matrix", lambda weight, in_shape: _conv_matrix_alt(weight, in_shape).astype(np.float32)),
    ("iou", _iou_fraction),
    ("iou", lambda a, b: np.float32(_iou_alt(a, b))),
    ("mac_ratio", lambda size: np.float32(_mac_ratio_alt(size))),
    ("nms", lambda dets, o: [list(d) for d in _nms_alt(dets, o)]),
    ("nms", lambda dets, o: [(*d[:5], np.float32(d[5])) for d in _nms_alt(dets, o)]),
]


@pytest.mark.parametrize("name, answer", RIGHT, ids=[f"{n}-{i}" for i, (n, _) in enumerate(RIGHT)])
def test_a_right_answer_in_another_type_or_form_is_accepted(name, answer):
    verdict = getattr(checks, name)(answer)
    assert verdict.status == "correct", verdict


# --------------------------------------------------------------------------- the statements' rules

FORBIDDEN = {  # check: an answer that calls what its statement forbids, through an alias
    "fc_to_conv_weight": lambda w, s: numpy_ops.fc_to_conv_weight(w, s),
    "linear_via_conv": lambda x, w, b: numpy_ops.linear(x.reshape(len(x), -1), w, b),
    "fc_to_1x1": lambda w: numpy_ops.fc_to_conv_weight(w, (w.shape[1], 1, 1)),
    "output_size": lambda W, F, S, P: fcconv.conv_output_size(W, F, S, P),
    "score_map_side": lambda s: fcconv.formulas.score_map_side(s, 224, 32),
    "keras_to_torch_filters": lambda w, s: numpy_ops.fc_to_conv_weight(w, s, "hwc"),
    "fc7_as_conv": lambda linear: fcconv.linear_to_conv(linear, (linear.in_features,)),
    "convolutionalize_by_hand": lambda model: fcconv.convolutionalize(model, (1, 32, 32)),
    "window_of": lambda r, c, j, w: fcconv.formulas.cell_window((r, c), w, j),
    "my_conv_matrix": lambda weight, in_shape: numpy_ops.conv_matrix(weight, in_shape),
    "iou": lambda a, b: __import__("fcconv.course.detect").course.detect.iou(a, b),
}


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_an_answer_that_calls_what_the_statement_forbids_scores_nothing(name):
    verdict = getattr(checks, name)(FORBIDDEN[name])
    assert verdict.status == "wrong" and "asks you not to call" in verdict.message, verdict


def test_every_forbidden_name_exists_in_the_library():
    """Each forbid names a function, a module (``module.*``) or a family the grader knows; and
    the watch knows each by where its code is."""
    import importlib

    from fcconv.course.checks import wire
    for check in checks.CHECKS.values():
        for name in (*check.forbids, *check.requires):
            if name in ("@convolution", "@matmul"):
                continue
            if name.endswith(".*"):
                assert importlib.import_module(name.removesuffix(".*")), name
                continue
            where, attr = name.rsplit(".", 1)
            assert callable(getattr(importlib.import_module(where), attr)), name
        assert len(wire.where(check.forbids)) >= len([f for f in check.forbids if f != "@matmul"]), check


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


def test_a_float64_answer_computed_in_float32_is_told_so():
    def in_float32(x, w, b):
        return _linear_via_conv_alt(*(a.astype(np.float32) for a in (x, w, b))).astype(np.float64)
    v = checks.linear_via_conv(in_float32)
    assert v.status == "wrong" and "float32" in v.message and "float64" in v.message, v


def test_a_learners_global_named_like_a_builtin_changes_nothing():
    namespace = {"checks": checks, "str": "my notes", "zip": None, "len": 3, "isinstance": print}
    exec("def my_output_size(W, F, S, P):\n    return (W - F + 2 * P) // S + 1\n"
         "verdict = checks.output_size(my_output_size)", namespace)
    assert namespace["verdict"].status == "correct", namespace["verdict"]


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
