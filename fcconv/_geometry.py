"""What each kind of op does to a map's geometry, one function per op (private).

Each takes the ``Step`` being worked out, the ``Geo`` of its input and the meta tensors it ran
on, and returns the Geo of its output: a conv or pool moves the receptive field one step of the
recurrence, a flatten folds a map into features, a Linear on those features covers the whole
map, and so on. What convolutionalize must know besides (a ceil-mode window hanging off the map,
global pooling, branches whose sizes agree only here) goes into ``step.notes``.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import fx

from ._field import padding_mode_leaves_window, side, sizes_vary, union
from ._fx import BATCH, where
from ._graph import (
    AXES,
    BATCH_KEY,
    FIXED,
    MAPS,
    Geo,
    Step,
    as_map,
    channel_index,
    dim_keys,
    kind_text,
    spatial_dims,
    unknown,
    whole_map,
)
from .formulas import conv_output_size, format_shape


def window(step: Step, g: Geo, x, kernel, stride, padding, dilation, ceil: bool,
           mode: str = "zeros") -> Geo:
    """A conv or pooling window: the receptive-field recurrence, axis by axis."""
    label = where(step.node, step.name)
    g = as_map(g)
    if g.kind != "map":
        return unknown(f"{label} slides a window over {kind_text(g.kind)}, not over a "
                       "(N, C, H, W) map")
    nsp = x.dim() - 2
    kernel, stride, dilation = (per_axis(v, nsp) for v in (kernel, stride, dilation))
    total = None
    if isinstance(padding, str):  # "same" / "valid": PyTorch pads (span-1)//2 on the left
        total = tuple(d * (k - 1) if padding == "same" else 0 for k, d in zip(kernel, dilation))
        padding = tuple(t // 2 for t in total)
    padding = per_axis(padding, nsp)
    if mode != "zeros" and any(padding):
        bad = padding_mode_leaves_window(mode, kernel, padding, dilation)
        if bad:  # the map is still exact (convolutionalize may go on); the field is not
            g = replace(g, field=replace(g.field, odd=g.field.odd or (
                f"{label} pads with padding_mode={mode!r}: {bad}, so its cells do not see one "
                "window of the input; use padding_mode='zeros'")))
    partial = [(axis, size) for axis, (size, k, s, p, d) in
               enumerate(zip(x.shape[2:], kernel, stride, padding, dilation))
               if ceil and conv_output_size(size, k, s, p, d, True) != _floor_size(size, k, s, p, d)]
    if partial:
        axes = " and ".join(f"{_axis_name(a, nsp)} ({size} cells)" for a, size in partial)
        step.notes["ceil_partial"] = (
            f"{label} has ceil_mode=True, and at this input its last window along {axes} hangs "
            "over the edge of the map: in each crop that cell pools a partial window, in one "
            "pass over a larger image a whole one, so the dense map differs from the crops")
    elif ceil:
        step.notes["ceil_fits"] = "ceil_mode=True, but every window fits"
    f = g.field.step(kernel, stride, padding, dilation, step.out[2:], total)
    if mode != "zeros" and any(padding) and f.gaps() and not f.odd:
        f = replace(f, odd=f"{label} pads with padding_mode={mode!r} and its cells skip pixels "
                           "(gaps): a copied border pixel can land in a gap, so they do not see "
                           "one span less its gaps; use padding_mode='zeros'")
    return Geo("map", f)


def adaptive(step: Step, g: Geo, x, y) -> Geo:
    """An adaptive pool: an identity where the map already has its output size, else windows
    as big as the map allows (one window each: global pooling, for a 1x1 output)."""
    label = where(step.node, step.name)
    g = as_map(g)
    if g.kind != "map":
        return unknown(f"{label} pools {kind_text(g.kind)}")
    before, after = tuple(x.shape[2:]), tuple(y.shape[2:])
    nsp = len(before)
    if before == after:
        step.notes["adaptive_identity"] = "an identity at this size"
        return g
    step.notes["adaptive"] = f"pools {side(before)} to {side(after)}"
    if all(i % o == 0 for i, o in zip(before, after)):
        k = tuple(i // o for i, o in zip(before, after))
        return Geo("map", g.field.step(k, k, (0,) * nsp, (1,) * nsp, after))
    return unknown(f"{label} pools {side(before)} to {side(after)}: windows of unequal sizes, "
                   "so no single (size, jump, start) describes its cells")


def pad(step: Step, g: Geo, amounts) -> Geo:
    """Zero padding (or, with negative amounts, a crop), per axis."""
    label = where(step.node, step.name)
    g = as_map(g)
    if g.kind != "map":
        return unknown(f"{label} pads {kind_text(g.kind)}")
    nsp = len(g.field.size)
    amounts = tuple(amounts) if isinstance(amounts, (tuple, list)) else (amounts,) * (2 * nsp)
    if len(amounts) > 2 * nsp:
        return unknown(f"{label} pads the channel or batch axis")
    # PyTorch lists (left, right) pairs from the last axis backwards; missing pairs are 0.
    pairs = len(amounts) // 2
    left = tuple(amounts[2 * (nsp - 1 - a)] if nsp - 1 - a < pairs else 0 for a in range(nsp))
    right = tuple(amounts[2 * (nsp - 1 - a) + 1] if nsp - 1 - a < pairs else 0
                  for a in range(nsp))
    return Geo("map", g.field.shifted(left, right, step.out[2:]))


def reshape(step: Step, g: Geo, x, y) -> Geo:
    """flatten / view / reshape: a map folded into vectors (N, C*H*W), or nothing changed
    (whether it stays so on a larger image is ``_notes.fixed_reshape``'s question)."""
    if tuple(x.shape) == tuple(y.shape):
        return g
    per_example = y.dim() == 2 and y.shape[0] == x.shape[0] == BATCH
    if g.kind in ("map", "permuted") and per_example and x.dim() >= 3:
        if g.kind == "permuted":
            return Geo("flat", g.field, g.map_shape, g.order)
        return Geo("flat", g.field, tuple(x.shape[1:]), AXES.get(x.dim() - 2, ""))
    if g.kind in ("flat", "vector") and per_example:
        return g
    if g.kind == "vector" and tuple(x.shape[1:]) == (1,) and y.dim() == 1:
        return g                  # (N, 1) scores -> (N,): the one class, picked
    return unknown(f"{where(step.node)} reshapes {shape_text(x)} to {shape_text(y)}: that "
                   "moves values between positions or examples, so the pixels a cell sees are "
                   "no longer one window")


def squeeze(step: Step, g: Geo, x, dim, y) -> Geo:
    """x.squeeze(d): a map's spatial axes of length 1 dropped is the map folded into features,
    as by a flatten (on a larger image they are longer: the converted net drops the squeeze
    with the flatten); (N, 1) scores squeezed to (N,) pick the one class; (N, 1, H, W) to
    (N, H, W) the one channel."""
    nd = x.dim()
    dims = range(nd) if dim is None else dim if isinstance(dim, (tuple, list)) else (dim,)
    gone = {d % nd for d in dims if x.shape[d % nd] == 1} - {0}
    if not gone:
        return g
    if g.kind == "map" and gone <= set(range(2, nd)):
        return Geo("flat", g.field, tuple(x.shape[1:]), AXES.get(nd - 2, ""))
    if g.kind == "map" and gone == {1}:
        return Geo("plane", g.field)
    if g.kind == "flat" or g.kind == "vector" and gone == {1} and nd == 2:
        return g
    return unknown(f"{where(step.node)} squeezes dims {sorted(gone)} of {kind_text(g.kind)} "
                   f"{shape_text(x)}: fcconv follows squeezing a map's 1x1 spatial axes "
                   "(x.squeeze(-1).squeeze(-1)) or the one class of (N, 1) scores")


def permute(step: Step, g: Geo, x, y, order: list[int]) -> Geo:
    """A map's axes in another order (channels last, or W,H,C): still a map, read the way the
    permute says; permuted back, a plain map again. ``order``: the new order of x's dims."""
    nd = x.dim()
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
    return unknown(f"{where(step.node)} permutes {kind_text(g.kind)} {shape_text(x)} to "
                   f"{shape_text(y)}: it moves the batch axis or mixes flattened features; "
                   "fcconv follows permutes of a map's own axes (x.permute(0, 2, 3, 1))")


def reduce(step: Step, g: Geo, x, dim, y) -> Geo:
    """mean / sum / amax over some axes: over the channels keeps each position on its own;
    over every spatial axis it is global pooling."""
    nd = x.dim()
    dims = set(range(nd)) if dim is None else \
        {d % nd for d in (dim if isinstance(dim, (tuple, list)) else (dim,))}
    spatial = set(range(2, nd))
    if g.kind == "map" and dims == {1}:
        return g if y.dim() == nd else Geo("plane", g.field)
    if g.kind == "map" and dims == spatial:
        step.layer = True
        if all(side == 1 for side in x.shape[2:]):   # over a 1x1 map: nothing is pooled
            if y.dim() == nd:
                step.notes["adaptive_identity"] = "an identity at this size"
                return g
            return Geo("flat", g.field, tuple(x.shape[1:]), AXES.get(nd - 2, ""))  # a flatten
        step.notes["global"] = (
            f"{where(step.node)} {step.kind}s over {_axes(nd)}: that is global pooling; on a "
            "larger image it takes the whole map, it does not slide. Remove it, or use a "
            "window-sized pool (nn.AvgPool2d with the map's size) before the flatten")
        k = tuple(x.shape[2:])
        one = (1,) * len(k)
        f = g.field.step(k, one, (0,) * len(k), one, one)
        return Geo("map", f) if y.dim() == nd else Geo("vector", f)
    if g.kind == "vector" and dims == {1}:   # over the classes of one cell's scores
        return g
    if g.kind == "flat" and dims == {1}:     # over every feature of the map: the whole window
        return whole_map(g)
    return unknown(f"{where(step.node)} reduces {kind_text(g.kind)} {shape_text(x)} over dims "
                   f"{sorted(dims)}: fcconv cannot say which pixels its cells see")


def linear(step: Step, g: Geo, x, out_features: int) -> Geo:
    if g.kind == "flat" and x.dim() == 2:  # the first Linear after a flatten: a kernel as big
        return whole_map(g)                # as the map
    if g.kind == "vector":
        return g
    if g.kind == "permuted" and g.order[-1] == "c":  # channels last: a 1x1 conv
        return replace(g, map_shape=(out_features, *g.map_shape[1:]))
    return unknown(f"{where(step.node, step.name)} is a Linear on {kind_text(g.kind)}: it mixes "
                   "along the last axis only (the width of a map); flatten before it")


def softmax(step: Step, g: Geo, dim, x) -> Geo:
    """A softmax over the channels of each position is pointwise; over a flattened map's
    features it mixes the whole map; over positions of a map fcconv cannot say."""
    nd = x.dim()
    dim = (0 if nd in (0, 1, 3) else 1) if dim is None else dim % nd  # PyTorch's default
    if g.kind == "vector" and dim == 1:
        return g
    if g.kind == "flat" and dim == 1:
        return whole_map(g)        # every feature of a flattened map: the whole window
    if (g.kind == "map" and dim == 1) or (g.kind == "permuted" and dim == g.order.index("c") + 1):
        return g                   # over the channels of each position: pointwise
    return unknown(f"{where(step.node, step.name)} takes a softmax over dim {dim} of "
                   f"{kind_text(g.kind)}: across positions (or examples), so each value then "
                   "depends on the whole map")


def layer_norm(step: Step, g: Geo, n_dims: int) -> Geo:
    """LayerNorm normalises over the last ``n_dims`` axes: pointwise only if those are the
    channels (channels last); over a flattened map, over the whole window."""
    if g.kind == "vector":
        return g
    if g.kind == "flat" and n_dims == 1:
        return whole_map(g)
    if g.kind == "permuted" and n_dims == 1 and g.order[-1] == "c":
        return g
    return unknown(f"{where(step.node, step.name)} normalises over the last {n_dims} axes of "
                   f"{kind_text(g.kind)}: over positions, so each value depends on the whole "
                   "map; fcconv follows a LayerNorm over the channels of a channels-last map")


def merge(step: Step, operands: list[Step], y, cat_dim: int | None,
          input_size: tuple[int, ...]) -> Geo:
    """Branches meet (add, mul, cat along ``cat_dim``): every path is followed; they must agree
    on the jump, on how they were flattened, and on their sizes at every larger input."""
    n = step.node
    tensors = [s for s in operands if s.out is not None]
    live = [s for s in tensors if s.geo.kind != "other"]
    if not live:
        return Geo("other")
    if cat_dim is None and len(live) < len(tensors):   # x * gamma, (x - mean) / std
        shapes = [s.out for s in tensors if s not in live]
        if any(len(c) > y.dim() for c in shapes):
            return unknown(f"{where(n)} combines {kind_text(live[0].geo.kind)} with a constant "
                           f"of shape {max(shapes, key=len)}, which has more axes: it changes "
                           "what the tensor is")
        tensors = live
    else:
        shapes = []
    geos = [s.geo for s in tensors]
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
    shape = geos[0].map_shape
    if cat_dim is not None:
        channels = geos[0].order.index("c") + 1 if kind == "permuted" else 1
        if cat_dim != channels or kind in ("flat", "plane"):
            return unknown(f"{where(n)} concatenates along dim {cat_dim} ({kind_text(kind)} "
                           "each): only along the channels of maps do the positions stay where "
                           "they were")
        if kind == "permuted":
            shape = (sum(g.map_shape[0] for g in geos), *shape[1:])
    if kind in MAPS:
        dims = spatial_dims(geos[0], y.dim())
        whole = tuple(y.shape[d] for d in dims)
        sides = [tuple(t.out[d] for d in dims) for t in tensors]
        smaller = [s for s in sides if s != whole]   # than the result: a constant made it grow
        if smaller:
            return unknown(f"{where(n)} broadcasts a {side(min(smaller))} map to {side(whole)}: "
                           "along an axis where it has one cell, every cell of the result "
                           "repeats that one, so the cells do not step across the input one "
                           "jump apart (after global pooling each sees the whole image)")
    bad = constants_fit(step, geos[0], shapes, y) if shapes else ""
    if bad:   # the field is still exact here; only a converted net would differ
        step.notes["constant"] = bad
    fields = [g.field for g in geos]
    if any(f is None for f in fields):
        return Geo(kind, None, shape, geos[0].order)
    merged = union(fields)
    if isinstance(merged, str):
        return unknown(f"{where(n)} joins paths that {merged}")
    vary = sizes_vary(fields, input_size) if kind in MAPS else ""
    if vary:
        step.notes["size_varies"] = (
            f"{where(n)} joins maps whose sizes agree at input {side(input_size)} but not on "
            f"larger images ({vary}), so the converted net would fail or broadcast there; give "
            "the branches the same padding arithmetic (e.g. padding=1 on the 3x3 conv, or a "
            "pool with the same stride and padding)")
    return Geo(kind, merged, shape, geos[0].order)


def constants_fit(step: Step, g: Geo, shapes: list[tuple], y) -> str:
    """'' if constants of these shapes combine with ``g`` the same way on every input size:
    one value per channel (or per class of scores), never per position or per example; else
    why not. On a map a (C, 1, 1) constant broadcasts the same way at any size; a (C,) one
    meets the width, and a (1, 1, 3, 3) one meets positions that a larger image has more of."""
    keys = dim_keys(g, y)
    for shape in shapes:
        for d, c in zip(range(len(keys) - len(shape), len(keys)), shape):
            if c != 1 and keys[d] != FIXED:
                what = "examples" if keys[d] == BATCH_KEY else "positions (or flattened features)"
                return (f"{where(step.node)} combines {kind_text(g.kind)} {shape_text(y)} with "
                        f"a constant of shape {tuple(shape)}, which holds {c} values along dim "
                        f"{d}: that dim counts {what}, so on a larger image the constant no "
                        "longer lines up; give it one value per channel (shape (C, 1, 1) on "
                        "a map), or apply it after the first Linear")
    return ""


def pieces(step: Step, g: Geo, x, dim, keeps: bool) -> Geo:
    """split / chunk (``keeps`` the dim) or unbind / max(dim) / min(dim) (drop it) along the
    classes of scores or the channels of a map: each piece still has its cells (the Geo of
    each piece; ``getitem`` takes it from the tuple)."""
    nd = x.dim()
    if dim is not None and not isinstance(dim, (tuple, list)) and dim % nd == 1 and \
            g.kind in ("vector", "map"):
        step.notes["pieces"] = "a tuple of pieces along dim 1"
        return g if keeps or g.kind == "vector" else Geo("plane", g.field)
    what = "takes one value of every example and position" if dim is None else \
        f"cuts it along dim {dim}"
    return unknown(f"{where(step.node)} on {kind_text(g.kind)} {shape_text(x)} {what}: fcconv "
                   "follows pieces (or a max) along the classes (dim 1) of scores or the "
                   "channels of a map")


def select(step: Step, g: Geo, x, dim) -> Geo:
    """x.select(1, k): class k of scores, channel k of a map (as x[:, k])."""
    if dim % x.dim() == 1 and g.kind in ("vector", "map"):
        return Geo("plane", g.field) if g.kind == "map" else g
    return unknown(f"{where(step.node)} selects along dim {dim} of {kind_text(g.kind)} "
                   f"{shape_text(x)}: fcconv follows picking a class or channel (dim 1)")


def stack(step: Step, operands: list[Step], y, dim, input_size) -> Geo:
    """torch.stack of picked classes (N,) along dim 1: (N, m) scores again (on the score map:
    (N, H, W) planes stacked into (N, m, H, W)); of planes, a map."""
    geos = [s.geo for s in operands]
    kinds = {g.kind for g in geos}
    if dim % y.dim() == 1 and (kinds == {"vector"} and y.dim() == 2 or kinds == {"plane"}):
        fields = [g.field for g in geos]
        merged = union(fields) if all(f is not None for f in fields) else None
        if isinstance(merged, str):
            return unknown(f"{where(step.node)} stacks paths that {merged}")
        vary = sizes_vary(fields, input_size) if kinds == {"plane"} else ""
        if vary:
            step.notes["size_varies"] = f"{where(step.node)} stacks maps whose sizes differ " \
                                        f"on larger images ({vary})"
        return Geo("vector" if kinds == {"vector"} else "map", merged)
    return unknown(f"{where(step.node)} stacks {' and '.join(sorted(map(kind_text, kinds)))} "
                   f"along dim {dim}: fcconv follows stacking picked classes (N,) along dim 1")


def getitem(step: Step, g: Geo, source: Step | None, x, index) -> Geo:
    """x[...]: the values of a max pool with indices, or some channels (classes) of a map or a
    vector; anything else picks positions or flattened features, which fcconv does not follow."""
    if source is not None and "indices" in source.notes:
        if index == 0:
            return source.geo
        return unknown(f"{where(step.node)} takes the pooling indices: positions, not pixels")
    if source is not None and "pieces" in source.notes:
        return source.geo               # one piece of a split (or max's values or indices)
    if not isinstance(x, torch.Tensor):
        return Geo("other")
    pick = channel_index(index, x.dim())
    if pick is not None and not has_node(step.node.args[1]) and g.kind in ("map", "vector"):
        if not isinstance(pick, int):
            return g                     # some channels (classes): the cells stay
        return Geo("plane", g.field) if g.kind == "map" else g
    return unknown(f"{where(step.node)} indexes {kind_text(g.kind)} {shape_text(x)}: fcconv "
                   "follows picking channels (classes), x[:, k] or x[:, a:b], not positions or "
                   "flattened features")


# --------------------------------------------------------------------------- small helpers

def per_axis(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def has_node(v) -> bool:
    """Whether an fx argument holds a node anywhere (in a tuple, a slice, a dict)."""
    if isinstance(v, fx.Node):
        return True
    if isinstance(v, slice):
        return any(has_node(x) for x in (v.start, v.stop, v.step))
    if isinstance(v, dict):
        return any(has_node(x) for x in v.values())
    return isinstance(v, (tuple, list)) and any(has_node(x) for x in v)


def shape_text(t: torch.Tensor) -> str:
    return "(N, " + ", ".join(map(str, t.shape[1:])) + ")"


def _floor_size(size, k, s, p, d) -> int:
    """Output length without ceil_mode; 0 where not even one whole window fits."""
    try:
        return conv_output_size(size, k, s, p, d)
    except ValueError:
        return 0


def _axis_name(axis: int, nsp: int) -> str:
    return ("L",)[axis] if nsp == 1 else ("H", "W")[axis] if nsp == 2 else ("D", "H", "W")[axis]


def _axes(nd: int) -> str:
    return {3: "L", 4: "H,W", 5: "D,H,W"}.get(nd, "the spatial axes")
