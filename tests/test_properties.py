"""1,000 random small architectures: convolutionalize equals sliding windows, or refuses clearly;
receptive_field equals what autograd says reaches a cell, or refuses clearly.

Each architecture mixes what tutorials write: nn.Sequential with one ReLU object reused, custom
forwards with F.conv2d / F.max_pool2d / F.avg_pool2d, residual blocks, stride, padding, dilation,
ceil_mode, Conv1d nets, flatten as nn.Flatten / x.flatten(1) / x.view / permute-then-flatten.
A refusal is allowed only where the architecture has something that cannot slide (global mean,
adaptive pooling that is not an identity, a ceil-mode window hanging off the map); anything else
must convert, and then match the reference in float64. Nets and images are tiny: 1,000 of them
take well under a minute on one core.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcconv import convolutionalize, receptive_field, sliding_windows
from fcconv.formulas import conv_output_size

ARCHITECTURES = 1000
CHUNKS = 4
TOL = 1e-10


class RandomNet(nn.Module):
    """A classifier built from a spec: trunk ops, a flatten, one or two Linears.

    ``probe=True`` builds the same geometry for receptive-field checks: average instead of max
    pooling, no ReLU, positive weights, so that every pixel in a window has a non-zero gradient.
    """

    def __init__(self, spec: dict, probe: bool = False):
        super().__init__()
        self.spec, self.probe, self.nd = spec, probe, spec["nd"]
        self.mods = nn.ModuleList()
        self.ops: list[tuple] = []
        c = spec["channels"]
        shared_relu = nn.ReLU()
        conv = (nn.Conv1d, nn.Conv2d)[self.nd - 1]
        for i, op in enumerate(spec["trunk"]):
            kind = op[0]
            if kind == "conv":
                _, out, k, s, p, d, functional = op
                if functional:
                    w = nn.Parameter(torch.empty(out, c, *(k,) * self.nd))
                    self.register_parameter(f"w{i}", w)
                    self.ops.append(("fconv", f"w{i}", s, p, d))
                else:
                    self.ops.append(("mod", self._add(conv(c, out, k, s, p, d))))
                c = out
            elif kind == "pool":
                _, mode, k, s, p, ceil, functional = op
                mode = "avg" if probe else mode
                if functional:
                    self.ops.append(("fpool", mode, k, s, p, ceil))
                else:
                    cls = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d,
                           ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}[mode, self.nd]
                    self.ops.append(("mod", self._add(cls(k, s, p, ceil_mode=ceil))))
            elif kind == "relu" and not probe:
                self.ops.append(("mod", self._add(shared_relu)) if op[1] else ("frelu",))
            elif kind == "res":  # two branches with the same output shape, added
                _, out, s, padded = op
                a = self._add(conv(c, out, 3, s, 1 if padded else 0))
                b = self._add(conv(c, out, 1 if padded else 3, s, 0))
                self.ops.append(("res", a, b))
                c = out
            elif kind == "bn" and not probe:  # op[1]: left in training mode (batch statistics)
                bn = (nn.BatchNorm1d, nn.BatchNorm2d)[self.nd - 1](c)
                bn.stay_in_training = op[1]
                self.ops.append(("mod", self._add(bn)))
            elif kind == "mean":
                self.ops.append(("mean",))
            elif kind == "adaptive":
                pool = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)[self.nd - 1](op[1])
                self.ops.append(("mod", self._add(pool)))
        self.channels_out = c
        self.head = None

    def _add(self, module: nn.Module) -> int:
        for i, m in enumerate(self.mods):
            if m is module:
                return i
        self.mods.append(module)
        return len(self.mods) - 1

    def build_head(self, fmap: tuple[int, ...]) -> RandomNet:
        hidden = self.spec["hidden"]
        dims = [math.prod(fmap), *hidden, self.spec["classes"]]
        self.head = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        return self

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        nd = self.nd
        for op in self.ops:
            if op[0] == "mod":
                x = self.mods[op[1]](x)
            elif op[0] == "fconv":
                _, name, s, p, d = op
                x = (F.conv1d, F.conv2d)[nd - 1](x, getattr(self, name), None, s, p, d)
            elif op[0] == "fpool":
                _, mode, k, s, p, ceil = op
                if mode == "max":
                    x = (F.max_pool1d, F.max_pool2d)[nd - 1](x, k, s, p, ceil_mode=ceil)
                else:
                    x = (F.avg_pool1d, F.avg_pool2d)[nd - 1](x, k, s, p, ceil_mode=ceil)
            elif op[0] == "frelu":
                x = F.relu(x)
            elif op[0] == "res":
                x = self.mods[op[1]](x) + self.mods[op[2]](x)
            elif op[0] == "mean":
                x = x.mean(tuple(range(2, 2 + nd)), keepdim=True)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trunk(x)
        flatten = self.spec["flatten"]
        if flatten == "module":
            x = nn.functional.dropout(x.flatten(1), 0.0, self.training)
        elif flatten == "view":
            x = x.view(x.size(0), -1)
        elif flatten == "hwc":
            x = x.permute(0, *range(2, 2 + self.nd), 1).flatten(1)
        else:
            x = torch.flatten(x, 1)
        for i, fc in enumerate(self.head):
            x = fc(x)
            if i < len(self.head) - 1 and not self.probe:
                x = F.relu(x)
        return x


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: with two threads on a busy machine each conv waits milliseconds for the
    other thread; one thread runs it in microseconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_spec(rng: random.Random) -> dict:
    nd = 1 if rng.random() < 0.15 else 2
    trunk = []
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        if r < 0.4:
            k = rng.randint(1, 3)
            trunk.append(("conv", rng.randint(1, 3), k, rng.choice([1, 1, 2]),
                          rng.choice([0, 0, 0, 1]), rng.choice([1, 1, 2]), rng.random() < 0.4))
        elif r < 0.65:
            k = rng.randint(1, 3)
            trunk.append(("pool", rng.choice(["max", "avg"]), k, rng.randint(1, 3),
                          rng.choice([0, 0, 0, k // 2]), rng.random() < 0.2, rng.random() < 0.5))
        elif r < 0.85:
            trunk.append(("relu", rng.random() < 0.6))
        else:
            trunk.append(("res", rng.randint(1, 3), rng.choice([1, 2]), rng.random() < 0.3))
    if rng.random() < 0.08:
        trunk.insert(rng.randint(0, len(trunk)), ("bn", rng.random() < 0.5))
    if rng.random() < 0.05:
        trunk.append(("mean",))
    if rng.random() < 0.05:
        trunk.append(("adaptive", rng.randint(1, 2)))
    return {"nd": nd, "channels": rng.randint(1, 2), "trunk": trunk,
            "flatten": rng.choice(["module", "view", "hwc", "function"]),
            "hidden": [rng.randint(2, 4)] if rng.random() < 0.6 else [],
            "classes": rng.randint(1, 3), "size": rng.randint(4, 12), "extra": rng.randint(0, 9)}


def build(spec: dict, probe: bool, seed: int):
    """(model, input_shape) in float64 eval mode, or None where the size is too small."""
    torch.manual_seed(seed)
    net = RandomNet(spec, probe)
    shape = (spec["channels"], *(spec["size"],) * spec["nd"])
    try:
        with torch.no_grad():
            fmap = net.double().eval().trunk(torch.zeros(1, *shape, dtype=torch.float64)).shape[1:]
    except RuntimeError:
        return None
    net.build_head(tuple(fmap)).double().eval()
    for m in net.modules():
        m.train(getattr(m, "stay_in_training", False))
    for p in net.parameters():
        with torch.no_grad():
            p.uniform_(0.1, 1.0) if probe else p.normal_(0, 0.5)
    return net, shape


def must_refuse(spec: dict, shape) -> bool:
    """Whether the spec has something that cannot slide at this size."""
    nd, size = spec["nd"], spec["size"]
    for op in spec["trunk"]:
        if op[0] == "conv":
            _, _, k, s, p, d, _ = op
            size = conv_output_size(size, k, s, p, d)
        elif op[0] == "pool":
            _, _, k, s, p, ceil, _ = op
            if ceil and size + 2 * p < k or ceil and \
                    conv_output_size(size, k, s, p, 1, True) != conv_output_size(size, k, s, p):
                return True
            size = conv_output_size(size, k, s, p, 1, ceil)
        elif op[0] == "res":
            size = conv_output_size(size, 3, op[2], 1 if op[3] else 0)
        elif op[0] in ("mean", "bn") and op[-1]:  # global pooling; BatchNorm in training mode
            return True
        elif op[0] == "adaptive" and op[1] != size:
            return True
    return nd not in (1, 2)


def padded(spec: dict) -> bool:
    return any((op[0] in ("conv", "pool") and op[4] > 0) or (op[0] == "res" and op[3])
               for op in spec["trunk"])


def rel_err(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def slide_1d(model, seq, window: int, stride: int) -> torch.Tensor:
    """The reference for Conv1d nets: the model on every window of a (N, C, L) sequence."""
    starts = range(0, seq.shape[2] - window + 1, stride)
    return torch.stack([model(seq[:, :, s:s + window]) for s in starts], dim=2)


def check_dense(spec, seed) -> str:
    built = build(spec, False, seed)
    if built is None:
        return "too small"
    model, shape = built
    try:
        fcn = convolutionalize(model, shape)
    except ValueError as err:
        assert must_refuse(spec, shape), f"refused a net that can slide: {err}\n{spec}"
        assert len(str(err)) > 30
        return "refused"
    assert not must_refuse(spec, shape), f"accepted a net that cannot slide: {spec}"
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        assert rel_err(fcn(x).flatten(1), model(x)) < TOL, spec
    big = torch.randn(1, shape[0], *(s + spec["extra"] + i for i, s in enumerate(shape[1:])),
                      generator=g, dtype=torch.float64)
    jump = fcn.jump
    with torch.no_grad():
        dense = fcn(big)
        crops = slide_1d(model, big, shape[1], jump) if spec["nd"] == 1 else \
            sliding_windows(model, big, shape[1:], jump)
    assert dense.shape == crops.shape, spec
    if not padded(spec):  # zero padding: crops see zeros where the big image has pixels
        assert rel_err(dense, crops) < TOL, spec
    return "exact"


class Trunk(nn.Module):
    """The layers before the flatten, as a model of their own: where all the geometry is."""

    def __init__(self, net: RandomNet):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.trunk(x)


def check_field(spec, seed) -> str:
    built = build(spec, True, seed)
    if built is None:
        return "too small"
    trunk = Trunk(built[0])
    shape = (built[1][0], *(s + spec["extra"] for s in built[1][1:]))
    try:
        rf = receptive_field(trunk, shape)
    except ValueError as err:
        assert len(str(err)) > 30
        return "refused"
    x = torch.rand(1, *shape, dtype=torch.float64, requires_grad=True)
    y = trunk(x)
    for cell in ((0,) * spec["nd"], tuple(s - 1 for s in y.shape[2:])):
        x.grad = None
        y[(0, 0, *cell)].backward(retain_graph=True)
        reach = x.grad[0].abs().sum(0)
        for axis, i in enumerate(cell):
            others = tuple(a for a in range(spec["nd"]) if a != axis)
            hit = torch.nonzero(reach.sum(others) if others else reach).flatten().tolist()
            first, last = rf.window(i, axis)
            if not hit:  # a cell computed from zero padding alone (a padded 1x1 conv's border)
                assert first < 0 or last >= shape[1 + axis], (spec, rf, cell)
                continue
            assert set(hit) <= set(rf.pixels(i, axis)), (spec, rf, cell, hit)
            if 0 <= first and last < shape[1 + axis]:  # its span less its gaps (at the border
                # a path through zero padding can be missing: those cells see less)
                assert hit == rf.pixels(i, axis), (spec, rf, cell, hit)
            if first >= 0:  # tight where the window's ends lie in the image
                assert min(hit) == first, (spec, rf, cell, hit)
            if last < shape[1 + axis]:
                assert max(hit) == last, (spec, rf, cell, hit)
    return "exact"


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_architectures_are_exact_or_refused(chunk):
    per = ARCHITECTURES // CHUNKS
    outcomes = {"exact": 0, "refused": 0, "too small": 0}
    fields = {"exact": 0, "refused": 0, "too small": 0}
    for seed in range(chunk * per, (chunk + 1) * per):
        spec = random_spec(random.Random(seed))
        outcomes[check_dense(spec, seed)] += 1
        fields[check_field(spec, seed)] += 1
    # The generator is tuned so that most nets are real checks, not refusals or misfits.
    assert outcomes["exact"] > per // 2, outcomes
    assert fields["exact"] > per // 2, fields
