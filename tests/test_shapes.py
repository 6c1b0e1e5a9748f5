"""fcconv.shapes against PyTorch itself: output sizes, traces, receptive fields (autograd)."""

import itertools
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from speed import scaled
from torch import nn

import fcconv
from fcconv import conv_output_size, receptive_field, trace


def torch_conv_size(size, k, s, p, d):
    x = torch.zeros(1, 1, size, 1)
    return F.conv2d(x, torch.zeros(1, 1, k, 1), stride=(s, 1), padding=(p, 0),
                    dilation=(d, 1)).shape[2]


def torch_pool_size(size, k, s, p, d, ceil):
    x = torch.zeros(1, 1, size, 1)
    return F.max_pool2d(x, (k, 1), (s, 1), (p, 0), (d, 1), ceil_mode=ceil).shape[2]


GRID = list(itertools.product(range(1, 13), range(1, 6), range(1, 4), range(0, 3), range(1, 3)))


def agree(ours, theirs, *args, **kwargs):
    """Both give the same size for ``args``, or both refuse."""
    try:
        expected = theirs(*args)
    except RuntimeError:
        with pytest.raises(ValueError):
            ours(*args[:5], **kwargs)
        return
    assert ours(*args[:5], **kwargs) == expected, args


def test_conv_output_size_matches_conv2d_on_a_grid():
    for size, k, s, p, d in GRID:
        agree(conv_output_size, torch_conv_size, size, k, s, p, d)


@pytest.mark.parametrize("ceil", [False, True])
def test_conv_output_size_matches_max_pool2d_on_a_grid(ceil):
    for size, k, s, p, d in GRID:
        if p > k // 2:  # PyTorch forbids pooling pads over half the kernel
            continue
        agree(conv_output_size, torch_pool_size, size, k, s, p, d, ceil, ceil_mode=ceil)


def test_ceil_mode_drops_a_window_that_starts_in_the_right_padding():
    # 5 + 2*1, kernel 2, stride 2: ceil gives 4 windows, but the 4th would start at 6 > 5 + 1 - 1
    assert conv_output_size(5, 2, 2, 1, ceil_mode=True) == torch_pool_size(5, 2, 2, 1, 1, True) == 3


def test_no_output_spells_out_the_arithmetic():
    with pytest.raises(ValueError, match=r"kernel 7 does not fit in input 5 \+ 2\*0 padding"):
        conv_output_size(5, 7)
    with pytest.raises(ValueError, match="dilation 2 spans 5"):
        conv_output_size(4, 3, dilation=2)
    with pytest.raises(ValueError, match="stride must be >= 1; got 0"):
        conv_output_size(8, 3, stride=0)
    with pytest.raises(TypeError, match="size must be an int; got 7.5"):
        conv_output_size(7.5, 3)


# --------------------------------------------------------------------------- VGG16 facts

@pytest.fixture(scope="module")
def vgg_trace():
    return trace(fcconv.vgg16(device="meta"), (3, 224, 224))


def test_vgg16_parameters_macs_and_pool5(vgg_trace):
    assert vgg_trace.total_params == 138_357_544
    assert round(vgg_trace.total_macs / 1e9, 2) == 15.47
    conv_macs = sum(r.macs for r in vgg_trace if r.kind == "Conv2d")
    fc_macs = sum(r.macs for r in vgg_trace if r.kind == "Linear")
    assert (round(conv_macs / 1e9, 2), round(fc_macs / 1e9, 3)) == (15.35, 0.124)
    assert vgg_trace["features.30"].out_shape == (512, 7, 7)
    assert vgg_trace["features.30"].shape_str == "7x7x512"
    assert [vgg_trace[n].out_shape for n in ("classifier.0", "classifier.3", "classifier.6")] == \
        [(4096,), (4096,), (1000,)]


def test_vgg16_fc6_receptive_field(vgg_trace):
    fc6 = vgg_trace["classifier.0"]
    assert (fc6.rf_size, fc6.rf_jump, fc6.rf_start) == (404, 32, -90)
    assert fc6.rf.window(1) == (32 - 90, 32 + 313)


def test_trace_counts_parameters_like_pytorch():
    model = fcconv.alexnet()
    t = trace(model, 224)
    assert t.total_params == sum(p.numel() for p in model.parameters()) == 61_100_840
    assert sum(r.params for r in t) == t.total_params
    assert t["classifier.1"].macs == 256 * 6 * 6 * 4096


def test_trace_uses_no_real_memory_for_vgg16_at_1024():
    t = trace(fcconv.vgg16(device="meta"), (3, 1024, 1024))  # a real pass would need ~30 GB
    assert t["features.30"].out_shape == (512, 32, 32)


def test_layers_after_a_real_adaptive_average_stay_rows(vgg_trace):
    # At 384 pool5 is 12x12 and the adaptive pool averages unequal windows down to 7x7: the
    # field is unknown from there on, but the classifier still runs and must still be counted.
    t = trace(fcconv.vgg16(device="meta"), (3, 384, 384))
    assert t.names == vgg_trace.names
    assert t.output_shape == vgg_trace.output_shape == (1000,)
    assert t["classifier.6"].rf is None and t["features.30"].rf is not None
    head = [(r.out_shape, r.params, r.macs) for r in t if r.name.startswith("classifier")]
    assert head == [(r.out_shape, r.params, r.macs) for r in vgg_trace
                    if r.name.startswith("classifier")]
    assert sum(r.params for r in t) == t.total_params == 138_357_544


def test_trace_follows_a_custom_forward_with_view():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 5, stride=2)
            self.fc = nn.Linear(8 * 6 * 6, 4)

        def forward(self, x):
            x = F.relu(self.conv(x))
            return self.fc(x.view(x.size(0), -1))

    t = trace(Net(), (3, 16, 16))
    assert [r.name for r in t] == ["conv", "fc"]
    assert t["conv"].out_shape == (8, 6, 6) and t.output_shape == (4,)
    assert t["fc"].macs == 8 * 6 * 6 * 4 and t["conv"].macs == 8 * 6 * 6 * 3 * 25
    assert (t["fc"].rf_size, t["fc"].rf_jump, t["fc"].rf_start) == (15, 2, 0)


def test_trace_renders_as_html_and_aligned_text(vgg_trace):
    html = vgg_trace._repr_html_()
    assert "<table" in html and "7x7x512" in html and "138,357,544" in html and "15.47 GMACs" in html
    lines = str(vgg_trace).splitlines()
    assert "7x7x512" in str(vgg_trace)
    header, rule = lines[0], lines[1]
    assert set(rule) == {"-"} and header.index("output") > header.index("kind")
    # aligned: the 'output' column starts at the same place on every layer line
    col = header.index("output")
    assert all(line[col - 1] == " " for line in lines[2:-3])


def test_too_small_an_input_names_the_layer():
    with pytest.raises(ValueError, match=r"input 31x31x3, layer 'features.30' \(MaxPool2d\)"):
        trace(fcconv.vgg16(device="meta"), 31)
    with pytest.raises(ValueError, match="expects 25088 inputs but gets 18432"):
        trace(nn.Sequential(*list(fcconv.vgg16(device="meta").features), nn.Flatten(),
                            nn.Linear(25088, 10, device="meta")), 192)


@pytest.mark.parametrize("name,shape,out", [
    ("lenet5", (1, 32, 32), "10"), ("tinyvgg", (3, 64, 64), "10"),
    ("question234", (1, 234, 234), "1000"), ("alexnet", (3, 224, 224), "1000")])
def test_course_models_build_and_trace(name, shape, out):
    model, train_shape = fcconv.models.build(name, device="meta")
    assert train_shape == shape
    assert trace(model, shape).rows[-1].shape_str == out


def test_question234_feature_map_is_24x24x32():
    t = trace(fcconv.question234(device="meta"), 234)
    assert t["8"].shape_str == "24x24x32"


# --------------------------------------------------------------------------- receptive fields

layer = st.one_of(
    st.tuples(st.just("conv"), st.integers(1, 4), st.integers(1, 2), st.integers(0, 2),
              st.integers(1, 2)),
    st.tuples(st.just("pool"), st.integers(1, 3), st.integers(1, 3), st.just(0), st.just(1)),
)


def build_net(spec):
    layers = []
    for kind, k, s, p, d in spec:
        if kind == "conv":
            conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
            nn.init.uniform_(conv.weight, 0.1, 1.0)  # positive: no cancellation hides a pixel
            layers.append(conv)
        else:
            layers.append(nn.AvgPool2d(k, stride=s))  # same field as max pooling, dense gradient
    return nn.Sequential(*layers).double()


@settings(max_examples=60, deadline=None)
@given(spec=st.lists(layer, min_size=1, max_size=5), size=st.integers(12, 40), data=st.data())
def test_receptive_field_matches_autograd(spec, size, data):
    net = build_net(spec)
    try:
        rf = receptive_field(net, (1, size, size))
    except ValueError:
        return  # the input is too small for this stack: nothing to check
    x = torch.rand(1, 1, size, size, dtype=torch.float64, requires_grad=True)  # autograd on
    y = net(x)
    i = data.draw(st.integers(0, y.shape[2] - 1))
    j = data.draw(st.integers(0, y.shape[3] - 1))
    y[0, 0, i, j].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten().tolist()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(0)).flatten().tolist()
    said = [rf.pixels(i, 0), rf.pixels(j, 1)]
    if not all(said):  # a cell that sees only zero padding along one axis sees no pixel at all
        assert rows == cols == [], (spec, rf, i, j)
        return
    for idx, hit, pixels in ((i, rows, said[0]), (j, cols, said[1])):
        assert hit == pixels, (spec, rf, idx)   # exactly: inside the map and at the border
        first, last = rf.window(idx)
        assert first <= min(hit) and max(hit) <= last  # inside the span the formula gives
        if 0 <= first and last < size:  # inside the image: the span less its gaps
            assert bool(rf.gaps) == (hit != list(range(first, last + 1)))


def seen_by_cell(net, size, cell):
    """The input rows autograd says reach output cell (cell, cell)."""
    x = torch.rand(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    net(x)[0, 0, cell, cell].backward()
    return torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten().tolist()


@pytest.mark.parametrize("mode", ["zeros", "replicate", "reflect", "circular"])
def test_padding_modes_give_the_autograd_field_or_refuse(mode):
    """Every cell sees exactly its span less its gaps (clipped to the image), or the field is
    refused, and then autograd shows some cell that does not, or the span has gaps."""
    refused = 0
    for k, p, d, s in itertools.product(range(1, 6), range(1, 4), (1, 2), (1, 2)):
        conv = nn.Conv2d(1, 1, k, s, padding=p, dilation=d, padding_mode=mode, bias=False)
        nn.init.uniform_(conv.weight, 0.1, 1.0)
        net = nn.Sequential(conv).double()
        cells = range(conv_output_size(9, k, s, p, d))
        windows = [(c * s - p, c * s - p + d * (k - 1)) for c in cells]
        seen = [seen_by_cell(net, 9, c) for c in cells]
        is_window = all(hit == [q for q in range(max(a, 0), min(b, 8) + 1) if (q - a) % d == 0
                                or k == 1] for hit, (a, b) in zip(seen, windows))
        try:
            rf = receptive_field(net, (1, 9, 9))
        except ValueError as err:
            assert re.search(f"padding_mode={mode!r}", str(err))
            # refused only where some cell does not see its span less its gaps, or where the
            # span has gaps a copied border pixel may land in (not checked pixel by pixel)
            assert not is_window or d > 1 and k > 1 and "gaps" in str(err), (k, p, d, s, seen)
            refused += 1
            continue
        assert [rf.window(c) for c in cells] == windows, (k, p, d, s, rf)
        assert all(hit == [q for q in rf.pixels(c) if 0 <= q < 9]
                   for c, hit in zip(cells, seen)), (k, p, d, s, rf, seen)
    assert refused == 60 if mode == "circular" else refused < 60  # circular always wraps
@pytest.mark.parametrize("net,seen", [
    (nn.Conv2d(1, 1, 2, dilation=4), [0, 4]),
    (nn.Sequential(nn.Conv2d(1, 1, 2), nn.AvgPool2d(1, stride=3), nn.Conv2d(1, 1, 2)),
     [0, 1, 3, 4]),
])
def test_a_field_with_gaps_is_its_span_and_says_which_pixels_it_skips(net, seen):
    """The span is what the receptive-field literature reports for dilated nets (Araujo et al.,
    2019); ``gaps`` says which pixels inside it a cell skips, and ``pixels`` lists the rest."""
    net = nn.Sequential(net).double()
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.uniform_(m.weight, 0.1, 1.0)
    assert seen_by_cell(net, 9, 0) == seen
    rf = receptive_field(net, (1, 9, 9))
    text = ", ".join(map(str, seen)) if len(seen) == 2 else "0..1, 3..4"
    assert (rf.size, rf.jump, rf.start) == (5, 1 if len(seen) == 2 else 3, 0)
    assert rf.gaps.startswith(f"along axis 0 a cell sees pixels {text} of its 5-pixel span")
    assert rf.pixels(0) == seen and rf.pixels(1, 1) == [rf.jump + p for p in seen]
    assert trace(net, (1, 9, 9)).rows[-1].rf == rf
    assert "5*" in str(trace(net, (1, 9, 9))) and "* the field has gaps" in str(trace(net, 9))


def test_a_later_layer_fills_the_gaps_of_a_dilated_one():
    net = nn.Sequential(nn.Conv2d(1, 1, 2, dilation=4), nn.Conv2d(1, 1, 5)).double()
    for m in net:
        nn.init.uniform_(m.weight, 0.1, 1.0)
    assert receptive_field(net, (1, 12, 12)) == fcconv.ReceptiveField(9, 1, 0)
    assert seen_by_cell(net, 12, 1) == list(range(1, 10))


def test_receptive_field_of_lenet5():
    assert receptive_field(fcconv.lenet5(), 32) == fcconv.ReceptiveField(32, 4, 0)


# --------------------------------------------------------------------------- command line

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "fcconv", *args], capture_output=True, text=True,
                          timeout=scaled(120))


def test_cli_prints_the_table():
    r = run_cli("trace", "vgg16", "--input", "384")
    assert r.returncode == 0, r.stderr
    assert "12x12x512" in r.stdout and "138,357,544" in r.stdout


def test_cli_says_why_a_size_is_impossible():
    r = run_cli("trace", "alexnet", "--input", "20")
    assert r.returncode == 2 and "error: at input 20x20x3" in r.stderr and "Traceback" not in r.stderr


def test_cli_traces_the_convolutionalized_net():
    r = run_cli("trace", "vgg16", "--input", "384", "--convolutionalized")
    assert r.returncode == 0, r.stderr
    assert "6x6x1000" in r.stdout and "6x6x4096" in r.stdout


def test_cli_input_zero_is_refused_not_read_as_the_default():
    r = run_cli("trace", "vgg16", "--input", "0")
    assert r.returncode == 2 and "argument --input: must be positive, got 0" in r.stderr
    assert "224x224" not in r.stdout and "Traceback" not in r.stderr


@pytest.mark.parametrize("args,text", [
    (("trace", "lenet5", "--input", "100000000000"), "error: an input of "
     "100000000000x100000000000x1 holds 10,000,000,000,000,000,000,000 values per example: "
     "more than one tensor can index"),
    (("trace", "lenet5", "--input", "-3"), "argument --input: must be positive, got -3"),
    (("trace", "lenet5", "--input", "3.5"),
     "argument --input: must be a whole number of pixels, got 3.5"),
    (("trace", "lenet5", "--input", "384"), "lenet5 as trained takes 32x32 only: add "
     "--convolutionalized for its score map at 384x384"),
])
def test_cli_input_is_checked_before_torch_sees_it(args, text):
    r = run_cli(*args)
    assert r.returncode == 2 and text in r.stderr and "Traceback" not in r.stderr


# --------------------------------------------------------------------------- clear errors

@pytest.mark.parametrize("call,error,text", [
    (lambda: trace("abc", (1, 8, 8)), TypeError, "model must be a torch.nn.Module; got 'abc'"),
    (lambda: trace(None, (1, 8, 8)), TypeError, "model must be a torch.nn.Module; got None"),
    (lambda: trace(lambda x: x, 8), TypeError, "model must be a torch.nn.Module"),
    (lambda: trace(fcconv.lenet5(), "233"), TypeError, "got '233' (str)"),
    (lambda: trace(fcconv.lenet5(), (1, 32.0, 32)), TypeError,
     "input_shape[1] must be an int; got 32.0 (float)"),
    (lambda: trace(fcconv.lenet5(), True), TypeError, "input_shape must be an int; got True"),
    (lambda: receptive_field(fcconv.lenet5(), (1, 0, 32)), ValueError,
     "input_shape[1] must be >= 1; got 0"),
    (lambda: conv_output_size(5, 2, ceil_mode="no"), TypeError,
     "ceil_mode must be True or False; got 'no'"),
    (lambda: conv_output_size(5, 2.0), TypeError, "kernel must be an int; got 2.0"),
    (lambda: fcconv.formulas.cell_window("ab", 3, 2), TypeError, "cell must be an int; got 'ab'"),
    (lambda: fcconv.formulas.cell_window((1, -2), 3, 2), ValueError, "cell[1] must be >= 0; got -2"),
    (lambda: fcconv.formulas.cell_window((1, 2, 3), 3, 2), ValueError,
     "cell must be an int or a (height, width) pair; got (1, 2, 3)"),
    (lambda: fcconv.formulas.field_step(3, 1, 0, "3"), TypeError, "kernel must be an int; got '3'"),
    (lambda: fcconv.formulas.field_step(3, 0, 0, 3), ValueError, "jump must be >= 1; got 0"),
    (lambda: trace(fcconv.lenet5(), 10**12), ValueError, "an input of 1000000000000x"
     "1000000000000x1 holds 1,000,000,000,000,000,000,000,000 values per example: more than one "
     "tensor can index; use a smaller size"),
    (lambda: receptive_field(fcconv.lenet5(), (1, 10**10, 10**9)), ValueError,
     "an input of 10000000000x1000000000x1 holds"),
    (lambda: receptive_field(nn.Conv2d(1, 1, (3, 5)), (1, 8, 8)).window(0, 2), ValueError,
     "axis must be below 2 (one per spatial axis); got 2"),
    (lambda: receptive_field(nn.Conv2d(1, 1, 3), (1, 8, 8)).pixels(-1), ValueError,
     "i must be >= 0; got -1"),
    (lambda: trace(nn.Sequential(nn.Conv2d(1, 1, 3)), (1, 2, 8, 8, 8)), ValueError,
     "input_shape (1, 2, 8, 8, 8) has 5 sizes, but the model's layers (Conv2d) take 2 spatial axes"),
])
def test_bad_arguments_get_a_clear_error(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)


def test_max_pool_with_indices_traces_and_has_a_field():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, return_indices=True))
    t = trace(net, (1, 8, 8))
    assert t["1"].out_shape == (2, 3, 3) and t["1"].rf_jump == 2
    assert receptive_field(net, (1, 8, 8)) == fcconv.ReceptiveField(4, 2, 0)


def test_trace_counts_calls_not_module_objects():
    act = nn.ReLU()
    conv = nn.Conv2d(2, 2, 3)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), act, conv, act, conv, act)
    t = trace(net, (1, 12, 12))
    assert [r.kind for r in t] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU"]
    assert t.rows[-1].rf_size == 7                       # three 3x3 convs, not two
    assert sum(r.params for r in t) == t.total_params    # the shared conv's weights counted once
    assert (t.rows[2].params, t.rows[4].params) == (2 * 2 * 9 + 2, 0)
    assert (t.rows[2].macs, t.rows[4].macs) == (2 * 8 * 8 * 2 * 9, 2 * 6 * 6 * 2 * 9)  # each call


def test_unknown_op_in_forward_is_named_with_its_line():
    class Roll(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return torch.roll(self.conv(x), 1, dims=3)

    with pytest.raises(ValueError, match=r"'roll' \(line \d+ of forward: return torch.roll"):
        receptive_field(Roll(), (1, 8, 8))


# --------------------------------------------------------------------------- issue 22: fields

def autograd_rows(net, shape, cell):
    """The input rows autograd says reach output ``cell`` (an index into the output, no batch)."""
    x = torch.rand(1, *shape, dtype=torch.float64, requires_grad=True)
    net(x)[(0, *cell)].backward()
    grad = x.grad[0].abs().sum(0)
    return torch.nonzero(grad.sum(tuple(range(1, grad.dim())))).flatten().tolist()


def positive(net):
    for p in net.parameters():
        nn.init.uniform_(p, 0.1, 1.0)   # no cancellation hides a pixel
    return net.double()


class Features(nn.Module):
    """conv -> flatten -> ``tail``: what a flattened feature depends on."""

    def __init__(self, tail):
        super().__init__()
        self.conv, self.tail = nn.Conv2d(1, 2, 3), tail

    def forward(self, x):
        return self.tail(self.conv(x).flatten(1))


@pytest.mark.parametrize("tail", [nn.LayerNorm(2 * 8 * 8), nn.Softmax(dim=1),
                                  nn.Sequential(nn.Softmax(dim=1), nn.Linear(128, 3))])
def test_case9_features_mixed_after_the_flatten_see_the_whole_map(tail):
    net = positive(Features(tail))
    rf = receptive_field(net, (1, 10, 10))
    assert (rf.size, rf.jump, rf.start) == (10, 1, 0)
    assert autograd_rows(net, (1, 10, 10), (1,)) == list(range(10))


def test_case9_a_layer_norm_over_positions_has_no_field():
    class WidthNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.norm = nn.Conv2d(1, 3, 3), nn.LayerNorm((6, 3))

        def forward(self, x):
            return self.norm(self.conv(x).permute(0, 2, 3, 1))

    with pytest.raises(ValueError, match=r"'norm' \(LayerNorm\).*normalises over the last 2 axes"):
        receptive_field(WidthNorm(), (1, 8, 8))
    assert len(autograd_rows(positive(WidthNorm()), (1, 8, 8), (0, 0, 0))) == 3  # rows: one cell
    # ...but all 8 columns: the row of cells it normalises over


@pytest.mark.parametrize("crop,pad", [(-1, 1), (-2, 1), (-1, 2)])
def test_case8_padding_after_a_crop_border_cells_see_exactly_their_pixels(crop, pad):
    """The span formula holds for every cell (DESIGN's contract); a border cell whose taps land
    on padding after a crop depends on fewer pixels, and pixels() lists exactly those."""
    cropped = positive(nn.Sequential(nn.Conv2d(1, 1, 1), nn.ZeroPad2d(crop), nn.Conv2d(1, 1, 3)))
    rf = receptive_field(cropped, (1, 12, 12))
    assert autograd_rows(cropped, (1, 12, 12), (0, 0, 0)) == list(range(*rf.window(0))) + \
        [rf.window(0)[1]]
    padded = positive(nn.Sequential(nn.Conv2d(1, 1, 1), nn.ZeroPad2d(crop),
                                    nn.Conv2d(1, 1, 3, padding=pad)))
    rf = receptive_field(padded, (1, 12, 12))
    assert rf.window(0) == (-crop - pad, -crop - pad + 2)
    for cell in range(padded(torch.zeros(1, 1, 12, 12, dtype=torch.float64)).shape[2]):
        assert autograd_rows(padded, (1, 12, 12), (0, cell, cell)) == rf.pixels(cell)
    first = rf.window(0)[0]   # the border cell does not see every pixel of its span
    assert rf.pixels(0)[0] > max(first, 0)


def test_memory_trace_of_a_conv1d_net_on_30_million_samples():
    """Meta tensors and a field that says 'one run' once: no Python object per kernel tap."""
    import tracemalloc

    net = nn.Sequential(nn.Conv1d(1, 4, 3, stride=2), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    tracemalloc.start()
    t = trace(net, (1, 3 * 10**7))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert t.rows[1].rf_size == 3 * 10**7 - 1 and peak < 50 * 2**20
    strided = nn.Sequential(nn.Conv1d(1, 2, 1, stride=2), nn.AvgPool1d(3000), nn.Conv1d(2, 2, 3))
    rows = trace(strided, (1, 3 * 10**7)).rows
    assert rows[1].rf.gaps and rows[2].rf is None   # 3,000 runs listed; 3 x 3,000 are not
    with pytest.raises(ValueError, match="more than 4,096 separate runs of pixels"):
        receptive_field(strided, (1, 3 * 10**7))


def test_heads_that_see_different_fields_are_named():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 5, padding=2)

        def forward(self, x):
            return self.a(x), self.b(x)

    class Same(Two):
        def forward(self, x):
            return self.b(x), torch.relu(self.b(x))

    assert receptive_field(Same(), (1, 9, 9)) == fcconv.ReceptiveField(5, 1, -2)
    with pytest.raises(ValueError, match=r"the model's heads see different fields \(size/jump/"
                                         r"start: a: 3/1/-1, b: 5/1/-2\); ask about one head"):
        receptive_field(Two(), (1, 9, 9))


def test_the_library_modules_import_each_other_without_a_circle():
    """Each module depends only on the ones below it (DESIGN: no circles)."""
    import ast
    import pathlib

    package = pathlib.Path(fcconv.__file__).parent
    imports = {}
    for path in package.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module.split(".")[0]} if node.module else \
                    {a.name for a in node.names}
        imports[path.stem] = found & {p.stem for p in package.glob("*.py")}
    order, done = [], set()
    while len(done) < len(imports):
        ready = sorted(m for m in imports if m not in done and imports[m] <= done)
        assert ready, f"an import circle among {sorted(set(imports) - done)}"
        order += ready
        done |= set(ready)
    assert order.index("_walk") < order.index("shapes") < order.index("plots")
    assert order.index("_crop") < order.index("_walk") < order.index("dense")


def test_input_shape_forms_follow_the_first_layer():
    """224 means 224x224 for a 2-D net and 224 samples for a 1-D one; (H, W) takes the channels
    from the first conv even when a pool comes first; (C, D, H, W) is one example for Conv3d."""
    pooled = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(3, 4, 3))
    assert trace(pooled, (16, 16)).rows[-1].out_shape == trace(pooled, (3, 16, 16)).rows[-1].out_shape
    assert trace(nn.Sequential(nn.Conv1d(3, 4, 3)), 20).rows[-1].out_shape == (4, 18)
    assert trace(nn.Sequential(nn.Conv3d(5, 2, 3)), (1, 5, 8, 8, 8)).rows[-1].out_shape == \
        (2, 6, 6, 6)
    lenet = fcconv.lenet5(device="meta")
    for same in (torch.tensor(32), np.int64(32), torch.tensor([1, 32, 32])):   # 0-d: one side
        assert trace(lenet, same).output_shape == trace(lenet, 32).output_shape


# --------------------------------------------------------------------------- issue 22, review 2

def test_batch_statistics_have_no_field_and_eval_mode_has_one():
    """Fresh from its constructor a net is in training mode: BatchNorm then normalises with the
    batch's statistics, and every output depends on every pixel of every example (autograd)."""
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Conv2d(2, 2, 3))
    x = torch.randn(2, 1, 12, 12, requires_grad=True)
    net(x)[0, 0, 0, 0].backward()
    assert bool((x.grad != 0).all())
    with pytest.raises(ValueError, match=r"BatchNorm2d '1' is in training mode: .*every pixel of "
                                         r"every example in the batch.*call model.eval\(\) first"):
        receptive_field(net, (1, 12, 12))
    assert [r.rf_size for r in trace(net, (1, 12, 12))] == [3, None, None]   # '-' in the table
    assert receptive_field(net.eval(), (1, 12, 12)) == fcconv.ReceptiveField(5, 1, 0)


@pytest.mark.parametrize("net,length", [
    (nn.Sequential(nn.Conv1d(1, 1, 3), nn.Conv1d(1, 1, 2, dilation=3, padding=1)), 7),
    (nn.Sequential(nn.Conv1d(1, 1, 4, stride=2), nn.AvgPool1d(3, 2, ceil_mode=True)), 23),
    (nn.Sequential(nn.Conv1d(1, 1, 3, padding=2, dilation=2), nn.ZeroPad1d(-2),
                   nn.Conv1d(1, 1, 3, stride=2, padding=3, dilation=3)), 13),
    (nn.Sequential(nn.Conv1d(1, 1, 1, stride=3), nn.AvgPool1d(3, 2, padding=1, ceil_mode=True),
                   nn.Conv1d(1, 1, 2, padding=1)), 20)])
def test_border_cells_see_exactly_the_pixels_pixels_lists(net, length):
    """The span is the formula (it may reach into padding or past the end); pixels() is what
    autograd says, cell by cell, at the border too (average pools: every pixel of a window
    gets a gradient)."""
    net = positive(net)
    rf = receptive_field(net, (1, length))
    x = torch.rand(1, 1, length, dtype=torch.float64, requires_grad=True)
    y = net(x)
    for cell in range(y.shape[2]):
        grad, = torch.autograd.grad(y[0, 0, cell], x, retain_graph=True)
        hit = torch.nonzero(grad[0, 0]).flatten().tolist()
        assert hit == rf.pixels(cell), (cell, rf)
        first, last = rf.window(cell)
        assert not hit or first <= hit[0] and hit[-1] <= last
    with pytest.raises(ValueError, match=f"cell {y.shape[2]} does not exist"):
        rf.pixels(y.shape[2])


def test_closed_forms_take_a_few_unions_whatever_the_stride_or_the_number_of_taps(monkeypatch):
    """Branches meeting after a stride of 10**12, and dilated taps under a global pool over
    5 * 10**11 cells: the walk merges runs of pixels a few dozen times (loops once per jump or
    once per tap would run for days)."""
    import fcconv._field as field_module

    merges = []
    real = field_module.merge_runs
    monkeypatch.setattr(field_module, "merge_runs", lambda runs: merges.append(1) or real(runs))

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 1, stride=10**12), nn.Conv2d(1, 1, 1, stride=10**12)

        def forward(self, x):
            return self.a(x) + self.b(x)

    assert receptive_field(Two(), (1, 5, 5)).jump == 10**12
    pooled = nn.Sequential(nn.Conv1d(1, 1, 2, dilation=3), nn.Conv1d(1, 1, 1, stride=2),
                           nn.AdaptiveAvgPool1d(1))
    rf = trace(pooled, (1, 10**12 + 1)).rows[-1].rf
    assert rf.size == 10**12 and rf.gaps.endswith("not 1, 999999999998 (from the span's first "
                                                  "pixel)")   # 3 + 2*(n - 1) is odd
    assert len(merges) < 300, len(merges)


# ------------------------------------------------ fields after the map's axes are reordered

class Reordered(nn.Module):
    """Asymmetric convs/pools (so that H and W differ), with spatial reorders between them and
    at the end: transpose, permute, movedim, swapaxes, or channels last."""

    def __init__(self, layers, ends):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.ends = ends   # after layer i: how to reorder (None: not at all)

    def forward(self, x):
        for layer, end in zip(self.layers, self.ends):
            x = REORDERS[end](layer(x)) if end else layer(x)
        return x


REORDERS = {"transpose": lambda y: y.transpose(2, 3), "permute": lambda y: y.permute(0, 1, 3, 2),
            "movedim": lambda y: torch.movedim(y, 3, 2), "swapaxes": lambda y: y.swapaxes(-1, -2),
            "last": lambda y: y.permute(0, 2, 3, 1), "whc": lambda y: y.permute(0, 3, 2, 1)}


def reordered_net(rng):
    layers, ends = [], []
    n = rng.randint(1, 3)
    for i in range(n):
        k, s = (rng.randint(1, 3), rng.randint(1, 3)), (rng.randint(1, 2), rng.randint(1, 2))
        p = (rng.randint(0, k[0] // 2), rng.randint(0, k[1] // 2))
        if rng.random() < 0.3:
            layers.append(nn.AvgPool2d(k, stride=s))
        else:
            conv = nn.Conv2d(1, 1, k, stride=s, padding=p, bias=False)
            nn.init.uniform_(conv.weight, 0.1, 1.0)  # positive: no cancellation hides a pixel
            layers.append(conv)
        ends.append(rng.choice([None, "transpose", "permute", "movedim", "swapaxes"] +
                               (["last", "whc"] if i == n - 1 else [])))
    return Reordered(layers, ends).double()


def test_receptive_field_after_spatial_reorders_matches_autograd():
    """For every cell along each output axis, rf.pixels lists exactly the input pixels autograd
    says reach it, along the input axis rf.axes names; trace's row of a last layer agrees."""
    swapped = 0
    for seed in range(80):
        rng = random.Random(seed)
        net = reordered_net(rng)
        h, w = rng.randint(9, 16), rng.randint(9, 16)
        rf = receptive_field(net, (1, h, w))
        if net.ends[-1] is None:
            assert trace(net, (1, h, w)).rows[-1].rf == rf
        x = torch.rand(1, 1, h, w, dtype=torch.float64, requires_grad=True)
        y = net(x)
        spatial = [1, 2] if net.ends[-1] in ("last", "whc") else [2, 3]
        sides = [y.shape[d] for d in spatial]
        axes = rf.axes or (0, 1)
        swapped += axes == (1, 0)
        for axis, i in ((a, i) for a in range(2) for i in range(sides[a])):
            cell = [sides[0] // 2, sides[1] // 2]
            cell[axis] = i
            index = [0, 0, 0, 0]
            index[spatial[0]], index[spatial[1]] = cell
            grad, = torch.autograd.grad(y[tuple(index)], x, retain_graph=True)
            reach = grad[0, 0].abs()
            along = torch.nonzero(reach.sum(1 - axes[axis])).flatten().tolist()
            if not all(rf.pixels(c, a) for a, c in enumerate(cell)):
                assert not reach.any(), (net, rf, cell)   # only padding along some axis
                continue
            assert along == rf.pixels(i, axis), (net, rf, axis, i)
    assert 15 < swapped < 65, swapped   # both orders were checked


@pytest.mark.parametrize("args, hint", [
    (("lenet5", "--input", "40"), True),          # larger: the converted net slides
    (("lenet5", "--input", "27"), False),         # smaller than the window: nothing slides
    (("lenet5", "--input", "1"), False),
    (("vgg16", "--input", "100000000000"), False),  # too large for either
])
def test_cli_advises_convolutionalized_only_where_it_helps(args, hint):
    done = run_cli("trace", *args)
    assert done.returncode == 2 and done.stderr.startswith("error: ")
    assert ("--convolutionalized" in done.stderr) == hint, done.stderr
    if hint:   # and the advice works
        assert run_cli("trace", *args, "--convolutionalized").returncode == 0
