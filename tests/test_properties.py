"""1,000 random small architectures: convolutionalize equals sliding windows, or refuses clearly;
receptive_field equals what autograd says reaches each cell, border cells included, or refuses
clearly.

Each architecture mixes what tutorials write: nn.Sequential with one ReLU object reused, custom
forwards with F.conv2d / F.max_pool2d / F.avg_pool2d, residual blocks, stride, padding, dilation
(fields with gaps), ceil_mode, Conv1d nets, crops (negative padding), a conv called twice or two
convs with one weight, channels-last blocks (permute, LayerNorm or Linear over the channels,
permute back), tensors passed by keyword, numbers read off the input's size, dropout left in
training mode, BatchNorm on batch statistics, views that keep the map's shape (read off the
tensor, or written as numbers that fold the batch on a larger image), constants per channel (a
normalisation) or per position (of the whole map, a row or a column, anywhere in the trunk),
forward hooks and pre-hooks, flatten as nn.Flatten /
x.flatten(1) / x.view / channels-last or (W, H, C) permutes, a softmax on the flattened features,
a constant per class on the scores, and two heads returned as a tuple; some are built on the
meta device, some only partly. A refusal is allowed only where the architecture has something that cannot
slide (``must_refuse``) or has no field (``field_refused``), and must say so at length; anything
else must convert, and match the reference in float64. Nets and images are tiny.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from fcconv import _fx as fx_walk
from fcconv import convolutionalize, receptive_field, shift_and_stitch, sliding_windows, trace
from fcconv._fx import BATCH, OnShapes, call_on_meta, symbolic_trace
from fcconv.formulas import conv_output_size
from fcconv.shapes import run_on_meta

ARCHITECTURES = 1000
CHUNKS = 4
TOL = 1e-10


class RandomNet(nn.Module):
    """A classifier built from a spec: trunk ops, a flatten, one or two Linears (two heads).

    ``probe=True`` builds the same geometry for receptive-field checks: average instead of max
    pooling, no ReLU, LayerNorm or dropout, positive weights, so that every pixel in a window
    has a non-zero gradient.
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
                _, out, k, s, p, d, functional, keyword = op
                if functional:
                    w = nn.Parameter(torch.empty(out, c, *(k,) * self.nd))
                    self.register_parameter(f"w{i}", w)
                    self.ops.append(("fconv", f"w{i}", s, p, d, keyword))
                else:
                    self.ops.append(("mod", self._add(conv(c, out, k, s, p, d)), keyword))
                c = out
            elif kind == "pool":
                _, mode, k, s, p, ceil, functional = op
                mode = "avg" if probe else mode
                if functional:
                    self.ops.append(("fpool", mode, k, s, p, ceil))
                else:
                    cls = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d,
                           ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}[mode, self.nd]
                    self.ops.append(("mod", self._add(cls(k, s, p, ceil_mode=ceil)), False))
            elif kind == "relu" and not probe:
                self.ops.append(("mod", self._add(shared_relu), False) if op[1] else ("frelu",))
            elif kind == "res":  # two branches with the same output shape, added
                _, out, s, padded = op
                a = self._add(conv(c, out, 3, s, 1 if padded else 0))
                b = self._add(conv(c, out, 1 if padded else 3, s, 0))
                self.ops.append(("res", a, b))
                c = out
            elif kind == "twice":  # one conv called twice, or two convs sharing one weight
                first = conv(c, c, op[1])
                second = first if op[2] else conv(c, c, op[1])
                second.weight = first.weight
                self.ops += [("mod", self._add(first), False), ("mod", self._add(second), False)]
            elif kind == "crop":
                pad = (nn.ZeroPad1d, nn.ZeroPad2d)[self.nd - 1](-op[1])
                self.ops.append(("mod", self._add(pad), False))
            elif kind == "last":  # a channels-last block (2-D): permute, per-position ops, back
                self.ops.append(("last", self._add(nn.LayerNorm(c)), self._add(nn.Linear(c, c)),
                                 op[1]))
            elif kind == "size":
                self.ops.append(("size", op[1]))
            elif kind == "dropout" and not probe:
                self.ops.append(("mod", self._add(nn.Dropout(op[1])), False))
                self.mods[-1].stay_in_training = op[2]
            elif kind == "bn" and (not probe or op[1]):  # op[1]: left in training mode (batch
                # statistics: every value after it depends on every pixel of the batch)
                bn = (nn.BatchNorm1d, nn.BatchNorm2d)[self.nd - 1](c)
                bn.stay_in_training = op[1]
                self.ops.append(("mod", self._add(bn), False))
            elif kind == "mean":
                self.ops.append(("mean",))
            elif kind == "adaptive":
                pool = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)[self.nd - 1](op[1])
                self.ops.append(("mod", self._add(pool), False))
            elif kind == "view":   # the same shape, read off the tensor or as fixed numbers
                self.ops.append(("view", i, op[1]))
            elif kind == "const":  # (x - a) / b, per channel or per position: of the whole
                self.ops.append(("const", i, op[1], c))   # map, a row or a column
        self.fixed: dict[int, tuple] = {}   # a view's numbers, read at the training size
        self.channels_out = c
        self.head = None

    def _add(self, module: nn.Module) -> int:
        for i, m in enumerate(self.mods):
            if m is module:
                return i
        self.mods.append(module)
        return len(self.mods) - 1

    def build_head(self, fmap: tuple[int, ...]) -> RandomNet:
        dims = [math.prod(fmap), *self.spec["hidden"], self.spec["classes"]]
        self.head = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.second = nn.Linear(dims[-2], 2) if self.spec["heads"] == "two" else None
        self.register_buffer("class_scale", torch.rand(dims[-1]) + 0.5)  # one per class
        self.register_buffer("class_bias", torch.randn(dims[-1]))
        return self

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        nd, image = self.nd, x
        for op in self.ops:
            if op[0] == "mod":
                x = self.mods[op[1]](input=x) if op[2] else self.mods[op[1]](x)
            elif op[0] == "fconv":
                _, name, s, p, d, keyword = op
                fn = (F.conv1d, F.conv2d)[nd - 1]
                x = fn(input=x, weight=getattr(self, name), stride=s, padding=p, dilation=d) \
                    if keyword else fn(x, getattr(self, name), None, s, p, d)
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
            elif op[0] == "last":
                _, norm, linear, act = op
                y = x.permute(0, 2, 3, 1)
                if not self.probe:
                    y = self.mods[norm](y)
                    y = F.gelu(y) if act else torch.relu(y)
                x = self.mods[linear](y).permute(0, 3, 1, 2).contiguous()
            elif op[0] == "size":  # a number read off the input's size
                n = image.shape[-1]
                x = x * (n / 10) if self.probe or op[1] == "scale" else \
                    x.clamp(max=n / 10) if op[1] == "clamp" else F.leaky_relu(x, 1 / n)
            elif op[0] == "mean":
                x = x.mean(tuple(range(2, 2 + nd)), keepdim=True)
            elif op[0] == "view":
                _, i, pinned = op
                if pinned:
                    x = x.view(x.size(0), x.size(1), *(x.size(d) for d in range(2, 2 + nd)))
                else:  # numbers: on a larger map, -1 folds the extra pixels into the batch
                    if i not in self.fixed:   # (read once, at the training size)
                        self.fixed[i] = tuple(x.shape[1:])
                    x = x.view(-1, *self.fixed[i])
            elif op[0] == "const":
                _, i, per, c = op
                if not hasattr(self, f"b{i}"):   # made at the first call: the training size
                    shape = const_shape(per, c, tuple(x.shape[2:]))
                    self.register_buffer(f"a{i}", torch.rand(shape, dtype=x.dtype))
                    self.register_buffer(f"b{i}", torch.rand(shape, dtype=x.dtype) + 0.5)
                a, b = getattr(self, f"a{i}"), getattr(self, f"b{i}")
                x = x * b if self.probe else (x - a) / b
        return x

    def forward(self, x: torch.Tensor):
        x = self.trunk(x)
        flatten = self.spec["flatten"]
        if flatten == "module":
            x = nn.functional.dropout(x.flatten(1), 0.0, self.training)
        elif flatten == "view":
            x = x.contiguous().view(x.size(0), -1)  # (a channels-last block may leave strides)
        elif flatten == "hwc":
            x = x.permute(0, *range(2, 2 + self.nd), 1).flatten(1)
        elif flatten == "whc":  # MTCNN's R-Net: column by column
            x = x.permute(0, 3, 2, 1).flatten(1)
        elif flatten == "keyword":
            x = torch.flatten(input=x, start_dim=1)
        else:
            x = torch.flatten(x, 1)
        if self.spec["softmax_flat"]:  # (scaled down in the probe: no saturation, no zero grad)
            x = F.softmax(x * 1e-3 if self.probe else x, dim=1)
        for i, fc in enumerate(self.head):
            if i == len(self.head) - 1:
                hidden = x
            x = fc(x)
            if i < len(self.head) - 1 and not self.probe:
                x = F.relu(x)
        if self.spec["class_const"]:
            x = x * self.class_scale + self.class_bias
        if self.spec["heads"] == "two":
            return x, self.second(hidden)
        if self.spec["heads"] == "pick":  # MTCNN: the face probability, and the box
            return (x if self.probe else F.softmax(x, dim=1))[:, 0], x
        return x


def const_shape(per: str, channels: int, sides: tuple[int, ...]) -> tuple[int, ...]:
    """A constant's shape: one value per channel, per position of the map, per row (broadcast
    along W) or per column (a 1-D (W,) tensor, broadcast over everything before it)."""
    nd = len(sides)
    return {"channel": (channels, *(1,) * nd), "position": (1, 1, *sides),
            "row": (1, 1, sides[0], *(1,) * (nd - 1)), "column": (sides[-1],)}[per]


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
        if r < 0.36:
            k = rng.randint(1, 3)
            trunk.append(("conv", rng.randint(1, 3), k, rng.choice([1, 1, 2]),
                          rng.choice([0, 0, 0, 1, 2]), rng.choice([1, 1, 2, 3]),
                          rng.random() < 0.4, rng.random() < 0.2))
        elif r < 0.58:
            k = rng.randint(1, 3)
            trunk.append(("pool", rng.choice(["max", "avg"]), k, rng.randint(1, 3),
                          rng.choice([0, 0, 0, k // 2]), rng.random() < 0.2, rng.random() < 0.5))
        elif r < 0.74:
            trunk.append(("relu", rng.random() < 0.6))
        elif r < 0.86:
            trunk.append(("res", rng.randint(1, 3), rng.choice([1, 2]), rng.random() < 0.3))
        elif r < 0.90:
            trunk.append(("twice", rng.randint(1, 2), rng.random() < 0.5))
        elif r < 0.95:
            trunk.append(("crop", 1))
        elif nd == 2:
            trunk.append(("last", rng.random() < 0.5))
    extras = [("bn", 0.06, lambda: ("bn", rng.random() < 0.5)),
              ("size", 0.04, lambda: ("size", rng.choice(["clamp", "leaky", "scale"]))),
              ("dropout", 0.05, lambda: ("dropout", rng.choice([0.0, 0.5]), rng.random() < 0.7)),
              ("view", 0.06, lambda: ("view", rng.random() < 0.5)),
              ("const", 0.08, lambda: ("const", rng.choice(["channel", "channel", "position",
                                                            "row", "column"])))]
    for _, p, make in extras:
        if rng.random() < p:
            trunk.insert(rng.randint(0, len(trunk)), make())
    if rng.random() < 0.04:
        trunk.append(("mean",))
    if rng.random() < 0.04:
        trunk.append(("adaptive", rng.randint(1, 2)))
    if rng.random() < 0.03:
        trunk.insert(0, ("const", "position"))
    flattens = ["module", "view", "hwc", "function", "keyword"] + (["whc"] if nd == 2 else [])
    heads = rng.choice(["one"] * 8 + ["two", "pick"])
    return {"nd": nd, "channels": rng.randint(1, 2), "trunk": trunk,
            "flatten": rng.choice(flattens), "softmax_flat": rng.random() < 0.04,
            "hidden": [rng.randint(2, 4)] if rng.random() < 0.6 else [],
            "classes": rng.randint(2 if heads == "pick" else 1, 3), "heads": heads,
            "meta": rng.choice([True, "part"]) if rng.random() < 0.1 else False,
            "class_const": rng.random() < 0.06,
            "hook": rng.choice(["pre", "post"]) if rng.random() < 0.03 else "",
            "hook_on_layer": rng.random() < 0.5,
            "size": rng.randint(4, 12), "extra": rng.randint(0, 9)}


def build(spec: dict, probe: bool, seed: int, device: str = "cpu"):
    """(model, input_shape) in float64 eval mode, or None where the size is too small."""
    torch.manual_seed(seed)
    net = RandomNet(spec, probe)
    shape = (spec["channels"], *(spec["size"],) * spec["nd"])
    try:
        with torch.no_grad():
            fmap = net.double().eval().trunk(torch.zeros(1, *shape, dtype=torch.float64)).shape[1:]
    except RuntimeError:
        return None
    if 0 in fmap:  # a crop left nothing
        return None
    net.build_head(tuple(fmap)).double().eval()
    for m in net.modules():
        m.train(getattr(m, "stay_in_training", False))
    for p in net.parameters():
        with torch.no_grad():
            p.uniform_(0.1, 1.0) if probe else p.normal_(0, 0.5)
    if spec["hook"]:   # it changes nothing, but fcconv cannot know that: refused
        layer = net.mods[0] if spec["hook_on_layer"] and len(net.mods) else net
        layer.register_forward_pre_hook(lambda m, a: None) if spec["hook"] == "pre" else \
            layer.register_forward_hook(lambda m, a, out: None)
    if device == "meta" and spec["meta"] == "part":
        net.head.to(device)   # only some weights have no values
        return net, shape
    return net.to(device), shape


def walk_sizes(spec: dict, size: int):
    """(op, map size before it, map size after it) for each trunk op on a ``size`` input."""
    for op in spec["trunk"]:
        if op[0] == "conv":
            size = conv_output_size(size, *op[2:6])
        elif op[0] == "pool":
            _, _, k, s, p, ceil, _ = op
            yield op, size, conv_output_size(size, k, s, p, 1, ceil)
            size = conv_output_size(size, k, s, p, 1, ceil)
            continue
        elif op[0] == "adaptive":
            yield op, size, op[1]
            size = op[1]
            continue
        elif op[0] == "res":
            size = conv_output_size(size, 3, op[2], 1 if op[3] else 0)
        elif op[0] == "twice":
            size = size - 2 * (op[1] - 1)
        elif op[0] == "crop":
            size -= 2 * op[1]
        elif op[0] == "mean":
            yield op, size, 1
            size = 1
            continue
        yield op, size, size


def must_refuse(spec: dict, values: bool = True) -> str:
    """What the spec has that cannot slide at its size ('' if nothing). ``values``: the model
    has weights (not the meta device), so randomness and batch statistics matter."""
    if spec["hook"]:
        return "hook"
    for op, before, after in walk_sizes(spec, spec["size"]):
        if after < 1:
            return "empty"  # a crop past a small map: the input is too small for it
        if op[0] == "pool":
            _, _, k, s, p, ceil, _ = op
            if ceil and after != floor_size(before, k, s, p):
                return "ceil_mode"
        elif op[0] == "size" or op[0] == "mean" and before > 1:  # (a mean over 1x1: nothing)
            return op[0]
        elif values and op[0] == "bn" and op[1] or values and op[0] == "dropout" and \
                op[1] > 0 and op[2]:
            return "training mode"
        elif op[0] == "adaptive" and op[1] != before:
            return "adaptive"
        elif op[0] == "view" and not op[1]:
            return "view"      # -1 and fixed numbers: the batch folds on a larger image
        elif op[0] == "const" and op[1] != "channel" and before > 1:
            return "constant"  # values per position: a larger image has more positions
    return "softmax" if spec["softmax_flat"] else ""


def floor_size(size, k, s, p) -> int:
    """Windows that fit whole; 0 where not one does (a ceil-mode pool can still give one)."""
    return (size + 2 * p - k) // s + 1 if size + 2 * p >= k else 0


def field_refused(spec: dict, size: int) -> str:
    """What makes the trunk's cells see no single span on a ``size`` input ('' if nothing):
    a hook, BatchNorm on batch statistics, an adaptive pool with windows of unequal sizes; a
    view or a per-position constant written for the training size, on a larger one."""
    if spec["hook"]:
        return "hook"
    trained = walk_sizes(spec, spec["size"])
    for (op, before, after), (_, then, _) in zip(walk_sizes(spec, size), trained):
        if after < 1:
            return "empty"
        if op[0] == "adaptive" and before % op[1]:
            return "adaptive"
        if op[0] == "bn" and op[1]:
            return "batch statistics"
        if before != then and op[0] == "view" and not op[1] or \
                before != then != 1 and op[0] == "const" and op[1] != "channel":
            return "written for the training size"   # (a constant of one value broadcasts)
    return ""


def padded(spec: dict) -> bool:
    return any((op[0] in ("conv", "pool") and op[4] > 0) or (op[0] == "res" and op[3])
               for op in spec["trunk"])


def heads(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def rel_err(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def slide_1d(model, seq, window: int, stride: int):
    """The reference for Conv1d nets: the model on every window of a (N, C, L) sequence."""
    starts = range(0, seq.shape[2] - window + 1, stride)
    scores = [heads(model(seq[:, :, s:s + window])) for s in starts]
    return tuple(torch.stack([s[h].reshape(len(seq), -1) for s in scores], dim=2)
                 for h in range(len(scores[0])))


def check_dense(spec, seed) -> str:
    built = build(spec, False, seed)
    if built is None:
        return "too small"
    model, shape = built
    why = must_refuse(spec)
    try:
        fcn = convolutionalize(model, shape)
    except ValueError as err:
        assert why, f"refused a net that can slide: {err}\n{spec}"
        assert len(str(err)) > 30
        if why == "training mode" and spec["nd"] == 2:  # the reference itself: crops in a batch
            # differ from each crop alone, or at random
            crop = torch.zeros(1, *shape, dtype=torch.float64)
            with pytest.raises(ValueError, match="training mode.*model.eval()"):
                sliding_windows(model, crop, shape[1:], 1)
        check_meta(spec, seed, None)
        return "refused"
    assert not why, f"accepted a net that cannot slide ({why}): {spec}"
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for got, want in zip(heads(fcn(x)), heads(model(x)), strict=True):
            assert rel_err(got.reshape(want.shape), want) < TOL, spec
    big = torch.randn(1, shape[0], *(s + spec["extra"] + i for i, s in enumerate(shape[1:])),
                      generator=g, dtype=torch.float64)
    jump = fcn.jump
    with torch.no_grad():
        dense = heads(fcn(big))
        crops = heads(slide_1d(model, big, shape[1], jump) if spec["nd"] == 1 else
                      sliding_windows(model, big, shape[1:], jump))
        for d, c in zip(dense, crops, strict=True):
            assert d.numel() == c.numel() and d.shape[-1] == c.shape[-1], spec
            if not padded(spec):  # zero padding: crops see zeros where the big image has pixels
                assert rel_err(d.reshape(c.shape), c) < TOL, spec
        if not padded(spec) and spec["nd"] == 2 and 1 < jump <= 4 and seed % 3 == 0:
            step = jump // 2 if jump % 2 == 0 else 1  # at the net's own jump, gaps or none
            stitched = heads(shift_and_stitch(fcn, big, step))
            for s, c in zip(stitched, heads(sliding_windows(model, big, shape[1:], step))):
                assert rel_err(s.reshape(c.shape), c) < TOL, spec
    check_meta(spec, seed, dense)
    return "exact"


def check_meta(spec, seed, dense) -> None:
    """The same net on the meta device: it converts where the real one does (or where only
    its values stood in the way), gives the same shapes, and refuses a real image."""
    if not spec["meta"]:
        return
    model, shape = build(spec, False, seed, device="meta")
    why = must_refuse(spec, values=False) or ("partly meta" if spec["meta"] == "part" else "")
    try:
        fcn = convolutionalize(model, shape)
    except ValueError as err:
        assert why and len(str(err)) > 30, (err, spec)
        assert why != "partly meta" or "partly on the meta device" in str(err), (err, spec)
        return
    assert not why, spec
    size = (s + spec["extra"] + i for i, s in enumerate(shape[1:]))
    out = heads(fcn(torch.empty(1, shape[0], *size, device="meta", dtype=torch.float64)))
    if dense is not None:
        assert [o.shape for o in out] == [d.shape for d in dense], spec
    with pytest.raises(ValueError, match="is on the meta device"):
        fcn(torch.zeros(1, *shape, dtype=torch.float64))


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
    # A constant per position fits only the training size: there its field must be exact.
    extra = 0 if any(op[0] == "const" and op[1] != "channel" for op in spec["trunk"]) else \
        spec["extra"]
    shape = (built[1][0], *(s + extra for s in built[1][1:]))
    why = field_refused(spec, shape[1])
    try:
        rf = receptive_field(trunk, shape)
    except ValueError as err:
        assert why and len(str(err)) > 30, (err, spec)
        return "refused"
    assert not why, f"a field for a trunk that has none ({why}): {spec}"
    x = torch.rand(1, *shape, dtype=torch.float64, requires_grad=True)
    y = trunk(x)
    middle = [s // 2 for s in y.shape[2:]]
    for axis, n in enumerate(y.shape[2:]):   # every cell along each axis, border cells too
        for i in range(n):
            cell = (*middle[:axis], i, *middle[axis + 1:])
            grad, = torch.autograd.grad(y[(0, 0, *cell)], x, retain_graph=True)
            seen_by(grad[0], rf, cell, spec)
    if spec["softmax_flat"] or spec["heads"] != "one" or spec["flatten"] in ("hwc", "whc") or \
            spec["class_const"] or seed % 4 == 0:  # the whole model on a quarter, and on every
        check_whole_model(built[0], built[1], spec)  # head it could get wrong
    return "exact"


def seen_by(grad, rf, cell, spec) -> None:
    """The pixels autograd says reach ``cell`` are exactly those ``rf.pixels`` lists along each
    axis, and lie in the span ``rf.window`` gives; a cell that sees no pixel along one axis
    (only zero padding) sees none at all."""
    reach = grad.abs().sum(0)
    said = [rf.pixels(i, axis) for axis, i in enumerate(cell)]
    if not all(said):
        assert not reach.any(), (spec, rf, cell, said)
        return
    for axis, i in enumerate(cell):
        others = tuple(a for a in range(spec["nd"]) if a != axis)
        hit = torch.nonzero(reach.sum(others) if others else reach).flatten().tolist()
        assert hit == said[axis], (spec, rf, cell, hit, said[axis])
        first, last = rf.window(i, axis)
        assert first <= hit[0] and hit[-1] <= last, (spec, rf, cell, hit)


def check_whole_model(model, shape, spec) -> None:
    """Each head's score (one value per example) sees the field receptive_field gives for the
    whole model at its training size: the flattened map's, widened by the first Linear (or by
    a softmax over the features) to the whole map."""
    if field_refused(spec, spec["size"]) or must_refuse(spec) in ("mean", "adaptive", "empty") or \
            spec["softmax_flat"] and model.head[0].in_features == 1:  # a softmax of 1: constant
        return
    rf = receptive_field(model, shape)
    x = torch.rand(1, *shape, dtype=torch.float64, requires_grad=True)
    for head in heads(model(x)):
        x.grad = None
        head.reshape(-1)[0].backward(retain_graph=True)
        seen_by(x.grad[0], rf, (0,) * spec["nd"], spec)


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


# ------------------------------------ max pools of any geometry, constants per position (22c)

class PoolAndConstant(nn.Module):
    """conv -> max pool (kernel, stride, padding, dilation, ceil_mode) -> conv 2x2, with a
    constant per channel, position, row or column multiplied or added before or after the
    pool, and a Linear on the flattened map if ``features``."""

    def __init__(self, spec: dict, features: int = 0):
        super().__init__()
        self.spec = spec
        self.c1, self.c2 = nn.Conv2d(2, 3, spec["k1"]), nn.Conv2d(3, 3, 2)
        self.pool = nn.MaxPool2d(*spec["pool"][:4], ceil_mode=spec["pool"][4])
        self.fc = nn.Linear(features, 2) if features else None

    def constant(self, y):
        if not hasattr(self, "b"):   # made at the first call: the training size
            self.register_buffer("b", torch.rand(const_shape(self.spec["per"], 3,
                                                             tuple(y.shape[2:])), dtype=y.dtype))
            self.side = tuple(y.shape[2:])
        return y * (self.b + 0.5) if self.spec["mul"] else y + self.b

    def forward(self, x):
        y = self.c1(x)
        y = self.constant(y) if self.spec["before"] else y
        y = F.max_pool2d(y, *self.spec["pool"][:4], ceil_mode=self.spec["pool"][4]) \
            if self.spec["functional"] else self.pool(y)
        y = self.c2(y if self.spec["before"] else self.constant(y))
        return y if self.fc is None else self.fc(y.flatten(1))


def pool_spec(rng: random.Random) -> dict:
    k = rng.randint(1, 3)
    return {"k1": rng.randint(1, 2), "size": (rng.randint(6, 10), rng.randint(6, 10)),
            "pool": (k, rng.randint(1, 3), rng.randint(0, k // 2), rng.choice([1, 2]),
                     rng.random() < 0.7),
            "per": rng.choice(["channel", "channel", "position", "row", "column"]),
            "mul": rng.random() < 0.5, "before": rng.random() < 0.5,
            "functional": rng.random() < 0.5}


def reach_pixel_by_pixel(net, shape) -> dict:
    """{output cell: the (row, col) pixels it depends on}, from the model itself: with weights
    in [0.1, 1], constants in [0, 1.5] and an input in [0, 1), no value reaches 20, and a pixel
    raised by 1000 lifts every conv cell that reads it by at least 50: that cell wins each
    max-pool window it is in, so exactly the output cells that depend on the pixel change.
    (Autograd at one input reaches only each window's maximum.)"""
    x = torch.rand(1, *shape, dtype=torch.float64)
    reach: dict = {}
    with torch.no_grad():
        base = net(x)[0].sum(0)
        for p in range(shape[1]):
            for q in range(shape[2]):
                lifted = x.clone()
                lifted[0, :, p, q] += 1000
                for cell in torch.nonzero(net(lifted)[0].sum(0) != base).tolist():
                    reach.setdefault(tuple(cell), set()).add((p, q))
    return reach


def pool_refusal(spec: dict, side: tuple[int, int]) -> str:
    """Why convolutionalize must refuse ('' if nothing): a constant with more than one value
    per position, or a ceil-mode window that hangs off the map."""
    if spec["per"] != "channel" and math.prod(const_shape(spec["per"], 3, side)) > 1:
        return "constant"
    k, s, p, d, ceil = spec["pool"]
    fmap = torch.zeros(1, 1, *(n - spec["k1"] + 1 for n in spec["size"]))
    try:   # PyTorch itself: does ceil_mode give more windows than whole windows do?
        whole = F.max_pool2d(fmap, k, s, p, d).shape
    except RuntimeError:
        whole = None
    return "ceil_mode" if ceil and F.max_pool2d(fmap, k, s, p, d, ceil_mode=True).shape != whole \
        else ""


def test_max_pools_and_constants_per_position_field_pixel_by_pixel_and_crops():
    """Max pools with every padding, dilation, stride and ceil_mode, under constants per
    position of any shape: receptive_field lists, cell by cell, exactly the pixels the model
    itself depends on; convolutionalize equals the crops, or refuses what cannot slide."""
    outcomes = {"exact": 0, "refused": 0}
    for seed in range(60):
        spec = pool_spec(random.Random(seed))
        shape = (2, *spec["size"])
        torch.manual_seed(seed)
        net = PoolAndConstant(spec).double().eval()
        try:
            out = net(torch.zeros(1, *shape, dtype=torch.float64))
        except RuntimeError:
            continue   # a kernel larger than the map
        for p in net.parameters():
            with torch.no_grad():
                p.uniform_(0.1, 1.0)
        rf = receptive_field(net, shape)
        reach = reach_pixel_by_pixel(net, shape)
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                said = {(p, q) for p in rf.pixels(i, 0) for q in rf.pixels(j, 1)}
                assert said == reach.get((i, j), set()), (spec, rf, (i, j))
        model = PoolAndConstant(spec, out[0].numel()).double().eval()
        model(torch.zeros(1, *shape, dtype=torch.float64))   # (makes its constant)
        for p in model.parameters():
            with torch.no_grad():
                p.normal_(0, 0.5)
        why = pool_refusal(spec, net.side)
        try:
            fcn = convolutionalize(model, shape)
        except ValueError as err:
            assert why and len(str(err)) > 30, (err, spec)
            outcomes["refused"] += 1
            continue
        assert not why, f"accepted a net that cannot slide ({why}): {spec}"
        x = torch.randn(2, *shape, dtype=torch.float64)
        big = torch.randn(1, 2, shape[1] + 5, shape[2] + 3, dtype=torch.float64)
        with torch.no_grad():
            assert rel_err(fcn(x).reshape(2, -1), model(x)) < TOL, spec
            dense, crops = fcn(big), sliding_windows(model, big, shape[1:], fcn.jump)
        assert dense.shape == crops.shape, spec
        if spec["pool"][2] == 0:   # padding: crops see it where the big image has pixels
            assert rel_err(dense, crops) < TOL, spec
        outcomes["exact"] += 1
    assert outcomes["exact"] >= 10 and outcomes["refused"] >= 10, outcomes


# ------------------------------ shapes on a batch of zero = PyTorch's meta kernels, node by node

class Recorded:
    """An interpreter that keeps each node's output shapes (and dtypes)."""

    def run_node(self, n):
        out = super().run_node(n)
        parts = out if isinstance(out, (tuple, list)) else (out,)
        self.seen[n.name] = [(tuple(p.shape), p.dtype) if isinstance(p, torch.Tensor) else p
                             for p in parts]
        return out


class ZeroBatch(Recorded, OnShapes):
    def __init__(self, gm):
        super().__init__(gm)
        self.seen, self.zero = {}, 0

    def run_node(self, n):
        """Counts the nodes whose call did run on a batch of zero (not fell back to meta)."""
        real, done = fx_walk.zero_batch_call, []

        def counted(*args, **kwargs):
            done.append(real(*args, **kwargs))
            return done[-1]

        fx_walk.zero_batch_call = counted
        try:
            out = super().run_node(n)
        finally:
            fx_walk.zero_batch_call = real
        self.zero += any(r is not None for r in done)
        return out


class MetaKernels(Recorded, fx.Interpreter):
    """The reference: every call on PyTorch's meta device, weights swapped for meta ones."""

    def __init__(self, gm):
        super().__init__(gm)
        self.seen = {}

    def call_module(self, target, args, kwargs):
        return call_on_meta(self.module.get_submodule(target), args, kwargs)

    def fetch_attr(self, target):
        attr = super().fetch_attr(target)
        return torch.empty(attr.shape, dtype=attr.dtype, device="meta") \
            if isinstance(attr, torch.Tensor) else attr


def shapes_both_ways(model, shape, size=None):
    """Every node's shapes, run on a batch of zero (the walk's way) and on meta kernels; the
    first is None where the meta run refuses (then the walk must refuse too)."""
    gm = symbolic_trace(model)
    sizes = (BATCH, *(shape if size is None else (shape[0], *(size,) * (len(shape) - 1))))
    x = torch.empty(sizes, device="meta", dtype=torch.float64)
    ours, ref = ZeroBatch(gm), MetaKernels(gm)
    try:
        ref.run(x)
    except Exception:                                 # noqa: BLE001 (any refusal)
        with pytest.raises(Exception):                # noqa: B017
            ours.run(x)
        return None, None
    ours.run(x)
    return ours, ref


def test_shapes_on_a_batch_of_zero_equal_pytorchs_meta_kernels_node_by_node():
    compared = zero = 0
    for seed in range(300):
        spec = random_spec(random.Random(seed))
        built = build(spec, probe=False, seed=seed, device="meta" if spec["meta"] else "cpu")
        if built is None:
            continue
        for size in (None, spec["size"] + spec["extra"]):
            ours, ref = shapes_both_ways(*built, size)
            if ours is not None:
                assert ours.seen == ref.seen, (seed, size)
                compared, zero = compared + len(ref.seen), zero + ours.zero
    assert compared > 3000 and zero > compared // 4, (compared, zero)  # real checks, both ways


class BatchEdges(nn.Module):
    """Calls where a batch of zero must not be taken for the batch: a cat along the batch, a
    view that folds it, a constant with 2 (= the walk's batch) first, a full reduction."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3)
        self.register_buffer("per_pair", torch.ones(2, 1, 1))

    def forward(self, x):
        y = F.relu(self.conv(x)) + self.per_pair          # (2, 1, 1): per channel, not batch
        z = torch.cat([y, y], 0).mean((1, 2, 3))           # the batch doubled, then reduced
        w = y.view(-1, 2).sum(1)                           # the batch folded into rows
        return z.sum() + w.sum() + y.mean()


def test_calls_that_fold_the_batch_get_meta_shapes_not_zero_batch_ones():
    ours, ref = shapes_both_ways(BatchEdges().double(), (2, 6, 6))
    assert ours.seen == ref.seen and ours.zero >= 3


class Branches(nn.Module):
    """A residual add and an Inception-like cat along the channels: the walk runs them on a
    batch of zero too."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 2, 1)
        self.head = nn.Linear(5 * 8 * 8, 2)

    def forward(self, x):
        y = x + F.relu(self.a(x))
        return self.head(torch.cat([y, self.b(y)], dim=1).flatten(1))


def test_a_walk_imports_no_sympy_and_no_dynamo():
    """PyTorch's Python meta kernels import sympy and torch._dynamo (a second and 70 MB per
    kernel): the walks of the course's nets, a residual add and a cat run without them."""
    code = ("import sys, torch, fcconv\n"
            "from fcconv.course import faces\n"
            "from test_properties import Branches\n"
            "fcn = fcconv.convolutionalize(fcconv.vgg16(device='meta'), (3, 224, 224))\n"
            "fcconv.trace(fcn, (3, 384, 384)); fcconv.receptive_field(fcn, (3, 384, 384))\n"
            "fcconv.convolutionalize(faces.trained(), (1, 25, 25))\n"
            "fcconv.trace(fcconv.alexnet(device='meta'), (3, 224, 224))\n"
            "fcconv.trace(fcconv.convolutionalize(Branches().eval(), (3, 8, 8)), (3, 12, 12))\n"
            "fcconv.shift_and_stitch(fcn, torch.empty(1, 3, 384, 384, device='meta'), 16)\n"
            "print(sorted(m for m in ('sympy', 'torch._dynamo') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


class TwoClassLinear(nn.Module):
    """F.linear with a (2, F) weight and no bias: two rows, like the walk's batch of 2."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.weight = nn.Parameter(torch.randn(2, 3 * 4 * 4))

    def forward(self, x):
        return F.linear(F.relu(self.conv(x)).flatten(1), self.weight)


class PermutedView(nn.Module):
    """Channels-last features, then .view: PyTorch itself refuses it (strides)."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 4 * 4, 2)

    def forward(self, x):
        y = F.relu(self.conv(x).permute(0, 2, 3, 1))
        return self.fc(y.view(y.size(0), -1))


def test_only_what_comes_from_the_input_is_taken_for_the_batch():
    net = TwoClassLinear().double()
    assert trace(net, (1, 6, 6)).output_shape == (2,)
    assert tuple(run_on_meta(symbolic_trace(net), (1, 6, 6)).shape) == (BATCH, 2)
    x = torch.rand(1, 1, 9, 9, dtype=torch.float64)
    dense = convolutionalize(net.eval(), (1, 6, 6))(x)
    assert torch.allclose(dense, sliding_windows(net, x, 6, 1), atol=TOL, rtol=0)


def test_what_pytorch_refuses_on_a_real_batch_the_walk_refuses():
    """On an empty batch PyTorch skips BatchNorm's check of the channels, and an empty result
    comes out contiguous: the walk asks the meta kernels, or keeps the input's strides."""
    with pytest.raises(RuntimeError, match="running_mean"):
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(16)).eval()(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="running_mean should contain 8 elements not 16"):
        trace(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(16)).eval(), (3, 8, 8))
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        PermutedView()(torch.rand(1, 1, 6, 6))
    with pytest.raises(ValueError, match="view size is not compatible"):
        receptive_field(PermutedView(), (1, 6, 6))


def test_a_walk_in_deterministic_mode_writes_no_stand_in():
    """torch.use_deterministic_algorithms fills new memory: the walk's stand-ins for VGG16's
    weights (553 MB) are held off from it, and the setting is put back."""
    code = ("import torch, fcconv\n"
            "torch.use_deterministic_algorithms(True)\n"
            "hwm = lambda: int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n"
            "before = hwm()\n"
            "fcconv.convolutionalize(fcconv.vgg16(device='meta'), (3, 224, 224))\n"
            "print((hwm() - before) // 1024, torch.utils.deterministic.fill_uninitialized_memory)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grown, fill = out.stdout.split()
    assert int(grown) < 100 and fill == "True", out.stdout   # MB: fc6 alone would be 411


def test_shift_and_stitch_on_the_meta_device_gives_the_meta_kernels_shapes(monkeypatch):
    from fcconv import dense, vgg16

    fcn = convolutionalize(vgg16(device="meta"), (3, 224, 224))
    image = torch.empty(2, 3, 384, 400, device="meta")
    ours = shift_and_stitch(fcn, image, 16)
    monkeypatch.setattr(dense, "_run", lambda net, x: net(x))   # PyTorch's meta kernels
    theirs = shift_and_stitch(fcn, image, 16)
    assert ours.shape == theirs.shape == (2, 1000, 11, 12) and ours.is_meta
    with pytest.raises(ValueError, match="224 px window does not fit in 200 px"):
        shift_and_stitch(fcn, torch.empty(1, 3, 200, 384, device="meta"), 16)


class Lambda(nn.Module):
    def __init__(self, f, **layers):
        super().__init__()
        self.f = f
        for name, layer in layers.items():
            setattr(self, name, layer)

    def forward(self, x):
        return self.f(self, x)


def nhwc(x):
    return x.permute(0, 2, 3, 1)


def channels_last(x):
    return x.contiguous(memory_format=torch.channels_last)


# Whether a later .view works depends on the order in memory of what came before: the walk must
# accept what PyTorch runs on a real batch and refuse what it refuses. (4, 6, 6) inputs.
LAYOUTS = {
    "layer norm on NHWC": Lambda(lambda s, x: s.ln(nhwc(x)).view(x.shape[0], -1, 4),
                                 ln=nn.LayerNorm(4)),
    "softmax on NHWC": Lambda(lambda s, x: F.softmax(nhwc(x), -1).view(x.shape[0], -1)),
    "conv on a transpose": Lambda(lambda s, x: s.c(x.transpose(2, 3)).view(x.shape[0], -1),
                                  c=nn.Conv2d(4, 4, 3, padding=1)),
    "linear on channels-last": Lambda(lambda s, x: s.fc(channels_last(x)).view(x.shape[0], -1),
                                      fc=nn.Linear(6, 3)),
    "relu on NHWC": Lambda(lambda s, x: F.relu(nhwc(x)).view(x.shape[0], -1)),
    "relu of an expanded channel": Lambda(
        lambda s, x: F.relu(x[:, :1].expand(-1, 4, -1, -1)).view(x.shape[0], -1)),
    "channels-last + contiguous": Lambda(lambda s, x: (channels_last(x) + x).view(x.shape[0], -1)),
    "pool on channels-last": Lambda(lambda s, x: F.max_pool2d(channels_last(x), 2)
                                    .view(x.shape[0], -1)),
    "convnext block": Lambda(lambda s, x: s.fc(s.ln(nhwc(x))).permute(0, 3, 1, 2)
                             .view(x.shape[0], -1), ln=nn.LayerNorm(4), fc=nn.Linear(4, 4)),
    "a keepdim forgotten": Lambda(lambda s, x: x.mean((1, 2, 3)).unsqueeze(1)
                                  - x.sum((1, 2, 3))),   # (n, 1) - (n,): an (n, n), no refusal
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_walk_runs_what_a_real_batch_runs_and_refuses_what_it_refuses(name):
    model = LAYOUTS[name].double()
    try:
        real = model(torch.rand(2, 4, 6, 6, dtype=torch.float64)).shape[1:]
    except RuntimeError:
        with pytest.raises(ValueError, match="view size is not compatible"):
            trace(model, (4, 6, 6))
    else:
        trace(model, (4, 6, 6))     # no refusal
        assert run_on_meta(symbolic_trace(model), (4, 6, 6)).shape[1:] == real


def test_run_on_meta_keeps_a_converted_nets_checks_and_reads_keyword_tensors():
    from fcconv import alexnet

    net = convolutionalize(alexnet(device="meta"), (3, 224, 224))
    assert tuple(run_on_meta(net, (3, 227, 227)).shape) == (BATCH, 1000, 1, 1)
    with pytest.raises(ValueError, match="smaller than the 224x224 window"):
        run_on_meta(net, (3, 200, 200))
    cat = fx.symbolic_trace(Lambda(lambda s, x: torch.cat(tensors=[x, x], dim=1)))
    assert tuple(run_on_meta(cat, (3, 4)).shape) == (BATCH, 6, 4)


def test_values_from_the_input_are_followed_through_tuples():
    """A pool that returns (values, indices): what comes after it is still the input's, so it
    runs on a batch of zero (a stand-in of the whole batch would be computed, for nothing)."""
    net = Lambda(lambda s, x: s.conv(s.pool(x)[0]), pool=nn.MaxPool2d(2, return_indices=True),
                 conv=nn.Conv2d(3, 4, 3))
    walk = OnShapes(symbolic_trace(net))
    out = walk.run(torch.empty(BATCH, 3, 64, 64, device="meta"))
    assert out.shape == (BATCH, 4, 30, 30) and id(out) in walk.from_input
