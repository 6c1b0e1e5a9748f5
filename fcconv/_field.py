"""Receptive fields carried through a network, axis by axis (private; plain Python).

Output cell i of a layer has the span [start + i*jump, start + i*jump + size - 1]: the classic
recurrence (``formulas.field_step``), one window op at a time. A cell whose windows lie inside
every layer's map sees exactly that span, less the gaps a dilated tap or a stride can leave
(``spans``, the runs of pixels it sees). A cell at the border can see less: a tap on zero
padding, or a ceil-mode window hanging off a map, reads no pixel. For those the field keeps
its ``trail`` (each op with the sizes of the maps it read), and ``seen`` follows one cell back
through it to the pixels it depends on. ``_walk`` calls ``Field.step`` once per conv or pool
and ``Field.shifted`` once per padding (or crop); branches that meet take the ``union``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .formulas import field_step

# Runs of seen pixels followed per axis. A stride under a global pool can leave millions of
# single-pixel runs; beyond this many the field is not described (and never guessed).
MAX_RUNS = 4096

Runs = tuple[tuple[int, int], ...]


@dataclass(frozen=True, eq=False)
class Trail:
    """How a map was made from the input, one op per node, for following a cell back: "pixel"
    (the input), "window" (``args``: (kernel, stride, left padding, dilation) per axis),
    "pad" (left padding per axis, negative for a crop), "permute" (``args``: for each axis,
    the axis of the map before it) or "union" (branches that meet).
    ``cells``: the map's length per axis at the input the walk ran on."""

    op: str
    cells: tuple[int, ...]
    args: tuple = ()
    parents: tuple[Trail, ...] = ()


@dataclass(frozen=True)
class Field:
    """Receptive field per spatial axis: cell i spans [start + i*jump, start + i*jump + size - 1].

    ``spans``: per axis, the runs of pixels (first, last), counted from ``start``, that a cell
    inside the map really sees: one run (0, size - 1) for a window, several where a dilated tap
    or a stride leaves gaps. ``offset``: per axis, the map has floor((n + offset) / jump) cells
    on an n-pixel input (what branches must agree on at every size, not only this one).
    ``trail``: how the map was made (``seen`` follows a border cell back through it).
    ``axes``: per axis, the input's axis it measures: (0, 1) for a map, (1, 0) once its H and
    W are swapped (x.transpose(2, 3)).
    """

    size: tuple[int, ...]
    jump: tuple[int, ...]
    start: tuple[int, ...]
    spans: tuple[Runs, ...] = ()
    offset: tuple[int, ...] = ()
    odd: str = ""   # why cells do not see a window of pixels at all (set once, carried on)
    trail: Trail | None = field(default=None, compare=False, repr=False)
    axes: tuple[int, ...] = ()

    @classmethod
    def pixel(cls, sizes: tuple[int, ...]) -> Field:
        n = len(sizes)
        return cls((1,) * n, (1,) * n, (0,) * n, (((0, 0),),) * n, (0,) * n, "",
                   Trail("pixel", tuple(sizes)), tuple(range(n)))

    def permuted(self, order) -> Field:
        """The same field with its axes in a new order: axis a is the old axis order[a]."""
        def pick(v):
            return tuple(v[a] for a in order)
        trail = None if self.trail is None else \
            Trail("permute", pick(self.trail.cells), tuple(order), (self.trail,))
        return Field(pick(self.size), pick(self.jump), pick(self.start), pick(self.spans),
                     pick(self.offset), self.odd, trail, pick(self.axes))

    def step(self, kernel, stride, padding, dilation, cells, total_pad=None) -> Field:
        """After a window op whose map has ``cells`` per axis; ``total_pad`` (left + right per
        axis) defaults to 2 * padding."""
        total_pad = total_pad or tuple(2 * p for p in padding)
        axes = [field_step(*f, k, s, p, d) for f, k, s, p, d in
                zip(zip(self.size, self.jump, self.start), kernel, stride, padding, dilation)]
        spans = tuple(taps(runs, k, d * j) for runs, k, d, j in
                      zip(self.spans, kernel, dilation, self.jump))
        # floor((floor((n + a) / J) + tp - span + s) / s) = floor((n + a + J*(tp - span + s)) / (J*s))
        offset = tuple(a + j * (tp - (d * (k - 1) + 1) + s) for a, j, tp, k, s, d in
                       zip(self.offset, self.jump, total_pad, kernel, stride, dilation))
        odd = self.odd or _too_many_runs(spans)
        spans = tuple(runs or ((0, a[0] - 1),) for runs, a in zip(spans, axes))
        trail = Trail("window", tuple(cells), tuple(zip(kernel, stride, padding, dilation)),
                      (self.trail,))
        return Field(*(tuple(a[i] for a in axes) for i in range(3)), spans, offset, odd, trail,
                     self.axes)

    def shifted(self, left: tuple[int, ...], right: tuple[int, ...], cells) -> Field:
        """After zero padding (cells, per axis): the first cell starts earlier, the map grows.
        A negative amount crops."""
        return replace(self, start=tuple(s - p * j for s, p, j in zip(self.start, left, self.jump)),
                       offset=tuple(a + (lt + r) * j for a, lt, r, j in
                                    zip(self.offset, left, right, self.jump)),
                       trail=Trail("pad", tuple(cells), tuple(left), (self.trail,)))

    def gaps(self) -> str:
        """'' when a cell sees every pixel of its span; else which pixels it skips, per axis."""
        parts = []
        for axis, runs in enumerate(self.spans):
            if len(runs) > 1:
                holes = [f"{a[1] + 1}..{b[0] - 1}" if b[0] - a[1] > 2 else str(a[1] + 1)
                         for a, b in zip(runs, runs[1:])]
                seen_ = ", ".join(f"{lo}..{hi}" if hi > lo else str(lo) for lo, hi in runs)
                parts.append(f"along axis {axis} a cell sees pixels {seen_} of its "
                             f"{self.size[axis]}-pixel span, not {', '.join(holes)} (from the "
                             "span's first pixel)")
        return "; ".join(parts)


def merge_runs(runs) -> Runs:
    """Sorted runs of pixels, touching or overlapping ones joined."""
    out: list[list[int]] = []
    for lo, hi in sorted(runs):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def taps(runs: Runs, k: int, spacing: int) -> Runs:
    """The pixels a cell sees after a kernel of ``k`` taps ``spacing`` pixels apart: the union
    of k copies of ``runs`` shifted by 0, spacing, ..., (k - 1) * spacing; () beyond MAX_RUNS.

    By doubling, not copy by copy (a global pool over 3e7 samples has 3e7 taps): 2^m copies
    are two blocks of 2^(m-1), the second shifted by 2^(m-1) spacings, and k copies are the
    blocks of k's binary digits side by side: about 2*log2(k) unions in all.
    """
    out: Runs = ()
    block, copies, at = runs, 1, 0
    while k:
        if k & 1:
            out = merge_runs(out + _shift(block, at))
            at += copies * spacing
        k >>= 1
        if k:
            block = merge_runs(block + _shift(block, copies * spacing))
            copies *= 2
        if len(out) > MAX_RUNS or len(block) > MAX_RUNS:
            return ()
    return out


def _shift(runs: Runs, by: int) -> Runs:
    return tuple((lo + by, hi + by) for lo, hi in runs)


def seen(trail: Trail, axis: int, cell: int) -> Runs | None:
    """The input pixels (runs) that ``cell`` of the map ``trail`` made depends on along
    ``axis``, border cells included: each op maps the cells it must read back to its input,
    dropping what lies outside that map (zero padding, a window hanging off the end). None
    where some map's cells come in more than MAX_RUNS runs."""
    order = _topological(trail)
    need: dict[int, Runs] = {id(trail): ((cell, cell),)}
    axis_at = {id(trail): axis}   # a permute changes which axis of its input an axis is
    for node in order:
        cells = need.pop(id(node), ())
        a = axis_at.get(id(node), axis)
        if node.op == "pixel":
            return cells
        if node.op == "window":
            k, s, p, d = node.args[a]
            cells = _window_back(cells, k, s, p, d)
        elif node.op == "pad":
            cells = _shift(cells, -node.args[a])
        elif node.op == "permute":
            a = node.args[a]
        if cells is None:
            return None
        for parent in node.parents:
            inside = _clip(cells, parent.cells[a])
            need[id(parent)] = merge_runs(need.get(id(parent), ()) + inside)
            axis_at[id(parent)] = a
    return ()


def _window_back(cells: Runs, k: int, s: int, p: int, d: int) -> Runs | None:
    """The input cells a window op's output ``cells`` read (padding included, for the caller
    to clip): for a run a..b of outputs, the taps of one window repeated b - a + 1 times,
    ``s`` apart, from a*s - p."""
    window = taps(((0, 0),), k, d)
    found: list[tuple[int, int]] = []
    for a, b in cells:
        reach = taps(window, b - a + 1, s) if window else ()
        if not reach:
            return None
        found += _shift(reach, a * s - p)
    merged = merge_runs(found)
    return merged if len(merged) <= MAX_RUNS else None


def _clip(runs: Runs, n: int) -> Runs:
    return tuple((max(lo, 0), min(hi, n - 1)) for lo, hi in runs if hi >= 0 and lo < n)


def _topological(trail: Trail) -> list[Trail]:
    """The trail's nodes, each before the nodes it was made from (reverse DFS postorder)."""
    done: set[int] = set()
    post: list[Trail] = []
    stack = [(trail, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            post.append(node)
        elif id(node) not in done:
            done.add(id(node))
            stack.append((node, True))
            stack += [(p, False) for p in node.parents if id(p) not in done]
    return post[::-1]


def _too_many_runs(spans) -> str:
    for axis, runs in enumerate(spans):
        if not runs:
            return (f"along axis {axis} a cell sees its span in more than {MAX_RUNS:,} separate "
                    "runs of pixels (a stride under a larger kernel): fcconv does not list them")
    return ""


def union(fields: list[Field]) -> Field | str:
    """Union of the fields several paths give one cell; a reason string where the paths
    disagree on the jump (then cells of one path fall between cells of the other)."""
    first = fields[0]
    if any(f.axes != first.axes for f in fields):
        orders = " vs ".join(str(f.axes) for f in fields)
        return f"read the input's axes in different orders ({orders}: H and W swapped)"
    if any(f.jump != first.jump for f in fields):
        return f"disagree on the jump ({' vs '.join(side(f.jump) for f in fields)})"
    size, start, spans = [], [], []
    for a in range(len(first.size)):
        lo = min(f.start[a] for f in fields)
        runs = merge_runs([(f.start[a] - lo + r0, f.start[a] - lo + r1)
                           for f in fields for r0, r1 in f.spans[a]])
        start.append(lo)
        size.append(max(f.start[a] - lo + f.size[a] for f in fields))
        spans.append(runs)
    trail = None
    if all(f.trail is not None for f in fields):
        trail = Trail("union", first.trail.cells, (), tuple(f.trail for f in fields))
    return Field(tuple(size), first.jump, tuple(start), tuple(spans), first.offset,
                 next((f.odd for f in fields if f.odd), "") or _too_many_runs(spans), trail,
                 first.axes)


def sizes_vary(fields: list[Field], input_size: tuple[int, ...]) -> str:
    """'' if maps with these fields have the same size on every input at least ``input_size``;
    else the first input side where they differ. floor((n + a) / J) for two offsets a < b
    differ at every n with n + a one short of a multiple of J (and nowhere if a = b): the
    first such n from the input's side on, in closed form."""
    for axis, along in enumerate(fields[0].axes):   # the union refused other orders before
        n0, j = input_size[along], fields[0].jump[axis]
        low = min(f.offset[axis] for f in fields)
        if all(f.offset[axis] == low for f in fields):
            continue
        n = n0 + (-1 - low - n0) % j
        sides = sorted({(n + f.offset[axis]) // j for f in fields})
        return (f"along axis {axis}, at an input side of {n} the paths give maps of "
                f"{' and '.join(map(str, sides))} cells")
    return ""


def padding_mode_leaves_window(mode: str, kernel, padding, dilation) -> str:
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


def side(v) -> str:
    """(3, 4) -> '3x4'."""
    return "x".join(map(str, v))
