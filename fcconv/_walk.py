"""The one graph walk behind ``trace``, ``receptive_field`` and ``convolutionalize`` (private).

torch.fx records every call in ``forward`` (module calls, functions like ``F.max_pool2d``, tensor
methods like ``x.view``), one node per call: a module used three times is three nodes. The walk
runs the graph once on meta tensors (shapes only) and gives each node a ``Step``: its output
shape, parameters and MACs, and its ``Geo`` (``_geometry``, one function per kind of op). It
also notes what would make a dense pass differ from the crops: a number read off the input's
size, dropout or BatchNorm that is not in eval mode, and the like (``_graph.REFUSALS``).
"""

from __future__ import annotations

import math
import operator
import re

import torch
import torch.nn.functional as F
from torch import fx, nn

from . import _geometry as geometry
from ._crop import CropToWindows
from ._field import Field
from ._fx import BATCH, call_on_meta, meta_twin, model_dtype, symbolic_trace, where
from ._geometry import per_axis
from ._graph import MAPS, Geo, Graph, Step, spatial_dims, unknown
from ._ops import (
    ADAPTIVE,
    ADAPTIVE_FUNCS,
    BATCH_NORM,
    BINARY,
    CATS,
    CONV,
    CONV_T,
    DROPOUT,
    DROPOUT_FUNCS,
    LAYER_FUNCS,
    LINEAR_FUNCS,
    PERMUTES,
    POINTWISE,
    POINTWISE_FUNCS,
    POOL,
    REDUCTIONS,
    RESHAPES,
    SIZES,
    SOFTMAX,
    SOFTMAX_FUNCS,
    WINDOW_FUNCS,
    ZERO_PAD,
)
from .formulas import conv_output_size, format_shape

Shape = tuple[int, ...]

MAX_BYTES = 2**62  # a meta tensor larger than this cannot be indexed (PyTorch counts in int64)


def analyse(model: nn.Module, input_shape: Shape, explain: bool = True) -> Graph:
    """Walk ``model`` at ``input_shape`` (no batch dim): a Step for every node.

    Recording source lines costs milliseconds per node, so the walk runs without them and, if
    ``explain``, runs again with them only when it has something to explain (an unknown op, a
    refusal note, an error), so that the messages can quote the line of ``forward``.
    """
    try:
        graph = _analyse(symbolic_trace(model), input_shape)
    except ValueError:
        if not explain:
            raise
        graph = _analyse(symbolic_trace(model, lines=True), input_shape)  # raises, with lines
    if explain and graph.has_news():
        graph = _analyse(symbolic_trace(model, lines=True), input_shape)
    return graph


def _analyse(gm: fx.GraphModule, input_shape: Shape) -> Graph:
    dtype = model_dtype(gm)
    values = BATCH * math.prod(input_shape)
    if values * dtype.itemsize > MAX_BYTES:
        raise ValueError(f"an input of {format_shape(input_shape)} holds {values // BATCH:,} "
                         "values per example: more than one tensor can index; use a smaller size")
    walk = _Walk(gm, tuple(input_shape[1:]))
    try:
        walk.run(torch.empty((BATCH, *input_shape), device="meta", dtype=dtype))
    except (RuntimeError, TypeError, IndexError) as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"the model cannot run on input {input_shape}: {first}") from None
    return Graph(gm, walk.steps, tuple(input_shape))


class _Walk(fx.Interpreter):
    """Runs the graph on meta tensors; after each node, works out its Step."""

    def __init__(self, gm: fx.GraphModule, input_size: tuple[int, ...]):
        super().__init__(gm)
        self.input_size = input_size
        self.extra_traceback = False  # our messages name the layer; fx's would add its internals
        self.steps: dict[fx.Node, Step] = {}
        self.seen_params: set[int] = set()
        self.twins: dict[int, nn.Module] = {}  # each layer's meta twin, made on its first call

    def call_module(self, target, args, kwargs):
        mod = self.module.get_submodule(target)
        if next(mod.children(), None) is not None or hasattr(mod, "parametrizations"):
            return call_on_meta(mod, args, kwargs)
        if id(mod) not in self.twins:
            self.twins[id(mod)] = meta_twin(mod)
        return self.twins[id(mod)](*args, **kwargs)

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
            self.check_operands(step, args)
        out = super().run_node(n)
        t = _tensor(out)
        step.out = tuple(t.shape) if t is not None else None
        step.tensor = isinstance(out, torch.Tensor)
        if n.op != "output":
            self.steps[n] = step
            step.geo = self.geo(step, args, kwargs, out)
            step.varies = self.varies(step, args, kwargs)
            self.note_sizes(step)
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
            step.layer = n.op == "call_module" or n.target in LAYER_FUNCS  # stays a row
            return bad
        if n.op == "call_module":
            return self.module_geo(step, args, out)
        return self.function_geo(step, args, kwargs, out)

    def module_geo(self, step: Step, args, out) -> Geo:
        mod, n, x = step.module, step.node, args[0]
        g = self.src(n.args[0])
        step.layer = True
        if getattr(mod, "return_indices", False):
            step.notes["indices"] = "returns indices"
        if isinstance(mod, CONV + POOL):
            kernel = mod.kernel_size
            return geometry.window(step, g, x, kernel, getattr(mod, "stride", None) or kernel,
                                   getattr(mod, "padding", 0), getattr(mod, "dilation", 1),
                                   getattr(mod, "ceil_mode", False),
                                   getattr(mod, "padding_mode", "zeros"))
        if isinstance(mod, ADAPTIVE):
            return geometry.adaptive(step, g, x, _tensor(out))
        if isinstance(mod, ZERO_PAD) and getattr(mod, "value", 0.0) == 0.0:
            return geometry.pad(step, g, mod.padding)
        if isinstance(mod, CropToWindows):  # drops cells off the image; the rest keep their field
            return g
        if isinstance(mod, nn.Flatten):
            return geometry.reshape(step, g, x, _tensor(out))
        if isinstance(mod, nn.Linear):
            return geometry.linear(step, g, mod.out_features)
        if isinstance(mod, SOFTMAX):
            return geometry.softmax(step, g, mod.dim, x)
        if isinstance(mod, nn.LayerNorm):
            return geometry.layer_norm(step, g, len(mod.normalized_shape))
        if isinstance(mod, nn.LocalResponseNorm) and g.kind not in ("map", "vector"):
            return unknown(f"{where(n, step.name)} normalises across dim 1, which is not the "
                           f"channel axis of {g.kind} tensors: it would mix positions")
        self.note_state(step, mod, g)
        if isinstance(mod, POINTWISE):
            return g
        return unknown(f"{where(n, step.name)}: fcconv does not know how this layer moves "
                       "pixels, so it cannot say which input pixels reach an output cell")

    def function_geo(self, step: Step, args, kwargs, out) -> Geo:
        n, t = step.node, step.node.target
        g = self.src(n.args[0]) if n.args else Geo("other")
        x = args[0] if args else None
        if t in WINDOW_FUNCS:
            a = _bind(WINDOW_FUNCS[t], args, kwargs)
            step.layer = True
            if a.get("return_indices") or t is F.max_pool2d_with_indices:
                step.notes["indices"] = "returns indices"
            if "weight" in a:
                return geometry.window(step, g, x, tuple(a["weight"].shape[2:]),
                                       a.get("stride", 1), a.get("padding", 0),
                                       a.get("dilation", 1), False)
            kernel = a["kernel_size"]
            return geometry.window(step, g, x, kernel, a.get("stride") or kernel,
                                   a.get("padding", 0), a.get("dilation", 1),
                                   a.get("ceil_mode", False))
        if t in ADAPTIVE_FUNCS:
            step.layer = True
            if _bind(("input", "output_size", "return_indices"), args, kwargs).get(
                    "return_indices"):
                step.notes["indices"] = "returns indices"
            return geometry.adaptive(step, g, x, _tensor(out))
        if t is F.pad:
            a = _bind(("input", "pad", "mode", "value"), args, kwargs)
            if a.get("mode", "constant") != "constant" or (a.get("value") or 0) != 0:
                return unknown(f"{where(n)} pads with {a.get('mode')!r}/{a.get('value')}: only "
                               "zero padding keeps the receptive field a simple window")
            return geometry.pad(step, g, a["pad"])
        if t in RESHAPES:
            return geometry.reshape(step, g, x, _tensor(out))
        if t in PERMUTES:
            return geometry.permute(step, g, x, _tensor(out), _permutation(t, x, args, kwargs))
        if t in SIZES or t is getattr or _tensor(out) is None:
            return Geo("other")
        if t in REDUCTIONS:
            a = _bind(("input", "dim", "keepdim"), args, kwargs)
            return geometry.reduce(step, g, x, a.get("dim"), _tensor(out))
        if t in LINEAR_FUNCS:
            step.layer = True
            return geometry.linear(step, g, _bind(("input", "weight"), args, kwargs)["weight"]
                                   .shape[0])
        if t in SOFTMAX_FUNCS:
            return geometry.softmax(step, g, _bind(("input", "dim"), args, kwargs).get("dim"), x)
        if t is F.layer_norm:
            shape = _bind(("input", "normalized_shape"), args, kwargs)["normalized_shape"]
            return geometry.layer_norm(step, g, len(per_axis(shape, 1)))
        if t in DROPOUT_FUNCS:
            self.note_dropout(step, t, args, kwargs)
        if t in POINTWISE_FUNCS:
            return g
        if t in BINARY or t in CATS:
            operands = list(n.args[0]) if t in CATS else list(n.args)
            steps = [self.steps[a] for a in operands if isinstance(a, fx.Node) and a in self.steps]
            dim = _bind(("tensors", "dim"), args, kwargs).get("dim", 0) if t in CATS else None
            y = _tensor(out)
            return geometry.merge(step, steps, y, None if dim is None else dim % y.dim(),
                                  self.input_size)
        if t is operator.getitem:
            source = self.steps.get(n.args[0]) if isinstance(n.args[0], fx.Node) else None
            return geometry.getitem(step, g, source, args[0], args[1])
        return unknown(f"{where(n)} ({step.kind}) is not an op fcconv knows: it cannot say "
                       "which input pixels reach an output cell after it")

    # ------------------------------------------------------------------ what a dense pass changes

    def note_state(self, step: Step, mod: nn.Module, g: Geo) -> None:
        """BatchNorm with batch statistics or dropout that drops: the crops and a dense pass
        see different numbers. A layer with one parameter per index of dim 1 on a permuted map:
        dim 1 is a spatial axis there, whose length changes on a larger image."""
        if isinstance(mod, BATCH_NORM) and (mod.training or mod.running_mean is None):
            state = "is in training mode" if mod.training else \
                "keeps no running statistics (track_running_stats=False)"
            step.notes["batch_stats"] = (
                f"{step.kind} {step.name!r} {state}: it normalises with each batch's statistics, "
                "which differ between crops (and between a batch of crops and one large image); "
                "call model.eval() first")
        if isinstance(mod, DROPOUT) and mod.training and mod.p > 0:
            step.notes["random"] = (
                f"{step.kind} {step.name!r} is in training mode (p={mod.p}): it zeroes random "
                "values on every call, so no dense pass can equal the crops; call model.eval() "
                "first")
        per_index = [t for t in (*mod.parameters(recurse=False), *mod.buffers(recurse=False))
                     if t.dim() == 1 and t.numel() > 1]
        if g.kind in ("permuted", "plane") and per_index:
            step.notes["per_position"] = (
                f"{where(step.node, step.name)} has one parameter per index of dim 1, which on "
                f"{g.kind} tensors is a spatial axis, not the channels: each row of the map gets "
                "its own, and a larger image has more rows; apply it before the permute")

    def note_dropout(self, step: Step, fn, args, kwargs) -> None:
        """F.dropout(x, p) drops even in eval mode unless training=self.training is passed."""
        names = ("input", "p", "train") if fn is torch.dropout else \
            ("input", "p", "training", "inplace")
        a = _bind(names, args, kwargs)
        training, p = a.get(names[2], DROPOUT_FUNCS[fn]), a.get("p", 0.5)
        if training and p > 0:
            step.notes["random"] = (
                f"{where(step.node)} drops values at random (p={p}, training=True): no dense "
                "pass can equal the crops; pass training=self.training and call model.eval()")

    def varies(self, step: Step, args, kwargs) -> bool | tuple:
        """For a size read off a tensor (x.shape, x.size(2), and numbers computed from them):
        whether it changes with the input's size, per item of a shape. The spatial sides do;
        the batch and the channels do not; a flattened map's length does (on the converted net
        the flatten is gone)."""
        n = step.node
        if step.out is not None or n.op in ("placeholder", "get_attr"):
            return False
        if n.target in SIZES or n.target is getattr and args[1] == "shape":
            x = args[0]
            moving = _moving_dims(self.src(n.args[0]), x.dim())
            if n.target == "numel" or n.target is torch.numel:
                return bool(moving)
            if n.target == "dim":
                return False
            dim = _bind(("self", "dim"), args, kwargs).get("dim") if n.target == "size" else None
            if dim is not None:
                return dim % x.dim() in moving
            return tuple(d in moving for d in range(x.dim()))
        if n.target is operator.getitem and isinstance(n.args[0], fx.Node):
            shape = self.steps[n.args[0]].varies
            if isinstance(shape, tuple) and isinstance(args[1], (int, slice)):
                return shape[args[1]]
        return any(_any(self.steps[a].varies) for a in n.all_input_nodes if a in self.steps)

    def note_sizes(self, step: Step) -> None:
        """A call on the pixels that takes a number read off the input's size: on a larger
        image the number differs from the one each crop gives. A flatten (which goes) or a
        reshape to the shape it already has may; a window's kernel or stride says what it
        becomes (global pooling)."""
        n = step.node
        if step.out is None or n.op == "placeholder":
            return
        sizes = [a for a in n.all_input_nodes if a in self.steps and self.steps[a].out is None
                 and _any(self.steps[a].varies)]
        if not sizes or n.target in RESHAPES and step.geo.kind in ("flat", "vector") or \
                n.target in RESHAPES and self.steps[n.args[0]].out == step.out:
            return
        if n.target in WINDOW_FUNCS:
            a = _bind(WINDOW_FUNCS[n.target], n.args, n.kwargs)
            named = [k for k in ("kernel_size", "stride", "padding", "dilation")
                     if any(s in _nodes(a.get(k)) for s in sizes)]
            if named:
                step.notes["size_arg"] = (
                    f"{where(n)} computes its {' and '.join(named)} from the input's size: on a "
                    "larger image the window grows with it (global pooling when it is the whole "
                    "map) instead of sliding; give it fixed numbers")
                return
        step.notes["size_scalar"] = (
            f"{where(n)} uses a number computed from the input's size ({sizes[0].name}): on a "
            "larger image it is a different number than on each crop; use a constant")

    def check_operands(self, step: Step, args) -> None:
        """Tensors added (multiplied, ...) must broadcast: say which, and what they are, before
        PyTorch would fail on them."""
        if step.node.target not in BINARY:
            return
        tensors = [(a, t) for a, t in zip(step.node.args, args) if isinstance(t, torch.Tensor)]
        try:
            torch.broadcast_shapes(*(t.shape for _, t in tensors))
        except RuntimeError:
            what = " and ".join(f"{self.src(a).kind} {geometry.shape_text(t)}" for a, t in tensors)
            raise ValueError(f"{where(step.node)} combines tensors that do not line up ({what}): "
                             "flatten maps of the same shape, the same way") from None

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
            weights = [a for a in step.node.all_input_nodes if a.op == "get_attr"]
            params = [self.module.get_parameter(w.target) for w in weights
                      if _is_param(self.module, w.target)]
            t = step.node.target
            w = _bind(WINDOW_FUNCS.get(t) or ("input", "weight"), args, {}).get("weight")
            if isinstance(w, torch.Tensor) and t in WINDOW_FUNCS:
                step.macs = per_out * w.shape[1] * math.prod(w.shape[2:])
            elif isinstance(w, torch.Tensor) and t in LINEAR_FUNCS:
                step.macs = per_out * w.shape[1]
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
    t = step.node.target
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
    for size, k, s, p, d in zip(x.shape[2:], *(per_axis(v, n) for v in
                                               (kernel, stride, padding, dilation))):
        try:
            conv_output_size(int(size), int(k), int(s), int(p), int(d), bool(ceil))
        except ValueError as err:
            raise ValueError(f"{here} on a {format_shape(tuple(x.shape[1:]))} map: {err}") \
                from None


# --------------------------------------------------------------------------- small helpers

def _tensor(out) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def _bind(names, args, kwargs) -> dict:
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def _permutation(target, x, args, kwargs) -> list[int]:
    """The new order of x's dims after x.permute(...), x.transpose(a, b) or torch.swapaxes."""
    nd = x.dim()
    order = list(range(nd))
    if target in ("permute", torch.permute):
        dims = kwargs.get("dims", args[1:])
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return [d % nd for d in dims]
    a = _bind(("input", "dim0", "dim1"), args, kwargs)
    a0, a1 = a.get("dim0", a.get("axis0")) % nd, a.get("dim1", a.get("axis1")) % nd
    order[a0], order[a1] = order[a1], order[a0]
    return order


def _moving_dims(g: Geo, nd: int) -> set[int]:
    """The dims of a tensor whose length changes with the input's size."""
    if g.kind in MAPS:
        return set(spatial_dims(g, nd))
    if g.kind == "flat":
        return {1}
    return set() if g.kind in ("vector", "other") else set(range(1, nd))


def _any(v) -> bool:
    return any(v) if isinstance(v, tuple) else bool(v)


def _nodes(v) -> list[fx.Node]:
    """The nodes anywhere inside an fx argument."""
    found = []
    fx.node.map_arg(v, found.append)
    return found


def _is_param(gm: nn.Module, target: str) -> bool:
    try:
        gm.get_parameter(target)
    except AttributeError:
        return False
    return True


def _describe(module: nn.Module) -> str:
    """A short description in the course's notation: '3x3/1 p1, 64', '2x2/2'."""
    def side(v):
        v = per_axis(v, 2)
        return "x".join(map(str, v)) if len(set(v)) > 1 else f"{v[0]}x{v[0]}"

    if isinstance(module, CONV + CONV_T):
        pad = module.padding if isinstance(module.padding, str) else \
            max(per_axis(module.padding, 1))
        s = max(per_axis(module.stride, 1))
        return f"{side(module.kernel_size)}/{s} p{pad}, {module.out_channels}"
    if isinstance(module, POOL):
        s = max(per_axis(module.stride or module.kernel_size, 1))
        return f"{side(module.kernel_size)}/{s}"
    if isinstance(module, ADAPTIVE):
        return f"to {side(module.output_size)}"
    if isinstance(module, nn.Linear):
        return f"{module.in_features} -> {module.out_features}"
    return ""
