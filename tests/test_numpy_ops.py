"""Plain-NumPy layers against torch.nn.functional, in float64 (relative error < 1e-12)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from fcconv import numpy_ops as npo


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def t(a):
    return torch.from_numpy(a)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 4), k=st.integers(1, 4), h=st.integers(1, 10),
       w=st.integers(1, 10), kh=st.integers(1, 4), kw=st.integers(1, 4), s=st.integers(1, 3),
       p=st.integers(0, 2), seed=st.integers(0, 2**31 - 1))
def test_conv2d_matches_torch(n, c, k, h, w, kh, kw, s, p, seed):
    if kh > h + 2 * p or kw > w + 2 * p:
        return
    rng = np.random.default_rng(seed)
    x, wt, b = rng.normal(size=(n, c, h, w)), rng.normal(size=(k, c, kh, kw)), rng.normal(size=k)
    ours = npo.conv2d(x, wt, b, stride=s, padding=p)
    assert rel_err(ours, F.conv2d(t(x), t(wt), t(b), stride=s, padding=p)) < 1e-12


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), d=st.integers(1, 50), k=st.integers(1, 20), seed=st.integers(0, 999))
def test_linear_matches_torch(n, d, k, seed):
    rng = np.random.default_rng(seed)
    x, wt, b = rng.normal(size=(n, d)), rng.normal(size=(k, d)), rng.normal(size=k)
    assert rel_err(npo.linear(x, wt, b), F.linear(t(x), t(wt), t(b))) < 1e-12


@settings(max_examples=30, deadline=None)
@given(h=st.integers(2, 12), w=st.integers(2, 12), k=st.integers(1, 3), s=st.integers(1, 3),
       seed=st.integers(0, 999))
def test_max_pool2d_and_relu_match_torch(h, w, k, s, seed):
    x = np.random.default_rng(seed).normal(size=(2, 3, h, w))
    if k > min(h, w):
        return
    assert np.array_equal(npo.max_pool2d(x, k, s), F.max_pool2d(t(x), k, s).numpy())
    assert np.array_equal(npo.relu(x), F.relu(t(x)).numpy())


def test_float32_stays_float32():
    x = np.ones((1, 2, 5, 5), np.float32)
    assert npo.conv2d(x, np.ones((3, 2, 3, 3), np.float32)).dtype == np.float32


@pytest.mark.parametrize("order", npo.ORDERS)
def test_fc_and_conv_weights_round_trip(order):
    wt = np.random.default_rng(0).normal(size=(6, 4 * 3 * 5))
    filters = npo.fc_to_conv_weight(wt, (4, 3, 5), order)
    assert filters.shape == (6, 4, 3, 5)
    assert np.array_equal(npo.conv_to_fc_weight(filters, order), wt)


@pytest.mark.parametrize("order", npo.ORDERS)
def test_fc_weight_in_any_flatten_order_is_the_filter_the_conv_needs(order):
    """A Linear that saw x with its axes in ``order`` (x.permute(0, 3, 2, 1) for "whc") computes
    what a conv with these filters computes on x as it is."""
    rng = np.random.default_rng(2)
    x, wt = rng.normal(size=(2, 4, 3, 5)), rng.normal(size=(6, 4 * 3 * 5))
    seen = x.transpose(0, *(1 + "chw".index(a) for a in order)).reshape(2, -1)
    conv = npo.conv2d(x, npo.fc_to_conv_weight(wt, (4, 3, 5), order))[:, :, 0, 0]
    assert np.allclose(conv, npo.linear(seen, wt), rtol=1e-12, atol=1e-12)


def test_fc_equals_conv_whose_kernel_covers_the_input():
    rng = np.random.default_rng(1)
    x, wt, b = rng.normal(size=(2, 8, 7, 7)), rng.normal(size=(5, 8 * 7 * 7)), rng.normal(size=5)
    fc = npo.linear(x.reshape(2, -1), wt, b)
    conv = npo.conv2d(x, npo.fc_to_conv_weight(wt, (8, 7, 7)), b)
    assert conv.shape == (2, 5, 1, 1)
    assert rel_err(conv[:, :, 0, 0], fc) < 1e-12


def test_keras_order_weight_needs_hwc():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 3, 4, 4))
    wt_keras = rng.normal(size=(6, 4 * 4 * 3))              # learned on channels-last flattening
    y_keras = npo.linear(x.transpose(0, 2, 3, 1).reshape(1, -1), wt_keras)
    right = npo.conv2d(x, npo.fc_to_conv_weight(wt_keras, (3, 4, 4), "hwc"))[:, :, 0, 0]
    wrong = npo.conv2d(x, npo.fc_to_conv_weight(wt_keras, (3, 4, 4), "chw"))[:, :, 0, 0]
    assert rel_err(right, y_keras) < 1e-12
    assert rel_err(wrong, y_keras) > 0.1


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 3), k=st.integers(1, 3), h=st.integers(1, 8), w=st.integers(1, 8),
       kh=st.integers(1, 3), kw=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 2),
       seed=st.integers(0, 999))
def test_conv_matrix_times_x_is_conv2d(c, k, h, w, kh, kw, s, p, seed):
    if kh > h + 2 * p or kw > w + 2 * p:
        return
    rng = np.random.default_rng(seed)
    x, wt = rng.normal(size=(1, c, h, w)), rng.normal(size=(k, c, kh, kw))
    m = npo.conv_matrix(wt, (c, h, w), stride=s, padding=p)
    expected = npo.conv2d(x, wt, stride=s, padding=p)
    assert m.shape == npo.conv_matrix_entries(wt.shape, (c, h, w), s, p)
    assert rel_err(m @ x.ravel(), expected.ravel()) < 1e-12


def test_conv_matrix_is_sparse_and_weight_shared():
    wt = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    m = npo.conv_matrix(wt, (1, 5, 5))
    assert m.shape == (9, 25)
    assert (m != 0).sum(axis=1).tolist() == [9] * 9            # each row: one copy of the filter
    assert all(sorted(row[row != 0]) == list(range(1, 10)) for row in m)


def test_conv_matrix_refuses_a_huge_matrix():
    with pytest.raises(ValueError, match="3,211,264 x 150,528"):
        npo.conv_matrix(np.zeros((64, 3, 3, 3)), (3, 224, 224), padding=1)


# --------------------------------------------------------------------------- clear errors, memory guards

@pytest.mark.parametrize("call,error,text", [
    (lambda: npo.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), padding=10**6), ValueError,
     "padding 3x3 by 1000000,1000000 would need 29.1 TiB of memory (the limit is 2.0 GiB)"),
    (lambda: npo.conv2d(np.ones((1, 1, 300, 300)), np.ones((1, 1, 100, 100)), padding=60),
     ValueError, "patches of 1x100x100 would need"),
    (lambda: npo.conv2d(np.ones((1, 3, 600, 600), np.float32), np.ones((1000, 3, 1, 1), np.float32)),
     ValueError, "the output of 1x1000x600x600 (and its copy) would need 2.7 GiB"),
    (lambda: npo.conv2d(np.ones((1, 64, 400, 400)), np.ones((600, 64, 3, 3))), ValueError,
     "this call would hold 2.1 GiB at once (the 158,404 patches of 64x3x3 696.1 MiB, the output "
     "of 1x600x398x398 (and its copy) 1.4 GiB; the limit is 2.0 GiB)"),
    (lambda: npo.linear(np.ones((100_000, 10)), np.ones((2_000, 10))), ValueError,
     "the output of 100000x2000 (and its copy with the bias) would need 3.0 GiB"),
    (lambda: npo.max_pool2d(np.ones((1, 1, 3, 3)), 2, 0), ValueError, "stride must be >= 1"),
    (lambda: npo.conv2d(np.ones((1, 1, 3, 3)), np.ones((2, 1, 3, 3)), np.ones(3)), ValueError,
     "bias must have one entry per output channel, (2,); got shape (3,)"),
    (lambda: npo.linear(np.ones((1, 3)), np.ones((2, 3)), np.ones(3)), ValueError,
     "bias must have one entry per output channel, (2,); got shape (3,)"),
    (lambda: npo.relu("abc"), TypeError, "x must be a NumPy array of numbers; got str"),
    (lambda: npo.fc_to_conv_weight(np.ones((2, 18)), "233"), TypeError, "got '233' (str)"),
    (lambda: npo.fc_to_conv_weight(np.ones((2, 18)), (2, 3.9, 3)), TypeError,
     "in_shape[1] must be an int; got 3.9 (float)"),
    (lambda: npo.fc_to_conv_weight(np.ones((2, 18)), (True, 3, 6)), TypeError,
     "in_shape[0] must be an int; got True (bool)"),
    (lambda: npo.conv_matrix(np.ones((1, 1, 1, 1)), 3), TypeError, "in_shape must be a tuple"),
    # PyTorch gives (2, 0, 4, 4) here, not 4 maps: no answer to agree with, so a refusal
    (lambda: npo.conv2d(np.ones((2, 0, 6, 6)), np.ones((4, 0, 3, 3))), ValueError,
     "x has no channels (shape (2, 0, 6, 6)): a convolution over 0 channels has nothing to sum"),
])
def test_bad_arguments_get_a_clear_error(call, error, text):
    with pytest.raises(error) as info:
        call()
    assert text in str(info.value)


def test_conv_matrix_holds_only_its_matrix():
    """A 1x1 input under a 100x100 kernel padded by 99: 100,000,000 taps, a 78 KB matrix. The
    matrix is filled one tap at a time, so the peak is the matrix, not the taps."""
    import tracemalloc

    weight = np.random.default_rng(5).normal(size=(1, 1, 100, 100))
    tracemalloc.start()
    m = npo.conv_matrix(weight, (1, 1, 1), padding=99)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert m.shape == (100 * 100, 1) and peak < 2 * m.nbytes + 2**20
    x = np.ones((1, 1, 1, 1))
    assert rel_err(m @ x.ravel(), npo.conv2d(x, weight, padding=99).ravel()) < 1e-12


def test_memory_guard_leaves_ordinary_sizes_alone():
    x, w = np.ones((2, 3, 64, 64)), np.ones((4, 3, 3, 3))
    assert npo.conv2d(x, w, padding=1).shape == (2, 4, 64, 64)
    assert npo.conv_matrix(w, (3, 8, 8), padding=1).shape == (4 * 8 * 8, 3 * 8 * 8)
