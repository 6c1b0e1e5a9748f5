"""What the graph walk finds out about a model: a ``Step`` per call, each with its ``Geo`` (private).

``_walk.analyse`` fills a ``Graph``; ``shapes`` reads it for ``trace`` and ``receptive_field``,
``_rewrite`` for ``convolutionalize``. A Geo says what a call's output is, geometrically (a map,
a permuted map, a flattened map, a vector of class scores, ...) and the receptive field of its
cells; where the walk cannot say, the Geo is ``unknown`` with the reason, naming the op and its
line in ``forward``. An unknown op is never taken for the identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import fx, nn

from ._field import Field

Shape = tuple[int, ...]

# The letters of a map's axes (C, *spatial), for orders like "hwc" (channels last).
AXES = {1: "cl", 2: "chw", 3: "cdhw"}
MAPS = ("map", "permuted", "plane")  # kinds whose tensor still has the spatial axes

# What a size read off a tensor measures (``Step.measure``), and what each dim of a tensor is:
# the batch; a length that stays the same on every input ("fixed": the channels, the classes,
# a constant); spatial axis ``a`` of a map whose field has that jump and offset ("axis", a,
# jump, offset): the same length wherever the tuple is the same; some other length that grows
# with the input ("moving": a flattened map's, a product of sides); or a number that stays the
# same but is none of those ("other": N * 2).
BATCH_KEY, FIXED, MOVING, OTHER = "batch", "fixed", "moving", "other"

# Notes on a Step that convolutionalize refuses (the others it can fix).
REFUSALS = ("size_arg", "global", "ceil_partial", "adaptive", "size_varies", "batch_stats",
            "size_scalar", "random", "per_position", "fixed_reshape", "constant")


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
    measure: object = None     # for a size read off a tensor: what it measures (_notes.measure)
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
    lines: bool = False   # the nodes know their source lines (for messages)

    def has_news(self) -> bool:
        """Whether some step has something to explain: an unknown geometry or a note."""
        return any(s.geo.kind == "unknown" or s.geo.field is not None and s.geo.field.odd or
                   set(s.notes) & set(REFUSALS) for s in self.steps.values())

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


def unknown(why: str) -> Geo:
    return Geo("unknown", why=why)


def spatial_dims(g: Geo, ndim: int) -> list[int]:
    """The tensor dims that hold the spatial axes of a map, a permuted map or a plane."""
    if g.kind == "permuted":
        return [i + 1 for i, a in enumerate(g.order) if a != "c"]
    return list(range(2 if g.kind == "map" else 1, ndim))


def tensor_field(g: Geo) -> Field | None:
    """The field with its axes in the order of the tensor's spatial dims: a permuted map
    (channels last, or W, H, C) keeps its field in the order of the map it was made from."""
    if g.kind != "permuted" or g.field is None:
        return g.field
    letters = AXES[len(g.order) - 1]
    return g.field.permuted([letters.index(a) - 1 for a in g.order if a != "c"])


def as_map(g: Geo) -> Geo:
    """A permuted map whose channels are still dim 1 (x.transpose(2, 3): "cwh") as a map whose
    field has its axes in the tensor's order, for an op that slides over it; anything else as
    it is. (Until then it stays "permuted", so that a flatten knows its order.)"""
    if g.kind == "permuted" and g.order[0] == "c":
        return Geo("map", tensor_field(g))
    return g


def dim_keys(g: Geo, x) -> tuple:
    """What each dim of ``x`` measures (see ``BATCH_KEY``...), from what x is."""
    nd = x.dim() if hasattr(x, "dim") else 0
    if g.kind == "other":
        return (FIXED,) * nd
    keys = [BATCH_KEY] + [FIXED] * (nd - 1)
    if g.kind in MAPS and g.field is not None:
        f = tensor_field(g)
        for a, d in enumerate(spatial_dims(g, nd)):
            keys[d] = ("axis", f.axes[a], f.jump[a], f.offset[a])
    elif g.kind == "flat":
        keys[1:] = [MOVING] * (nd - 1)   # on the converted net the flatten is gone
    elif g.kind not in ("vector",):
        keys[1:] = [MOVING] * (nd - 1)   # unknown: assume the worst
    return tuple(keys[:nd])


def moves(m) -> bool:
    """Whether a measure (or any item of a shape's) changes with the input's size."""
    if isinstance(m, tuple) and m and m[0] == "axis":
        return True
    if isinstance(m, tuple):
        return any(moves(k) for k in m)
    return m == MOVING


def whole_map(g: Geo) -> Geo:
    """A flattened map mixed into every output (a Linear, a softmax over the features): one
    window as big as the map."""
    k = g.map_shape[1:]
    one = (1,) * len(k)
    return Geo("vector", g.field.step(k, one, (0,) * len(k), one, one))


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


def kind_text(kind: str) -> str:
    """What a Geo kind is, in words, for a message."""
    return {"other": "a tensor not computed from the input (a parameter, buffer or constant)",
            "map": "a (N, C, H, W) map", "flat": "a flattened map", "vector": "a (N, D) vector",
            "permuted": "a permuted (e.g. channels-last) map",
            "plane": "a (N, H, W) map (one channel)"}.get(kind, f"a {kind} tensor")
