"""In-place ops in forward: followed exactly (the converted net equals the original on every
crop, float64; receptive_field equals autograd), or refused naming the op and its line."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcconv import convolutionalize, receptive_field, sliding_windows


class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(100, 3)
        self.register_buffer("mean", torch.rand(1, 3, 1, 1))

    def head(self, y):
        return self.fc(y.flatten(1))


def net(body):
    """A 7x7 classifier whose forward is Base's conv, ``body(self, y)`` on its map, the head."""
    class Net(Base):
        def forward(self, x):
            y = self.c(x)
            body(self, y)
            return self.head(y)
    return Net


class SubInputMean(Base):       # normalisation written in place on the input
    def forward(self, x):
        x.sub_(self.mean)
        return self.head(self.c(x))


class AddedInPlaceKeptUnderAnotherName(Base):   # z is y; y += 1 changes z too
    def forward(self, x):
        y = self.c(x)
        z = y
        y += 1
        return self.head(z)


class ChainOfChanges(Base):     # y.relu_().add_(1): each change on the result of the last
    def forward(self, x):
        y = self.c(x)
        y.relu_().mul_(2)
        torch.add(y, 1, out=y)
        return self.head(y)


def _setitem(s, y):
    y[:, :, 0] = 1.0


FOLLOWED = {
    "module inplace=True, result not assigned": net(lambda s, y: s.act(y)),
    "F.relu(y, inplace=True)": net(lambda s, y: F.relu(y, inplace=True)),
    "F.relu(y, True)": net(lambda s, y: F.relu(y, True)),
    "torch.relu_(y)": net(lambda s, y: torch.relu_(y)),
    "y.add_(1)": net(lambda s, y: y.add_(1)),
    "y.clamp_(0, 6)": net(lambda s, y: y.clamp_(0, 6)),
    "x.sub_(mean) on the input": SubInputMean,
    "y += 1 read as z": AddedInPlaceKeptUnderAnotherName,
    "relu_, mul_, out=": ChainOfChanges,
}
REFUSED = {
    "y[..., -1].zero_()": (net(lambda s, y: y[..., -1].zero_()), "zero_"),
    "y.narrow(3, 0, 1).mul_(2)": (net(lambda s, y: y.narrow(3, 0, 1).mul_(2)), "mul_"),
    "y.select(2, 0).fill_(1)": (net(lambda s, y: y.select(2, 0).fill_(1)), "fill_"),
    "y.copy_(y.flip(-1))": (net(lambda s, y: y.copy_(y.flip(-1))), "copy_"),
    "y[:, :, 0] = 1": (net(_setitem), "setitem"),
    "y.view(...).relu_() read as y": (net(lambda s, y: y.view(y.shape[0], -1).relu_()), "relu_"),
}


def built(cls):
    torch.manual_seed(0)
    return cls().double().eval()


def run_cloned(model, x):
    with torch.no_grad():
        return model(x.clone())     # some of these write into their input


@pytest.mark.parametrize("name", FOLLOWED)
def test_an_in_place_op_on_a_whole_tensor_is_followed_exactly(name):
    model = built(FOLLOWED[name])
    fcn = convolutionalize(model, (3, 7, 7))
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    assert torch.allclose(run_cloned(fcn, x).flatten(1), run_cloned(model, x), atol=1e-12)
    image = torch.randn(2, 3, 12, 10, dtype=torch.float64)
    dense = run_cloned(fcn, image)
    crops = sliding_windows(model, image.clone(), 7, fcn.jump)   # the reference: every crop
    assert dense.shape == crops.shape == (2, 3, 6, 4)
    assert torch.allclose(dense, crops, atol=1e-12)
    # The one in the middle of the ways: the original, unchanged by the conversion.
    assert torch.allclose(run_cloned(model, x), run_cloned(built(FOLLOWED[name]), x))


@pytest.mark.parametrize("name", REFUSED)
def test_an_in_place_op_through_a_view_or_by_position_is_refused_with_its_line(name):
    cls, op = REFUSED[name]
    model = built(cls)
    run_cloned(model, torch.randn(2, 3, 7, 7, dtype=torch.float64))   # the model itself runs
    with pytest.raises(ValueError) as err:
        convolutionalize(model, (3, 7, 7))
    assert f"'{op}" in str(err.value) and "line" in str(err.value), err.value
    assert "in place" in str(err.value)
    with pytest.raises(ValueError, match="in place"):
        receptive_field(model, (3, 7, 7))


class Trunk(nn.Module):
    """conv, an in-place op, conv: a map whose field autograd can check cell by cell."""

    def __init__(self, change):
        super().__init__()
        self.a, self.b, self.change = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 1, 3, stride=2), change

    def forward(self, x):
        y = self.a(x)
        self.change(y)
        return self.b(y)


@pytest.mark.parametrize("change,exact", [(lambda y: y.relu_(), True),
                                          (lambda y: y.mul_(0), True),
                                          (lambda y: y[..., 0].zero_(), False)])
def test_receptive_field_after_an_in_place_op_is_autograds_or_refused(change, exact):
    trunk = Trunk(change).double()
    with torch.no_grad():
        trunk.a.bias.fill_(5.0)            # relu_ keeps every cell: autograd sees every pixel
    if not exact:
        with pytest.raises(ValueError, match="in place"):
            receptive_field(trunk, (1, 11, 11))
        return
    rf = receptive_field(trunk, (1, 11, 11))
    x = torch.rand(1, 1, 11, 11, dtype=torch.float64, requires_grad=True)
    y = trunk(x)
    for i in range(y.shape[2]):
        grad, = torch.autograd.grad(y[0, 0, i, 1], x, retain_graph=True)
        rows = torch.nonzero(grad[0, 0].abs().sum(1)).flatten().tolist()
        if rows:   # y.mul_(0): no pixel reaches any cell, and the field is still its span
            assert rows == rf.pixels(i, 0)
        assert rf.window(i, 0) == (2 * i, 2 * i + 4)
