"""What would make a dense pass differ from the crops, noted on a Step for convolutionalize
(private): batch statistics, dropout that drops, a number read off the input's size, a layer
with one parameter per row of a permuted map. The geometry of such a call is fine (trace and
receptive_field use it); only a converted net would compute something else.
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from ._fx import where
from ._graph import MAPS, Geo, Step, spatial_dims
from ._ops import BATCH_NORM, DROPOUT, DROPOUT_FUNCS, RESHAPES, SIZES, WINDOW_FUNCS, bind


def state(step: Step, mod: nn.Module, g: Geo) -> None:
    """BatchNorm with batch statistics or dropout that drops: the crops and a dense pass
    see different numbers. A layer with one parameter per index of dim 1 on a permuted map:
    dim 1 is a spatial axis there, whose length changes on a larger image."""
    if isinstance(mod, BATCH_NORM) and (mod.training or mod.running_mean is None):
        how = "is in training mode" if mod.training else \
            "keeps no running statistics (track_running_stats=False)"
        step.notes["batch_stats"] = (
            f"{step.kind} {step.name!r} {how}: it normalises with each batch's statistics, "
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

def dropout(step: Step, fn, args, kwargs) -> None:
    """F.dropout(x, p) drops even in eval mode unless training=self.training is passed."""
    names = ("input", "p", "train") if fn is torch.dropout else \
        ("input", "p", "training", "inplace")
    a = bind(names, args, kwargs)
    training, p = a.get(names[2], DROPOUT_FUNCS[fn]), a.get("p", 0.5)
    if training and p > 0:
        step.notes["random"] = (
            f"{where(step.node)} drops values at random (p={p}, training=True): no dense "
            "pass can equal the crops; pass training=self.training and call model.eval()")

def varies(step: Step, args, kwargs, steps: dict[fx.Node, Step]) -> bool | tuple:
    """For a size read off a tensor (x.shape, x.size(2), and numbers computed from them):
    whether it changes with the input's size, per item of a shape. The spatial sides do;
    the batch and the channels do not; a flattened map's length does (on the converted net
    the flatten is gone)."""
    n = step.node
    if step.out is not None or n.op in ("placeholder", "get_attr"):
        return False
    if n.target in SIZES or n.target is getattr and args[1] == "shape":
        x = args[0]
        moving = _moving_dims(steps[n.args[0]].geo, x.dim())
        if n.target == "numel" or n.target is torch.numel:
            return bool(moving)
        if n.target == "dim":
            return False
        dim = bind(("self", "dim"), args, kwargs).get("dim") if n.target == "size" else None
        if dim is not None:
            return dim % x.dim() in moving
        return tuple(d in moving for d in range(x.dim()))
    if n.target is operator.getitem and isinstance(n.args[0], fx.Node):
        shape = steps[n.args[0]].varies
        if isinstance(shape, tuple) and isinstance(args[1], (int, slice)):
            return shape[args[1]]
    return any(_any(steps[a].varies) for a in n.all_input_nodes if a in steps)

def sizes(step: Step, steps: dict[fx.Node, Step]) -> None:
    """A call on the pixels that takes a number read off the input's size: on a larger
    image the number differs from the one each crop gives. A flatten (which goes) or a
    reshape to the shape it already has may; a window's kernel or stride says what it
    becomes (global pooling)."""
    n = step.node
    if step.out is None or n.op == "placeholder":
        return
    sizes = [a for a in n.all_input_nodes if a in steps and steps[a].out is None
             and _any(steps[a].varies)]
    if not sizes or n.target in RESHAPES and step.geo.kind in ("flat", "vector") or \
            n.target in RESHAPES and steps[n.args[0]].out == step.out:
        return
    if n.target in WINDOW_FUNCS:
        a = bind(WINDOW_FUNCS[n.target], n.args, n.kwargs)
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
