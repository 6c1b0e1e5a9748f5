"""The NumPy half of the course, run in an environment WITHOUT torch (tests/test_numpy_half.py
builds one and runs this file there; it is not collected by pytest in the main environment).

Each part is computed two ways where it can be: NumPy conv against the FC product, the check's
verdict on a right answer against a wrong one.
"""

import importlib.util
import sys

import numpy as np


def no_torch_here():
    assert importlib.util.find_spec("torch") is None, "this environment must not have torch"
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        return
    raise AssertionError("import torch worked")


def library():
    import fcconv

    assert fcconv.conv_output_size(7, 7) == 1 and fcconv.conv_output_size(224, 3, 1, 1) == 224
    x, w, b = np.random.default_rng(0).standard_normal((2, 3, 4, 5)), \
        np.random.default_rng(1).standard_normal((6, 60)), np.arange(6.0)
    conv = fcconv.numpy_ops.conv2d(x, fcconv.numpy_ops.fc_to_conv_weight(w, (3, 4, 5)), b)
    assert np.allclose(conv.reshape(2, 6), fcconv.numpy_ops.linear(x.reshape(2, -1), w, b))
    assert fcconv.formulas.score_map_side(384, 224, 32) == 6
    fig = fcconv.plots.sliding_1d(7, 3, 2, 1, 0)
    assert fig is not None
    try:
        trace = fcconv.trace  # a torch-backed name: an AttributeError that says torch is missing
    except AttributeError as err:
        assert "needs PyTorch" in str(err) and err.__cause__.name == "torch", err
    else:
        raise AssertionError(f"fcconv.trace loaded without torch? {trace}")
    assert not hasattr(fcconv, "convolutionalize") and "trace" not in fcconv.__all__
    namespace = {}
    exec("from fcconv import *", namespace)  # what a learner may type; the NumPy names only
    assert "conv_output_size" in namespace
    assert "torch" not in sys.modules


def shown(out) -> str:
    """Everything an Output widget shows (text, HTML, images' alt text)."""
    return "".join(str(v) for o in out.outputs for v in o.get("data", {}).values()) + \
        "".join(o.get("text", "") for o in out.outputs)


def explorers():
    from fcconv.widgets.conv_matrix import ConvMatrixExplorer
    from fcconv.widgets.fc_conv import FCvsConvExplorer
    from fcconv.widgets.setup import SetupExplorer

    ex = SetupExplorer()                                   # notebook 00
    ex.slider.value = 5
    assert "positions 5-7" in shown(ex.out), shown(ex.out)[:300]
    ex = FCvsConvExplorer()                                # notebook 01
    ex.k.value = 6
    assert "largest difference" in shown(ex.text) and "<img" in shown(ex.out)
    ex = ConvMatrixExplorer()                              # notebook 07
    ex.stride.value = 2
    assert "9</b> weights" in shown(ex.text) and "<img" in shown(ex.out)
    ex.kernel.value = 7
    assert "does not fit" in shown(ex.text)


def setup_report():
    from fcconv.course.setup_check import report_html, run_checks

    found = {c.name: c for c in run_checks()}
    assert found["numpy"].ok and not found["torch"].ok and "not installed" in found["torch"].found
    assert "FIX" in report_html(list(found.values()))


def conv_matrix_by_hand(w, ins):
    """07.2 solved from the weights (the statement forbids calling a convolution)."""
    k, c, kh, kw = w.shape
    oh, ow = ins[1] - kh + 1, ins[2] - kw + 1
    m = np.zeros((k, oh, ow, *ins))
    for y in range(oh):
        for x in range(ow):
            m[:, y, x, :, y:y + kh, x:x + kw] = w
    return m.reshape(k * oh * ow, -1)


def exercise_checks():
    from fcconv import numpy_ops
    from fcconv.course import checks

    right = {  # notebook 01 and 07's exercises, solved
        checks.fc_to_conv_weight: lambda w, s: w.reshape(len(w), *s),
        checks.linear_via_conv: lambda x, w, b: numpy_ops.conv2d(
            x, w.reshape(len(w), *x.shape[1:]), b).reshape(len(x), -1),
        checks.fc_to_1x1: lambda w: w.reshape(*w.shape, 1, 1),
        checks.conv_matrix_shape: lambda ws, ins, s, p: (
            ws[0] * ((ins[1] - ws[2] + 2 * p) // s + 1) * ((ins[2] - ws[3] + 2 * p) // s + 1),
            ins[0] * ins[1] * ins[2]),
        checks.my_conv_matrix: conv_matrix_by_hand,
        checks.locally_connected_params: lambda n, k, s, p: int(np.count_nonzero(
            numpy_ops.conv_matrix(np.ones((1, 1, k, k)), (1, n, n), s, p))),
    }
    for check, answer in right.items():
        verdict = check(answer)
        assert verdict and verdict.status == "correct", verdict
    hwc = lambda w, s: w.reshape(len(w), s[1], s[2], s[0]).transpose(0, 3, 1, 2)  # noqa: E731
    wrong = checks.fc_to_conv_weight(hwc)
    assert not wrong and "flatten H,W,C" in wrong.message, wrong
    wrong = checks.linear_via_conv(lambda x, w, b: x.reshape(len(x), -1) @ w.T)
    assert not wrong and "bias" in wrong.message, wrong
    float32 = checks.fc_to_conv_weight(lambda w, s: w.astype(np.float32).reshape(len(w), *s))
    assert float32, float32                                # float32 judged with float32's tolerance
    forbidden = checks.my_conv_matrix(lambda w, ins: numpy_ops.conv_matrix(w, ins))
    assert not forbidden and "not to call" in forbidden.message, forbidden
    needs = checks.fc7_as_conv(lambda linear: linear)      # a PyTorch exercise: said, not crashed
    assert not needs and "needs PyTorch" in needs.message, needs


if __name__ == "__main__":
    for part in (no_torch_here, library, explorers, setup_report, exercise_checks):
        part()
        print(f"ok: {part.__name__}")
