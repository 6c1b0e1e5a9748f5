"""Exercises: generated from solutions/, every check is fair (rejects a plausible wrong answer,
accepts a correct one written differently, never raises), and the grader scores and survives."""

import copy
import math

import nbformat
import numpy as np
import pytest
import torch
from conftest import ROOT
from speed import scaled
from torch import nn

from fcconv import checks, exercises, grade

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


@pytest.mark.parametrize("folder,expected", [("solutions", "correct"), ("exercises", "not attempted")])
def test_grader_scores_solutions_100_and_exercises_0(folder, expected):
    paths = sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        report = grade.grade_notebook(path, cell_timeout=math.ceil(scaled(120)))
        assert not report.problems, (path.name, report.problems)  # runs top to bottom, no error
        assert report.results and {s for s, _ in report.results.values()} == {expected}, \
            (path.name, report.results)
    assert grade.main([str(paths[0])], cell_timeout=math.ceil(scaled(120))) == \
        (0 if folder == "solutions" else 1)


def broken_copy(tmp_path, how):
    nb = nbformat.read(ROOT / "exercises" / "02_shapes.ipynb", as_version=4)
    answers = [c for c in nb.cells if c.metadata.get("fcconv", {}).get("role") == "answer"]
    if how == "loop":
        answers[0].source = "def my_output_size(W, F, S, P):\n    while True:\n        pass\nmy_output_size(1, 1, 1, 0)"
    elif how == "syntax":
        answers[1].source = "def my_score_map_side(size)\n    return 1"
    elif how == "deleted":
        nb.cells = [c for c in nb.cells if c.metadata.get("fcconv", {}) != {"exercise": "02.3", "role": "check"}]
    path = tmp_path / f"{how}.ipynb"
    nbformat.write(nb, path)
    return path


def test_grader_reports_an_infinite_loop_and_goes_on(tmp_path):
    limit = math.ceil(scaled(5))  # long enough for the other cells on this machine now
    r = grade.grade_notebook(broken_copy(tmp_path, "loop"), cell_timeout=limit)
    assert any(f"ran longer than {limit} s" in p and "infinite loop" in p for p in r.problems)
    assert r.results["02.2"][0] == "not attempted"          # later cells still ran


def test_grader_reports_a_syntax_error(tmp_path):
    r = grade.grade_notebook(broken_copy(tmp_path, "syntax"), cell_timeout=math.ceil(scaled(30)))
    assert any("SyntaxError" in p for p in r.problems)
    assert r.results["02.2"][0] in ("error", "wrong")        # the check saw no function
    assert r.score == 0


def test_grader_reports_a_deleted_check_cell(tmp_path):
    r = grade.grade_notebook(broken_copy(tmp_path, "deleted"), cell_timeout=math.ceil(scaled(30)))
    assert r.results["02.3"] == ("missing", r.results["02.3"][1]) and "deleted" in r.results["02.3"][1]
    assert not r.passed


def test_grader_survives_a_file_that_is_not_a_notebook(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    r = grade.grade_notebook(bad)
    assert r.problems and "cannot read" in r.problems[0] and not r.passed


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
    new = nn.BatchNorm2d(bn.num_features).double()
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
    from fcconv.detect import iou
    kept = []
    for d in dets:
        if all(iou(d[:4], k[:4]) <= overlap for k in kept):
            kept.append(d)
    return kept


def _nms_alt(dets, overlap):
    from fcconv.detect import iou
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
    "mac_ratio": (lambda s: ((s - 224) // 32 + 1) ** 2, "the ratio is about", _mac_ratio_alt),
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
}


def all_checks():
    names = [c for c in dir(checks) if callable(getattr(checks, c)) and getattr(checks, c).__module__ == checks.__name__
             and not c.startswith("_") and c not in ("Verdict",)]
    return sorted(names)


def test_every_check_has_a_fairness_case():
    assert set(all_checks()) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_rejects_a_wrong_answer_with_a_hint_and_accepts_another_correct_one(name, capsys):
    wrong, hint, alternative = CASES[name]
    check = getattr(checks, name)
    verdict = check(wrong)
    assert verdict.status == "wrong" and hint in verdict.message, verdict
    assert check(alternative).status == "correct", check(alternative)
    assert check(...).status == "not attempted"


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_stub_or_a_crash_never_raises(name, capsys):
    check = getattr(checks, name)

    def stub(*args):
        raise NotImplementedError()

    def crash(*args):
        return 1 / 0

    assert check(stub).status == "not attempted"
    v = check(crash)
    assert v.status == "wrong" and "ZeroDivisionError" in v.message
    assert checks.MARK in capsys.readouterr().out


def test_verdict_line_is_what_the_grader_reads():
    v = checks.Verdict("01.1", "wrong", "a hint")
    assert grade._LINE.match(v.line()).groups() == ("01.1", "wrong", "a hint")
    assert not v and checks.Verdict("01.1", "correct", "").__bool__()
