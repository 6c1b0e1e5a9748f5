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
from ._graph import BATCH_KEY, FIXED, MAPS, MOVING, OTHER, Geo, Step, dim_keys, moves
from ._ops import BATCH_NORM, DROPOUT, DROPOUT_FUNCS, RESHAPES, SIZES, WINDOW_FUNCS, bind


def state(step: Step, mod: nn.Module, g: Geo) -> None:
    """BatchNorm with batch statistics or dropout that drops: the crops and a dense pass
    see different numbers. A layer with one parameter per index of dim 1 on a permuted map:
    dim 1 is a spatial axis there, whose length changes on a larger image."""
    why = training(f"{step.kind} {step.name!r}", mod)
    if why:
        step.notes["batch_stats" if isinstance(mod, BATCH_NORM) else "random"] = why
    per_index = [t for t in (*mod.parameters(recurse=False), *mod.buffers(recurse=False))
                 if t.dim() == 1 and t.numel() > 1]
    if g.kind in ("permuted", "plane") and per_index:
        step.notes["per_position"] = (
            f"{where(step.node, step.name)} has one parameter per index of dim 1, which on "
            f"{g.kind} tensors is a spatial axis, not the channels: each row of the map gets "
            "its own, and a larger image has more rows; apply it before the permute")


def training(label: str, mod: nn.Module) -> str:
    """Why a layer's output depends on more than its input ('' if it does not): BatchNorm on
    batch statistics (every example of the batch, every pixel), dropout that drops (chance)."""
    if isinstance(mod, BATCH_NORM) and (mod.training or mod.running_mean is None):
        how, fix = ("is in training mode", "call model.eval() first") if \
            mod.running_mean is not None else \
            ("keeps no running statistics (track_running_stats=False), so it uses batch "
             "statistics even in eval mode", "give it running statistics (train it with "
             "track_running_stats=True) or fold a fixed normalisation into the layer before it")
        return (f"{label} {how}: it normalises with each batch's statistics, so every value "
                "after it depends on every pixel of every example in the batch, and they differ "
                f"between crops (and between a batch of crops and one large image); {fix}")
    if isinstance(mod, DROPOUT) and mod.training and mod.p > 0:
        return (f"{label} is in training mode (p={mod.p}): it zeroes random values on every "
                "call, so no two passes agree and no dense pass can equal the crops; call "
                "model.eval() first")
    return ""


def in_training(model: nn.Module) -> str:
    """The first layer of ``model`` whose output depends on more than its input, and why."""
    for name, mod in model.named_modules():
        why = training(f"{type(mod).__name__} {name!r}", mod)
        if why:
            return why
    return ""


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

def random(step: Step) -> None:
    """torch.rand and its kin in forward: every call draws other numbers."""
    step.notes["random"] = (
        f"{where(step.node)} draws random numbers on every call (noise, a random mask): no two "
        "passes agree, so no dense pass can equal the crops; draw them only in training "
        "(if self.training: ...) and call model.eval()")


def drawn(step: Step, draws) -> None:
    """Random numbers forward drew while fx traced it (kept as a constant by fx, drawn anew
    by the model on every call)."""
    if draws:
        step.notes["random"] = (
            f"forward draws random numbers ({draws[0]}) on every call: no two passes agree, so "
            "no dense pass can equal the crops; draw them only in training (if self.training: "
            "...) and call model.eval()")


def measure(step: Step, args, kwargs, steps: dict[fx.Node, Step]):
    """For a size read off a tensor (x.shape, x.size(2), and numbers computed from them): what
    it measures, per item of a shape; None for a tensor."""
    n = step.node
    if step.out is not None or n.op in ("placeholder", "get_attr"):
        return None
    if n.target in SIZES or n.target is getattr and args[1] == "shape":
        keys = dim_keys(steps[n.args[0]].geo, args[0])
        if n.target == "numel" or n.target is torch.numel:
            return MOVING if moves(keys) else OTHER
        if n.target == "dim":
            return FIXED
        dim = bind(("self", "dim"), args, kwargs).get("dim") if n.target == "size" else None
        return keys if dim is None else keys[dim % len(keys)]
    if n.target is operator.getitem and isinstance(n.args[0], fx.Node):
        shape = steps[n.args[0]].measure
        if isinstance(shape, tuple) and isinstance(args[1], (int, slice)):
            return shape[args[1]]
    found = [steps[a].measure for a in n.all_input_nodes if a in steps]
    return MOVING if any(moves(m) for m in found) else \
        FIXED if all(m in (FIXED, None) for m in found) else OTHER


def fixed_reshape(step: Step, steps: dict[fx.Node, Step]) -> None:
    """x.view(-1, 1, 28, 28) keeps a map's shape at the training size, but on a larger image the
    same numbers fold its extra pixels into the batch (or fail): a reshape of a map is the
    identity at every size only where each side it writes is read off the map itself (or is
    the one -1), and the batch is the batch."""
    n = step.node
    if n.target not in ("view", "reshape", torch.reshape) or step.out is None or \
            not isinstance(n.args[0], fx.Node) or steps[n.args[0]].out != step.out:
        return
    g = steps[n.args[0]].geo
    if g.kind not in MAPS:
        return
    want = dim_keys(g, torch.empty(step.out, device="meta"))
    written = _target_keys(n, steps)
    if written is None or len(written) != len(want):
        written = (None,) * len(want)
    loose = [i for i, (w, k) in enumerate(zip(want, written)) if not _pins(w, k)]
    if loose:
        dims = " and ".join(_dim_name(want[i], i) for i in loose)
        step.notes["fixed_reshape"] = (
            f"{where(n)} leaves the {_shape(step.out)} map as it is at this input, but writes "
            f"{dims} with numbers not read off it: on a larger image the same numbers fold its "
            "extra pixels into the batch (or fail), so no converted net equals the crops. Remove "
            "it (it changes nothing here), or read every side off the tensor: "
            "x.view(x.size(0), x.size(1), x.size(2), x.size(3))")


def _target_keys(n: fx.Node, steps) -> tuple | None:
    """What each size a view/reshape writes measures: 'const' for a number, 'infer' for -1."""
    items = list(n.args[1:]) or [n.kwargs.get("shape", n.kwargs.get("size"))]
    if len(items) == 1 and isinstance(items[0], (tuple, list, fx.Node)):
        items = items[0]
        if isinstance(items, fx.Node):
            m = steps[items].measure if items in steps else None
            return m if isinstance(m, tuple) and (not m or m[0] != "axis") else None
    keys = []
    for v in items:
        if isinstance(v, fx.Node):
            keys.append(steps[v].measure if v in steps else None)
        else:
            keys.append("infer" if v == -1 else "const")
    return tuple(keys)


def _pins(want, key) -> bool:
    """Whether a written size equals the tensor's own along that dim at every input size."""
    if key == "infer":
        return True
    if want == FIXED:
        return key in ("const", FIXED)
    return key == want


def _dim_name(key, i: int) -> str:
    if key == BATCH_KEY:
        return "the batch (dim 0)"
    if isinstance(key, tuple):
        return f"spatial axis {key[1]} (dim {i})"
    return f"dim {i}"


def _shape(out) -> str:
    return "(N, " + ", ".join(map(str, out[1:])) + ")"


def sizes(step: Step, steps: dict[fx.Node, Step]) -> None:
    """A call on the pixels that takes a number read off the input's size: on a larger
    image the number differs from the one each crop gives. A flatten (which goes) or a
    reshape to the shape it already has may; a window's kernel or stride says what it
    becomes (global pooling)."""
    n = step.node
    if step.out is None or n.op == "placeholder":
        return
    sizes = [a for a in n.all_input_nodes if a in steps and steps[a].out is None
             and moves(steps[a].measure)]
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


def _nodes(v) -> list[fx.Node]:
    """The nodes anywhere inside an fx argument."""
    found = []
    fx.node.map_arg(v, found.append)
    return found
