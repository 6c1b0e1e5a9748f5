"""The fx graph surgery behind ``convolutionalize`` (private): refuse, simplify, convert, finish.

Works on the ``_graph.Graph`` of a deep copy of the model, so the original is never touched.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import fx, nn

from . import _graph
from .conversions import linear_to_conv, spelled
from .dense import CropToWindows
from .formulas import format_shape

Shape = tuple[int, ...]

_REFUSED_NOTES = tuple(n for n in _graph.REFUSALS if n != "adaptive")  # adaptive: own message


# --------------------------------------------------------------------------- refuse

def refuse_what_cannot_slide(graph: _graph.Graph) -> dict[fx.Node, _graph.Geo]:
    """Raise ValueError for anything whose dense pass would differ from the crops; return the
    flatten nodes (each with the map shape and order it flattens)."""
    outs = graph.outputs()
    if graph.returns():
        raise ValueError(f"the model's forward returns {graph.returns()}; convolutionalize "
                         "converts a classifier whose forward returns one tensor: wrap the "
                         "head you want in a model that returns just it")
    for step in graph.steps.values():
        for note in _REFUSED_NOTES:
            if note in step.notes:
                raise ValueError(step.notes[note])
        if "adaptive" in step.notes:
            raise ValueError(_adaptive_message(graph, step))
    geo = graph.steps[outs[0]].geo
    if geo.kind == "unknown":
        raise ValueError(f"convolutionalize cannot slide this model: {geo.why}")
    flats = {n: s.geo for n, s in graph.steps.items() if s.geo.kind == "flat"
             and graph.steps[n.args[0]].geo.kind in ("map", "channels_last")}
    if not flats:
        raise ValueError("found no flatten (nn.Flatten, torch.flatten, view or reshape to "
                         "(N, features)) in the model: it is already convolutional, or its "
                         "head does not start from a feature map")
    for geo in flats.values():
        if len(geo.map_shape) not in (2, 3):
            raise ValueError(f"the flattened map is {format_shape(geo.map_shape)}: "
                             "convolutionalize handles 1-D (C, L) and 2-D (C, H, W) maps")
    return flats


def _adaptive_message(graph: _graph.Graph, step: _graph.Step) -> str:
    before = "x".join(map(str, graph.steps[step.node.args[0]].out[2:]))
    after = "x".join(map(str, step.out[2:]))
    return (f"{_graph.where(step.node, step.name)} pools the {before} feature map at input "
            f"{format_shape(graph.input_shape)} to {after}: it is not an identity here, and on a "
            f"larger input it would {_pools(step)} the whole map down to {after} instead of "
            f"sliding the "
            f"classifier over it. Convolutionalize at the size where the feature map already is "
            f"{after} (e.g. 224x224 for VGG16).")


def _pools(step: _graph.Step) -> str:
    """'average' or 'max-pool': what an adaptive pool does to a whole map."""
    return "max-pool" if "max" in f"{step.kind} {step.node.target}".lower() else "average"


# --------------------------------------------------------------------------- simplify the trunk

def simplify_trunk(graph: _graph.Graph) -> None:
    """Drop adaptive pools that are identities at the training size; turn ceil_mode off where
    every window fits (then floor and ceil agree on the crop, and a larger image gets no
    partial window hanging off its edge)."""
    gm = graph.gm
    for node, step in list(graph.steps.items()):
        if "adaptive_identity" in step.notes:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
        elif "ceil_fits" in step.notes and step.module is not None:
            step.module.ceil_mode = False
        elif "ceil_fits" in step.notes:
            names = _graph.WINDOW_FUNCS[node.target]
            i = names.index("ceil_mode")
            if len(node.args) > i:
                node.update_arg(i, False)
            else:
                node.update_kwarg("ceil_mode", False)


# --------------------------------------------------------------------------- the head

def convert_head(graph: _graph.Graph, flats: dict[fx.Node, _graph.Geo],
                 share_weights: bool = False) -> None:
    """Walk forward from each flatten and rewrite every op on the head so that it works on maps
    (``share_weights``: each Linear's conv views the Linear's weights instead of copying them).

    ``pending`` holds nodes whose value is still a flattened map (the flatten, and dropout or
    activations on it): the Linear that consumes one takes the whole map as its kernel.
    """
    gm = graph.gm
    nsp = len(next(iter(flats.values())).map_shape) - 1
    pending = dict(flats)
    on_head = set(flats)
    for node in list(gm.graph.nodes):
        inputs = [a for a in node.all_input_nodes if a in on_head]
        if node in on_head or not inputs or node.op == "output":
            continue
        on_head.add(node)
        flat = pending.get(inputs[0])
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            if flat is not None and not isinstance(mod, (nn.Linear,) + _graph.POINTWISE):
                raise ValueError(f"{type(mod).__name__} ({node.target!r}) acts on the flattened "
                                 f"{format_shape(flat.map_shape)} features before the first "
                                 "Linear; convolutionalize supports only dropout and "
                                 "activations there")
            if flat is not None and not isinstance(mod, nn.Linear) and _per_feature(mod):
                raise ValueError(f"{type(mod).__name__} ({node.target!r}) has one parameter per "
                                 f"feature of the flattened {format_shape(flat.map_shape)} map, "
                                 "before the first Linear: on a map those would be per pixel, "
                                 "not per channel; move it after the first Linear or before "
                                 "the flatten")
            _convert_head_module(gm, node, mod, flat, nsp, share_weights)
            if isinstance(mod, nn.Linear):
                flat = None
        elif _is(node, _graph.SOFTMAX_FUNCS):
            _softmax_over_channels(node)
        elif graph.steps.get(node) is not None and graph.steps[node].out is None:
            pass  # sizes and shapes (x.size(0)): they go with the flatten that used them
        elif not _is(node, _graph.POINTWISE_FUNCS | _graph.BINARY):
            raise ValueError(f"convolutionalize cannot carry {_graph.where(node)} over the "
                             "classifier head: only Linear, BatchNorm1d, dropout, elementwise "
                             "activations and softmax over the classes are supported there")
        if flat is not None:
            pending[node] = flat
    for node in flats:  # the flatten itself goes: the map stays a map
        node.replace_all_uses_with(_map_before(graph, node))
        gm.graph.erase_node(node)


def _per_feature(mod: nn.Module) -> bool:
    """Whether a module has weights or statistics per feature (BatchNorm1d, PReLU(n > 1))."""
    return isinstance(mod, _graph.BATCH_NORM) or \
        any(t.numel() > 1 for t in [*mod.parameters(), *mod.buffers()])


def _map_before(graph: _graph.Graph, flat: fx.Node) -> fx.Node:
    """The (N, C, H, W) node a flatten folded, past a channels-last permute if there was one."""
    node = flat.args[0]
    while graph.steps[node].geo.kind == "channels_last":
        node = node.args[0]
    return node


def _is(node: fx.Node, targets) -> bool:
    return node.op in ("call_function", "call_method") and node.target in targets


def _convert_head_module(gm, node: fx.Node, mod: nn.Module, flat: _graph.Geo | None,
                         nsp: int, share_weights: bool = False) -> None:
    """Replace one head module by its map version (in place in ``gm``)."""
    if isinstance(mod, nn.Linear):
        # Right after the flatten: the kernel is the whole map. Anywhere later: 1x1 (or 1).
        shape = flat.map_shape if flat is not None else (mod.in_features, *(1,) * nsp)
        if mod.in_features != math.prod(shape):
            raise ValueError(f"Linear {node.target!r} expects {mod.in_features} inputs but the "
                             f"feature map is {spelled(shape)}")
        conv = linear_to_conv(mod, shape, flat.order if flat is not None else "chw",
                              share_weights=share_weights)
        _replace_module(gm, node.target, conv)
    elif isinstance(mod, nn.BatchNorm1d) and nsp == 2:  # per feature = per channel of the map
        bn = nn.BatchNorm2d(mod.num_features, mod.eps, mod.momentum, mod.affine,
                            mod.track_running_stats, device=_device_of(mod), dtype=_dtype_of(mod))
        bn.load_state_dict(mod.state_dict())
        bn.train(mod.training)
        _replace_module(gm, node.target, bn)
    elif isinstance(mod, _graph.SOFTMAX):
        if mod.dim not in (1, -1):
            raise ValueError(f"{node.target!r}: softmax over dim {mod.dim} is not over the classes")
        _replace_module(gm, node.target, type(mod)(dim=1))
    elif not isinstance(mod, _graph.POINTWISE) or isinstance(mod, nn.LocalResponseNorm):
        raise ValueError(f"convolutionalize cannot carry {type(mod).__name__} ({node.target!r}) "
                         "over the classifier head")


def _softmax_over_channels(node: fx.Node) -> None:
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    if dim not in (1, -1):
        raise ValueError(f"{_graph.where(node)}: softmax over dim {dim} is not over the classes")
    if "dim" in node.kwargs:
        node.update_kwarg("dim", 1)
    else:
        node.update_arg(1, 1)


def _replace_module(gm: fx.GraphModule, target: str, new: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, new)


def _device_of(mod: nn.Module):
    return next((t.device for t in mod.state_dict().values()), None)


def _dtype_of(mod: nn.Module):
    return next((t.dtype for t in mod.parameters()), None)


# --------------------------------------------------------------------------- finish

class SizeGuard:
    """Checks an input is at least the training size, with the arithmetic in the message."""

    def __init__(self, input_shape: Shape, flat_shape: Shape):
        self.input_shape, self.flat_shape = input_shape, flat_shape

    def __call__(self, module, args):
        x = args[0]
        need = self.input_shape[1:]
        got = tuple(x.shape[2:])
        if x.dim() != len(self.input_shape) + 1 or x.shape[1] != self.input_shape[0]:
            raise ValueError(f"expected input (N, {', '.join(map(str, self.input_shape))}) or "
                             f"larger; got {tuple(x.shape)}")
        if any(g < n for g, n in zip(got, need)):
            # The converted net has no Linear left: name the window the first head conv covers.
            raise ValueError(f"the input {'x'.join(map(str, got))} is smaller than the "
                             f"{'x'.join(map(str, need))} window the classifier was built for: the "
                             f"first head conv (once a Linear over {spelled(self.flat_shape)}) "
                             f"needs at least one whole window")


def finish(graph: _graph.Graph, flats, sequential: bool) -> nn.Module:
    """Clean the graph; add a crop where floor pooling would leave cells hanging off the image;
    record ``window`` and ``jump``; check (N, K, 1, 1) at the training size."""
    from .shapes import run_on_meta

    gm, shape = graph.gm, graph.input_shape
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    out_geo = graph.steps[graph.outputs()[0]].geo
    window, jump = shape[1:], out_geo.field.jump
    # One probe settles it: the dense count is floor((H + A) / jump) for some A, equal to the
    # crops' (H - window) // jump + 1 for every H iff it is 1 at H = window + jump - 1.
    probe = run_on_meta(gm, (shape[0], *(w + j - 1 for w, j in zip(window, jump))))
    crop = any(s > 1 for s in probe.shape[2:])
    if crop:
        _append_crop(gm, window, jump)
    net = _as_sequential(gm) if sequential and not crop else gm
    net.window = window[0] if len(set(window)) == 1 else tuple(window)
    net.jump = jump[0] if len(set(jump)) == 1 else tuple(jump)
    net.register_forward_pre_hook(SizeGuard(shape, next(iter(flats.values())).map_shape))
    out = run_on_meta(net, shape)
    if out.dim() < 3 or any(s != 1 for s in out.shape[2:]):
        raise ValueError(f"the converted model gives {tuple(out.shape)} at the training size, "
                         "not (N, K, 1, 1)")
    return net


def _append_crop(gm: fx.GraphModule, window, jump) -> None:
    out = next(n for n in gm.graph.nodes if n.op == "output")
    image = next(n for n in gm.graph.nodes if n.op == "placeholder")
    gm.add_submodule("crop", CropToWindows(window, jump))
    with gm.graph.inserting_before(out):
        cropped = gm.graph.call_module("crop", (out.args[0], image))
    out.args = (cropped,)
    gm.recompile()


def _as_sequential(gm: fx.GraphModule) -> nn.Module:
    """A chain of layers reads better as nn.Sequential (same layer names); else keep the graph.
    A module called twice (one ReLU object reused) appears twice: once per call."""
    nodes = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output")]
    chain = all(n.op == "call_module" and "." not in n.target and len(n.users) == 1
                for n in nodes)
    if not chain:
        return gm
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for n in nodes:
        name, k = n.target, 1
        while name in layers:
            name, k = f"{n.target}_call{k + 1}", k + 1
        layers[name] = gm.get_submodule(n.target)
    return nn.Sequential(layers)


