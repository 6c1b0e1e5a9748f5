"""The one graph walk behind ``trace``, ``receptive_field`` and ``convolutionalize`` (private).

torch.fx records every call in ``forward`` (module calls, functions like ``F.max_pool2d``, tensor
methods like ``x.view``), one node per call: a module used three times is three nodes. The walk
runs the graph once for its shapes (``_fx.OnShapes``: meta tensors, most calls made on a batch
of zero) and gives each node a ``Step``: its output shape, parameters and MACs, and its ``Geo``
(``_geometry``, one function per kind of op). It
checks what reaches each layer (``_checks``) and notes what would make a dense pass differ from
the crops (``_notes``): a number read off the input's size, dropout or BatchNorm that is not in
eval mode, and the like (``_graph.REFUSALS``).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import fx, nn

from . import _checks as checks
from . import _geometry as geometry
from . import _inplace as inplace
from . import _notes as notes
from ._crop import CropToWindows
from ._field import Field
from ._fx import BATCH, OnShapes, model_dtype, symbolic_trace, where
from ._geometry import per_axis
from ._graph import Geo, Graph, Step, kind_text, unknown
from ._ops import (
    ADAPTIVE,
    ADAPTIVE_FUNCS,
    BINARY,
    CATS,
    CONV,
    CONV_T,
    DROPOUT_FUNCS,
    LAYER_FUNCS,
    LINEAR_FUNCS,
    MAXMIN,
    PERMUTES,
    PIECES,
    POINTWISE,
    POINTWISE_FUNCS,
    POOL,
    RANDOM_FUNCS,
    REDUCTIONS,
    RESHAPES,
    SELECTS,
    SIZES,
    SOFTMAX,
    SOFTMAX_FUNCS,
    SQUEEZES,
    STACKS,
    WINDOW_FUNCS,
    ZERO_PAD,
    bind,
)
from .formulas import format_shape

Shape = tuple[int, ...]

MAX_BYTES = 2**62  # a meta tensor larger than this cannot be indexed (PyTorch counts in int64)


def analyse(model: nn.Module, input_shape: Shape, explain: bool = True,
            lines: bool = False) -> Graph:
    """Walk ``model`` at ``input_shape`` (no batch dim): a Step for every node.

    Recording source lines costs milliseconds per node, so the walk runs without them and, if
    ``explain``, runs again with them only when it has something to explain (an unknown op, a
    refusal note, an error), so that the messages can quote the line of ``forward``. ``lines``:
    record them from the start (for a caller with something to explain of its own).
    """
    try:
        graph = _analyse(symbolic_trace(model, lines=lines), input_shape)
    except ValueError:
        if not explain or lines:
            raise
        graph = _analyse(symbolic_trace(model, lines=True), input_shape)  # raises, with lines
    if explain and not lines and graph.has_news():
        graph = _analyse(symbolic_trace(model, lines=True), input_shape)
        graph.lines = True
    graph.lines = graph.lines or lines
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
    except (RuntimeError, TypeError, IndexError, AttributeError) as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"the model cannot run on input {input_shape}: {first}") from None
    return Graph(gm, walk.steps, tuple(input_shape))


class _Walk(OnShapes):
    """Runs the graph for its shapes (``OnShapes``); after each node, works out its Step."""

    def __init__(self, gm: fx.GraphModule, input_size: tuple[int, ...]):
        super().__init__(gm)
        self.input_size = input_size
        self.steps: dict[fx.Node, Step] = {}
        self.seen_params: set[int] = set()
        self.order = {n: i for i, n in enumerate(gm.graph.nodes)}

    def run_node(self, n: fx.Node):
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        changed = inplace.follow(self.module, n, args, kwargs, self.order)
        args, kwargs = self.fetch_args_kwargs_from_env(n)  # as rewritten out of place
        step = Step(n, n.name, n.op, None, None, Geo("other"))
        if n.op == "call_module":
            step.module = self.module.get_submodule(n.target)
            step.name, step.kind = n.target, type(step.module).__name__
            checks.module_input(step, args[0] if args else None)
        elif n.op in ("call_function", "call_method"):
            step.kind = re.sub(r"_\d+$", "", n.name)
            checks.function_input(step, args, kwargs)
            checks.operands(step, args, self.steps)
        out = _on_meta(super().run_node(n))   # torch.arange(5) made in forward: on meta too
        t = _tensor(out)
        step.out = tuple(t.shape) if t is not None else None
        step.tensor = isinstance(out, torch.Tensor)
        checks.nonempty(step)
        if n.op != "output":
            self.steps[n] = step
            step.geo = self.geo(step, args, kwargs, out)
            if changed is not None:  # an in-place change the walk cannot follow
                step.geo = unknown(changed[0])
                for m in changed[1]:
                    self.steps[m].geo = step.geo
            step.measure = notes.measure(step, args, kwargs, self.steps)
            notes.sizes(step, self.steps)
            notes.fixed_reshape(step, self.steps)
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
            notes.drawn(step, self.module.meta.get("random_draws", ()))
            if out.dim() < 3:
                return unknown("the input is a plain vector: it has no pixels to slide over")
            return Geo("map", Field.pixel(tuple(out.shape[2:])))
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
            return geometry.linear(step, g, x, mod.out_features)
        if isinstance(mod, SOFTMAX):
            return geometry.softmax(step, g, mod.dim, x)
        if isinstance(mod, nn.LayerNorm):
            return geometry.layer_norm(step, g, len(mod.normalized_shape))
        if isinstance(mod, nn.LocalResponseNorm) and g.kind not in ("map", "vector"):
            return unknown(f"{where(n, step.name)} normalises across dim 1, which is not the "
                           f"channel axis of {g.kind} tensors: it would mix positions")
        notes.state(step, mod, g)
        if "batch_stats" in step.notes and g.field is not None:  # every pixel of the batch
            g = replace(g, field=replace(g.field, odd=g.field.odd or step.notes["batch_stats"]))
        if isinstance(mod, POINTWISE):
            return g
        return unknown(f"{where(n, step.name)}: fcconv does not know how this layer moves "
                       "pixels, so it cannot say which input pixels reach an output cell")

    def function_geo(self, step: Step, args, kwargs, out) -> Geo:
        n, t = step.node, step.node.target
        g = self.src(n.args[0]) if n.args else Geo("other")
        x = args[0] if args else None
        if n.all_input_nodes and all(self.src(a).kind == "other" for a in n.all_input_nodes) \
                and t not in RANDOM_FUNCS and t not in DROPOUT_FUNCS:
            return Geo("other")   # a weight standardised, a constant reshaped: no pixel in it
        if t is getattr and _tensor(out) is not None:
            return self.attribute(step, g, x, n.args[1], _tensor(out))
        if t in WINDOW_FUNCS:
            a = bind(WINDOW_FUNCS[t], args, kwargs)
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
            if bind(("input", "output_size", "return_indices"), args, kwargs).get(
                    "return_indices"):
                step.notes["indices"] = "returns indices"
            return geometry.adaptive(step, g, x, _tensor(out))
        if t is F.pad:
            a = bind(("input", "pad", "mode", "value"), args, kwargs)
            if a.get("mode", "constant") != "constant" or (a.get("value") or 0) != 0:
                return unknown(f"{where(n)} pads with {a.get('mode')!r}/{a.get('value')}: only "
                               "zero padding keeps the receptive field a simple window")
            return geometry.pad(step, g, a["pad"])
        if t in RESHAPES:
            return geometry.reshape(step, g, x, _tensor(out))
        if t in SQUEEZES:
            dim = bind(("input", "dim"), args, kwargs).get("dim")
            return geometry.squeeze(step, g, x, dim, _tensor(out))
        if t in PERMUTES:
            return geometry.permute(step, g, x, _tensor(out), _permutation(t, x, args, kwargs))
        if t in RANDOM_FUNCS:
            notes.random(step)
        if t in SIZES or t is getattr or _tensor(out) is None or t in RANDOM_FUNCS:
            return Geo("other")
        if t in REDUCTIONS:
            a = bind(("input", "dim", "keepdim"), args, kwargs)
            return geometry.reduce(step, g, x, a.get("dim"), _tensor(out))
        if t in PIECES and not (t in MAXMIN and _two_tensors(args)):
            dim = bind(PIECES[t], args, kwargs).get("dim", None if t in MAXMIN else 0)
            return geometry.pieces(step, g, x, dim, t in ("split", "chunk", torch.split,
                                                          torch.chunk))
        if t in SELECTS:
            return geometry.select(step, g, x, bind(("input", "dim"), args, kwargs)["dim"])
        if t in STACKS:
            operands = [self.steps[a] for a in n.args[0] if isinstance(a, fx.Node)]
            dim = bind(("tensors", "dim"), args, kwargs).get("dim", 0)
            return geometry.stack(step, operands, _tensor(out), dim, self.input_size)
        if t in LINEAR_FUNCS:
            step.layer = True
            return geometry.linear(step, g, x, bind(("input", "weight"), args, kwargs)["weight"]
                                   .shape[0])
        if t in SOFTMAX_FUNCS:
            return geometry.softmax(step, g, bind(("input", "dim"), args, kwargs).get("dim"), x)
        if t is F.layer_norm:
            shape = bind(("input", "normalized_shape"), args, kwargs)["normalized_shape"]
            return geometry.layer_norm(step, g, len(per_axis(shape, 1)))
        if t in DROPOUT_FUNCS:
            notes.dropout(step, t, args, kwargs)
        if t in POINTWISE_FUNCS and len(n.all_input_nodes) == 1:
            return g
        if t in BINARY or t in CATS or t in POINTWISE_FUNCS or t in MAXMIN:
            # clamp(x, min=lo), torch.max(x, y): like x and lo
            operands = list(n.args[0]) if t in CATS else list(n.all_input_nodes)
            steps = [self.steps[a] for a in operands if isinstance(a, fx.Node) and a in self.steps]
            dim = bind(("tensors", "dim"), args, kwargs).get("dim", 0) if t in CATS else None
            y = _tensor(out)
            return geometry.merge(step, steps, y, None if dim is None else dim % y.dim(),
                                  self.input_size)
        if t is operator.getitem:
            source = self.steps.get(n.args[0]) if isinstance(n.args[0], fx.Node) else None
            return geometry.getitem(step, g, source, args[0], args[1])
        if isinstance(t, type) and issubclass(t, tuple) and hasattr(t, "_fields"):
            return unknown(f"{where(n)} packs tensors into a namedtuple ({t.__name__}): fcconv "
                           "follows a tensor, or a plain tuple of tensors; return tuple(...)")
        return unknown(f"{where(n)} ({step.kind}) is not an op fcconv knows: it cannot say "
                       "which input pixels reach an output cell after it")

    def attribute(self, step: Step, g: Geo, x, name: str, y) -> Geo:
        """x.values / x.indices of a max(dim), x.T (a transpose), x.data (x itself)."""
        if name in ("values", "indices"):
            source = self.steps.get(step.node.args[0])
            return geometry.getitem(step, g, source, x, ("values", "indices").index(name))
        if name in ("T", "mT", "H", "mH"):
            order = _permutation(getattr, x, (x, name), {})
            if order[0] != 0:
                return unknown(f"{where(step.node)} (.{name}) moves the batch axis of "
                               f"{kind_text(g.kind)} {geometry.shape_text(x)} to dim "
                               f"{order.index(0)}: an example's values no longer stay in its "
                               "row; fcconv follows permutes of a map's own axes")
            return geometry.permute(step, g, x, y, order)
        if name == "data":
            return g
        return unknown(f"{where(step.node)} reads .{name} of {kind_text(g.kind)}, "
                       "an attribute fcconv does not follow")

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
            w = bind(WINDOW_FUNCS.get(t) or ("input", "weight"), args, {}).get("weight")
            if isinstance(w, torch.Tensor) and t in WINDOW_FUNCS:
                step.macs = per_out * w.shape[1] * math.prod(w.shape[2:])
            elif isinstance(w, torch.Tensor) and t in LINEAR_FUNCS:
                step.macs = per_out * w.shape[1]
        new = [p for p in params if id(p) not in self.seen_params]
        self.seen_params.update(id(p) for p in new)
        step.params = sum(p.numel() for p in new)


# --------------------------------------------------------------------------- small helpers

def _tensor(out) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def _on_meta(out):
    """A tensor made in forward from no traced value (torch.arange(5, dtype=x.dtype), a
    torch.tensor) is made on the CPU: its meta twin, so that it meets the walk's tensors."""
    if isinstance(out, torch.Tensor) and not out.is_meta:
        return torch.empty_like(out, device="meta")
    return out


def _two_tensors(args) -> bool:
    return len(args) > 1 and isinstance(args[1], torch.Tensor)


def _permutation(target, x, args, kwargs) -> list[int]:
    """The new order of x's dims after x.permute(...), x.transpose(a, b), torch.movedim and
    the like: the same call on a meta tensor whose dims have lengths 1, 2, 3, ... reads it."""
    probe = torch.empty(tuple(range(1, x.dim() + 1)), device="meta")
    if target is getattr:
        y = getattr(probe, args[1])
    elif isinstance(target, str):
        y = getattr(probe, target)(*args[1:], **kwargs)
    else:
        y = target(probe, *args[1:], **kwargs)
    return [n - 1 for n in y.shape]


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
