"""The classifier head as convolutions (private): ``convert_head``, the step of convolutionalize
after the trunk is checked (``_rewrite``).

From each flatten forward, every op of the head is rewritten to work on maps: the first Linear
(a module, a Linear subclass, or F.linear on a parameter) becomes a conv whose kernel is the
whole map, later ones 1x1 convs; a softmax, a reduction or a pick over the classes moves to
dim 1, the channels; a constant per class becomes (1, K, 1, 1); a reshape that keeps each
example's features (a second flatten, view(N, -1)) goes, and (N, 1) -> (N,) becomes squeeze(1).
"""

from __future__ import annotations

import math
import operator

import torch
from torch import fx, nn

from . import _graph
from ._fx import where
from ._ops import (
    BATCH_NORM,
    BINARY,
    CATS,
    LINEAR_FUNCS,
    MAXMIN,
    PIECES,
    POINTWISE,
    POINTWISE_FUNCS,
    REDUCTIONS,
    RESHAPES,
    SELECTS,
    SOFTMAX,
    SOFTMAX_FUNCS,
    SQUEEZES,
    STACKS,
    bind,
)
from .conversions import linear_to_conv, spelled
from .formulas import format_shape


def convert_head(graph: _graph.Graph, flats: dict[fx.Node, _graph.Geo],
                 share_weights: bool = False) -> None:
    """Walk forward from each flatten and rewrite every op on the head so that it works on maps
    (``share_weights``: each Linear's conv views the Linear's weights instead of copying them).

    ``pending`` holds nodes whose value is still a flattened map (the flatten, and dropout or
    activations on it): the Linear that consumes one takes the whole map as its kernel.
    """
    if not flats:
        return
    gm = graph.gm
    nsp = len(next(iter(flats.values())).map_shape) - 1
    pending = dict(flats)
    on_head = set(flats)
    originals: dict[str, nn.Module] = {}  # a module called twice is converted for each call
    placed: dict[tuple, str] = {}
    for node in list(gm.graph.nodes):
        inputs = [a for a in node.all_input_nodes if a in on_head]
        if node in on_head or not inputs or node.op == "output":
            continue
        on_head.add(node)
        if graph.steps.get(node) is not None and graph.steps[node].out is None:
            continue  # sizes and shapes (x.size(0)): they go with the flatten that used them
        flat = pending.get(inputs[0])
        if _shape_only(gm, node):
            _reshape(graph, node, flat)
            continue
        if node.op == "call_module":
            mod = originals.setdefault(node.target, gm.get_submodule(node.target))
            if flat is not None and not isinstance(mod, (nn.Linear,) + POINTWISE):
                raise ValueError(f"{where(node, node.target)} acts on the flattened "
                                 f"{format_shape(flat.map_shape)} features before the first "
                                 "Linear; convolutionalize supports only dropout and "
                                 "activations there")
            if flat is not None and not isinstance(mod, nn.Linear) and _per_feature(mod):
                raise ValueError(f"{where(node, node.target)} has one parameter per "
                                 f"feature of the flattened {format_shape(flat.map_shape)} map, "
                                 "before the first Linear: on a map those would be per pixel, "
                                 "not per channel; move it after the first Linear or before "
                                 "the flatten")
            _place(gm, node, *_head_module(node, mod, flat, nsp, share_weights), placed)
            if isinstance(mod, nn.Linear):
                flat = None
        elif _is(node, LINEAR_FUNCS):
            on_head.add(_functional_linear(graph, node, flat, nsp))
            flat = None
        elif flat is not None and not _is(node, POINTWISE_FUNCS | BINARY):
            raise ValueError(f"convolutionalize cannot carry {where(node)} over the "
                             f"flattened {format_shape(flat.map_shape)} features before the "
                             "first Linear: only dropout and elementwise activations act on "
                             "each feature alone there")
        elif _dim_at(graph, node) is not None:
            _over_channels(node, _dim_at(graph, node))
        elif _is(node, {operator.getitem}) and graph.steps[node.args[0]].tensor:
            _pick_channels(graph, node)
        elif _is(node, {operator.getitem}) or node.op == "call_function" and \
                node.target is getattr and node.args[1] in ("values", "indices"):
            pass   # one piece of a split (or max's values): already a map
        elif not _is(node, POINTWISE_FUNCS | BINARY | MAXMIN):
            raise ValueError(f"convolutionalize cannot carry {where(node)} over the "
                             "classifier head: only Linear, BatchNorm1d, dropout, elementwise "
                             "activations, constants per class, softmax, reductions, splits "
                             "and stacks over the classes and picking classes (x[:, k]) are "
                             "supported there")
        if flat is None:
            _constants_per_channel(graph, node, nsp)
        else:
            pending[node] = flat
    for node in flats:  # the flatten itself goes: the map stays a map (in C, H, W order)
        node.replace_all_uses_with(_map_before(graph, node))
        gm.graph.erase_node(node)


def _shape_only(gm: fx.GraphModule, node: fx.Node) -> bool:
    """A flatten, view, reshape or squeeze: it moves no value, only the shape."""
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), nn.Flatten)
    return _is(node, RESHAPES | SQUEEZES)


def _reshape(graph: _graph.Graph, node: fx.Node, flat: _graph.Geo | None) -> None:
    """A reshape on the head: one that keeps each example's features as they are (a second
    flatten, view(N, -1) on (N, K) scores) goes; (N, 1) scores to (N,) picks channel 0 of the
    score map (squeeze(1)); anything else moves features between positions: refused."""
    src = node.args[0]
    before, after = graph.steps[src].out, graph.steps[node].out
    if flat is not None and graph.steps[node].geo.kind == "flat" or before == after:
        node.replace_all_uses_with(src)
        graph.gm.graph.erase_node(node)
    elif flat is None and before is not None and tuple(before[1:]) == (1,) and len(after) == 1:
        node.op, node.target, node.args, node.kwargs = "call_method", "squeeze", (src, 1), {}
    else:
        raise ValueError(f"convolutionalize cannot carry {where(node)} over the classifier head: "
                         f"it reshapes {before} to {after}, which moves values between the "
                         "classes and the examples")


def _functional_linear(graph: _graph.Graph, node: fx.Node, flat, nsp: int) -> fx.Node:
    """F.linear(x, self.w, self.b) as the conv nn.Linear would become; returns the new node."""
    gm = graph.gm
    a = bind(("input", "weight", "bias"), node.args, node.kwargs)
    weight, bias = a["weight"], a.get("bias")
    if not all(v is None or isinstance(v, fx.Node) and v.op == "get_attr" for v in (weight, bias)):
        raise ValueError(f"convolutionalize cannot carry {where(node)} over the classifier head: "
                         "its weight or bias is computed in forward, not a parameter or buffer "
                         "of the model (nn.Linear holds its own)")
    w = _attr(gm, weight.target).detach()
    linear = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None, device="meta",
                       dtype=w.dtype)                    # no memory: its tensors are replaced
    linear.weight = nn.Parameter(w, requires_grad=False)
    if bias is not None:
        linear.bias = nn.Parameter(_attr(gm, bias.target).detach(), requires_grad=False)
    conv, _ = _head_module(node, linear, flat, nsp)
    name, k = f"{node.name}_conv", 1
    while hasattr(gm, name):
        k += 1
        name = f"{node.name}_conv{k}"
    gm.add_submodule(name, conv)
    with gm.graph.inserting_before(node):
        new = gm.graph.call_module(name, (a["input"],))
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)
    graph.steps[new] = graph.steps[node]
    return new


def _attr(gm: nn.Module, target: str) -> torch.Tensor:
    parent, _, name = target.rpartition(".")
    return getattr(gm.get_submodule(parent) if parent else gm, name)


def _dim_at(graph: _graph.Graph, node: fx.Node) -> int | None:
    """Where an op over the classes takes its dim (softmax, mean, split, select, stack, ...);
    None for any other op (torch.max(a, b) of two tensors included)."""
    if not _is(node, SOFTMAX_FUNCS | REDUCTIONS | PIECES.keys() | SELECTS | STACKS | CATS):
        return None
    second = node.args[1] if len(node.args) > 1 else None
    if isinstance(second, fx.Node) and graph.steps[second].out is not None:
        return None
    return PIECES[node.target].index("dim") if node.target in PIECES else 1


def _over_channels(node: fx.Node, at: int) -> None:
    """An op over the classes of (N, K) scores (the walk refused any other dim): over dim 1,
    the channels, of the score map (dim=-1 would be its width)."""
    if len(node.args) > at:
        node.update_arg(at, 1)
    else:
        node.update_kwarg("dim", 1)


def _constants_per_channel(graph: _graph.Graph, node: fx.Node, nsp: int) -> None:
    """scores * t with t of shape (K,) or (1, K): one value per class, which on the score map
    is per channel, (1, K, 1, 1); a (K,) tensor would meet its width instead."""
    for c in node.all_input_nodes:
        step = graph.steps.get(c)
        if step is not None and step.geo.kind == "other" and step.out is not None and \
                math.prod(step.out) > 1:
            with graph.gm.graph.inserting_before(node):
                per_channel = graph.gm.graph.call_method("view", (c, 1, -1, *(1,) * nsp))
            node.replace_input_with(c, per_channel)


def _per_feature(mod: nn.Module) -> bool:
    """Whether a module has weights or statistics per feature (BatchNorm1d, PReLU(n > 1))."""
    return isinstance(mod, BATCH_NORM) or \
        any(t.numel() > 1 for t in [*mod.parameters(), *mod.buffers()])


def _map_before(graph: _graph.Graph, flat: fx.Node) -> fx.Node:
    """The (N, C, H, W) map a flatten folded; a permuted map (channels last) is permuted back,
    after whatever ran on it (a LayerNorm over its channels stays where it was)."""
    node = flat.args[0]
    geo = graph.steps[node].geo
    if geo.kind != "permuted":
        return node
    if len(node.users) == 1 and graph.steps[node.args[0]].geo.kind == "map":
        return node.args[0]  # x.permute(...).flatten(1): the permute goes with the flatten
    with graph.gm.graph.inserting_before(flat):
        back = (0, *(1 + geo.order.index(a) for a in _graph.AXES[len(geo.order) - 1]))
        return graph.gm.graph.call_method("permute", (node, *back))


def _pick_channels(graph: _graph.Graph, node: fx.Node) -> None:
    """x[:, k] on the head's (N, K) scores picks class k; written out as x[:, k], it picks
    channel k of the (N, K, H, W) score map (x[..., k] would pick a column)."""
    ndim = len(graph.steps[node.args[0]].out)
    node.update_arg(1, (slice(None), _graph.channel_index(node.args[1], ndim)))


def _is(node: fx.Node, targets) -> bool:
    return node.op in ("call_function", "call_method") and node.target in targets


_ORDERS_1D = {"cl": "chw", "lc": "hwc"}  # linear_to_conv's names for a (C, L) map's two orders


def _head_module(node: fx.Node, mod: nn.Module, flat: _graph.Geo | None, nsp: int,
                 share_weights: bool = False):
    """(the map version of one head module, what it was made for); (None, None) if it works
    on maps as it is."""
    if isinstance(mod, nn.Linear):
        # Right after the flatten: the kernel is the whole map. Anywhere later: 1x1 (or 1).
        shape = flat.map_shape if flat is not None else (mod.in_features, *(1,) * nsp)
        if mod.in_features != math.prod(shape):
            raise ValueError(f"Linear {node.target!r} expects {mod.in_features} inputs but the "
                             f"feature map is {spelled(shape)}")
        order = _ORDERS_1D.get(flat.order, flat.order) if flat is not None else "chw"
        # share_weights: the conv views the Linear's weights (no copy)
        return linear_to_conv(mod, shape, order, share_weights=share_weights), (shape, order)
    if isinstance(mod, nn.BatchNorm1d) and nsp == 2:  # per feature = per channel of the map
        bn = nn.BatchNorm2d(mod.num_features, mod.eps, mod.momentum, mod.affine,
                            mod.track_running_stats, device=_device_of(mod), dtype=_dtype_of(mod))
        bn.load_state_dict(mod.state_dict())
        bn.train(mod.training)
        return bn, "2d"
    if isinstance(mod, SOFTMAX):  # over the classes (the walk refused any other dim)
        return type(mod)(dim=1), "dim 1"
    if not isinstance(mod, POINTWISE) or isinstance(mod, nn.LocalResponseNorm):
        raise ValueError(f"convolutionalize cannot carry {type(mod).__name__} ({node.target!r}) "
                         "over the classifier head")
    return None, None


def _place(gm: fx.GraphModule, node: fx.Node, new: nn.Module | None, made_for, placed) -> None:
    """Put ``new`` where the module ``node`` calls was; a module called twice for different
    inputs (one Linear on the flattened map, then on a vector) gets a second name."""
    if new is None:
        return
    name = placed.get((node.target, made_for))
    if name is None:
        name, k = node.target, 1
        while any(target == name for target, _ in placed) or \
                (k > 1 and _has_submodule(gm, name)):
            k += 1
            name = f"{node.target}_call{k}"
        _replace_module(gm, name, new)
        placed[(node.target, made_for)] = name
    node.target = name


def _has_submodule(gm: nn.Module, target: str) -> bool:
    try:
        gm.get_submodule(target)
    except AttributeError:
        return False
    return True


def _replace_module(gm: fx.GraphModule, target: str, new: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, new)


def _device_of(mod: nn.Module):
    return next((t.device for t in mod.state_dict().values()), None)


def _dtype_of(mod: nn.Module):
    return next((t.dtype for t in mod.parameters()), None)


