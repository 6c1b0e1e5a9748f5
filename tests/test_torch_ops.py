"""Conversions, convolutionalize, sliding windows and shift-and-stitch: each computed two ways."""

import copy
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import fcconv
from fcconv import (
    conv_to_linear,
    convolutionalize,
    linear_to_conv,
    shift_and_stitch,
    sliding_windows,
    trace,
)
from fcconv.torch_ops import stitch_passes


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def seeded(model, seed=0):
    torch.manual_seed(seed)
    for p in model.parameters():
        nn.init.normal_(p, 0, 0.2)
    return model.double().eval()


# --------------------------------------------------------------------------- single layers

@pytest.mark.parametrize("shape", [(8, 7, 7), (3, 1, 5), (16,)])
def test_linear_to_conv_computes_the_same_numbers(shape):
    torch.manual_seed(0)
    fc = nn.Linear(int(torch.tensor(shape).prod()), 5).double()
    spatial = [1, 1] if len(shape) == 1 else []  # (C,) means a 1x1 map
    x = torch.randn(2, *shape, dtype=torch.float64).reshape(2, *shape, *spatial)
    conv = linear_to_conv(fc, shape)
    assert conv(x).shape == (2, 5, 1, 1)
    assert rel_err(conv(x).flatten(1), fc(x.flatten(1))) < 1e-12


def test_linear_to_conv_1d_head():
    fc = nn.Linear(32, 16).double()
    seq = torch.randn(4, 32, 50, dtype=torch.float64)          # (N, features, positions)
    conv = linear_to_conv(fc, (32, 1))
    assert isinstance(conv, nn.Conv1d) and conv.kernel_size == (1,)
    per_position = fc(seq.transpose(1, 2)).transpose(1, 2)    # the Linear applied at each step
    assert rel_err(conv(seq), per_position) < 1e-12


def test_keras_ordered_weight_with_hwc():
    torch.manual_seed(3)
    c, h, w = 3, 4, 5
    keras = nn.Linear(h * w * c, 6).double()                   # learned on x.permute(0,2,3,1) flat
    x = torch.randn(2, c, h, w, dtype=torch.float64)
    expected = keras(x.permute(0, 2, 3, 1).flatten(1))
    right = linear_to_conv(keras, (c, h, w), order="hwc")(x).flatten(1)
    wrong = linear_to_conv(keras, (c, h, w), order="chw")(x).flatten(1)
    assert rel_err(right, expected) < 1e-12 and rel_err(wrong, expected) > 0.1


@pytest.mark.parametrize("order", fcconv.numpy_ops.ORDERS)
def test_linear_to_conv_in_any_flatten_order(order):
    """MTCNN's R-Net flattens x.permute(0, 3, 2, 1): (W, H, C), "whc". A non-square map, so that
    reading W for H would be caught."""
    torch.manual_seed(4)
    c, h, w = 3, 4, 5
    fc = nn.Linear(c * h * w, 6).double()
    x = torch.randn(2, c, h, w, dtype=torch.float64)
    seen = x.permute(0, *(1 + "chw".index(a) for a in order)).flatten(1)
    assert rel_err(linear_to_conv(fc, (c, h, w), order)(x).flatten(1), fc(seen)) < 1e-12


@pytest.mark.parametrize("kw", [dict(), dict(stride=2), dict(padding=1), dict(stride=2, padding=2),
                                dict(dilation=2)])
def test_conv_to_linear_is_the_dense_matrix(kw):
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, **kw).double()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    fc = conv_to_linear(conv, (3, 9, 8))
    assert rel_err(fc(x.flatten(1)), conv(x).flatten(1)) < 1e-12


def test_round_trip_linear_conv_linear():
    fc = nn.Linear(2 * 3 * 3, 4).double()
    back = conv_to_linear(linear_to_conv(fc, (2, 3, 3)), (2, 3, 3))
    assert torch.equal(back.weight, fc.weight) and torch.equal(back.bias, fc.bias)


# --------------------------------------------------------------------------- convolutionalize

class ViewNet(nn.Module):
    """A custom forward: functional relu, view-flatten, BatchNorm1d, dropout, log-softmax."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 3), nn.Conv2d(6, 8, 3)
        self.fc1, self.bn = nn.Linear(8 * 3 * 3, 20), nn.BatchNorm1d(20)
        self.drop, self.fc2 = nn.Dropout(0.3), nn.Linear(20, 7)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        x = x.view(x.size(0), -1)
        x = self.drop(F.relu(self.bn(self.fc1(x))))
        return F.log_softmax(self.fc2(x), dim=-1)


class ReshapeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 4, 3), nn.Linear(4 * 6 * 6, 3)
        self.soft = nn.Softmax(dim=1)

    def forward(self, x):
        return self.soft(torch.sigmoid(self.fc(torch.reshape(self.conv(x), (x.shape[0], -1)))))


class FlattenFnNet(ReshapeNet):
    def forward(self, x):
        return self.soft(self.fc(torch.flatten(self.conv(x), 1)))


def with_bn_stats(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
    return model


@pytest.mark.parametrize("build,shape", [
    (lambda: ViewNet(), (3, 12, 12)), (lambda: ReshapeNet(), (2, 8, 8)),
    (lambda: FlattenFnNet(), (2, 8, 8)), (fcconv.lenet5, (1, 32, 32)),
    (fcconv.tiny_vgg, (3, 64, 64)),
    (lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Dropout(), nn.Linear(4 * 5 * 5, 9),
                           nn.BatchNorm1d(9), nn.ReLU(), nn.Linear(9, 2), nn.LogSoftmax(-1)),
     (1, 7, 7)),
])
def test_converted_model_equals_original_at_training_size(build, shape):
    model = with_bn_stats(seeded(build()))
    fcn = convolutionalize(model, shape)
    x = torch.randn(3, *shape, dtype=torch.float64)
    out = fcn(x)
    assert out.shape[2:] == (1, 1)
    assert rel_err(out.flatten(1), model(x)) < 1e-12
    assert not any(isinstance(m, nn.Linear) for m in fcn.modules())


@pytest.mark.parametrize("build", [fcconv.vgg16, fcconv.alexnet])
def test_torchvision_like_vgg16_and_alexnet(build):
    model = build().eval()
    fcn = convolutionalize(model, (3, 224, 224))
    x = torch.randn(1, 3, 224, 224)
    assert rel_err(fcn(x).flatten(1), model(x)) < 1e-5           # float32, 25088-long dot products
    assert trace(fcn, (3, 384, 384)).output_shape == (1000, 6, 6)


def test_vgg16_score_map_sides_and_fc6_field():
    fcn = convolutionalize(fcconv.vgg16(device="meta"), (3, 224, 224))
    sides = {s: trace(fcn, s).output_shape[1] for s in (224, 256, 384, 512)}
    assert sides == {224: 1, 256: 2, 384: 6, 512: 10}
    fc6 = trace(fcn, 384)["classifier.0"]
    assert (fc6.rf_size, fc6.rf_jump, fc6.rf_start) == (404, 32, -90)
    assert fc6.out_shape == (4096, 6, 6)


def test_original_model_is_left_untouched():
    model = seeded(fcconv.lenet5())
    before = copy.deepcopy(model.state_dict())
    fcn = convolutionalize(model, (1, 32, 32))
    with torch.no_grad():
        for p in fcn.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model[7], nn.Linear)
    theirs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert not theirs & {p.untyped_storage().data_ptr() for p in fcn.parameters()}


def test_a_model_with_an_unused_linear_shares_no_weights():
    class Gate(nn.Module):  # a Linear used on a side path, never reached from the flatten
        def __init__(self):
            super().__init__()
            self.trunk, self.head = nn.Conv2d(1, 2, 3), nn.Linear(2 * 4 * 4, 3)
            self.unused = nn.Linear(2, 2)

        def forward(self, x):
            return self.head(torch.flatten(self.trunk(x), 1))

    model = seeded(Gate())
    fcn = convolutionalize(model, (1, 6, 6))
    theirs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert not theirs & {p.untyped_storage().data_ptr() for p in fcn.parameters()}
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fcn(x).flatten(1), model(x))


def test_adaptive_pool_that_is_not_an_identity_is_refused():
    with pytest.raises(ValueError, match="average the whole map down to 7x7"):
        convolutionalize(fcconv.vgg16(device="meta"), (3, 256, 256))


# --------------------------------------------------------------------------- dense vs crops

spec = st.lists(st.one_of(st.tuples(st.just("conv"), st.integers(1, 3)),
                          st.tuples(st.just("pool"), st.just(2))), min_size=1, max_size=5)


def random_classifier(layers, size, classes=3):
    """Unpadded convs and 2x2 pools, then flatten and two Linears; None if the size is too small.

    Returns (model, window): the window is the smallest input with the same feature map, since
    floor pooling ignores the last pixels of a larger one (then the dense map has more cells).
    """
    mods, c = [], 2
    for kind, k in layers:
        if kind == "conv":
            mods += [nn.Conv2d(c, 3, k), nn.ReLU()]
            c = 3
        else:
            mods.append(nn.MaxPool2d(k))
    trunk = nn.Sequential(*mods)
    try:
        fmap = trace(trunk, (2, size, size)).output_shape
    except ValueError:
        return None
    while size > 1 and _fmap_or_none(trunk, size - 1) == fmap:
        size -= 1
    head = [nn.Flatten(), nn.Linear(int(torch.tensor(fmap).prod()), 5), nn.ReLU(),
            nn.Linear(5, classes)]
    return seeded(nn.Sequential(*mods, *head)), size


def _fmap_or_none(trunk, size):
    try:
        return trace(trunk, (2, size, size)).output_shape
    except ValueError:
        return None


@settings(max_examples=25, deadline=None)
@given(layers=spec, size=st.integers(6, 14), extra=st.integers(0, 20), seed=st.integers(0, 99))
def test_dense_score_map_equals_sliding_windows(layers, size, extra, seed):
    built = random_classifier(layers, size)
    if built is None:
        return
    model, size = built
    torch.manual_seed(seed)
    fcn = convolutionalize(model, (2, size, size))
    jump = fcconv.receptive_field(fcn, (2, size, size)).jump
    image = torch.randn(1, 2, size + extra, size + extra + 3, dtype=torch.float64)
    dense = fcn(image)
    crops = sliding_windows(model, image, size, jump)
    assert dense.shape == crops.shape
    assert rel_err(dense, crops) < 1e-12


def vgg_style(size=32):
    """Padded 3x3 convs as in VGG: a 32x32 window, jump 4."""
    return seeded(nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * 8 * 8, 6), nn.ReLU(), nn.Linear(6, 5)))


def test_padded_convs_head_exact_but_dense_differs_from_crops():
    model = vgg_style()
    fcn = convolutionalize(model, (3, 32, 32))
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    assert rel_err(fcn(x).flatten(1), model(x)) < 1e-12        # the head conversion is exact
    image = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    dense, crops = fcn(image), sliding_windows(model, image, 32, 4)
    assert dense.shape == crops.shape == (1, 5, 9, 9)
    diff = rel_err(dense, crops)
    # Crops see zeros at their borders where the big image has pixels: a real difference.
    assert 1e-4 < diff < 1.0
    # ...but the corner cell's window shares the image's own top-left border: two sides agree.
    inner = rel_err(dense[..., 0, 0], crops[..., 0, 0])
    assert inner < diff


def test_shift_and_stitch_equals_sliding_windows_at_the_finer_stride():
    model = seeded(fcconv.tiny_vgg())
    fcn = convolutionalize(model, (3, 64, 64))
    image = torch.randn(1, 3, 80, 77, dtype=torch.float64)
    for step in (1, 2, 4):
        fine = shift_and_stitch(fcn, image, step)
        ref = sliding_windows(model, image, 64, step)
        assert fine.shape == ref.shape
        assert rel_err(fine, ref) < 1e-12


def test_stride_16_on_a_jump_32_net_takes_four_passes():
    assert stitch_passes(32, 16) == 4 and stitch_passes(32, 8) == 16
    net = seeded(nn.Sequential(*[m for _ in range(5) for m in (nn.Conv2d(1, 1, 1), nn.MaxPool2d(2))],
                               nn.Flatten(), nn.Linear(4, 2)))
    fcn = convolutionalize(net, (1, 64, 64))
    calls = []  # real passes only: shift_and_stitch also traces the net once on meta tensors
    fcn.register_forward_hook(lambda m, args, out: calls.append(args[0].device.type))
    out = shift_and_stitch(fcn, torch.randn(1, 1, 128, 128, dtype=torch.float64), 16)
    assert calls.count("cpu") == 4 and out.shape[2:] == (5, 5)        # (128 - 64) // 16 + 1


# --------------------------------------------------------------------------- bad input

class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.a, self.b = nn.Conv2d(1, 2, 3), nn.Linear(72, 3), nn.Linear(72, 4)

    def forward(self, x):
        y = self.conv(x).flatten(1)
        return self.a(y), self.b(y)


class Residual3(nn.Module):
    """Branches with strides 2 and 3 that happen to give the same 3x3 map at 9x9."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 2, 5, stride=2), nn.Conv2d(1, 2, 3, stride=3)
        self.fc = nn.Linear(18, 2)

    def forward(self, x):
        return self.fc((self.a(x) + self.b(x)).flatten(1))


class SmallNet(nn.Module):
    """Conv then Linear; subclasses change only what forward does with them."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 6 * 6, 3)
        self.offset = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        return {"scores": self.fc(self.conv(x).flatten(1))}


class OneTuple(SmallNet):
    def forward(self, x):
        return (self.fc(self.conv(x).flatten(1)),)


class BatchFolded(SmallNet):
    def forward(self, x):
        return self.fc(self.conv(x).view(1, -1))


class PlusParameter(SmallNet):
    def forward(self, x):
        return self.fc(self.conv(x).flatten(1)) + self.offset


class PlusHeight(SmallNet):
    def forward(self, x):
        return self.fc(self.conv(x).flatten(1)) + x.shape[2]


def small_sequential():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3))


BAD_INPUTS = [
    (lambda: linear_to_conv(nn.Linear(25088, 10), (512, 6, 6)),
     ValueError, "Linear expects 25088 inputs but in_shape 512x6x6 gives 18432 = 512x6x6"),
    (lambda: linear_to_conv(nn.Conv2d(1, 1, 1), (1, 1, 1)), TypeError,
     "linear must be a torch.nn.Linear; got Conv2d"),
    (lambda: linear_to_conv(nn.Linear(4, 2), (1, 2, 2), order="cww"), ValueError,
     "order must be 'chw' (PyTorch), 'hwc' (Keras/TensorFlow) or another order of the letters"),
    (lambda: linear_to_conv(nn.Linear(4, 2), (2, 2), order="whc"), ValueError,
     "a (C, L) input is flattened 'chw' (C then L) or 'hwc' (L then C); got order 'whc'"),
    (lambda: linear_to_conv(nn.Linear(4, 2), (1, 2, 2, 1)), ValueError, "in_shape must be (C,)"),
    (lambda: conv_to_linear(nn.Conv2d(3, 4, 3), (1, 8, 8)), ValueError, "expects 3 input channels"),
    (lambda: conv_to_linear(nn.Conv2d(3, 4, 5), (3, 4, 4)), ValueError,
     "kernel 5 does not fit in input 4"),
    (lambda: convolutionalize(fcconv.vgg16(device="meta"), (3, 256, 256)), ValueError,
     "is not an identity here"),
    (lambda: convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 8, 8)), ValueError,
     "found no flatten"),
    (lambda: convolutionalize("vgg16", (3, 224, 224)), TypeError,
     "model must be a torch.nn.Module; got str"),
    (lambda: convolutionalize(fcconv.lenet5(), (1, 32)), ValueError,   # (H, W), as for trace
     "on a 1x32x1 map: kernel 5 does not fit in input 1"),
    (lambda: convolutionalize(fcconv.lenet5(), (1, 2, 32)), ValueError,
     "on a 2x32x1 map: kernel 5 does not fit in input 2"),
    (lambda: convolutionalize(fcconv.vgg16(device="meta"), (3, 224, 224))(
        torch.empty(1, 3, 192, 192, device="meta")), ValueError,
     "the input 192x192 is smaller than the 224x224 window the classifier was built for: the "
     "first head conv (once a Linear over 25088 = 512x7x7) needs at least one whole window"),
    (lambda: sliding_windows(nn.Identity(), torch.zeros(1, 3, 100, 100), 224, 32), ValueError,
     "window 224x224 does not fit in the 100x100 image"),
    (lambda: sliding_windows(nn.Identity(), torch.zeros(3, 100, 100), 10, 0), ValueError,
     "stride must be a positive int"),
    (lambda: sliding_windows(nn.Identity(), [[0.0]], 1, 1), TypeError, "image must be a torch.Tensor"),
    (lambda: stitch_passes(32, 12), ValueError, "step must divide the network's jump 32; got 12"),
    (lambda: shift_and_stitch(convolutionalize(fcconv.tiny_vgg(), (3, 64, 64)),
                              torch.zeros(1, 3, 64, 64), 3), ValueError, "must divide"),
    (lambda: shift_and_stitch(nn.Conv2d(3, 1, 3), torch.zeros(1, 3, 8, 8), 1), ValueError,
     "fcn has no .window: pass a net made by fcconv.convolutionalize"),
    (lambda: sliding_windows(None, torch.zeros(1, 1, 5, 5), 3, 1), TypeError,
     "model must be a torch.nn.Module; got NoneType"),
    (lambda: sliding_windows(nn.Identity(), torch.zeros(1, 1, 5, 5), 3, 1, batch_size=0),
     ValueError, "batch_size must be >= 1; got 0"),
    (lambda: sliding_windows(nn.Identity(), torch.zeros(1, 1, 5, 5), 3, 1, batch_size=-1),
     ValueError, "batch_size must be >= 1; got -1"),
    (lambda: sliding_windows(nn.Identity(), torch.zeros(1, 1, 5, 5), 3, 1, batch_size=2.5),
     TypeError, "batch_size must be an int; got 2.5"),
    (lambda: linear_to_conv(nn.Linear(18, 2), 18), TypeError,
     "in_shape must be a tuple of ints like (C,) or (C, L) or (C, H, W); got 18 (int)"),
    (lambda: linear_to_conv(nn.Linear(18, 2), "233"), TypeError, "got '233' (str)"),
    (lambda: linear_to_conv(nn.Linear(18, 2), (2, 3.9, 3)), TypeError,
     "in_shape[1] must be an int; got 3.9 (float)"),
    (lambda: linear_to_conv(nn.Linear(18, 2), (True, 9, 2)), TypeError,
     "in_shape[0] must be an int; got True (bool)"),
    (lambda: conv_to_linear(nn.Conv2d(1, 2, 3), "155"), TypeError, "got '155' (str)"),
    (lambda: conv_to_linear(nn.Conv2d(1, 2, 3, device="meta"), (1, 5, 5)), ValueError,
     "conv is on the meta device: it has shapes but no weights"),
    (lambda: convolutionalize(fcconv.lenet5(), (1, 32, 32.5)), TypeError,
     "input_shape[2] must be an int; got 32.5"),
    (lambda: convolutionalize(fcconv.lenet5(), "32"), TypeError, "input_shape must be a tuple"),
    (lambda: convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2),
                                            nn.Flatten(), nn.Linear(288, 2)), (1, 8, 8)),
     ValueError, "cannot slide this model: '1' (Upsample): fcconv does not know"),
    (lambda: convolutionalize(Residual3(), (1, 9, 9)), ValueError,
     "joins paths that disagree on the jump (2x2 vs 3x3)"),
    (lambda: convolutionalize(SmallNet(), (1, 8, 8)), ValueError,
     "the model's forward returns a dict of 1, not a tensor or a tuple of tensors"),
    (lambda: fcconv.receptive_field(SmallNet(), (1, 8, 8)), ValueError,
     "the model's forward returns a dict of 1, not a tensor or a tuple of tensors"),
    (lambda: convolutionalize(BatchFolded(), (1, 8, 8)), ValueError,
     "layer 'fc' (Linear) gets a (1, 144) tensor whose first axis is not the batch: a reshape "
     "before it folds the batch into the features (x.view(1, -1)?)"),
    (lambda: convolutionalize(PlusHeight(), (1, 8, 8)), ValueError,
     "uses a number computed from the input's size (getitem): on a larger image it is a "
     "different number"),
    (lambda: convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveMaxPool2d(2),
                                            nn.Flatten(), nn.Linear(8, 3)), (1, 8, 8)),
     ValueError, "it would max-pool the whole map down to 2x2"),
    (lambda: convolutionalize(torch.jit.script(small_sequential()), (1, 8, 8)), ValueError,
     "torch.jit module (scripted or traced), which torch.fx cannot follow: pass the un-scripted"),
    (lambda: trace(torch.jit.trace(small_sequential(), torch.zeros(1, 1, 8, 8)), (1, 8, 8)),
     ValueError, "pass the un-scripted nn.Module it was made from"),
    (lambda: sliding_windows(nn.Sequential(nn.Conv1d(1, 2, 3)), torch.zeros(1, 1, 9, 9), 3, 1),
     ValueError, "the model's layers (Conv1d) take 1 spatial axes, so image must be a sequence "
                 "(C, L) or (N, C, L)"),
    (lambda: sliding_windows(nn.Sequential(nn.Conv1d(1, 2, 3)), torch.zeros(1, 9), (3, 3), 1),
     ValueError, "window must be a positive int for a 1-D model (one axis); got (3, 3)"),
]


@pytest.mark.parametrize("call,error,text", BAD_INPUTS, ids=[b[2][:40] for b in BAD_INPUTS])
def test_bad_input_gets_a_clear_error(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)


# ---------------------------------------------------------------------- the ten silent wrong answers
# Each: the converted net equals sliding windows in float64 at the net's jump, or a clear refusal.

def heads(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def dense_equals_crops(model, shape, big, **kw):
    """Convert, then compare with the original at the training size and on every crop (every
    head of a model that returns a tuple)."""
    model = seeded(model, **kw)
    fcn = convolutionalize(model, shape)
    x = torch.randn(3, *shape, dtype=torch.float64)
    for got, want in zip(heads(fcn(x)), heads(model(x)), strict=True):
        assert rel_err(got.reshape(want.shape), want) < 1e-12
    image = torch.randn(1, shape[0], *big, dtype=torch.float64)
    dense = fcn(image)
    crops = sliding_windows(model, image, shape[1:], fcn.jump)
    for got, want in zip(heads(dense), heads(crops), strict=True):
        assert got.numel() == want.numel() and got.shape[-2:] == want.shape[-2:]
        assert rel_err(got.reshape(want.shape), want) < 1e-12
    return fcn, dense


def test_case1_one_relu_object_reused_is_three_calls():
    act = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(1, 3, 3), act, nn.Conv2d(3, 3, 3), act, nn.Flatten(),
                          nn.Linear(3 * 4 * 4, 5), act, nn.Linear(5, 2))
    fcn, _ = dense_equals_crops(model, (1, 8, 8), (13, 14))
    assert [type(m).__name__ for m in fcn].count("ReLU") == 3
    assert [r.kind for r in trace(fcn, (1, 8, 8))].count("ReLU") == 3


class Conv1dTwoLinears(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc1, self.fc2 = nn.Conv1d(2, 3, 3), nn.Linear(3 * 6, 4), nn.Linear(4, 5)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(self.conv(x).flatten(1))))


@pytest.mark.parametrize("batch", [4, 5])  # 4 = K1: the batch was silently mixed before
def test_case2_conv1d_head_with_two_linears(batch):
    model = seeded(Conv1dTwoLinears())
    fcn = convolutionalize(model, (2, 8))
    seq = torch.randn(batch, 2, 13, dtype=torch.float64)
    dense = fcn(seq)
    crops = torch.stack([model(seq[:, :, s:s + 8]) for s in range(13 - 8 + 1)], dim=2)
    assert dense.shape == crops.shape == (batch, 5, 6)
    assert rel_err(dense, crops) < 1e-12


class FunctionalPools(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 2 * 2, 3)
        self.w = nn.Parameter(torch.randn(2, 2, 1, 1))

    def forward(self, x):
        x = F.max_pool2d(self.conv(x), 2)
        x = F.conv2d(F.avg_pool2d(x, 2), self.w, stride=1)
        return self.fc(x.flatten(1))


def test_case3_pooling_written_as_functions_is_seen():
    assert fcconv.receptive_field(FunctionalPools(), (1, 10, 10)).jump == 4
    assert [r.kind for r in trace(FunctionalPools(), (1, 10, 10))] == \
        ["Conv2d", "max_pool2d", "avg_pool2d", "conv2d", "Linear"]
    model = seeded(FunctionalPools())
    fcn, _ = dense_equals_crops(model, (1, 10, 10), (18, 21))
    image = torch.randn(1, 1, 18, 21, dtype=torch.float64)
    assert rel_err(shift_and_stitch(fcn, image, 1), sliding_windows(model, image, 10, 1)) < 1e-12


@pytest.mark.parametrize("layer,field", [
    (nn.ZeroPad2d(1), fcconv.ReceptiveField(3, 1, -1)),
    (nn.ZeroPad2d((2, 0, 1, 0)), fcconv.ReceptiveField(3, 1, (-1, -2))),
    (nn.LPPool2d(2, 2), fcconv.ReceptiveField(4, 2, 0)),
    (nn.Upsample(scale_factor=2), "'1' (Upsample): fcconv does not know how this layer moves"),
    (nn.PixelShuffle(2), "'1' (PixelShuffle): fcconv does not know"),
])
def test_case4_unknown_layers_are_never_the_identity(layer, field):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), layer)
    if isinstance(field, str):
        with pytest.raises(ValueError, match=re.escape(field)):
            fcconv.receptive_field(net, (1, 10, 10))
        assert trace(net, (1, 10, 10))["1"].rf is None        # shown as "-", not a guess
    else:
        assert fcconv.receptive_field(net, (1, 10, 10)) == field


class Residual(nn.Module):
    def __init__(self, padded=False):
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3, stride=2, padding=int(padded))
        self.b = nn.Conv2d(1, 2, 1 if padded else 3, stride=2)
        self.fc = nn.Linear(2 * 4 * 4 if padded else 2 * 3 * 3, 3)

    def forward(self, x):
        return self.fc((F.relu(self.a(x)) + self.b(x)).flatten(1))


def test_case5_residual_branches_do_not_multiply_the_jump():
    assert fcconv.receptive_field(Residual(), (1, 7, 7)) == fcconv.ReceptiveField(7, 2, 0)
    assert fcconv.receptive_field(Residual(padded=True), (1, 8, 8)).jump == 2
    model = seeded(Residual())
    fcn, _ = dense_equals_crops(model, (1, 7, 7), (15, 16))
    image = torch.randn(1, 1, 15, 16, dtype=torch.float64)
    fine = shift_and_stitch(fcn, image, 1)
    assert fine.shape == (1, 3, 9, 10)
    assert rel_err(fine, sliding_windows(model, image, 7, 1)) < 1e-12


class MeanPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2, 3)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3), keepdim=True).flatten(1))


class ShapePool(MeanPool):
    def forward(self, x):
        y = self.conv(x)
        return self.fc(F.avg_pool2d(y, y.shape[2]).flatten(1))


@pytest.mark.parametrize("model,shape,text", [
    (MeanPool(), (1, 8, 8), "means over H,W: that is global pooling"),
    (ShapePool(), (1, 8, 8), "computes its kernel_size from the input's size"),
    (nn.Sequential(nn.Conv1d(1, 2, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2, 3)),
     (1, 8), "would average the whole map down to 1"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3)),
     (1, 8, 8), "would average the whole map down to 1"),
])
def test_case6_global_pooling_in_any_spelling_is_refused(model, shape, text):
    with pytest.raises(ValueError, match=re.escape(text)):
        convolutionalize(model, shape)


class ChannelsLast(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 5 * 4, 3)

    def forward(self, x):
        return self.fc(self.conv(x).permute(0, 2, 3, 1).flatten(1))


def test_case7_permute_then_flatten_converts_with_hwc():
    fcn, dense = dense_equals_crops(ChannelsLast(), (1, 7, 6), (12, 11))
    assert dense.shape == (1, 3, 6, 6)


def test_case8_ceil_mode_exact_where_windows_fit_refused_where_they_hang_off():
    fits = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                         nn.Linear(2 * 3 * 3, 3))
    dense_equals_crops(fits, (1, 8, 8), (17, 17))
    hangs = nn.Sequential(nn.Conv2d(1, 2, 2), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                          nn.Linear(2 * 4 * 4, 3))
    with pytest.raises(ValueError, match=r"'1' \(MaxPool2d\) has ceil_mode=True, and at this "
                                         r"input its last window along H \(7 cells\) and W \(7 "
                                         r"cells\) hangs over the edge of the map.*exact=False"):
        convolutionalize(hangs, (1, 8, 8))


def test_case9_window_larger_than_the_field_gives_the_documented_count():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 3))
    assert fcconv.receptive_field(model, (1, 9, 9)).size == 8   # the 9th row is never seen
    fcn, dense = dense_equals_crops(model, (1, 9, 9), (17, 19))
    assert dense.shape[2:] == ((17 - 9) // 2 + 1, (19 - 9) // 2 + 1)
    assert fcn.window == 9 and fcn.jump == 2


def test_sliding_windows_cuts_crops_one_batch_at_a_time():
    """4,000,000 crops of 1000x1000 would be 32 TB at once; the first batch arrives, alone."""
    class Stop(Exception):
        pass

    def first_batch(x):
        raise Stop(tuple(x.shape))

    model = nn.Module()
    model.forward = first_batch
    with pytest.raises(Stop) as info:
        sliding_windows(model, torch.zeros(1, 1, 2999, 2999), 1000, 1, batch_size=3)
    assert info.value.args[0] == (3, 1, 1000, 1000)


def test_two_head_model_traces_converts_to_two_maps_and_has_one_field():
    assert trace(TwoHeads(), (1, 8, 8)).names == ["conv", "a", "b"]
    assert fcconv.receptive_field(TwoHeads(), (1, 8, 8)) == fcconv.ReceptiveField(8, 1, 0)
    fcn, dense = dense_equals_crops(TwoHeads(), (1, 8, 8), (11, 13))
    assert [d.shape for d in dense] == [(1, 3, 4, 6), (1, 4, 4, 6)]
    fcn, dense = dense_equals_crops(OneTuple(), (1, 8, 8), (9, 8))
    assert isinstance(dense, tuple) and dense[0].shape == (1, 3, 2, 1)


# --------------------------------------------------------------------------- tester's findings

@pytest.mark.parametrize("model", [
    nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 3)),
    nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(144, 5), nn.BatchNorm1d(5),
                  nn.Linear(5, 3)),
])
def test_batch_norm_in_training_mode_is_refused_and_exact_in_eval(model):
    model = seeded(model).train()
    image = torch.randn(1, 3, 10, 10, dtype=torch.float64)
    name = "'1' is" if isinstance(model[1], nn.BatchNorm2d) else "'3' is"
    with pytest.raises(ValueError, match=f"BatchNorm.d {name} in training mode: it normalises "
                                         "with each batch's statistics.*call model.eval"):
        convolutionalize(model, (3, 8, 8))
    fcn = convolutionalize(model.eval(), (3, 8, 8))
    assert rel_err(fcn(image), sliding_windows(model, image, 8, 1)) < 1e-12


def test_train_mode_model_without_batch_statistics_still_converts():
    """A freshly built net is in training mode; dropout there is what notebooks convert."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.0), nn.Flatten(), nn.Dropout(0.0),
                          nn.Linear(144, 3)).double().train()
    image = torch.randn(1, 3, 10, 10, dtype=torch.float64)
    assert rel_err(convolutionalize(model, (3, 8, 8))(image),
                   sliding_windows(model, image, 8, 1)) < 1e-12


class SizesAgreeOnlyHere(nn.Module):
    """Both branches give 1x1 at 3x3, but 1x1 and 2x2 at 4x4 (and 2x2 vs 3x3 at 6x6)."""

    def __init__(self, cat=False, fmap=1):
        super().__init__()
        self.cat = cat
        self.a = nn.Conv2d(3, 2, 3, stride=2)
        self.b = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(3, 2, 1))
        self.fc = nn.Linear((4 if cat else 2) * fmap * fmap, 3)

    def forward(self, x):
        x = torch.cat([self.a(x), self.b(x)], 1) if self.cat else self.a(x) + self.b(x)
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("model,shape,op,sizes", [
    (SizesAgreeOnlyHere(), (3, 3, 3), "'add' (line", "at an input side of 4 the paths give "
                                                     "maps of 1 and 2 cells"),
    (SizesAgreeOnlyHere(cat=True, fmap=4), (3, 9, 9), "'cat' (line",
     "at an input side of 10 the paths give maps of 4 and 5 cells"),
])
def test_branches_whose_sizes_agree_only_at_the_training_size_are_refused(model, shape, op,
                                                                          sizes):
    with pytest.raises(ValueError) as info:
        convolutionalize(model, shape)
    message = str(info.value)
    assert message.startswith(op) and "of forward: x = torch.cat(" in message
    assert sizes in message and "sizes agree at input" in message
    with pytest.raises(RuntimeError):  # what the converted net would have met there
        model(torch.zeros(1, 3, shape[1] + 1, shape[2] + 1))


def test_branches_whose_sizes_always_agree_still_convert():
    model = SizesAgreeOnlyHere()
    model.a = nn.Conv2d(3, 2, 2, stride=2)    # now both give floor(H / 2) at every size
    model.fc = nn.Linear(2 * 2 * 2, 3)
    dense_equals_crops(model, (3, 4, 4), (9, 10))


@pytest.mark.parametrize("layer", [nn.BatchNorm1d(144), nn.PReLU(144)])
def test_per_feature_layer_before_the_first_linear_is_refused(layer):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), layer, nn.Linear(144, 3)).eval()
    with pytest.raises(ValueError, match=rf"'2' \({type(layer).__name__}\) has one parameter per "
                                         r"feature of the flattened 6x6x4 map"):
        convolutionalize(model, (3, 8, 8))
    # One PReLU slope shared by every feature is still a pointwise activation: exact.
    dense_equals_crops(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.PReLU(),
                                     nn.Linear(144, 3)), (3, 8, 8), (11, 12))


def test_sliding_windows_on_sequences_for_a_conv1d_model():
    """(N, C, L) is a batch of sequences, not one (C, H, W) image, when the model is 1-D."""
    model = seeded(nn.Sequential(nn.Conv1d(2, 3, 3), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(),
                                 nn.Linear(3 * 3, 4)))
    fcn = convolutionalize(model, (2, 8))
    seq = torch.randn(2, 2, 15, dtype=torch.float64)
    crops = sliding_windows(model, seq, 8, fcn.jump)
    by_hand = torch.stack([model(seq[:, :, s:s + 8]) for s in range(0, 8, fcn.jump)], dim=2)
    assert crops.shape == fcn(seq).shape == (2, 4, 4)
    assert rel_err(fcn(seq), crops) < 1e-12 and rel_err(by_hand, crops) < 1e-12
    assert sliding_windows(model, seq[0], 8, 2).shape == (1, 4, 4)   # one (C, L) sequence


def test_sliding_windows_takes_numpy_integers_like_input_shape():
    model, image = seeded(small_sequential()), torch.randn(1, 1, 10, 11, dtype=torch.float64)
    assert torch.equal(sliding_windows(model, image, np.int64(8), np.int32(2)),
                       sliding_windows(model, image, 8, 2))


# --------------------------------------------------------------------------- MTCNN's three nets
# Random weights: exactness does not depend on them (the real ones come from a package at set-up).

def test_pnet_is_already_convolutional_and_equals_every_12x12_crop():
    pnet = seeded(fcconv.models.pnet())
    fcn = convolutionalize(pnet, (3, 12, 12))
    assert (fcn.window, fcn.jump, fcn.approximate) == (12, 2, "")
    assert fcconv.receptive_field(pnet, (3, 12, 12)) == fcconv.ReceptiveField(12, 2, 0)
    for h, w in ((12, 12), (30, 40), (31, 41), (33, 28)):  # even and odd sides
        image = torch.randn(2, 3, h, w, dtype=torch.float64)
        prob, boxes = fcn(image)
        crop_prob, crop_boxes = sliding_windows(pnet, image, 12, 2)
        rows, cols = (h - 12) // 2 + 1, (w - 12) // 2 + 1
        assert prob.shape == (2, rows, cols) and boxes.shape == (2, 4, rows, cols)
        assert crop_prob.shape == (2, 1, rows, cols)   # one value per crop: K = 1
        assert rel_err(prob, crop_prob[:, 0]) < 1e-12 and rel_err(boxes, crop_boxes) < 1e-12


def test_raw_pnet_differs_from_the_crops_only_at_an_odd_border_and_the_conversion_says_why():
    """31 rows: conv1 leaves 29, an odd count, so the ceil-mode pool's last window is partial
    and P-Net as written scores one more row, whose 12x12 window hangs off the image."""
    pnet = seeded(fcconv.models.pnet())
    image = torch.randn(1, 3, 31, 41, dtype=torch.float64)
    prob, boxes = pnet(image)
    crop_prob, crop_boxes = sliding_windows(pnet, image, 12, 2)
    assert prob.shape == (1, 11, 16) and crop_prob.shape == (1, 1, 10, 15)
    assert rel_err(prob[:, :10, :15], crop_prob[:, 0]) < 1e-12      # exact where a crop exists
    assert rel_err(boxes[..., :10, :15], crop_boxes) < 1e-12
    rf = fcconv.receptive_field(pnet, (3, 31, 41))
    assert rf.window(10, 0) == (20, 31) and rf.window(15, 1) == (30, 41)  # pixel 31/41: outside
    change, = convolutionalize(pnet, (3, 12, 12)).changes
    assert change.startswith("'pool1' (MaxPool2d): ceil_mode=True set to False. At 12x12x3 "
                             "every window fits") and "hangs off the image" in change


@pytest.mark.parametrize("build,size", [(fcconv.models.rnet, 24), (fcconv.models.onet, 48)])
def test_rnet_and_onet_partial_ceil_windows_are_refused_or_approximate_on_request(build, size):
    net = seeded(build())
    with pytest.raises(ValueError, match=r"^'pool1' \(MaxPool2d\) \(line \d+ of forward: x = "
                                         r"self.pool1\(.*has ceil_mode=True.*exact=False"):
        convolutionalize(net, (3, size, size))
    with pytest.warns(fcconv.fcn.ApproximateWarning, match="the dense net is approximate: 'pool1'"):
        fcn = convolutionalize(net, (3, size, size), exact=False)
    assert fcn.approximate.startswith("'pool1' (MaxPool2d)") and fcn.jump == {24: 4, 48: 8}[size]
    image = torch.randn(1, 3, size + 13, size + 9, dtype=torch.float64)
    dense, crops = fcn(image), sliding_windows(net, image, size, fcn.jump)
    gap = 0.0
    for d, c in zip(dense, crops, strict=True):
        assert d.shape[-2:] == c.shape[-2:] == (13 // fcn.jump + 1, 9 // fcn.jump + 1)
        gap = max(gap, (d.reshape(c.shape) - c).abs().max().item())
    assert gap > 1e-6   # measured, not assumed: the partial windows change the scores


@pytest.mark.parametrize("build,size", [(fcconv.models.rnet, 25), (fcconv.models.onet, 49)])
def test_rnet_and_onet_heads_convert_exactly_where_their_pools_fit(build, size):
    """At 25 (49) every ceil-mode window fits: the (W, H, C) flatten, the PReLU after the
    Linear, softmax(...)[:, 1] and the two or three heads all convert exactly."""
    fcn, dense = dense_equals_crops(build(), (3, size, size), (size + 13, size + 6))
    assert fcn.approximate == "" and len(dense) == (2 if size == 25 else 3)
    assert dense[0].shape == (1, 13 // fcn.jump + 1, 6 // fcn.jump + 1)   # the face probability


class ColumnMajor(nn.Module):
    """R-Net's head in small, on a non-square map: (W, H, C) flatten, PReLU, softmax, x[:, 1]."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc, self.act = nn.Conv2d(2, 3, 3), nn.Linear(3 * 4 * 5, 4), nn.PReLU(4)
        self.cls, self.box = nn.Linear(4, 2), nn.Linear(4, 3)

    def forward(self, x):
        x = self.act(self.fc(self.conv(x).permute(0, 3, 2, 1).flatten(1)))
        return F.softmax(self.cls(x), dim=1)[:, 1], self.box(x)


def test_column_major_flatten_and_two_heads_convert_exactly():
    fcn, (prob, box) = dense_equals_crops(ColumnMajor(), (2, 6, 7), (13, 11))
    assert prob.shape == (1, 8, 5) and box.shape == (1, 3, 8, 5)


# --------------------------------------------------------------------------- issue 22, case by case
# Each reproducer of the review: exact against the crops in float64, or a clear refusal.

class Block(nn.Module):
    """A classifier whose forward is one line, ``body(self, x)``, between a conv and a Linear."""

    def __init__(self, body, fmap=(2, 6, 6), classes=3, **layers):
        super().__init__()
        self.body = body
        self.conv, self.fc = nn.Conv2d(1, fmap[0], 3), nn.Linear(math.prod(fmap), classes)
        for name, layer in layers.items():
            setattr(self, name, layer)

    def forward(self, x):
        return self.fc(self.body(self, self.conv(x), x))


CHANNELS_LAST = {
    "relu": lambda s, y, x: F.relu(y.permute(0, 2, 3, 1)).flatten(1),
    "layer_norm": lambda s, y, x: s.norm(y.permute(0, 2, 3, 1)).flatten(1),
    "pointwise_linear": lambda s, y, x: F.gelu(s.pw(y.permute(0, 2, 3, 1))).flatten(1),
    "branch": lambda s, y, x: (y.permute(0, 2, 3, 1) + s.conv(x).permute(0, 2, 3, 1)).flatten(1),
    "permuted_back": lambda s, y, x: s.norm(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).flatten(1),
}


@pytest.mark.parametrize("body", CHANNELS_LAST.values(), ids=CHANNELS_LAST)
def test_case1_ops_between_a_permute_and_the_flatten_are_kept(body):
    model = Block(body, norm=nn.LayerNorm(2), pw=nn.Linear(2, 2))
    dense_equals_crops(model, (1, 8, 8), (13, 11))


@pytest.mark.parametrize("body,refusal", [
    (lambda s, y, x: s.fc0(F.softmax(y.flatten(1), dim=1)),
     "cannot carry 'softmax' .*over the flattened 6x6x2 features"),
    (lambda s, y, x: s.fc0(s.norm(y.flatten(1))),
     "'norm' \\(LayerNorm\\) .*acts on the flattened 6x6x2 features"),
    (lambda s, y, x: s.fc0(y.flatten(1) + y.permute(0, 2, 3, 1).flatten(1)),
     "combines maps flattened or permuted differently \\(6x6x2 as chw, 6x6x2 as hwc\\)"),
    (lambda s, y, x: s.fc0(y.flatten(1) + s.other(x).flatten(1)),
     "combines maps flattened or permuted differently \\(6x6x2 as chw, 3x3x8 as chw\\)"),
    (lambda s, y, x: s.norm2(y.permute(0, 2, 3, 1)).flatten(1).mul(1).view(-1, 72)[:, :72],
     "'norm2' \\(LayerNorm\\).* normalises over the last 2 axes"),
])
def test_cases2_5_9_features_mixed_before_the_first_linear_are_refused(body, refusal):
    """F.softmax on the flattened features, a LayerNorm there, two flattens in different
    orders or of different maps added, a LayerNorm over (W, C): each output would depend on
    the whole map (or on two positions), which no cell of a map computes."""
    model = Block(lambda s, y, x: body(s, y, x), classes=72, fc0=nn.Linear(72, 72),
                  norm=nn.LayerNorm(72), norm2=nn.LayerNorm((6, 2)),
                  other=nn.Conv2d(1, 8, 3, stride=2))
    with pytest.raises(ValueError, match=refusal):
        convolutionalize(seeded(model), (1, 8, 8))


SIZE = "uses a number computed from the input's size"
SIZE_NUMBERS = {
    "clamp": (lambda s, y, x: y.clamp(max=x.shape[2] / 10).flatten(1), f"'clamp' .*{SIZE}"),
    "leaky_relu": (lambda s, y, x: F.leaky_relu(y, 1 / x.size(3)).flatten(1),
                   f"'leaky_relu' .*{SIZE}"),
    "pad": (lambda s, y, x: F.pad(y, (0, x.shape[3] // 9))[..., :6].flatten(1), f"'pad' .*{SIZE}"),
    "pool_dilation": (lambda s, y, x: F.max_pool2d(y, 2, 1, 0, x.shape[2] // 8).flatten(1),
                      "'max_pool2d' .*computes its dilation from the input's size"),
    "kernel": (lambda s, y, x: F.avg_pool2d(y, y.shape[2]).flatten(1),
               "'avg_pool2d' .*computes its kernel_size from the input's size"),
    "scale": (lambda s, y, x: (y * y.numel()).flatten(1), f"'mul' .*{SIZE}"),
}


@pytest.mark.parametrize("name", SIZE_NUMBERS)
def test_cases3_4_a_number_read_off_the_input_size_is_refused_wherever_it_is_used(name):
    body, refusal = SIZE_NUMBERS[name]
    fmap = (2, 5, 5) if name == "pool_dilation" else (2, 1, 1) if name == "kernel" else (2, 6, 6)
    with pytest.raises(ValueError, match=refusal):
        convolutionalize(seeded(Block(body, fmap=fmap)), (1, 8, 8))


def test_case3_numbers_that_do_not_change_with_the_size_still_convert():
    """The batch and the channel count are the same on every crop and on the large image."""
    body = lambda s, y, x: (y * y.shape[1]).view(y.size(0), -1) / x.size(1)  # noqa: E731
    dense_equals_crops(Block(body), (1, 8, 8), (12, 11))


def test_case6_a_net_converted_on_the_meta_device_refuses_a_real_image():
    fcn = convolutionalize(fcconv.vgg16(device="meta"), (3, 224, 224))   # shapes only
    assert fcn(torch.empty(1, 3, 256, 256, device="meta")).shape == (1, 1000, 2, 2)
    with pytest.raises(ValueError, match="net is on the meta device: it has shapes but no weights"):
        fcn(torch.zeros(1, 3, 224, 224))


class FunctionalDropout(nn.Module):
    def __init__(self, training=None):
        super().__init__()
        self.conv, self.fc, self.pass_training = nn.Conv2d(1, 2, 3), nn.Linear(72, 3), training

    def forward(self, x):
        y = self.conv(x).flatten(1)
        y = F.dropout(y, 0.3) if self.pass_training is None else \
            F.dropout(y, 0.3, training=self.training)
        return self.fc(y)


def test_case7_dropout_that_drops_is_refused_like_batch_statistics():
    model = seeded(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Dropout(0.5),
                                 nn.Linear(72, 3))).train()
    with pytest.raises(ValueError, match="Dropout '2' is in training mode \\(p=0.5\\): it zeroes "
                                         "random values.*call model.eval\\(\\) first"):
        convolutionalize(model, (1, 8, 8))
    dense_equals_crops(model.eval(), (1, 8, 8), (11, 12))
    with pytest.raises(ValueError, match="'dropout' .*drops values at random \\(p=0.3, "
                                         "training=True\\).*pass training=self.training"):
        convolutionalize(seeded(FunctionalDropout()), (1, 8, 8))   # F.dropout drops in eval too
    dense_equals_crops(FunctionalDropout(training=True), (1, 8, 8), (11, 12))
    # A model on the meta device has no values to drop: its shapes convert (the CLI does that).
    assert convolutionalize(fcconv.vgg16(device="meta").train(), (3, 224, 224)).jump == 32


def test_gaps_shift_and_stitch_with_the_nets_own_jump():
    """A 1x1 conv with stride 2 leaves gaps in the field; stitching at the net's jump is exact."""
    model = seeded(nn.Sequential(nn.Conv2d(1, 2, 1, stride=2), nn.ReLU(), nn.Conv2d(2, 2, 3),
                                 nn.Flatten(), nn.Linear(2 * 2 * 2, 3)))
    fcn = convolutionalize(model, (1, 8, 8))
    assert fcn.jump == 2 and fcconv.receptive_field(model, (1, 8, 8)).gaps
    image = torch.randn(1, 1, 17, 16, dtype=torch.float64)
    for step in (1, 2):
        assert rel_err(shift_and_stitch(fcn, image, step), sliding_windows(model, image, 8, step)) \
            < 1e-12


def test_raw_two_flattened_maps_that_do_not_line_up():
    different = Block(lambda s, y, x: y.flatten(1) + s.other(x).flatten(1), other=nn.Conv2d(1, 1, 2))
    with pytest.raises(ValueError, match=r"'add' \(line \d+ of <lambda>: .*\) combines tensors "
                                         r"that do not line up \(flat \(N, 72\) and flat "
                                         r"\(N, 49\)\)"):
        convolutionalize(different, (1, 8, 8))


@pytest.mark.parametrize("call,error,text", [
    (lambda: sliding_windows(small_sequential(), torch.zeros(1, 1, 20, 20), 10, 1), ValueError,
     "the model cannot score a 10x10x1 crop: layer '2' (Linear) expects 72 inputs but gets 128"),
    (lambda: sliding_windows(small_sequential(), torch.zeros(1, 3, 20, 20), 8, 1), ValueError,
     "the model cannot score a 8x8x3 crop: layer '0' (Conv2d) expects 1 input channels but "
     "gets 3"),
    (lambda: sliding_windows(small_sequential(), torch.zeros(1, 1, 9, 9, dtype=torch.int64), 8,
                             1), TypeError, "the image must hold floating-point values; got "
                                            "torch.int64 (image.to(torch.float32) converts it)"),
    (lambda: sliding_windows(small_sequential(), torch.zeros(0, 1, 9, 9), 8, 1), ValueError,
     "image is an empty batch, shape (0, 1, 9, 9): nothing to score"),
    (lambda: sliding_windows(small_sequential(), torch.zeros(1, 1, 9, 9, dtype=torch.float64), 8,
                             1), ValueError,
     "the image is torch.float64 but model's weights are torch.float32: convert one"),
    (lambda: sliding_windows(small_sequential().to("meta"), torch.zeros(1, 1, 9, 9), 8, 1),
     ValueError, "model is on the meta device: it has shapes but no weights"),
    (lambda: convolutionalize(small_sequential(), (1, 8, 8))(np.zeros((1, 1, 9, 9), np.float32)),
     TypeError, "the converted net takes a torch.Tensor (N, 1, 8, 8) or larger; got ndarray "
                "(torch.from_numpy(array) makes one)"),
    (lambda: convolutionalize(small_sequential(), (1, 8, 8))(torch.zeros(1, 1, 9, 9).double()),
     ValueError, "the image is torch.float64 but net's weights are torch.float32"),
    (lambda: shift_and_stitch(convolutionalize(small_sequential(), (1, 8, 8)),
                              torch.zeros(1, 1, 9, 9).double(), 1), ValueError,
     "the image is torch.float64 but fcn's weights are torch.float32"),
    (lambda: convolutionalize(small_sequential(), (1, 8, 8), exact="no"), TypeError,
     "exact must be True or False; got 'no'"),
    (lambda: convolutionalize(nn.Sequential(nn.Conv2d(1, 1, 1, stride=2), nn.ZeroPad2d(-2),
                                            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                            nn.Linear(1, 2)), (1, 8, 8)), ValueError,
     "'1' (ZeroPad2d) leaves an empty 0x0x1 tensor: the input is too small for it"),
    (lambda: trace(nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.ZeroPad2d(-2)), (1, 8, 8)),
     ValueError, "layer '1' (ZeroPad2d) pads a 3-cell side by -2 and -2: a crop of 4 cells, more "
                 "than it has"),
])
def test_raw_errors_become_messages_about_the_input(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)


class Keywords(nn.Module):
    """Tensors passed by keyword, everywhere fcconv reads them."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(72, 3)

    def forward(self, x):
        y = torch.sigmoid(input=self.conv(input=x))
        y = torch.cat(tensors=[y, y], dim=1)[:, :2]
        y = torch.permute(input=y, dims=(0, 2, 3, 1)).permute(dims=(0, 3, 1, 2))
        return F.softmax(self.fc(input=torch.flatten(input=y, start_dim=1)), dim=1)


def test_raw_tensors_passed_by_keyword_are_followed():
    dense_equals_crops(Keywords(), (1, 8, 8), (11, 10))
    assert fcconv.receptive_field(Keywords(), (1, 8, 8)) == fcconv.ReceptiveField(8, 1, 0)


def test_raw_one_conv_called_twice_and_two_convs_with_one_weight():
    conv = nn.Conv2d(2, 2, 2)
    twice = nn.Sequential(nn.Conv2d(1, 2, 2), conv, nn.ReLU(), conv, nn.Flatten(),
                          nn.Linear(2 * 5 * 5, 3))
    dense_equals_crops(twice, (1, 8, 8), (11, 12))
    tied = nn.Sequential(nn.Conv2d(1, 2, 2), nn.Conv2d(2, 2, 2), nn.Conv2d(2, 2, 2), nn.Flatten(),
                         nn.Linear(2 * 5 * 5, 3))
    tied[2].weight = tied[1].weight
    fcn, _ = dense_equals_crops(tied, (1, 8, 8), (11, 12))
    assert trace(tied, (1, 8, 8)).total_params == sum(p.numel() for p in tied.parameters())


def test_misleading_conv3d_input_is_c_d_h_w():
    t = trace(nn.Sequential(nn.Conv3d(5, 2, 3)), (5, 8, 8, 8))
    assert t.rows[-1].out_shape == (2, 6, 6, 6)
    assert fcconv.receptive_field(nn.Conv3d(5, 2, 3), (1, 5, 8, 8, 8)).size == 3


def test_misleading_one_dimensional_nets_slide_and_stitch():
    pooled = seeded(nn.Sequential(nn.MaxPool1d(2), nn.Flatten(), nn.Linear(4, 3)))  # no Conv1d
    seq = torch.randn(2, 1, 20, dtype=torch.float64)
    by_hand = torch.stack([pooled(seq[:, :, s:s + 8]) for s in range(0, 13, 2)], dim=2)
    assert rel_err(sliding_windows(pooled, seq, 8, 2), by_hand) < 1e-12
    model = seeded(nn.Sequential(nn.Conv1d(1, 2, 3, stride=2), nn.Flatten(), nn.Linear(6, 3)))
    fcn = convolutionalize(model, (1, 8))
    assert rel_err(shift_and_stitch(fcn, seq, 1), sliding_windows(model, seq, 8, 1)) < 1e-12


class DefaultArgument(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 3 * 3, 3)

    def forward(self, x, k=2, *, scale=1.0):
        return self.fc(F.max_pool2d(self.conv(x), k).flatten(1) * scale)


class IdentityPoolWithIndices(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(72, 3)
        self.pool = nn.AdaptiveMaxPool2d(6, return_indices=True)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x))[0].flatten(1))


class LinearTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc, self.out = nn.Conv2d(1, 2, 3), nn.Linear(72, 72), nn.Linear(72, 3)

    def forward(self, x):
        return self.out(self.fc(torch.relu(self.fc(self.conv(x).flatten(1)))))


@pytest.mark.parametrize("model", [DefaultArgument, IdentityPoolWithIndices, LinearTwice])
def test_misleading_refusals_now_convert_exactly(model):
    """A constant default argument, an identity adaptive pool that returns indices, one Linear
    called on the flattened map and again on its output: each converts, and is exact."""
    dense_equals_crops(model(), (1, 8, 8), (12, 11))


class FeaturesToo(nn.Module):
    """Scores and the feature map they came from: the map is no classifier of the window."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(72, 3)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(y.flatten(1)), y


def test_a_head_that_returns_a_feature_map_is_refused_before_any_crop():
    with pytest.raises(ValueError, match=r"gives \(2, 2, 6, 6\) at the training size, not one "
                                         r"cell \(1x1\) per head"):
        convolutionalize(FeaturesToo(), (1, 8, 8))


class Scores(nn.Module):
    """conv, flatten, Linear, then ``softmax`` on the (N, K) scores."""

    def __init__(self, softmax):
        super().__init__()
        self.conv, self.fc, self.softmax = nn.Conv2d(1, 2, 3), nn.Linear(72, 3), softmax

    def forward(self, x):
        return self.softmax(self.fc(self.conv(x).flatten(1)))


@pytest.mark.parametrize("softmax", [nn.Softmax(), lambda v: F.softmax(v), lambda v: v.softmax(-1),
                                     lambda v: torch.log_softmax(input=v, dim=1)])
def test_a_softmax_over_the_classes_in_any_spelling_is_over_the_channels(softmax):
    dense_equals_crops(Scores(softmax), (1, 8, 8), (12, 10))


def test_a_softmax_over_the_batch_is_refused():
    with pytest.raises(ValueError, match="takes a softmax over dim 0 of a \\(N, D\\) vector"):
        convolutionalize(Scores(lambda v: F.softmax(v, 0)), (1, 8, 8))


# --------------------------------------------------------------------------- issue 22, review 2
# Each class of finding: exact against the crops, or refused at conversion with the op and line.

class Folds(nn.Module):
    """A view that keeps the map's shape at the training size: ``how`` writes its sides."""

    def __init__(self, how):
        super().__init__()
        self.how, self.c, self.fc = how, nn.Conv2d(1, 4, 3), nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        y = self.c(x)
        if self.how == "mnist":       # the classic first line: on a larger image, -1 folds
            y = self.c(x.view(-1, 1, 6, 6))
        elif self.how == "batch":     # fails on a larger image
            y = y.view(x.size(0), 4, 4, 4)
        elif self.how == "reshape":   # folds the extra pixels into the batch
            y = y.reshape(-1, 4, 4, 4)
        elif self.how == "read":      # every side read off the tensor: the identity at any size
            y = y.view(y.size(0), y.size(1), y.size(2), y.size(3))
        elif self.how == "unpacked":
            n, c, h, w = y.shape
            y = y.reshape(n, c, h, w)
        return self.fc(y.flatten(1))


@pytest.mark.parametrize("how", ["mnist", "batch", "reshape"])
def test_a_view_that_keeps_the_shape_only_at_the_training_size_is_refused(how):
    with pytest.raises(ValueError, match=r"\(line \d+ of forward: .*\) leaves the \(N, \d, \d, \d\) "
                                         r"map as it is at this input, but writes spatial axis 0 "
                                         r"\(dim 2\) and spatial axis 1 .*fold its extra pixels"):
        convolutionalize(Folds(how).eval(), (1, 6, 6))
    assert fcconv.receptive_field(Folds(how), (1, 6, 6)).size == 6   # the field here is exact


@pytest.mark.parametrize("how", ["read", "unpacked"])
def test_a_view_whose_sides_are_read_off_the_tensor_converts_exactly(how):
    dense_equals_crops(Folds(how), (1, 6, 6), (11, 9))


def hooked(kind, on):
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 4)).eval()
    layer = model if on == "model" else model[3]
    if kind == "pre":
        layer.register_forward_pre_hook(lambda m, a: ((a[0] - 0.5) / 0.25,))
    else:
        layer.register_forward_hook(lambda m, a, out: out * 3)
    return model


@pytest.mark.parametrize("kind,on,text", [
    ("pre", "model", r"the model itself \(Sequential\) has a forward pre-hook \(<lambda>\)"),
    ("post", "layer", r"layer '3' \(Linear\) has a forward hook \(<lambda>\)")])
@pytest.mark.parametrize("call", [convolutionalize, trace, fcconv.receptive_field])
def test_forward_hooks_are_refused_naming_the_layer_and_the_kind(kind, on, text, call):
    with pytest.raises(ValueError, match=text + ".*remove it"):
        call(hooked(kind, on), (2, 5, 5))


def test_pruning_and_the_old_weight_norm_are_refused_before_any_copy():
    import torch.nn.utils.prune as prune

    pruned = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(27, 4)).eval()
    prune.l1_unstructured(pruned[0], "weight", 0.5)
    with pytest.raises(ValueError, match=r"layer '0' \(Conv2d\) is pruned .*prune.remove"):
        convolutionalize(pruned, (2, 5, 5))
    prune.remove(pruned[0], "weight")   # made permanent: exact
    dense_equals_crops(pruned, (2, 5, 5), (8, 9))
    with pytest.warns(FutureWarning):
        old = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(),
                            torch.nn.utils.weight_norm(nn.Linear(27, 4))).eval()
    with pytest.raises(ValueError, match="from torch.nn.utils.weight_norm .*parametrizations"):
        convolutionalize(old, (2, 5, 5))


def test_a_converted_net_converts_again_its_own_size_check_is_no_hook_to_refuse():
    fcn = convolutionalize(seeded(small_sequential()), (1, 8, 8))
    again = convolutionalize(fcn, (1, 8, 8))
    x = torch.randn(1, 1, 13, 11, dtype=torch.float64)
    assert torch.equal(again(x), fcn(x))


def test_a_partly_meta_model_is_refused_and_cannot_score():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 2)).eval()
    model[2].to("meta")
    with pytest.raises(ValueError, match=r"partly on the meta device \('2.weight', '2.bias' have "
                                         r"shapes but no values; '0.weight' on cpu"):
        convolutionalize(model, (1, 5, 5))
    with pytest.raises(ValueError, match=r"model is on the meta device \(in part: 2.weight"):
        sliding_windows(model, torch.randn(1, 1, 7, 7), 5, 1)
    assert trace(model, (1, 5, 5)).output_shape == (2,)   # shapes need no values


@pytest.mark.parametrize("model,window,text", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(32, 2)), 6,
     r"BatchNorm2d '1' is in training mode.*every pixel of every example"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(0.5), nn.Flatten(), nn.Linear(32, 2)), 6,
     r"Dropout '1' is in training mode \(p=0.5\)"),
    (FunctionalDropout().eval(), 8, r"'dropout' \(line \d+ of forward: .*\) drops values at random")])
def test_sliding_windows_refuses_a_model_whose_crops_depend_on_more_than_the_crop(model, window,
                                                                                   text):
    image = torch.randn(1, 1, 12, 12)
    with pytest.raises(ValueError, match="sliding_windows cannot give the reference here: " + text):
        sliding_windows(model, image, window, 2)
    if not isinstance(model, FunctionalDropout):   # in eval mode: the reference
        assert sliding_windows(model.eval(), image, window, 2).shape == (1, 2, 4, 4)


class ClampedBy(nn.Module):
    """clamp (or add) with a constant of ``shape``: per feature, per position, per channel."""

    def __init__(self, shape, flat=False):
        super().__init__()
        self.flat, self.c, self.fc = flat, nn.Conv2d(2, 3, 3), nn.Linear(27, 4)
        self.register_buffer("bound", torch.rand(shape))

    def forward(self, x):
        y = self.c(x)
        if self.flat:
            return self.fc(torch.clamp(y.flatten(1), min=self.bound))
        return self.fc(y.clamp(max=self.bound).flatten(1))


@pytest.mark.parametrize("shape,flat,dim", [((27,), True, 1), ((1, 1, 3, 3), False, 2),
                                            ((3,), False, 3)])
def test_a_constant_per_feature_or_per_position_is_refused_at_conversion(shape, flat, dim):
    with pytest.raises(ValueError, match=rf"'clamp' \(line \d+ .*\) combines .* with a constant "
                                         rf"of shape {re.escape(str(shape))}, which holds \d+ values "
                                         rf"along dim {dim}: that dim counts positions"):
        convolutionalize(ClampedBy(shape, flat).eval(), (2, 5, 5))


class Normalised(nn.Module):
    """Per-channel constants everywhere: input normalisation, a layer scale on a channels-last
    block, a logit temperature and a bias per class."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.rand(1, 2, 1, 1))
        self.register_buffer("std", torch.rand(1, 2, 1, 1) + 0.5)
        self.c, self.lin, self.fc = nn.Conv2d(2, 4, 2, 2), nn.Linear(4, 4), nn.Linear(4 * 9, 3)
        self.gamma = nn.Parameter(torch.rand(4))
        self.temperature = nn.Parameter(torch.tensor(1.5))
        self.register_buffer("bias", torch.randn(3))

    def forward(self, x):
        y = self.c((x - self.mean) / self.std).permute(0, 2, 3, 1)
        y = (self.gamma * self.lin(y)).permute(0, 3, 1, 2)
        return torch.clamp(self.fc(y.flatten(1)) / self.temperature + self.bias, max=self.bias)


def test_per_channel_and_per_class_constants_convert_exactly():
    dense_equals_crops(Normalised(), (2, 6, 6), (14, 11))
    dense_equals_crops(PlusParameter(), (1, 8, 8), (12, 13))


class Heads(nn.Module):
    """One trunk; ``how`` says what forward does with the (N, 6) scores."""

    def __init__(self, how):
        super().__init__()
        self.how, self.c, self.fc, self.flat = how, nn.Conv2d(1, 2, 3), nn.Linear(18, 6), nn.Flatten()
        self.w = nn.Parameter(torch.randn(6, 18))

    def forward(self, x):
        f = self.c(x).flatten(1)
        y = self.fc(f)
        if self.how == "split":
            a, b = y.split([2, 4], dim=-1)
            return a.softmax(1), b
        if self.how == "again":
            return self.fc(f.view(f.size(0), -1).view(f.size(0), -1))
        if self.how == "twice":
            return self.fc(torch.flatten(self.flat(self.c(x)), 1))
        if self.how == "len":
            return self.fc(self.c(x).reshape(len(x), -1))
        if self.how == "functional":
            return F.linear(f, self.w, self.fc.bias)
        return {"chunk": lambda: y.chunk(2, -1)[1].softmax(-1),
                "select": lambda: y.select(-1, 2),
                "stack": lambda: torch.stack([y[:, 0], y[:, 3]], -1),
                "cat": lambda: torch.cat([y, y * 2], -1),
                "max": lambda: torch.max(y, -1)[0],
                "amax": lambda: y.amax(-1),
                "mean": lambda: y.mean(-1, keepdim=True),
                "squeeze": lambda: y[:, :1].squeeze(1),
                "view": lambda: y[:, 2:3].view(-1)}[self.how]()


@pytest.mark.parametrize("how", ["split", "chunk", "select", "stack", "cat", "max", "amax", "mean",
                                 "squeeze", "view", "again", "twice", "len", "functional"])
def test_what_a_head_does_with_its_scores_converts_exactly(how):
    dense_equals_crops(Heads(how), (1, 5, 5), (9, 11))
    fcconv.receptive_field(Heads(how), (1, 5, 5))   # and has its field


class PlainSubclass(nn.Linear):
    pass


class OwnForward(nn.Linear):
    def forward(self, x):
        return super().forward(x) * 2


def test_a_linear_subclass_converts_and_one_with_its_own_forward_is_followed_inside():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), PlainSubclass(18, 3))
    dense_equals_crops(model, (1, 5, 5), (9, 8))
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), OwnForward(18, 3))
    dense_equals_crops(model, (1, 5, 5), (9, 8))
    with pytest.raises(ValueError, match="whose forward is its own, not nn.Linear's"):
        linear_to_conv(OwnForward(18, 3), (2, 3, 3))


class SqueezedPool(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how, self.c, self.fc = how, nn.Conv2d(3, 8, 5), nn.Linear(8, 5)

    def forward(self, x):
        y = self.c(x)
        if self.how == "squeeze":    # after a pool to 1x1 (an identity at the training size)
            return self.fc(F.adaptive_avg_pool2d(y, 1).squeeze(-1).squeeze(-1))
        return self.fc(y.mean((2, 3)))   # over a 1x1 map: nothing is pooled


@pytest.mark.parametrize("how", ["squeeze", "mean"])
def test_shape_only_ops_on_a_1x1_map_convert_exactly(how):
    dense_equals_crops(SqueezedPool(how), (3, 5, 5), (9, 12))


def test_the_input_shape_takes_the_forms_trace_takes():
    lenet = seeded(fcconv.lenet5())
    x = torch.randn(1, 1, 40, 36, dtype=torch.float64)
    want = convolutionalize(lenet, (1, 32, 32))(x)
    for shape in [(32, 32), 32, (1, 1, 32, 32), torch.tensor(32), np.int64(32)]:
        assert torch.equal(convolutionalize(lenet, shape)(x), want), shape


def test_a_compiled_model_is_refused_with_the_model_it_compiled():
    compiled = torch.compile(fcconv.lenet5().eval())
    with pytest.raises(ValueError, match=r"torch.compile wrapper.*model._orig_mod"):
        convolutionalize(compiled, (1, 32, 32))
    assert convolutionalize(compiled._orig_mod, (1, 32, 32)).jump == 4


def test_sliding_windows_on_a_conv3d_model_and_a_huge_stride():
    model = seeded(nn.Sequential(nn.Conv3d(1, 2, 2), nn.Flatten()))
    volume = torch.randn(1, 1, 4, 6, 5, dtype=torch.float64)
    maps = sliding_windows(model, volume, 3, (1, 2, 1))
    want = torch.stack([model(volume[:, :, d:d + 3, h:h + 3, w:w + 3])
                        for d in range(2) for h in range(0, 4, 2) for w in range(3)], -1)
    assert torch.equal(maps.reshape(1, -1, 12), want)
    image = torch.randn(1, 1, 7, 7, dtype=torch.float64)
    small = seeded(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()))
    assert torch.equal(sliding_windows(small, image, 5, 10**30),
                       small(image[:, :, :5, :5]).reshape(1, -1, 1, 1))


def test_shift_and_stitch_with_a_jump_per_axis():
    model = seeded(nn.Sequential(nn.Conv2d(1, 2, 3, stride=(2, 3)), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(2 * 3 * 2, 3)))
    fcn = convolutionalize(model, (1, 7, 7))
    assert fcn.jump == (2, 3)
    image = torch.randn(1, 1, 15, 17, dtype=torch.float64)
    for step in (1, (2, 1), (1, 3)):
        stitched = shift_and_stitch(fcn, image, step)
        assert rel_err(stitched, sliding_windows(model, image, 7, step)) < 1e-12


@pytest.mark.parametrize("conv,shape", [
    (nn.Conv2d(2, 3, 3, padding="same"), (2, 5, 5)),
    (nn.Conv2d(2, 3, 4, padding="same", dilation=(1, 2)), (2, 6, 7)),
    (nn.Conv2d(2, 3, 3, padding="valid"), (2, 5, 5)),
    (nn.Conv2d(4, 6, 3, groups=2), (4, 5, 5)),
    (nn.Conv2d(4, 6, 3, stride=2, padding=2, groups=2, padding_mode="reflect"), (4, 5, 6)),
    (nn.Conv2d(2, 3, 3, padding=2, padding_mode="circular"), (2, 2, 3)),
    (nn.Conv2d(2, 3, 3, padding=1, padding_mode="replicate"), (2, 5, 5))])
def test_conv_to_linear_for_groups_same_padding_and_every_padding_mode(conv, shape):
    conv = seeded(conv)
    x = torch.randn(3, *shape, dtype=torch.float64)
    assert rel_err(conv_to_linear(conv, shape)(x.flatten(1)), conv(x).flatten(1)) < 1e-12


class DropoutRate(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p, self.c, self.fc = p, nn.Conv2d(1, 2, 3), nn.Linear(32, 2)

    def forward(self, x):
        return self.fc(F.dropout(self.c(x), self.p).flatten(1))


def test_sliding_windows_checks_again_when_a_rate_or_a_mode_changes():
    """The walk's answer is kept (timing the reference times the crops), but not past a change."""
    model, image = DropoutRate(0.0).eval(), torch.randn(1, 1, 12, 12)
    assert sliding_windows(model, image, 6, 2).shape == (1, 2, 4, 4)
    model.p = 0.5
    with pytest.raises(ValueError, match=r"drops values at random \(p=0.5"):
        sliding_windows(model, image, 6, 2)
    model.p = 0.0
    model.c = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(0.3))   # a new layer, in training
    with pytest.raises(ValueError, match=r"Dropout 'c.1' is in training mode"):
        sliding_windows(model, image, 6, 2)


class Noisy(nn.Module):
    """Random numbers in forward: noise fx can follow, or a stochastic-depth mask it cannot."""

    def __init__(self, traceable):
        super().__init__()
        self.traceable, self.c, self.fc = traceable, nn.Conv2d(1, 2, 3), nn.Linear(32, 2)

    def forward(self, x):
        y = self.c(x)
        if self.traceable:
            y = y + torch.randn(2, 1, 1) * 0.1
        else:   # torch.rand of a size read off the tensor: fx cannot trace it
            y = y * (torch.rand(y.shape[0], 1, 1, 1) > 0.2).to(y.dtype)
        return self.fc(y.flatten(1))


@pytest.mark.parametrize("traceable", [True, False])
def test_random_numbers_in_forward_are_refused_by_both_ways(traceable):
    torch.manual_seed(0)   # (32 masks drawn twice agree with probability 4e-6; not with seed 0)
    model, image = Noisy(traceable).eval(), torch.randn(1, 1, 12, 12)
    with pytest.raises(ValueError, match="draws random numbers" if traceable else
                       "cannot trace this model"):
        convolutionalize(model, (1, 6, 6))
    with pytest.raises(ValueError, match="draws random numbers" if traceable else
                       "other scores each time it scores the same crop"):
        sliding_windows(model, image, 6, 2)


class MinibatchStat(nn.Module):
    """A critic's minibatch feature (ProGAN): the batch's mean map, appended to every example."""

    def __init__(self, over_batch="mean"):
        super().__init__()
        self.c, self.fc, self.over_batch = nn.Conv2d(3, 4, 3), nn.Linear(4 * 5 * 5 + 25, 2), over_batch

    def forward(self, x):
        y = self.c(x)
        stat = getattr(y, self.over_batch)(0, keepdim=True) if self.over_batch else y
        stat = stat.mean(1, keepdim=True).expand(y.size(0), 1, 5, 5)
        return self.fc(torch.cat([y, stat], 1).flatten(1))


@pytest.mark.parametrize("stat", ["mean", "std"])   # std alone: NaN
def test_sliding_windows_refuses_a_model_that_mixes_the_examples_of_a_batch(stat):
    """Two ways: the model on a batch of crops and on each crop alone disagree, and
    sliding_windows says so (convolutionalize refuses it too); per example, both agree."""
    image = torch.randn(1, 3, 12, 10, dtype=torch.float64)
    model = seeded(MinibatchStat(stat))
    crops = torch.stack([image[0, :, i:i + 7, j:j + 7] for i in range(6) for j in range(4)])
    assert not torch.allclose(model(crops)[:1], model(crops[:1]))
    with pytest.raises(ValueError, match="depend on the other crops in its batch"):
        sliding_windows(model, image, 7, 1)
    with pytest.raises(ValueError, match="over dims" if stat == "mean" else "'std'"):
        convolutionalize(model, (3, 7, 7))
    per_example = seeded(MinibatchStat(over_batch=""))
    scores = sliding_windows(per_example, image, 7, 1, batch_size=5)
    alone = torch.stack([per_example(c[None])[0] for c in crops], -1).reshape(1, 2, 6, 4)
    assert torch.allclose(scores, alone, atol=1e-12)


@pytest.mark.parametrize("graph", [True, False])
def test_a_converted_net_keeps_its_guard_and_attributes_through_deepcopy_and_torch_save(
        graph, tmp_path):
    """The copy and the reloaded net give the original's scores, refuse what it refuses with
    the same words, and say the same window, jump, changes and approximate."""
    model = seeded(nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2),
                                 nn.Conv2d(4, 4, 2, stride=2 if graph else 1), nn.Flatten(),
                                 nn.Linear(4 if graph else 16, 3)))
    fcn = convolutionalize(model, (3, 8, 8))
    assert isinstance(fcn, nn.Sequential) != graph
    torch.save(fcn, tmp_path / "fcn.pt")
    image = torch.randn(2, 3, 13, 12, dtype=torch.float64)
    for twin in (copy.deepcopy(fcn), torch.load(tmp_path / "fcn.pt", weights_only=False)):
        assert (twin.window, twin.jump, twin.changes, twin.approximate) == \
            (fcn.window, fcn.jump, fcn.changes, fcn.approximate)
        assert torch.equal(twin(image), fcn(image))
        for bad in (image[..., :5, :5], image.float()):
            with pytest.raises(ValueError) as want:
                fcn(bad)
            with pytest.raises(ValueError, match=re.escape(str(want.value))):
                twin(bad)
        assert torch.equal(shift_and_stitch(twin, image, 1), shift_and_stitch(fcn, image, 1))
        assert torch.allclose(twin(image), sliding_windows(model, image, 8, fcn.jump), atol=1e-12)
        copy.deepcopy(twin)(image)   # and again: a copy of a copy is still a converted net


class StdConv2d(nn.Conv2d):
    """timm's weight-standardised conv, simplified: a forward of its own."""

    def forward(self, x):
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         training=True, momentum=0., eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def test_conv_to_linear_refuses_a_conv_with_a_forward_of_its_own_as_linear_to_conv_does():
    """Two ways on a plain subclass (the same matrix as conv(x)); refused where forward differs,
    and so is the mirror case in linear_to_conv."""
    class Plain(nn.Conv2d):
        pass
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64)
    plain = seeded(Plain(2, 3, 3))
    assert rel_err(conv_to_linear(plain, (2, 5, 6))(x.flatten(1)), plain(x).flatten(1)) < 1e-12
    std = seeded(StdConv2d(2, 3, 3))
    assert rel_err(std(x), F.conv2d(x, std.weight, std.bias)) > 0.1   # it is not a plain conv
    with pytest.raises(ValueError, match="StdConv2d, whose forward is its own"):
        conv_to_linear(std, (2, 5, 6))

    class Scaled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)
    with pytest.raises(ValueError, match="Scaled, whose forward is its own"):
        linear_to_conv(Scaled(30, 3), (2, 3, 5))


@pytest.mark.parametrize("call", [
    lambda v: convolutionalize(small_sequential(), (1, 8, 8), share_weights=v),
    lambda v: linear_to_conv(nn.Linear(4, 3), (4,), share_weights=v),
    lambda v: convolutionalize(small_sequential(), (1, 8, 8), exact=v),
    lambda v: fcconv.conv_output_size(5, 2, 2, ceil_mode=v),
])
@pytest.mark.parametrize("value", ["no", 0, 1, None])
def test_every_bool_option_takes_only_a_bool(call, value):
    with pytest.raises(TypeError, match=f"must be True or False; got {re.escape(repr(value))}"):
        call(value)
    call(True), call(False)   # noqa: B018  (the bools themselves are taken)


@pytest.mark.parametrize("call,name", [
    (lambda: linear_to_conv(nn.LazyLinear(5), (2, 3, 4)), "linear"),
    (lambda: conv_to_linear(nn.LazyConv2d(3, 3), (2, 5, 5)), "conv"),
    (lambda: trace(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(3)), (1, 8, 8)),
     "layer '2'"),
    (lambda: convolutionalize(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(3)),
                              (1, 8, 8)), "layer '2'"),
])
def test_an_uninitialised_lazy_layer_is_named_with_what_to_do(call, name):
    with pytest.raises(ValueError, match=f"{name} is an uninitialised lazy layer .* run it once"):
        call()


# ------------------------------------------- refusals that name the right cause (round 22c)

def head_net(fwd):
    """A 7x7 classifier (conv 3->4 k3, Linear 100->4) with the given forward."""
    class Net(nn.Module):
        forward = fwd

        def __init__(self):
            super().__init__()
            self.c, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(100, 4)
    return seeded(Net())


NamedScores = __import__("collections").namedtuple("NamedScores", "scores")


@pytest.mark.parametrize("forward", [
    lambda s, x: s.fc(F.gelu(s.c(x), approximate="tanh").flatten(1)),   # keyword-only argument
    lambda s, x: s.fc(s.c(x).flatten(1)).max(-1).values,                 # max's values by name
], ids=["gelu approximate=", "max(-1).values"])
def test_models_that_run_convert_exactly_where_fcconv_knows_their_ops(forward):
    model = head_net(forward)
    fcn, _ = dense_equals_crops(model, (3, 7, 7), (12, 10))
    assert fcn.jump == 1


@pytest.mark.parametrize("forward, says, never", [
    (lambda s, x: s.fc(torch.addcmul(s.c(x), s.c(x), s.c(x), value=0.1).flatten(1)),
     "'addcmul' (addcmul) is not an op fcconv knows", "cannot run"),
    (lambda s, x: s.fc((s.c(x) + torch.arange(5, dtype=x.dtype)).flatten(1)),
     "holds 5 values along dim 3", "device"),
    (lambda s, x: s.fc(F.prelu(s.c(x), torch.tensor([0.25], dtype=x.dtype)).flatten(1)),
     "'prelu' (prelu) is not an op fcconv knows", "device"),
    (lambda s, x: s.fc(s.c(x).flatten(1)).T, "(.T) moves the batch axis", "pixels"),
    (lambda s, x: NamedScores(s.fc(s.c(x).flatten(1))), "packs tensors into a namedtuple",
     "not an op"),
], ids=["addcmul value=", "arange made in forward", "tensor made in forward", ".T",
        "namedtuple"])
def test_a_refusal_names_the_real_cause(forward, says, never):
    model = head_net(forward)
    model(torch.randn(2, 3, 7, 7, dtype=torch.float64))   # the model itself runs
    with pytest.raises(ValueError) as err:
        convolutionalize(model, (3, 7, 7))
    assert says in str(err.value) and never not in str(err.value), err.value


class Broadcast(nn.Module):
    """A pooled map (1x1, or one row) times a constant of the map's 5x5 size, or times the map
    itself: either way the result is 5x5, its cells copies of fewer cells."""

    def __init__(self, kernel, live):
        super().__init__()
        self.kernel, self.live = kernel, live
        self.c, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(100, 4)
        self.register_buffer("mask", torch.rand(1, 1, 5, 5) + 0.5)

    def forward(self, x):
        y = self.c(x)
        return self.fc((F.max_pool2d(y, self.kernel) * (y if self.live else self.mask)).flatten(1))


@pytest.mark.parametrize("kernel, live, small", [(5, False, "1x1"), ((5, 1), False, "1x5"),
                                                 ((5, 1), True, "1x5")])
def test_a_map_broadcast_to_more_cells_is_refused_with_both_sizes(kernel, live, small):
    """The field and the conversion say what grew to what, whether a constant or another
    branch made it grow (a constant used to be told as 'a 1x1 map over a 1x1 one')."""
    model = seeded(Broadcast(kernel, live))
    assert model(torch.randn(2, 3, 7, 7, dtype=torch.float64)).shape == (2, 4)  # it runs
    says = rf"'mul' \(line \d+ .*\) broadcasts a {small} map to 5x5: .* do not step across"
    with pytest.raises(ValueError, match=says):
        fcconv.receptive_field(model, (3, 7, 7))
    with pytest.raises(ValueError, match=says):
        convolutionalize(model, (3, 7, 7))


def test_forward_with_star_args_is_refused_as_such():
    class Many(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)

        def forward(self, *xs):
            return self.c(xs[0])
    for call in (lambda: convolutionalize(Many(), (3, 7, 7)), lambda: trace(Many(), (3, 7, 7))):
        with pytest.raises(ValueError, match=r"forward takes \*args .* one input tensor"):
            call()


def test_batch_norm_without_running_statistics_is_not_told_to_call_eval():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False),
                          nn.Flatten(), nn.Linear(100, 3)).eval()
    with pytest.raises(ValueError, match="even in eval mode") as err:
        convolutionalize(model, (3, 7, 7))
    assert "model.eval()" not in str(err.value)
    with pytest.raises(ValueError, match="even in eval mode"):
        sliding_windows(model, torch.randn(1, 3, 9, 9), 7, 1)


def test_weight_standardisation_in_the_trunk_is_a_weight_op_and_converts_exactly():
    """StdConv2d reshapes and normalises its weight, not the map: exact against the crops."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.fc = StdConv2d(3, 4, 3), nn.Linear(100, 3)

        def forward(self, x):
            return self.fc(self.c(x).flatten(1))
    dense_equals_crops(Net(), (3, 7, 7), (12, 10))


class CausalConv1d(nn.Conv1d):
    """WaveNet's causal conv, as a subclass (fcconv read only exact PyTorch types before)."""


class ChannelAttention(nn.Module):
    """ECA: a Conv1d over pooled channels inside a 2-D net, registered before its stem."""

    def __init__(self):
        super().__init__()
        self.eca = nn.Conv1d(1, 1, 3, padding=1, bias=False)
        self.stem, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(100, 2)

    def forward(self, x):
        y = self.stem(x)
        w = self.eca(y.mean((2, 3)).unsqueeze(1)).squeeze(1).sigmoid()
        return self.fc((y * w[:, :, None, None]).flatten(1))


def test_one_or_two_spatial_axes_come_from_every_layer_and_the_input_not_the_first_type():
    model = seeded(nn.Sequential(CausalConv1d(2, 3, 3), nn.Flatten(), nn.Linear(24, 2)))
    seq = torch.randn(2, 2, 25, dtype=torch.float64)
    fcn = convolutionalize(model, (2, 10))
    crops = torch.stack([model(seq[:, :, i:i + 10]) for i in range(16)], -1)
    assert torch.allclose(fcn(seq), crops, atol=1e-12)
    assert torch.allclose(sliding_windows(model, seq, 10, 1), crops, atol=1e-12)
    eca = seeded(ChannelAttention())
    image = torch.randn(1, 3, 12, 10, dtype=torch.float64)
    crops = torch.stack([eca(image[:, :, i:i + 7, j:j + 7]) for i in range(6) for j in range(4)],
                        -1).reshape(1, 2, 6, 4)
    assert torch.allclose(sliding_windows(eca, image, 7, 1), crops, atol=1e-12)


def test_a_transposed_map_flattened_converts_and_a_transposed_score_map_is_refused():
    """x.transpose(2, 3).flatten(1) is a flatten in (C, W, H) order: exact against the crops
    on a non-square image; a net whose score map would come out transposed is refused."""
    before_flatten = head_net(lambda s, x: s.fc(s.c(x).transpose(2, 3).flatten(1)))
    dense_equals_crops(before_flatten, (3, 7, 7), (12, 10))
    class OnInput(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.d = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 5)

        def forward(self, x):
            return self.d(self.c(x.transpose(2, 3)))
    with pytest.raises(ValueError, match=r"axes \(1, 0\): H and W swapped"):
        convolutionalize(OnInput(), (3, 7, 7))
    assert fcconv.receptive_field(OnInput(), (3, 9, 7)).axes == (1, 0)
