"""Every explorer's update is driven without a browser: set values, the output changes and is right."""

import base64
import time

import numpy as np
import pytest
import torch

import fcconv
from fcconv.widgets.base import shown_alt, shown_png, shown_text
from fcconv.widgets.convolutionalize import ScoreMapExplorer, score_map_view
from fcconv.widgets.fc_conv import FCvsConvExplorer, fc_vs_conv
from fcconv.widgets.reshape import WeightRowExplorer, row_view
from fcconv.widgets.shapes import ShapesExplorer, Slide1DExplorer, shapes_view, slide_1d_note


def changes_png(explorer, out, control, value):
    before = shown_png(out)
    control.value = value
    after = shown_png(out)
    assert before is not None and after is not None and after != before
    return after


def rgb(picture: bytes) -> np.ndarray:
    """A PNG's or JPEG's pixels, (H, W, 3) uint8."""
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(picture)).convert("RGB"))


# --------------------------------------------------------------------------- 01

def test_fc_vs_conv_outputs_agree_for_every_volume():
    for c, h, w, k in [(1, 1, 1, 1), (2, 3, 5, 4), (4, 8, 8, 6)]:
        r = fc_vs_conv(c, h, w, k)
        assert r["filters"].shape == (k, c, h, w) and r["conv_shape"] == (1, k, 1, 1)
        assert r["max_diff"] < 1e-12
        assert np.allclose(r["conv"], r["weight"] @ r["x"].ravel() + r["bias"], rtol=0, atol=1e-12)


def test_fc_vs_conv_explorer_redraws_and_reports():
    ex = FCvsConvExplorer()
    changes_png(ex, ex.out, ex.k, 6)
    assert "largest difference" in shown_text(ex.text)
    assert shown_text(ex.text).count("<tr>") == 1 + 6       # a header and one row per neuron
    ex.h.max, ex.w.max = 100, 100
    ex.h.value, ex.w.value = 100, 100
    assert "more than this picture shows" in shown_text(ex.out)


# --------------------------------------------------------------------------- 02

def test_shapes_view_vgg16_convolutionalized_at_384():
    t = shapes_view("vgg16", 384, convolutionalized=True)
    assert t.rows[-1].shape_str == "6x6x1000" and t["features.30"].shape_str == "12x12x512"


def test_shapes_view_explains_an_fc_that_cannot_take_a_bigger_map():
    with pytest.raises(ValueError, match="switch on 'convolutionalized'"):
        shapes_view("lenet5", 40)
    assert shapes_view("lenet5", 40, convolutionalized=True).rows[-1].shape_str == "3x3x10"


def test_shapes_view_convolutionalized_too_small_names_the_conv_not_a_linear():
    with pytest.raises(ValueError) as err:
        shapes_view("vgg16", 100, convolutionalized=True)
    assert "Linear" not in str(err.value) and "7x7 conv over the 512-channel map" in str(err.value)


def test_shapes_explorer_updates_table_and_drawing_together():
    ex = ShapesExplorer(arch="vgg16", size=224)
    assert "1000" in shown_text(ex.table) and "6x6x1000" not in shown_text(ex.table)
    ex.conv.value = True
    png = changes_png(ex, ex.picture, ex.entry, 384)
    assert "6x6x1000" in shown_text(ex.table)
    ex.arch.value = "question234"                     # jumps to its training size
    assert ex.size.value == 234 and "24x24x32" in shown_text(ex.table)
    assert shown_png(ex.picture) != png
    ex.arch.value = "vgg16"
    ex.entry.value = 2048                             # beyond the slider: typed sizes still work
    assert "58x58x1000" in shown_text(ex.table) and ex.entry.value == 2048
    ex.size.value = 512
    assert ex.entry.value == 512 and "10x10x1000" in shown_text(ex.table)


def test_shapes_explorer_shows_a_message_for_a_too_small_input():
    ex = ShapesExplorer(arch="alexnet", size=224)
    ex.entry.value = 20
    text = shown_text(ex.table)
    assert "fcconv-message" in text and "does not fit" in text and "Traceback" not in text


def test_shapes_explorer_redraws_the_pixels_a_fresh_figure_draws():
    """The explorer keeps one figure per number of boxes and moves and relabels them (its title
    stays drawn), and keeps what it showed; after every move, to a new setting or back to one
    shown before, its picture and table must be a fresh figure's and a fresh trace's."""
    from fcconv import plots
    from fcconv.widgets import shapes
    from fcconv.widgets.base import figure_png

    ex = ShapesExplorer(arch="vgg16", size=224)
    for arch, size, conv in (("vgg16", 225, False), ("vgg16", 384, True), ("vgg16", 4000, True),
                             ("vgg16", 100, True), ("vgg16", 225, True), ("lenet5", 32, False),
                             ("lenet5", 300, True), ("tinyvgg", 64, False),   # as many boxes
                             ("alexnet", 227, False), ("vgg16", 384, True), ("vgg16", 225, False)):
        ex.arch.value, ex.conv.value, ex.entry.value = arch, conv, size
        if (arch, size, conv) == ("vgg16", 100, True):   # too small: words, no picture
            assert shown_png(ex.picture) is None and "fcconv-message" in shown_text(ex.table)
            continue
        t = shapes_view(arch, size, conv)
        fresh = figure_png(plots.volume_stack(t), dpi=72, margins=shapes.VOLUME_MARGINS)
        a, b = rgb(shown_png(ex.picture)), rgb(fresh)
        assert a.shape == b.shape and np.array_equal(a, b), (arch, size, conv)
        assert shown_text(ex.table) == t._repr_html_()


def test_shapes_explorer_keeps_every_network_in_the_kernels_idle_time():
    """In a kernel, between messages, the explorer works out every network at its training
    size, both ways; picked later, each shows at once what a fresh explorer draws."""
    import nbformat
    from nbclient import NotebookClient

    from fcconv import plots
    from fcconv.widgets import shapes
    from fcconv.widgets.base import figure_png

    cells = ["from fcconv.widgets.shapes import ShapesExplorer\n"
             "ex = ShapesExplorer()\nprint(len(ex._shown))",
             "import asyncio, base64\n"
             "for _ in range(600):              # the kernel idle: its loop runs the tasks\n"
             "    await asyncio.sleep(0.05)\n"
             "    if len(ex._shown) == 2 * len(ex.arch.options):\n"
             "        break\n"
             "for (arch, size, conv), (html, png, alt) in sorted(ex._shown.items()):\n"
             "    print(arch, size, conv, base64.b64encode(png).decode())"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert nb.cells[0].outputs[0]["text"].strip() == "1"     # the one on show, at first
    lines = nb.cells[1].outputs[0]["text"].split()
    kept = {(a, int(s), c == "True"): base64.b64decode(png)
            for a, s, c, png in zip(*[iter(lines)] * 4)}
    assert set(kept) == {(a, shapes.MODELS[a][1][-1], c) for a in shapes.MODELS
                         for c in (False, True)}
    for (arch, size, conv), png in kept.items():
        fresh = figure_png(plots.volume_stack(shapes_view(arch, size, conv)), dpi=72,
                           margins=shapes.VOLUME_MARGINS)
        assert np.array_equal(rgb(png), rgb(fresh)), (arch, size, conv)


@pytest.mark.parametrize("size, kernel, stride, padding",
                         [(8, 3, 2, 0), (8, 3, 2, 1), (9, 3, 4, 0), (11, 3, 4, 1), (10, 3, 3, 2)])
def test_slide_1d_note_counts_the_uncovered_cells_by_enumerating_windows(size, kernel, stride,
                                                                         padding):
    n, text = slide_1d_note(size, kernel, stride, padding)
    covered = {s * stride + k for s in range(n) for k in range(kernel)}   # padded coordinates
    missed = [c for c in range(size + 2 * padding) if c > max(covered)]  # after the last window
    real = [c for c in missed if padding <= c < padding + size]
    cells = "last cell" if len(missed) == 1 else f"last {len(missed)} cells"
    assert missed and f"{cells} of the {'padded row' if padding else 'row'}" in text
    assert ("no input pixel is lost" in text) == (not real)
    assert len(real) in (0, len(missed)) or f"{len(real)} of them input pixel" in text
    gaps = [c for c in range(max(covered)) if c not in covered]
    assert bool(gaps) == ("between neighbouring windows" in text)


def test_slide_1d_note_and_explorer():
    assert slide_1d_note(7, 3, 2, 1) == (4, "(7 - 3 + 2*1) / 2 + 1 = 4: 4 outputs.")
    n, text = slide_1d_note(8, 3, 2, 0)
    assert n == 3 and "not a whole number" in text and "last cell of the row is never covered" in text
    ex = Slide1DExplorer(size=7, kernel=3, stride=1)
    assert ex.position.max == 4
    changes_png(ex, ex.out, ex.position, 3)
    ex.kernel.value = 9                               # larger than 7 + 0 padding
    assert "does not fit" in shown_text(ex.out)
    ex.padding.value = 1
    assert shown_png(ex.out) is not None and ex.position.max == 0


def test_slide_1d_explorer_redraws_the_pixels_a_fresh_figure_draws():
    """The explorer keeps one figure: the input row stays drawn while the kernel, stride or
    output moves, and everything is drawn again when the size or padding changes (the figure
    may widen); a setting shown before is shown again at once. After every move the picture
    must equal a fresh figure's, pixel for pixel."""
    from fcconv import plots
    from fcconv.widgets.base import figure_png
    from fcconv.widgets.shapes import SLIDE_MARGINS

    ex = Slide1DExplorer(size=7, kernel=3, stride=2, padding=1)
    for size, kernel, stride, padding, output in (
            (7, 3, 2, 1, 2), (7, 4, 2, 1, 2), (7, 4, 1, 1, 4),   # output, kernel, stride
            (8, 4, 1, 1, 4), (8, 4, 1, 0, 4),                    # size, padding: the same width
            (8, 4, 1, 3, 4), (16, 4, 1, 3, 9), (16, 9, 5, 3, 1),  # wider
            (16, 9, 5, 0, 1), (1, 1, 1, 0, 0), (8, 4, 1, 3, 4), (7, 3, 2, 1, 0)):  # back
        ex.size.value, ex.kernel.value, ex.stride.value = size, kernel, stride
        ex.padding.value, ex.position.value = padding, output
        fresh = figure_png(plots.sliding_1d(size, kernel, stride, padding, output), dpi=110,
                           margins=SLIDE_MARGINS)
        a, b = rgb(shown_png(ex.out)), rgb(fresh)
        assert a.shape == b.shape and np.array_equal(a, b), (size, kernel, stride, padding)


# --------------------------------------------------------------------------- 03

def test_row_view_positions_hold_the_slice_in_both_orders():
    w = np.random.default_rng(0).standard_normal((5, 4 * 3 * 3))
    for order in ("chw", "hwc"):
        v = row_view(w, (4, 3, 3), neuron=2, channel=1, order=order)
        assert np.array_equal(w[2][v["positions"]], v["slice"])
    assert row_view(w, (4, 3, 3), 0, 1, "chw")["positions"].ravel().tolist() == list(range(9, 18))
    assert row_view(w, (4, 3, 3), 0, 1, "hwc")["positions"].ravel().tolist() == list(range(1, 36, 4))


def test_weight_row_explorer():
    w = np.random.default_rng(1).standard_normal((6, 8 * 7 * 7))
    ex = WeightRowExplorer(w, (8, 7, 7))
    changes_png(ex, ex.out, ex.channel, 3)
    assert "one contiguous block" in shown_text(ex.text) and "<b>True</b>" in shown_text(ex.text)
    changes_png(ex, ex.out, ex.order, "hwc")
    assert "one in every 8" in shown_text(ex.text)
    changes_png(ex, ex.out, ex.neuron, 5)


# --------------------------------------------------------------------------- 04

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = fcconv.tiny_vgg().double().eval()
    return model, fcconv.convolutionalize(model, (3, 64, 64))


def test_score_map_view_matches_sliding_windows(tiny):
    model, fcn = tiny
    image = torch.randn(1, 3, 96, 96, dtype=torch.float64)
    v = score_map_view(fcn, image, 80, cls=3, window=64)
    assert (v["rows"], v["cols"], v["jump"]) == ((80 - 64) // 4 + 1, (80 - 64) // 4 + 1, 4)
    ref = fcconv.sliding_windows(model, image[:, :, :80, :80], 64, 4)[0, 3].numpy()
    assert np.abs(v["scores"] - ref).max() < 1e-12


def test_score_map_explorer(tiny):
    _, fcn = tiny
    ex = ScoreMapExplorer(fcn, torch.randn(1, 3, 128, 128, dtype=torch.float64), window=64, size=96)
    assert "9 rows of windows" in shown_text(ex.text)
    changes_png(ex, ex.out, ex.cls, 4)
    changes_png(ex, ex.out, ex.size, 128)
    assert "17 rows" in shown_text(ex.text)
    ex.size.value = 40
    assert "smaller than the 64x64 window" in shown_text(ex.text)


def test_score_map_explorer_redraws_the_pixels_a_fresh_figure_draws(tiny):
    """The explorer keeps one figure and redraws only the map, its title and colour bar (and
    everything when the map's shape changes); after every move its picture must equal a fresh
    figure's, saved the usual way, pixel for pixel."""
    import io

    import matplotlib.pyplot as plt

    from fcconv import plots

    _, fcn = tiny
    names = [f"c{k}" for k in range(9)] + ["background"]  # a long name, as notebook 04's
    ex = ScoreMapExplorer(fcn, torch.randn(1, 3, 128, 128, dtype=torch.float64), window=64,
                          size=96, names=names)
    # a class change, the same shape at another size, a new shape, a class at that shape, back
    for size, cls in ((96, 4), (99, 4), (128, 4), (128, 9), (72, 0), (96, 0), (96, 9)):
        ex.size.value, ex.cls.value = size, cls
        v = score_map_view(fcn, ex.image, size, cls, window=64)
        fig = plots.score_map(v["scores"], f"class {names[cls]}\none score per 64x64 window")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        a, b = rgb(shown_png(ex.out)), rgb(buf.getvalue())
        assert a.shape == b.shape and np.array_equal(a, b), (size, cls)


# --------------------------------------------------------------------------- 05

def test_photo_rejects_unknown_names():
    from fcconv.data import photo

    with pytest.raises(ValueError, match="photo must be one of"):
        photo("lena")
    assert photo("coffee", 50).shape == (3, 50, 50)


# --------------------------------------------------------------------------- 06

def test_cost_at_counts_vgg16_at_384_without_running_it():
    from fcconv.widgets.efficiency import cost_at

    vgg = fcconv.vgg16(device="meta")
    r = cost_at(vgg, fcconv.convolutionalize(vgg, (3, 224, 224)), 224, 3, 384, measure=False)
    assert r["windows"] == 36
    assert (round(r["crops_macs"] / 1e9, 1), round(r["dense_macs"] / 1e9, 1)) == (556.9, 49.6)


def test_efficiency_explorer_measures_both_ways(tiny):
    from fcconv.widgets.efficiency import EfficiencyExplorer

    model, fcn = tiny
    ex = EfficiencyExplorer(model, fcn, window=64, channels=3, max_size=96)
    one = shown_text(ex.out)
    assert "windows scored</td><td>1<" in one
    assert "no ratio" in one and "faster" not in one and "measured time" not in one  # equal work
    assert ex.time_it.disabled                                   # nothing to time at one window
    ex.size.value = 80                                           # a move: the counts, at once
    text = shown_text(ex.out)
    assert "windows scored</td><td>25<" in text and "fewer MACs" in text
    assert "faster" not in text and not ex.time_it.disabled and "time both ways" in text
    ex.time_it.click()                                           # timed only when asked
    text = shown_text(ex.out)
    assert "windows scored</td><td>25<" in text and "faster on this machine" in text
    assert ex.time_it.disabled and ex.time_it.description == "time both ways"
    ex.size.value = 72
    assert "faster" not in shown_text(ex.out)
    ex.size.value = 80                                           # timed once, shown again
    assert "faster on this machine" in shown_text(ex.out) and ex.time_it.disabled


def test_paired_median_ms_alternates_and_warms_up_both_sides():
    from fcconv.course.timing import paired_median_ms

    calls = []
    a, b = paired_median_ms(lambda: calls.append("a"), lambda: calls.append("b"),
                            min_pairs=5, budget_s=0.0)
    assert calls == ["a", "b"] * 6 and a >= 0 and b >= 0   # 1 warm-up pair, then 5 timed
    calls.clear()
    paired_median_ms(lambda: calls.append("a"), lambda: calls.append("b"), min_pairs=2,
                     budget_s=0.0, warm_up=False)
    assert calls == ["a", "b"] * 2                          # the caller ran both already


def test_median_ms_warms_up_then_takes_the_median():
    from fcconv.course.timing import median_ms

    calls = []
    waits = iter([0.0, 0.03, 0.0, 0.0])        # the warm-up, then one slow call of three
    assert median_ms(lambda: calls.append(time.sleep(next(waits))), repeats=3) < 20
    assert len(calls) == 4
    calls.clear()
    median_ms(lambda: calls.append(1), repeats=2, warm_up=False)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="repeats must be at least 1; got 0"):
        median_ms(lambda: None, repeats=0)


def test_layer_costs_times_every_layer_inside_one_real_pass(tiny):
    from fcconv.widgets.efficiency import layer_costs

    model, fcn = tiny
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
    threads = torch.get_num_threads()
    runs = layer_costs({"four": (model, x), "one": (model, x[:1]), "dense": (fcn, x[:1])},
                       repeats=2)
    assert torch.get_num_threads() == threads                       # one thread only inside
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    # one model in two runs: each run has its own rows, for its own batch
    assert [r["numbers"] for r in runs["one"]] == [r["numbers"] // 4 for r in runs["four"]]
    assert [r["name"] for r in runs["dense"]] == [n for n, _ in fcn.named_children()]
    rows = runs["four"]
    assert [(r["name"], r["kind"]) for r in rows] == \
        [(n, type(m).__name__) for n, m in model.named_children()]
    # the same counts two ways: trace (per image, times the batch) and running layer by layer
    assert sum(r["macs"] for r in rows) == 4 * fcconv.trace(model, (3, 64, 64)).total_macs
    with torch.no_grad():
        for r, layer in zip(rows, model):
            x = layer(x)
            assert r["numbers"] == x.numel() and r["ms"] >= 0
    assert all(r["faults"] is None or r["faults"] >= 0 for r in rows)
    assert rows[-1]["macs"] == 4 * 10 * 13 * 13 * 10 and rows[1]["macs"] == 0   # Linear; ReLU


def test_minor_page_faults_count_a_fresh_large_block():
    import mmap

    from fcconv.widgets.efficiency import minor_page_faults

    if minor_page_faults() is None:
        pytest.skip("this operating system does not count page faults")
    # A block straight from the OS, not from malloc: after the earlier tests, malloc may hand
    # out 64 MB it already holds (pages faulted long ago), and then nothing faults (CI saw 0).
    size, page = 64 * 2**20, mmap.PAGESIZE
    block = mmap.mmap(-1, size)
    before = minor_page_faults()
    for at in range(0, size, page):
        block[at] = 1                           # the first write to each page
    pages = minor_page_faults() - before
    written = sum(block[at] for at in range(0, size, page))
    block.close()
    # at least one fault per 2 MB (a huge page), where the OS backs the block with them
    assert written == size // page and pages >= size // 2**21


def test_layer_costs_html_matches_layers_by_name_and_divides_by_the_right_unit():
    from fcconv.widgets.efficiency import layer_costs_html

    conv = {"name": "0", "kind": "Conv2d", "ms": 2.0, "macs": 4_000_000, "numbers": 10, "faults": 3}
    relu = {"name": "1", "kind": "ReLU", "ms": 1.0, "macs": 0, "numbers": 500_000, "faults": None}
    flat = {"name": "2", "kind": "Flatten", "ms": 0.0, "macs": 0, "numbers": 10, "faults": 0}
    html = layer_costs_html({"dense": [conv, relu], "crops": [conv, relu, flat]})
    assert "<td>0 Conv2d</td><td>ns per MAC</td><td>0.500; 3 faults</td>" in html  # 2 ms / 4M
    assert "<td>1 ReLU</td><td>ns per number</td><td>2.000</td>" in html          # 1 ms / 500k
    assert "<td>2 Flatten</td><td>ns per number</td><td>&mdash;</td><td>0.000; 0 faults</td>" in html


def test_dress_detector_has_the_seeds_head_and_its_conv_head_is_exact():
    dress = fcconv.dress_detector().double().eval()
    assert [type(m).__name__ for m in dress[31:]] == ["Flatten", "Linear", "ReLU", "Linear"]
    assert (dress[32].in_features, dress[32].out_features, dress[34].out_features) == (4096, 4, 1)
    fcn = fcconv.convolutionalize(dress, (3, 128, 64))
    frame = torch.randn(1, 3, 160, 96, dtype=torch.float64)
    with torch.no_grad():
        fmap = dress[:31](frame)                                      # (1, 512, 5, 3)
        crops = fmap.unfold(2, 4, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).flatten(3)
        by_head = dress[32:](crops.reshape(-1, 4096)).reshape(1, 2, 2, 1).permute(0, 3, 1, 2)
        assert torch.allclose(fcn(frame), by_head, rtol=1e-10, atol=1e-12)


def test_results_table_is_read_not_retyped():
    from fcconv.course.results import read_table

    machine, rows = read_table("dense_vs_crops_cpu")
    assert "cores" in machine and {r["input"] for r in rows} >= {"384"}
    _, dress = read_table("dress_three_ways")                   # notebook 06 reads it
    assert [r["windows"] for r in dress] == ["403"] * 3 and dress[1]["GMACs"] == dress[2]["GMACs"]
    with pytest.raises(ValueError, match="no section"):
        read_table("no_such_benchmark")


# --------------------------------------------------------------------------- 07

def test_conv_matrix_view_counts():
    from fcconv.widgets.conv_matrix import conv_matrix_view

    v = conv_matrix_view(6, 3, 1, 0)
    assert v["matrix"].shape == (16, 36) and v["out_size"] == 4
    assert (v["weights"], v["nonzero"], v["entries"]) == (9, 16 * 9, 16 * 36)
    assert conv_matrix_view(7, 3, 2, 0)["matrix"].shape == (9, 49)


def test_conv_matrix_explorer_and_its_message():
    from fcconv.widgets.conv_matrix import ConvMatrixExplorer

    ex = ConvMatrixExplorer()
    changes_png(ex, ex.out, ex.stride, 2)
    assert "9</b> weights" in shown_text(ex.text)
    ex.kernel.value = 7                                  # 7 > 6 + 2*0
    assert "does not fit" in shown_text(ex.text) and shown_png(ex.out) is None


# --------------------------------------------------------------------------- alt text

def test_conv_matrix_explorer_redraws_the_same_pixels_as_a_fresh_figure():
    """The explorer reuses one figure; after moves that change every size and limit its picture
    must equal a fresh figure's, pixel for pixel."""
    import io

    from PIL import Image

    from fcconv import plots
    from fcconv.widgets.base import figure_png
    from fcconv.widgets.conv_matrix import ConvMatrixExplorer, conv_matrix_view

    ex = ConvMatrixExplorer(size=6, kernel=3)
    margins = {"left": 0.75, "right": 0.15, "bottom": 0.55, "top": 0.3}
    for size, kernel, stride, padding in ((6, 3, 1, 3), (12, 7, 2, 1), (3, 1, 1, 0), (6, 3, 1, 0)):
        ex.size.value, ex.kernel.value, ex.stride.value = size, kernel, stride
        ex.padding.value = padding
        fresh = figure_png(plots.conv_matrix_picture(
            conv_matrix_view(size, kernel, stride, padding)["matrix"]), dpi=90, margins=margins)
        a, b = (np.asarray(Image.open(io.BytesIO(png))) for png in (shown_png(ex.out), fresh))
        assert a.shape == b.shape and np.array_equal(a, b), (size, kernel, stride, padding)


def test_colour_words_name_the_ends_of_the_colour_bars():
    from fcconv import plots

    assert plots.scale_ends(plots.DIVERGING) == ("orange", "purple")   # PuOr: low orange
    assert plots.scale_ends(plots.SEQUENTIAL) == ("purple", "yellow")  # viridis
    assert [plots.colour_name(c) for c in ((1, 1, 1), (0, 0, 0), (0.5, 0.5, 0.5), (0, 0.6, 0.45),
                                           (0.0, 0.45, 0.7), (0.9, 0.1, 0.1))] == \
        ["white", "black", "grey", "green", "blue", "red"]


def test_fc_explorer_alt_text_says_the_colours_its_colour_bar_shows():
    from fcconv import plots

    ex = FCvsConvExplorer()
    cmap = ex.picture.matrix.get_cmap()                 # the image the colour bar belongs to
    low, high = (plots.colour_name(cmap(v)) for v in (0.0, 1.0))
    assert f"{low} negative" in shown_alt(ex.out) and f"{high} positive" in shown_alt(ex.out)


def test_sliding_1d_cells_are_labelled_with_the_positions_the_alt_text_names():
    from fcconv import plots
    from fcconv.widgets.shapes import describe_1d

    for size, kernel, stride, padding, position in ((7, 3, 2, 1, 0), (8, 3, 2, 0, 2), (5, 3, 1, 2, 6)):
        fig = plots.sliding_1d(size, kernel, stride, padding, position)
        inputs = [t.get_text() for t in fig.axes[0].texts if t.get_position()[1] == 1.5]
        assert inputs == [str(i) for i in range(-padding, size + padding)]   # padding: < 0, >= size
        n = fcconv.conv_output_size(size, kernel, stride, padding)
        first = position * stride - padding
        assert f"positions {first} to {first + kernel - 1}" in describe_1d(
            size, kernel, stride, padding, position, n)
        assert {inputs[position * stride], inputs[position * stride + kernel - 1]} <= set(inputs)


def test_no_control_label_is_cut_and_the_toggle_ticks_only_when_on():
    from fcconv.widgets.base import SHORT_LABEL, fit_labels
    from fcconv.widgets.conv_matrix import ConvMatrixExplorer

    explorers = [ShapesExplorer(), Slide1DExplorer(), FCvsConvExplorer(), ConvMatrixExplorer(),
                 WeightRowExplorer(np.zeros((2, 12)), (3, 2, 2))]

    def controls(w):
        yield w
        for c in getattr(w, "children", ()):
            yield from controls(c)

    for ex in explorers:
        fit_labels(ex.box)
        for w in controls(ex.box):
            if len(getattr(w, "description", "") or "") > SHORT_LABEL:
                assert (w.layout.width == "auto" if hasattr(w, "button_style") and
                        not hasattr(w, "options") else w.style.description_width == "initial"), w
    toggle = explorers[0].conv
    assert toggle.icon == ""
    toggle.value = True
    assert toggle.icon == "check"


def test_show_png_sends_an_img_with_alt_text_and_keeps_the_png():
    import ipywidgets as widgets

    from fcconv.widgets.base import show_png, shown_alt

    out = widgets.Output()
    show_png(out, b"\x89PNG fake", alt='5 < 6 & "quoted"')
    html = out.outputs[0]["data"]["text/html"]
    assert 'alt="5 &lt; 6 &amp; &quot;quoted&quot;"' in html and "base64," in html
    assert shown_png(out) == b"\x89PNG fake" and shown_alt(out) == '5 < 6 & "quoted"'
    assert shown_text(out) == ""                      # a picture is not text to search
    assert set(out.outputs[0]["data"]) == {"text/html", "text/plain"}  # the PNG goes once


def test_kept_makes_each_setting_once_and_drops_the_oldest():
    from fcconv.widgets.base import kept

    cache, made = {}, []
    make = lambda k: lambda: made.append(k) or k * 10  # noqa: E731
    for k in (1, 2, 1, 3, 4, 1):
        assert kept(cache, k, make(k), limit=3) == k * 10
    assert made == [1, 2, 3, 4, 1] and list(cache) == [3, 4, 1]  # 1 went first, then 2


@pytest.mark.parametrize("axis", ["on", "off"])
def test_live_figure_draws_its_background_again_when_an_axes_or_its_title_moved(axis):
    """An equal-aspect axes narrows or widens with its limits, and its frame, ticks and title
    move with it: a LiveFigure that only redraws its changing line must notice and draw the
    rest again. Compared with a fresh figure of the same limits, pixel for pixel."""
    import matplotlib.pyplot as plt

    from fcconv.widgets.base import LiveFigure

    def figure(xmax, ymax):
        fig, ax = plt.subplots(figsize=(4, 3))
        line, = ax.plot([xmax / 4, xmax / 2], [ymax / 4, ymax / 2])  # clear of the frame
        ax.set(xlim=(0, xmax), ylim=(0, ymax), aspect="equal", title="a title")
        ax.axis(axis)
        return fig, ax, line

    fig, ax, line = figure(1, 1)
    live = LiveFigure(fig, dpi=50)
    live.changing(line)
    for xmax, ymax in ((1, 1), (2, 1), (1, 3), (1, 2), (1, 3)):
        line.set_data([xmax / 4, xmax / 2], [ymax / 4, ymax / 2])
        ax.set(xlim=(0, xmax), ylim=(0, ymax))
        fresh = LiveFigure(figure(xmax, ymax)[0], dpi=50)
        assert np.array_equal(rgb(live.png()), rgb(fresh.png())), (xmax, ymax)


def test_live_figure_paints_changing_artists_axes_by_axes_as_a_fresh_draw():
    """A fresh draw paints axes after axes (by zorder), each axes' children by zorder: a
    changing text of the first axes with a high zorder lies *under* a changing patch of the
    second axes that it runs into. The LiveFigure must paint them in that order too."""
    import matplotlib.pyplot as plt

    from fcconv.widgets.base import LiveFigure

    def figure():
        fig, (a, b) = plt.subplots(1, 2, figsize=(4, 2))
        text = a.text(0.2, 0.5, "a long text running right", fontsize=14, zorder=5)
        patch = b.add_patch(plt.Rectangle((0, 0), 1, 1, color="red", zorder=1))
        b.axis("off")  # no unchanging face or frame over the text (LiveFigure's one condition)
        return fig, text, patch

    fig, text, patch = figure()
    live = LiveFigure(fig, dpi=50)
    live.changing(text, patch)  # marked in the wrong order on purpose
    fresh = LiveFigure(figure()[0], dpi=50)
    assert np.array_equal(rgb(live.png()), rgb(fresh.png()))


def test_show_html_replaces_the_output_in_one_message():
    import ipywidgets as widgets
    from IPython.display import HTML

    from fcconv.widgets.base import show_html

    out, ipython = widgets.Output(), widgets.Output()
    sent = []
    out.observe(lambda c: sent.append(c["new"]), names="outputs")
    show_html(out, "<p>old</p>")
    show_html(out, "<p>3 &lt; 4: <b>new</b></p>")
    assert len(sent) == 2 and len(out.outputs) == 1      # never an empty output in between
    ipython.append_display_data(HTML("<p>3 &lt; 4: <b>new</b></p>"))
    assert out.outputs == ipython.outputs                # what IPython's display sends


def test_alt_text_says_what_each_explorer_shows_now():
    from numpy.lib.stride_tricks import sliding_window_view

    from fcconv.widgets.base import shown_alt
    from fcconv.widgets.conv_matrix import ConvMatrixExplorer
    from fcconv.widgets.setup import SetupExplorer

    ex = Slide1DExplorer(size=7, kernel=3, stride=2, padding=1)
    ex.position.value = 2
    # the window, found a second way: slide over the padded positions -1..7 with stride 2
    window = sliding_window_view(np.arange(-1, 8), 3)[::2][2]
    assert f"positions {window[0]} to {window[-1]}" in shown_alt(ex.out)
    assert f"gives {len(sliding_window_view(np.arange(-1, 8), 3)[::2])} outputs" in shown_alt(ex.out)

    ex = FCvsConvExplorer()
    ex.k.value, ex.w.value = 5, 4
    alt = shown_alt(ex.out)
    assert "5 rows" in alt and f"{ex.c.value * ex.h.value * 4} columns" in alt

    ex = ShapesExplorer(arch="vgg16", size=224)
    ex.conv.value, ex.entry.value = True, 384
    assert "input 384x384x3" in shown_alt(ex.picture)
    assert "6x6x1000" in shown_alt(ex.picture) and "convolutionalized" in shown_alt(ex.picture)

    w = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, -1)
    ex = WeightRowExplorer(w, (3, 2, 2), neuron=1, channel=0)
    ex.channel.value = 2
    assert "channel 2's 2x2 slice" in shown_alt(ex.out) and "positions 8 to 11" in shown_alt(ex.out)
    ex.order.value = "hwc"                              # every 3rd position from 2: 2, 5, 8, 11
    assert "positions 2 to 11, spread out" in shown_alt(ex.out)

    ex = ConvMatrixExplorer(size=6, kernel=3)
    ex.kernel.value = 2                     # valid 2x2 conv on 6x6: 5*5 outputs, 4 taps each
    alt = shown_alt(ex.out)
    assert "2x2 conv" in alt and f"{5 * 5 * 4:,} of {25 * 36:,} entries" in alt

    ex = SetupExplorer()
    ex.slider.value = 5
    assert "positions 5-7" in shown_alt(ex.out) and "6 of 14" in shown_alt(ex.out)


def test_toeplitz_blocks_draws_one_line_between_neighbouring_blocks():
    import matplotlib.pyplot as plt

    from fcconv import numpy_ops, plots

    m = numpy_ops.conv_matrix(np.ones((1, 1, 3, 3)), (1, 6, 6))    # 16 x 36: 4 x 6 blocks
    fig = plots.toeplitz_blocks(m, 4, 6)
    lines = fig.axes[0].get_lines()
    rows = sorted(ln.get_ydata()[0] for ln in lines if ln.get_ydata()[0] == ln.get_ydata()[1])
    cols = sorted(ln.get_xdata()[0] for ln in lines if ln.get_xdata()[0] == ln.get_xdata()[1])
    assert rows == [3.5, 7.5, 11.5] and cols == [5.5, 11.5, 17.5, 23.5, 29.5]
    plt.close(fig)
