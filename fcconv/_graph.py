"""The one graph walk behind ``trace``, ``receptive_field`` and ``convolutionalize`` (private).

torch.fx records every call in ``forward`` (module calls, functions like ``F.max_pool2d``, tensor
methods like ``x.view``), one node per call: a module used three times is three nodes. The walk
runs the graph once on meta tensors (shapes only) and gives each node a ``Geo``: what its output
is, geometrically, and the receptive field of its cells, per spatial axis. Where it cannot say
(an op it does not know, branches that disagree on the jump) the node is ``unknown`` with the
reason, naming the op and its line in ``forward``; everything downstream inherits that reason.
An unknown op is never taken for the identity.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import fx, nn

from .dense import CropToWindows
from .formulas import conv_output_size, field_step, format_shape

Shape = tuple[int, ...]

BATCH = 2  # the meta batch: 2, not 1, so BatchNorm in training mode accepts a 1x1 map

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
        nn.LPPool1d, nn.LPPool2d)
ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
            nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
ZERO_PAD = (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d,
            nn.ConstantPad3d)
# Modules that act on each position (and each channel, or all channels) on their own.
POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
             nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
             nn.Softplus, nn.Softsign, nn.LogSigmoid, nn.Tanhshrink, nn.Threshold, nn.Identity,
             nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
             nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LocalResponseNorm)
SOFTMAX = (nn.Softmax, nn.LogSoftmax)
BATCH_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)

# Functions: name -> the order of their positional parameters (PyTorch's signatures).
_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_MAXPOOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                 "return_indices")
_AVGPOOL_ARGS = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                 "divisor_override")
_LPPOOL_ARGS = ("input", "norm_type", "kernel_size", "stride", "ceil_mode")
WINDOW_FUNCS = {
    F.conv1d: _CONV_ARGS, F.conv2d: _CONV_ARGS, F.conv3d: _CONV_ARGS,
    F.max_pool1d: _MAXPOOL_ARGS, F.max_pool2d: _MAXPOOL_ARGS, F.max_pool3d: _MAXPOOL_ARGS,
    torch.max_pool1d: _MAXPOOL_ARGS, torch.max_pool2d: _MAXPOOL_ARGS,
    torch.max_pool3d: _MAXPOOL_ARGS, F.max_pool2d_with_indices: _MAXPOOL_ARGS,
    F.avg_pool1d: _AVGPOOL_ARGS, F.avg_pool2d: _AVGPOOL_ARGS, F.avg_pool3d: _AVGPOOL_ARGS,
    F.lp_pool1d: _LPPOOL_ARGS, F.lp_pool2d: _LPPOOL_ARGS,
}
ADAPTIVE_FUNCS = {F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
                  F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d}
RESHAPES = {torch.flatten, torch.reshape, "flatten", "view", "reshape"}
PERMUTES = {torch.permute, torch.transpose, torch.swapaxes, "permute", "transpose", "swapaxes"}
REDUCTIONS = {torch.mean, torch.sum, torch.amax, torch.amin, "mean", "sum", "amax", "amin"}
POINTWISE_FUNCS = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish,
    torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.hardtanh, F.hardswish, F.softplus,
    F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout, torch.exp, torch.abs, torch.clamp,
    "relu", "relu_", "sigmoid", "tanh", "exp", "abs", "clamp", "neg", "contiguous", "float",
    "double", "clone", "detach"}
BINARY = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd,
          operator.isub, operator.imul, operator.itruediv, torch.add, torch.sub, torch.mul,
          torch.div, torch.maximum, torch.minimum, "add", "sub", "mul", "div", "add_", "mul_"}
SOFTMAX_FUNCS = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, "softmax",
                 "log_softmax"}
CATS = {torch.cat, torch.concat}
LINEAR_FUNCS = {F.linear}
LAYER_FUNCS = {*WINDOW_FUNCS, *ADAPTIVE_FUNCS, *LINEAR_FUNCS}  # rows of ``trace``


# Notes on a Step that convolutionalize refuses (the others it can fix).
REFUSALS = ("size_arg", "global", "ceil_partial", "adaptive", "size_varies", "batch_stats",
            "size_scalar")


# --------------------------------------------------------------------------- what a node is

@dataclass(frozen=True)
class Field:
    """Receptive field per spatial axis: cell i sees [start + i*jump, start + i*jump + size - 1].

    ``spans``: per axis, the runs of pixels (first, last), counted from ``start``, that a cell
    really sees: one run (0, size - 1) for a window, several where a dilated tap or a stride
    leaves gaps. ``offset``: per axis, the map has floor((n + offset) / jump) cells on an
    n-pixel input (what branches must agree on at every size, not only this one).
    """

    size: tuple[int, ...]
    jump: tuple[int, ...]
    start: tuple[int, ...]
    spans: tuple[tuple[tuple[int, int], ...], ...] = ()
    offset: tuple[int, ...] = ()
    odd: str = ""   # why cells do not see a window of pixels at all (set once, carried on)

    @classmethod
    def pixel(cls, n: int) -> Field:
        return cls((1,) * n, (1,) * n, (0,) * n, (((0, 0),),) * n, (0,) * n)

    def step(self, kernel, stride, padding, dilation, total_pad=None) -> Field:
        """After a window op; ``total_pad`` (left + right per axis) defaults to 2 * padding."""
        total_pad = total_pad or tuple(2 * p for p in padding)
        axes = [field_step(*f, k, s, p, d) for f, k, s, p, d in
                zip(zip(self.size, self.jump, self.start), kernel, stride, padding, dilation)]
        spans = tuple(_merge_runs([(lo + t * d * j, hi + t * d * j) for t in range(k)
                                   for lo, hi in runs])
                      for runs, k, d, j in zip(self.spans, kernel, dilation, self.jump))
        # floor((floor((n + a) / J) + tp - span + s) / s) = floor((n + a + J*(tp - span + s)) / (J*s))
        offset = tuple(a + j * (tp - (d * (k - 1) + 1) + s) for a, j, tp, k, s, d in
                       zip(self.offset, self.jump, total_pad, kernel, stride, dilation))
        return Field(*(tuple(a[i] for a in axes) for i in range(3)), spans, offset, self.odd)

    def shifted(self, left: tuple[int, ...], right: tuple[int, ...]) -> Field:
        """After zero padding (cells, per axis): the first cell starts earlier, the map grows."""
        return replace(self, start=tuple(s - p * j for s, p, j in zip(self.start, left, self.jump)),
                       offset=tuple(a + (lt + r) * j for a, lt, r, j in
                                    zip(self.offset, left, right, self.jump)))

    def gaps(self) -> str:
        """'' for a solid window; else which pixels a cell skips, on the first axis with gaps."""
        if self.odd:
            return self.odd
        for axis, runs in enumerate(self.spans):
            if len(runs) > 1:
                holes = [f"{a[1] + 1}..{b[0] - 1}" if b[0] - a[1] > 2 else str(a[1] + 1)
                         for a, b in zip(runs, runs[1:])]
                seen = ", ".join(f"{lo}..{hi}" if hi > lo else str(lo) for lo, hi in runs)
                return (f"along axis {axis} a cell sees pixels {seen} of its {self.size[axis]}-"
                        f"pixel span, not {', '.join(holes)} (from the span's first pixel)")
        return ""


def _merge_runs(runs) -> tuple[tuple[int, int], ...]:
    """Sorted runs of pixels, touching or overlapping ones joined."""
    out: list[list[int]] = []
    for lo, hi in sorted(runs):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


# The letters of a map's axes (C, *spatial), for orders like "hwc" (channels last).
AXES = {1: "cl", 2: "chw", 3: "cdhw"}


@dataclass(frozen=True)
class Geo:
    """What a node's output is. kind: "map" (N, C, *spatial); "permuted" (a map with its axes
    in another ``order``, e.g. "hwc": N, H, W, C); "plane" (a map whose channel axis was indexed
    away: N, *spatial); "flat" (a map flattened to N, D: ``map_shape`` (C, *spatial) and
    ``order`` say how); "vector" (N, D) or (N,) after a Linear; "unknown" (``why``); "other"
    (not computed from the input's pixels: a size, a parameter, a constant).
    """

    kind: str
    field: Field | None = None
    map_shape: Shape = ()
    order: str = "chw"
    why: str = ""


@dataclass
class Step:
    """One call in ``forward``: its name, what it is, its output and its geometry."""

    node: fx.Node
    name: str
    kind: str
    module: nn.Module | None
    out: Shape | None          # first tensor output, with the batch dim
    geo: Geo
    tensor: bool = False       # the output is one tensor (not a tuple holding some)
    macs: int = 0
    params: int = 0
    layer: bool = False        # a row in ``trace``: a module, or a conv/pool written as a function
    desc: str = ""
    notes: dict[str, str] = field(default_factory=dict)  # facts convolutionalize must refuse


@dataclass
class Graph:
    gm: fx.GraphModule
    steps: dict[fx.Node, Step]
    input_shape: Shape

    def has_news(self) -> bool:
        """Whether some step has something to explain: an unknown geometry or a note."""
        return any(s.geo.kind == "unknown" or set(s.notes) & set(REFUSALS)
                   for s in self.steps.values())

    def outputs(self) -> list[fx.Node]:
        """The nodes forward returns: one, or each item of the tuple (list, dict) it returns."""
        found = self._returned()
        if isinstance(found, dict):
            return list(found.values())
        return list(found) if isinstance(found, (tuple, list)) else [found]

    def returns(self) -> str:
        """'' when forward returns one tensor or a tuple (list) of tensors (several heads on one
        trunk); else what it returns, for a message."""
        found = self._returned()
        if isinstance(found, dict):
            return f"a dict of {len(found)}, not a tensor or a tuple of tensors"
        items = self.outputs()
        if not items:
            return f"an empty {type(found).__name__}"
        if all(isinstance(n, fx.Node) and self.steps[n].out is not None for n in items):
            return ""
        return "something that is not a tensor or a tuple of tensors"

    def several(self) -> bool:
        """Whether forward returns a tuple (or list) of heads rather than one tensor."""
        return isinstance(self._returned(), (tuple, list))

    def _returned(self):
        return next(n for n in self.gm.graph.nodes if n.op == "output").args[0]


def where(node: fx.Node, name: str | None = None) -> str:
    """'max_pool2d' (line 12 of forward: x = F.max_pool2d(x, 2))': the op and its source line.

    The line is the first frame of the model's own code; a layer of an nn.Sequential has none
    (its call is inside PyTorch), so it is named by its path and type: '3' (MaxPool2d).
    """
    label = repr(name or node.name)
    if node.op == "call_module":
        label += f" ({type(node.graph.owning_module.get_submodule(node.target)).__name__})"
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\w+)\n\s+(.*)', node.stack_trace or "")
    own = [f for f in frames if _TORCH_DIR not in f[0]]
    if not own:
        return label
    return f"{label} (line {own[0][1]} of {own[0][2]}: {own[0][3].strip()})"


_TORCH_DIR = str(Path(torch.__file__).parent)


def unknown(why: str) -> Geo:
    return Geo("unknown", why=why)


# --------------------------------------------------------------------------- running on meta

def meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Meta stand-ins for every parameter and buffer: the model runs for shapes, not values."""
    tensors = list(model.named_parameters(remove_duplicate=False))
    tensors += list(model.named_buffers(remove_duplicate=False))
    return {name: torch.empty_like(t, device="meta") for name, t in tensors}


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 for none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def symbolic_trace(model: nn.Module, lines: bool = False) -> fx.GraphModule:
    """The model as an fx graph (``lines``: with each node's source line, for messages); a clear
    error if fx cannot follow ``forward`` (data-dependent control flow, for instance)."""
    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError("this is a torch.jit module (scripted or traced), which torch.fx cannot "
                         "follow: pass the un-scripted nn.Module it was made from")
    tracer = _Tracer()
    tracer.record_stack_traces = lines
    try:
        graph = tracer.trace(model)
    except Exception as err:  # fx raises many kinds; say what it means for the learner
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"fcconv follows forward() with torch.fx, which cannot trace this model "
                         f"({first}); rewrite the data-dependent part of forward()") from None
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, CropToWindows) or super().is_leaf_module(m, qualname)


def analyse(model: nn.Module, input_shape: Shape, explain: bool = True) -> Graph:
    """Walk ``model`` at ``input_shape`` (no batch dim): a Step for every node.

    Recording source lines costs milliseconds per node, so the walk runs without them and, if
    ``explain``, runs again with them only when it has something to explain (an unknown op, a
    refusal note), so that the messages can quote the line of ``forward``.
    """
    graph = _analyse(symbolic_trace(model), input_shape)
    if explain and graph.has_news():
        graph = _analyse(symbolic_trace(model, lines=True), input_shape)
    return graph


def _analyse(gm: fx.GraphModule, input_shape: Shape) -> Graph:
    walk = _Walk(gm, tuple(input_shape[1:]))
    x = torch.empty((BATCH, *input_shape), device="meta", dtype=model_dtype(gm))
    try:
        walk.run(x)
    except (RuntimeError, TypeError, IndexError) as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"the model cannot run on input {input_shape}: {first}") from None
    return Graph(gm, walk.steps, tuple(input_shape))


def _tensor(out) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def _per_axis(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


class _Walk(fx.Interpreter):
    """Runs the graph on meta tensors; after each node, works out its Step."""

    def __init__(self, gm: fx.GraphModule, input_size: tuple[int, ...]):
        super().__init__(gm)
        self.input_size = input_size
        self.extra_traceback = False  # our messages name the layer; fx's would add its internals
        self.steps: dict[fx.Node, Step] = {}
        self.names = {m: n for n, m in gm.named_modules()}
        self.seen_params: set[int] = set()

    def call_module(self, target, args, kwargs):
        mod = self.module.get_submodule(target)
        return torch.func.functional_call(mod, meta_state(mod), args, kwargs)

    def fetch_attr(self, target: str):
        attr = super().fetch_attr(target)
        return torch.empty_like(attr, device="meta") if isinstance(attr, torch.Tensor) else attr

    def run_node(self, n: fx.Node):
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        step = Step(n, n.name, n.op, None, None, Geo("other"))
        if n.op == "call_module":
            step.module = self.module.get_submodule(n.target)
            step.name, step.kind = n.target, type(step.module).__name__
            _check_module_input(step, args[0] if args else None)
        elif n.op in ("call_function", "call_method"):
            step.kind = re.sub(r"_\d+$", "", n.name)
            _check_function_input(step, args, kwargs)
        out = super().run_node(n)
        t = _tensor(out)
        step.out = tuple(t.shape) if t is not None else None
        step.tensor = isinstance(out, torch.Tensor)
        if n.op != "output":
            self.steps[n] = step
            step.geo = self.geo(step, args, kwargs, out)
            self.cost(step, args)
        return out

    # ------------------------------------------------------------------ geometry of one node

    def src(self, node_arg) -> Geo:
        return self.steps[node_arg].geo if isinstance(node_arg, fx.Node) else Geo("other")

    def geo(self, step: Step, args, kwargs, out) -> Geo:
        n = step.node
        if _tensor(out) is None and n.op != "call_function":
            return Geo("other")
        if n.op == "placeholder":
            if out.dim() < 3:
                return unknown("the input is a plain vector: it has no pixels to slide over")
            return Geo("map", Field.pixel(out.dim() - 2))
        if n.op == "get_attr":
            return Geo("other")
        inputs = [self.steps[a].geo for a in n.all_input_nodes if a in self.steps]
        bad = next((g for g in inputs if g.kind == "unknown"), None)
        if bad is not None:                  # the first cause travels downstream, but a layer
            step.layer = n.op == "call_module" or n_target(n) in LAYER_FUNCS  # stays a row
            return bad
        if n.op == "call_module":
            return self.module_geo(step, args, out)
        return self.function_geo(step, args, kwargs, out)

    def module_geo(self, step: Step, args, out) -> Geo:
        mod, n, x = step.module, step.node, args[0]
        g = self.src(n.args[0])
        step.layer = True
        if isinstance(mod, CONV + POOL):
            kernel = mod.kernel_size
            stride = getattr(mod, "stride", None) or kernel
            return self.window(step, g, x, kernel, stride, getattr(mod, "padding", 0),
                               getattr(mod, "dilation", 1), getattr(mod, "ceil_mode", False),
                               getattr(mod, "return_indices", False))
        if isinstance(mod, ADAPTIVE):
            return self.adaptive(step, g, x, _tensor(out))
        if isinstance(mod, ZERO_PAD) and getattr(mod, "value", 0.0) == 0.0:
            return self.pad(step, g, mod.padding)
        if isinstance(mod, CropToWindows):  # drops cells off the image; the rest keep their field
            return g
        if isinstance(mod, nn.Flatten):
            return self.reshape(step, g, x, _tensor(out))
        if isinstance(mod, nn.Linear):
            return self.linear(step, g, mod.out_features)
        if isinstance(mod, SOFTMAX):
            return self.softmax(step, g, mod.dim, x)
        if isinstance(mod, nn.LayerNorm):
            return self.layer_norm(step, g, len(mod.normalized_shape))
        if isinstance(mod, BATCH_NORM) and (mod.training or mod.running_mean is None):
            state = "is in training mode" if mod.training else \
                "keeps no running statistics (track_running_stats=False)"
            step.notes["batch_stats"] = (
                f"{step.kind} {step.name!r} {state}: it normalises with each batch's statistics, "
                "which differ between crops (and between a batch of crops and one large image); "
                "call model.eval() first")
        if isinstance(mod, POINTWISE):
            return g
        return unknown(f"{where(n, step.name)}: fcconv does not know how this layer moves "
                       "pixels, so it cannot say which input pixels reach an output cell")

    def function_geo(self, step: Step, args, kwargs, out) -> Geo:
        n, t = step.node, n_target(step.node)
        g = self.src(n.args[0]) if n.args else Geo("other")
        x = args[0] if args else None
        if t in WINDOW_FUNCS:
            a = _bind(WINDOW_FUNCS[t], args, kwargs)
            step.layer = True
            size_args = [k for k in ("kernel_size", "stride", "padding") if
                         _has_node(_bind(WINDOW_FUNCS[t], n.args, n.kwargs).get(k))]
            if size_args:
                step.notes["size_arg"] = (
                    f"{where(n)} computes its {' and '.join(size_args)} from the input's size: "
                    "on a larger image the window grows with it (global pooling when it is the "
                    "whole map) instead of sliding; give it fixed numbers")
            if "weight" in a:
                kernel = tuple(a["weight"].shape[2:])
                return self.window(step, g, x, kernel, a.get("stride", 1), a.get("padding", 0),
                                   a.get("dilation", 1), False, False)
            kernel = a["kernel_size"]
            return self.window(step, g, x, kernel, a.get("stride") or kernel, a.get("padding", 0),
                               a.get("dilation", 1), a.get("ceil_mode", False),
                               a.get("return_indices", False) or t is F.max_pool2d_with_indices)
        if t in ADAPTIVE_FUNCS:
            step.layer = True
            return self.adaptive(step, g, x, _tensor(out))
        if t is F.pad:
            a = _bind(("input", "pad", "mode", "value"), args, kwargs)
            if a.get("mode", "constant") != "constant" or (a.get("value") or 0) != 0:
                return unknown(f"{where(n)} pads with {a.get('mode')!r}/{a.get('value')}: only "
                               "zero padding keeps the receptive field a simple window")
            return self.pad(step, g, a["pad"])
        if t in RESHAPES:
            return self.reshape(step, g, x, _tensor(out))
        if t in PERMUTES:
            return self.permute(step, g, x, _tensor(out), args[1:])
        if t in REDUCTIONS:
            a = _bind(("input", "dim", "keepdim"), args, kwargs)
            return self.reduce(step, g, x, a.get("dim"), _tensor(out))
        if t in LINEAR_FUNCS:
            step.layer = True
            return self.linear(step, g, args[1].shape[0])
        if t in SOFTMAX_FUNCS:
            dim = _bind(("input", "dim"), args, kwargs).get("dim")
            return self.softmax(step, g, dim, x)
        if t is F.layer_norm:
            shape = _bind(("input", "normalized_shape"), args, kwargs)["normalized_shape"]
            return self.layer_norm(step, g, len(_per_axis(shape, 1)))
        if t in POINTWISE_FUNCS:
            return g
        if t in BINARY or t in CATS:
            return self.merge(step, args, kwargs, _tensor(out), t in CATS)
        if t is operator.getitem:
            return self.getitem(step, g, args)
        if t in ("size", "dim") or t is getattr or _tensor(out) is None:
            return Geo("other")
        return unknown(f"{where(n)} ({step.kind}) is not an op fcconv knows: it cannot say "
                       "which input pixels reach an output cell after it")

    # ------------------------------------------------------------------ the ops, one by one

    def window(self, step, g, x, kernel, stride, padding, dilation, ceil, indices) -> Geo:
        """A conv or pooling window: the receptive-field recurrence, axis by axis."""
        if g.kind != "map":
            return unknown(f"{where(step.node, step.name)} slides a window over a {g.kind} "
                           "tensor, not over a (N, C, H, W) map")
        nsp = x.dim() - 2
        kernel, stride, dilation = (_per_axis(v, nsp) for v in (kernel, stride, dilation))
        total = None
        if isinstance(padding, str):  # "same" / "valid": PyTorch pads (span-1)//2 on the left
            total = tuple(d * (k - 1) if padding == "same" else 0
                          for k, d in zip(kernel, dilation))
            padding = tuple(t // 2 for t in total)
        padding = _per_axis(padding, nsp)
        mode = getattr(step.module, "padding_mode", "zeros")
        if mode != "zeros" and any(padding):
            bad = _padding_mode_leaves_window(mode, kernel, padding, dilation)
            if bad:  # the map is still exact (convolutionalize may go on); the field is not
                g = replace(g, field=replace(g.field, odd=(
                    f"{where(step.node, step.name)} pads with padding_mode={mode!r}: {bad}, so "
                    "its cells do not see one window of the input; use padding_mode='zeros'")))
        partial = [(axis, size) for axis, (size, k, s, p, d) in
                   enumerate(zip(x.shape[2:], kernel, stride, padding, dilation))
                   if ceil and conv_output_size(size, k, s, p, d, True) !=
                   _floor_size(size, k, s, p, d)]
        if partial:
            axes = " and ".join(f"{_axis_name(a, nsp)} ({size} cells)" for a, size in partial)
            step.notes["ceil_partial"] = (
                f"{where(step.node, step.name)} has ceil_mode=True, and at this input its last "
                f"window along {axes} hangs over the edge of the map: in each crop that cell "
                "pools a partial window, in one pass over a larger image a whole one, so the "
                "dense map differs from the crops")
        elif ceil:
            step.notes["ceil_fits"] = "ceil_mode=True, but every window fits"
        if indices:
            step.notes["indices"] = "returns indices"
        return Geo("map", g.field.step(kernel, stride, padding, dilation, total))

    def adaptive(self, step, g, x, y) -> Geo:
        if g.kind != "map":
            return unknown(f"{where(step.node, step.name)} pools a {g.kind} tensor")
        before, after = tuple(x.shape[2:]), tuple(y.shape[2:])
        nsp = len(before)
        if before == after:
            step.notes["adaptive_identity"] = "an identity at this size"
            return g
        step.notes["adaptive"] = f"pools {_side(before)} to {_side(after)}"
        if all(i % o == 0 for i, o in zip(before, after)):
            k = tuple(i // o for i, o in zip(before, after))
            return Geo("map", g.field.step(k, k, (0,) * nsp, (1,) * nsp))
        return unknown(f"{where(step.node, step.name)} pools {_side(before)} to {_side(after)}: "
                       "windows of unequal sizes, so no single (size, jump, start) describes "
                       "its cells")

    def pad(self, step, g, pad) -> Geo:
        if g.kind != "map":
            return unknown(f"{where(step.node, step.name)} pads a {g.kind} tensor")
        nsp = len(g.field.size)
        pad = tuple(pad) if isinstance(pad, (tuple, list)) else (pad,) * (2 * nsp)
        if len(pad) > 2 * nsp:
            return unknown(f"{where(step.node, step.name)} pads the channel or batch axis")
        # PyTorch lists (left, right) pairs from the last axis backwards; missing pairs are 0.
        pairs = len(pad) // 2
        left = tuple(pad[2 * (nsp - 1 - a)] if nsp - 1 - a < pairs else 0 for a in range(nsp))
        right = tuple(pad[2 * (nsp - 1 - a) + 1] if nsp - 1 - a < pairs else 0
                      for a in range(nsp))
        return Geo("map", g.field.shifted(left, right))

    def reshape(self, step, g, x, y) -> Geo:
        """flatten / view / reshape: a map folded into vectors (N, C*H*W), or nothing changed."""
        if tuple(x.shape) == tuple(y.shape):
            return g
        per_example = y.dim() == 2 and y.shape[0] == x.shape[0] == BATCH
        if g.kind in ("map", "permuted") and per_example and x.dim() >= 3:
            if g.kind == "permuted":
                return Geo("flat", g.field, g.map_shape, g.order)
            return Geo("flat", g.field, tuple(x.shape[1:]), AXES.get(x.dim() - 2, ""))
        if g.kind in ("flat", "vector") and per_example:
            return g
        return unknown(f"{where(step.node)} reshapes {_shape_text(x)} to {_shape_text(y)}: that "
                       "moves values between positions or examples, so the pixels a cell sees "
                       "are no longer one window")

    def permute(self, step, g, x, y, dims) -> Geo:
        """A map's axes in another order (channels last, or W,H,C): still a map, read the
        way the permute says; permuted back, a plain map again."""
        nd = x.dim()
        order = list(range(nd))
        if step.node.target in ("permute", torch.permute):
            order = list(dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list))
                         else dims)
        else:  # transpose / swapaxes of two dims
            a, b = (d % nd for d in dims[:2])
            order[a], order[b] = order[b], order[a]
        order = [d % nd for d in order]
        if g.kind in ("map", "permuted") and order[0] == 0 and nd - 2 in AXES:
            letters = AXES[nd - 2]
            now = g.order if g.kind == "permuted" else letters   # the axis each dim holds
            new = "".join(now[d - 1] for d in order[1:])
            if new == letters:
                return Geo("map", g.field)
            shape = g.map_shape if g.kind == "permuted" else tuple(x.shape[1:])
            return Geo("permuted", g.field, shape, new)
        if g.kind in ("flat", "vector", "plane") and order == list(range(nd)):
            return g
        return unknown(f"{where(step.node)} permutes a {g.kind} {_shape_text(x)} to "
                       f"{_shape_text(y)}: it moves the batch axis or mixes flattened features; "
                       "fcconv follows permutes of a map's own axes (x.permute(0, 2, 3, 1))")

    def reduce(self, step, g, x, dim, y) -> Geo:
        nd = x.dim()
        dims = set(range(nd)) if dim is None else \
            {d % nd for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
        spatial = set(range(2, nd))
        if g.kind == "map" and dims == {1}:
            return g if y.dim() == nd else unknown(f"{where(step.node)} drops the channel axis")
        if g.kind == "map" and dims == spatial:
            step.layer = True
            step.notes["global"] = (
                f"{where(step.node)} {step.kind}s over {_axes(nd)}: that is global pooling; on a "
                "larger image it takes the whole map, it does not slide. Remove it, or use a "
                "window-sized pool (nn.AvgPool2d with the map's size) before the flatten")
            k = tuple(x.shape[2:])
            f = g.field.step(k, (1,) * len(k), (0,) * len(k), (1,) * len(k))
            return Geo("map", f) if y.dim() == nd else Geo("vector", f)
        if g.kind in ("flat", "vector") and dims == {1}:
            return unknown(f"{where(step.node)} sums the features away")
        return unknown(f"{where(step.node)} reduces a {g.kind} {_shape_text(x)} over dims "
                       f"{sorted(dims)}: fcconv cannot say which pixels its cells see")

    def linear(self, step, g, out_features: int) -> Geo:
        if g.kind == "flat":  # the first Linear after a flatten: a kernel as big as the map
            return whole_map(g)
        if g.kind == "vector":
            return g
        if g.kind == "permuted" and g.order[-1] == "c":  # channels last: a 1x1 conv
            return replace(g, map_shape=(out_features, *g.map_shape[1:]))
        return unknown(f"{where(step.node, step.name)} is a Linear on a {g.kind} tensor: it mixes "
                       "along the last axis only (the width of a map); flatten before it")

    def softmax(self, step, g, dim, x) -> Geo:
        nd = x.dim()
        dim = (0 if nd in (0, 1, 3) else 1) if dim is None else dim % nd  # PyTorch's default
        if g.kind == "vector" and dim == 1:
            return g
        if g.kind == "flat" and dim == 1:
            return whole_map(g)        # every feature of a flattened map: the whole window
        if (g.kind == "map" and dim == 1) or (g.kind == "permuted" and
                                              dim == g.order.index("c") + 1):
            return g                   # over the channels of each position: pointwise
        return unknown(f"{where(step.node, step.name)} takes a softmax over dim {dim} of "
                       f"{kind_text(g.kind)}: across positions (or examples), so each value "
                       "then depends on the whole map")

    def layer_norm(self, step, g, n_dims: int) -> Geo:
        """LayerNorm normalises over the last ``n_dims`` axes: pointwise only if those are the
        channels (channels last); over a flattened map, over the whole window."""
        if g.kind == "vector":
            return g
        if g.kind == "flat" and n_dims == 1:
            return whole_map(g)
        if g.kind == "permuted" and n_dims == 1 and g.order[-1] == "c":
            return g
        return unknown(f"{where(step.node, step.name)} normalises over the last {n_dims} axes of "
                       f"{kind_text(g.kind)}: over positions, so each value depends on the "
                       "whole map; fcconv follows a LayerNorm over the channels of a "
                       "channels-last map")

    def merge(self, step, args, kwargs, y, is_cat) -> Geo:
        """Branches meet (add, mul, cat): every path is followed; they must agree on the jump."""
        n = step.node
        operands = list(n.args[0]) if is_cat else list(n.args)
        geos = [self.steps[a].geo for a in operands if isinstance(a, fx.Node)
                and a in self.steps and self.steps[a].out is not None]
        tensors = [self.steps[a] for a in operands if isinstance(a, fx.Node) and a in self.steps
                   and self.steps[a].out is not None]
        if not geos:
            return Geo("other")
        sizes = [a for a in operands if isinstance(a, fx.Node) and a in self.steps
                 and self.steps[a].out is None]
        if sizes:  # x + x.shape[2]: a number read off this input, another on a larger one
            step.notes["size_scalar"] = (
                f"{where(n)} uses a number computed from the input's size ({sizes[0].name}): on "
                "a larger image it is a different number than on each crop; use a constant")
        kinds = {g.kind for g in geos}
        if len(kinds) > 1 or kinds <= {"other"}:
            return unknown(f"{where(n)} combines {' and '.join(sorted(map(kind_text, kinds)))}: "
                           "fcconv cannot say how that lines up once the head is a map (fold a "
                           "constant into the layer before it, e.g. a Linear's bias)")
        kind = kinds.pop()
        if kind in ("flat", "permuted") and len({g.order for g in geos}) > 1 or \
                kind == "flat" and len({g.map_shape for g in geos}) > 1:
            return unknown(f"{where(n)} combines maps flattened or permuted differently "
                           f"({', '.join(f'{format_shape(g.map_shape)} as {g.order}' for g in geos)})"
                           ": feature i of one is not feature i of the other, so no cell of a map "
                           "computes their sum; flatten both the same way")
        if is_cat:
            dim = _bind(("tensors", "dim"), args, kwargs).get("dim", 0) % y.dim()
            channels = geos[0].order.index("c") + 1 if kind == "permuted" else 1
            if dim != channels or kind in ("flat", "plane"):
                return unknown(f"{where(n)} concatenates along dim {dim} ({kind_text(kind)} each): "
                               "only along the channels of maps do the positions stay where "
                               "they were")
        shape = geos[0].map_shape
        if is_cat and kind == "permuted":
            shape = (sum(g.map_shape[0] for g in geos), *shape[1:])
        if kind in MAPS:
            dims = spatial_dims(geos[0], y.dim())
            sides = [tuple(s.out[d] for d in dims) for s in tensors]
            if any(side != tuple(y.shape[d] for d in dims) for side in sides):
                return unknown(f"{where(n)} broadcasts a {_side(min(sides))} map over a "
                               f"{_side(max(sides))} one: every cell then depends on the whole "
                               "image (global)")
        fields = [g.field for g in geos]
        if any(f is None for f in fields):
            return Geo(kind, None, shape, geos[0].order)
        merged = _union(fields)
        if isinstance(merged, str):
            return unknown(f"{where(n)} joins paths that {merged}")
        vary = _sizes_vary(fields, self.input_size) if kind in MAPS else ""
        if vary:
            step.notes["size_varies"] = (
                f"{where(n)} joins maps whose sizes agree at input {_side(self.input_size)} but "
                f"not on larger images ({vary}), so the converted net would fail or broadcast "
                "there; give the branches the same padding arithmetic (e.g. padding=1 on the "
                "3x3 conv, or a pool with the same stride and padding)")
        return Geo(kind, merged, shape, geos[0].order)

    def getitem(self, step, g, args) -> Geo:
        src = step.node.args[0]
        if isinstance(src, fx.Node) and src in self.steps and "indices" in self.steps[src].notes:
            if args[1] == 0:
                return self.steps[src].geo
            return unknown(f"{where(step.node)} takes the pooling indices: positions, not pixels")
        if not isinstance(args[0], torch.Tensor):
            return Geo("other")
        pick = channel_index(args[1], args[0].dim())
        if pick is not None and not _has_node(step.node.args[1]) and g.kind in ("map", "vector"):
            if not isinstance(pick, int):
                return g                     # some channels (classes): the cells stay
            return Geo("plane", g.field) if g.kind == "map" else g
        return unknown(f"{where(step.node)} indexes {kind_text(g.kind)} "
                       f"{_shape_text(args[0])}: fcconv follows picking channels (classes), "
                       "x[:, k] or x[:, a:b], not positions or flattened features")

    # ------------------------------------------------------------------ cost

    def cost(self, step: Step, args) -> None:
        """MACs per example (bias additions not counted) and parameters, each counted once."""
        mod, y = step.module, step.out
        per_out = math.prod(y[1:]) if y else 0
        params = []
        if mod is not None:
            params = list(mod.parameters())
            if isinstance(mod, CONV):
                step.macs = per_out * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
            elif isinstance(mod, CONV_T):
                step.macs = math.prod(args[0].shape[1:]) * (mod.out_channels // mod.groups) * \
                    math.prod(mod.kernel_size)
            elif isinstance(mod, nn.Linear):
                step.macs = per_out * mod.in_features
            step.desc = _describe(mod)
        elif step.layer and step.node.op == "call_function":
            weights = [a for a in step.node.args if isinstance(a, fx.Node) and a.op == "get_attr"]
            params = [self.module.get_parameter(w.target) for w in weights
                      if _is_param(self.module, w.target)]
            if n_target(step.node) in WINDOW_FUNCS and len(args) > 1 and \
                    isinstance(args[1], torch.Tensor):
                w = args[1]
                step.macs = per_out * w.shape[1] * math.prod(w.shape[2:])
            elif n_target(step.node) in LINEAR_FUNCS:
                step.macs = per_out * args[1].shape[1]
        new = [p for p in params if id(p) not in self.seen_params]
        self.seen_params.update(id(p) for p in new)
        step.params = sum(p.numel() for p in new)


# --------------------------------------------------------------------------- input checks

def _check_module_input(step: Step, x) -> None:
    """Raise a ValueError that names the layer and the arithmetic, before PyTorch would fail."""
    mod = step.module
    if not isinstance(x, torch.Tensor):
        return
    here = f"layer {step.name!r} ({step.kind})"
    if isinstance(mod, nn.Linear) and x.dim() == 2 and x.shape[0] != BATCH:
        raise ValueError(f"{here} gets a ({', '.join(map(str, x.shape))}) tensor whose first "
                         f"axis is not the batch: a reshape before it folds the batch into the "
                         "features (x.view(1, -1)?); flatten each example with x.flatten(1) or "
                         "x.view(x.size(0), -1)")
    if isinstance(mod, nn.Linear) and x.shape[-1] != mod.in_features:
        raise ValueError(f"{here} expects {mod.in_features} inputs but gets {x.shape[-1]} "
                         f"(a {format_shape(tuple(x.shape[1:]))} tensor)")
    if isinstance(mod, CONV) and (x.dim() < 2 or x.shape[1] != mod.in_channels):
        raise ValueError(f"{here} expects {mod.in_channels} input channels but gets "
                         f"{x.shape[1] if x.dim() > 1 else 'a vector'}")
    if isinstance(mod, CONV + POOL) and not isinstance(getattr(mod, "padding", 0), str):
        _check_fits(here, x, mod.kernel_size, getattr(mod, "stride", None) or mod.kernel_size,
                    getattr(mod, "padding", 0), getattr(mod, "dilation", 1),
                    getattr(mod, "ceil_mode", False))


def _check_function_input(step: Step, args, kwargs) -> None:
    t = n_target(step.node)
    if t not in WINDOW_FUNCS or not args or not isinstance(args[0], torch.Tensor):
        return
    a = _bind(WINDOW_FUNCS[t], args, kwargs)
    if "weight" in a:
        kernel, stride = tuple(a["weight"].shape[2:]), a.get("stride", 1)
    else:
        kernel = a["kernel_size"]
        stride = a.get("stride") or kernel
    pad = a.get("padding", 0)
    if not isinstance(pad, str):
        _check_fits(f"{step.kind} {step.name!r}", args[0], kernel, stride, pad,
                    a.get("dilation", 1), a.get("ceil_mode", False))


def _check_fits(here: str, x: torch.Tensor, kernel, stride, padding, dilation, ceil) -> None:
    n = x.dim() - 2
    for size, k, s, p, d in zip(x.shape[2:], *(_per_axis(v, n) for v in
                                               (kernel, stride, padding, dilation))):
        try:
            conv_output_size(int(size), int(k), int(s), int(p), int(d), bool(ceil))
        except ValueError as err:
            raise ValueError(f"{here} on a {format_shape(tuple(x.shape[1:]))} map: {err}") \
                from None


# --------------------------------------------------------------------------- small helpers

def n_target(node: fx.Node):
    return node.target


def _bind(names, args, kwargs) -> dict:
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def _has_node(v) -> bool:
    if isinstance(v, fx.Node):
        return True
    if isinstance(v, slice):
        return any(_has_node(x) for x in (v.start, v.stop, v.step))
    if isinstance(v, dict):
        return any(_has_node(x) for x in v.values())
    return isinstance(v, (tuple, list)) and any(_has_node(x) for x in v)


def channel_index(index, ndim: int):
    """What ``x[index]`` takes along dim 1 (an int, a slice or a list of ints), if it keeps
    every example and every axis after dim 1 whole; else None. x[:, 1] -> 1; x[..., 1] -> 1 on
    an (N, K) tensor, None on a map (it picks a column)."""
    items = list(index) if isinstance(index, tuple) else [index]
    if sum(i is Ellipsis for i in items) > 1 or any(i is None for i in items):
        return None
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at:at + 1] = [slice(None)] * (ndim - len(items) + 1)
    items += [slice(None)] * (ndim - len(items))
    whole = slice(None)
    if len(items) != ndim or ndim < 2 or items[0] != whole or any(i != whole for i in items[2:]):
        return None
    pick = items[1]
    if isinstance(pick, bool) or not isinstance(pick, (int, slice, list)):
        return None
    if isinstance(pick, list) and not all(isinstance(i, int) and not isinstance(i, bool)
                                          for i in pick):
        return None
    return pick


MAPS = ("map", "permuted", "plane")  # kinds whose tensor still has the spatial axes


def spatial_dims(g: Geo, ndim: int) -> list[int]:
    """The tensor dims that hold the spatial axes of a map, a permuted map or a plane."""
    if g.kind == "permuted":
        return [i + 1 for i, a in enumerate(g.order) if a != "c"]
    return list(range(2 if g.kind == "map" else 1, ndim))


def whole_map(g: Geo) -> Geo:
    """A flattened map mixed into every output (a Linear, a softmax over the features): one
    window as big as the map."""
    k = g.map_shape[1:]
    one = (1,) * len(k)
    return Geo("vector", g.field.step(k, one, (0,) * len(k), one))


def _is_param(gm: nn.Module, target: str) -> bool:
    try:
        gm.get_parameter(target)
    except AttributeError:
        return False
    return True


def _union(fields: list[Field]) -> Field | str:
    """Union of the fields several paths give one cell; a reason string where the paths
    disagree on the jump (then cells of one path fall between cells of the other)."""
    first = fields[0]
    if any(f.jump != first.jump for f in fields):
        return f"disagree on the jump ({' vs '.join(_side(f.jump) for f in fields)})"
    size, start, spans = [], [], []
    for a in range(len(first.size)):
        lo = min(f.start[a] for f in fields)
        runs = _merge_runs([(f.start[a] - lo + r0, f.start[a] - lo + r1)
                            for f in fields for r0, r1 in f.spans[a]])
        start.append(lo)
        size.append(runs[-1][1] + 1)
        spans.append(runs)
    return Field(tuple(size), first.jump, tuple(start), tuple(spans), first.offset,
                 next((f.odd for f in fields if f.odd), ""))


def _sizes_vary(fields: list[Field], input_size: tuple[int, ...]) -> str:
    """'' if maps with these fields have the same size on every input at least ``input_size``;
    else the first input side where they differ. The difference of floor((n + a) / J) for two
    offsets a repeats every J pixels, so J sizes settle it."""
    for axis, n0 in enumerate(input_size):
        j = fields[0].jump[axis]
        for n in range(n0, n0 + j):
            sides = {(n + f.offset[axis]) // j for f in fields}
            if len(sides) > 1:
                return (f"along axis {axis}, at an input side of {n} the paths give maps of "
                        f"{' and '.join(map(str, sorted(sides)))} cells")
    return ""


def _padding_mode_leaves_window(mode: str, kernel, padding, dilation) -> str:
    """Why a non-zero padding mode makes a border cell see pixels outside its window ('' if it
    does not). The padded values copy image pixels: 'replicate' the edge pixel, which the
    window holds while it reaches into the image (p <= span - 1); 'reflect' pixel m for pad
    -m, inside the window while 2p <= span - 1; 'circular' the far edge of the image."""
    if mode == "circular":
        return "the border cells see the opposite edge of the image"
    for k, p, d in zip(kernel, padding, dilation):
        span = d * (k - 1) + 1
        if mode == "replicate" and p > span - 1:
            return f"a padding of {p} beyond a {span}-pixel span copies the edge pixel in"
        if mode == "reflect" and 2 * p > span - 1:
            return f"a padding of {p} reflects pixels up to {p} from the edge into a window " \
                   f"that ends at {span - 1 - p}"
    return ""


def _floor_size(size, k, s, p, d) -> int:
    """Output length without ceil_mode; 0 where not even one whole window fits."""
    try:
        return conv_output_size(size, k, s, p, d)
    except ValueError:
        return 0


def _axis_name(axis: int, nsp: int) -> str:
    return ("L",)[axis] if nsp == 1 else ("H", "W")[axis] if nsp == 2 else ("D", "H", "W")[axis]


def kind_text(kind: str) -> str:
    return {"other": "a tensor not computed from the input (a parameter, buffer or constant)",
            "map": "a (N, C, H, W) map", "flat": "a flattened map", "vector": "a (N, D) vector",
            "permuted": "a permuted (e.g. channels-last) map",
            "plane": "a (N, H, W) map (one channel)"}.get(kind, f"a {kind} tensor")


def _side(v) -> str:
    return "x".join(map(str, v))


def _shape_text(t: torch.Tensor) -> str:
    return "(N, " + ", ".join(map(str, t.shape[1:])) + ")"


def _axes(nd: int) -> str:
    return {3: "L", 4: "H,W", 5: "D,H,W"}.get(nd, "the spatial axes")


def _describe(module: nn.Module) -> str:
    """A short description in the course's notation: '3x3/1 p1, 64', '2x2/2'."""
    def side(v):
        v = _per_axis(v, 2)
        return "x".join(map(str, v)) if len(set(v)) > 1 else f"{v[0]}x{v[0]}"

    if isinstance(module, CONV + CONV_T):
        pad = module.padding if isinstance(module.padding, str) else \
            max(_per_axis(module.padding, 1))
        s = max(_per_axis(module.stride, 1))
        return f"{side(module.kernel_size)}/{s} p{pad}, {module.out_channels}"
    if isinstance(module, POOL):
        s = max(_per_axis(module.stride or module.kernel_size, 1))
        return f"{side(module.kernel_size)}/{s}"
    if isinstance(module, ADAPTIVE):
        return f"to {side(module.output_size)}"
    if isinstance(module, nn.Linear):
        return f"{module.in_features} -> {module.out_features}"
    return ""
