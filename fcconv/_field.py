"""Receptive fields carried through a network, axis by axis (private; plain Python).

Output cell i of a layer sees input pixels [start + i*jump, start + i*jump + size - 1]: the
classic recurrence (``formulas.field_step``), one window op at a time. Within that span a cell
may skip pixels: a dilated tap, or a stride, can leave gaps, so each axis also keeps the runs of
pixels a cell really sees. ``_walk`` calls ``Field.step`` once per conv or pool and
``Field.shifted`` once per padding (or crop); branches that meet take the ``union``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .formulas import field_step

# Runs of seen pixels followed per axis. A stride under a global pool can leave millions of
# single-pixel runs; beyond this many the field is not described (and never guessed).
MAX_RUNS = 4096

Runs = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Field:
    """Receptive field per spatial axis: cell i sees [start + i*jump, start + i*jump + size - 1].

    ``spans``: per axis, the runs of pixels (first, last), counted from ``start``, that a cell
    really sees: one run (0, size - 1) for a window, several where a dilated tap or a stride
    leaves gaps. ``offset``: per axis, the map has floor((n + offset) / jump) cells on an
    n-pixel input (what branches must agree on at every size, not only this one). ``cut``: per
    axis, whether a crop (negative padding) removed cells on the (left, right) side.
    """

    size: tuple[int, ...]
    jump: tuple[int, ...]
    start: tuple[int, ...]
    spans: tuple[Runs, ...] = ()
    offset: tuple[int, ...] = ()
    odd: str = ""   # why cells do not see a window of pixels at all (set once, carried on)
    cut: tuple[tuple[bool, bool], ...] = ()

    @classmethod
    def pixel(cls, n: int) -> Field:
        return cls((1,) * n, (1,) * n, (0,) * n, (((0, 0),),) * n, (0,) * n, "",
                   ((False, False),) * n)

    def step(self, kernel, stride, padding, dilation, total_pad=None, label: str = "",
             hangs=()) -> Field:
        """After a window op; ``total_pad`` (left + right per axis) defaults to 2 * padding.
        ``label`` names the op in a message (which layer made the field odd); ``hangs``: the
        axes where a ceil-mode window hangs off the end (like padding, past a crop)."""
        total_pad = total_pad or tuple(2 * p for p in padding)
        axes = [field_step(*f, k, s, p, d) for f, k, s, p, d in
                zip(zip(self.size, self.jump, self.start), kernel, stride, padding, dilation)]
        spans = tuple(taps(runs, k, d * j) for runs, k, d, j in
                      zip(self.spans, kernel, dilation, self.jump))
        # floor((floor((n + a) / J) + tp - span + s) / s) = floor((n + a + J*(tp - span + s)) / (J*s))
        offset = tuple(a + j * (tp - (d * (k - 1) + 1) + s) for a, j, tp, k, s, d in
                       zip(self.offset, self.jump, total_pad, kernel, stride, dilation))
        right = tuple(tp - p + (a in hangs) for a, (tp, p) in enumerate(zip(total_pad, padding)))
        odd = self.odd or _too_many_runs(spans) or self._pads_a_crop(label, padding, right)
        spans = tuple(runs or ((0, a[0] - 1),) for runs, a in zip(spans, axes))
        return Field(*(tuple(a[i] for a in axes) for i in range(3)), spans, offset, odd, self.cut)

    def shifted(self, left: tuple[int, ...], right: tuple[int, ...], label: str = "") -> Field:
        """After zero padding (cells, per axis): the first cell starts earlier, the map grows.
        A negative amount crops: it is remembered, because padding after a crop puts zeros
        where a border cell's window says pixels."""
        odd = self.odd or self._pads_a_crop(label, left, right)
        cut = tuple((cl or lt < 0, cr or r < 0) for (cl, cr), lt, r in zip(self.cut, left, right))
        return replace(self, start=tuple(s - p * j for s, p, j in zip(self.start, left, self.jump)),
                       offset=tuple(a + (lt + r) * j for a, lt, r, j in
                                    zip(self.offset, left, right, self.jump)), odd=odd, cut=cut)

    def _pads_a_crop(self, label: str, left, right) -> str:
        for axis, ((cl, cr), lt, r) in enumerate(zip(self.cut, left, right)):
            side = "first" if cl and lt > 0 else "last" if cr and r > 0 else ""
            if side:
                return (f"{label} pads the {side} cells of axis {axis} (or hangs a ceil-mode "
                        "window over them) after a crop (negative padding) removed cells there: "
                        "the cells at that border see less than the pixels their window says, "
                        "so no (size, jump, start) describes them")
        return ""

    def gaps(self) -> str:
        """'' when a cell sees every pixel of its span; else which pixels it skips, per axis."""
        parts = []
        for axis, runs in enumerate(self.spans):
            if len(runs) > 1:
                holes = [f"{a[1] + 1}..{b[0] - 1}" if b[0] - a[1] > 2 else str(a[1] + 1)
                         for a, b in zip(runs, runs[1:])]
                seen = ", ".join(f"{lo}..{hi}" if hi > lo else str(lo) for lo, hi in runs)
                parts.append(f"along axis {axis} a cell sees pixels {seen} of its "
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

    Without listing every copy of a huge kernel (a global pool over 3e7 samples): once a copy
    falls inside the last run and lengthens it by exactly ``spacing``, every later copy does the
    same (each is the one before, shifted by ``spacing``), so the last run's end follows.
    """
    out = runs
    for t in range(1, k):
        before = out
        out = merge_runs(out + tuple((lo + t * spacing, hi + t * spacing) for lo, hi in runs))
        if len(out) > MAX_RUNS:
            return ()
        if len(out) == len(before) and out[:-1] == before[:-1] and \
                out[-1] == (before[-1][0], before[-1][1] + spacing) and \
                runs[0][0] + t * spacing >= out[-1][0]:
            return out[:-1] + ((out[-1][0], out[-1][1] + (k - 1 - t) * spacing),)
    return out


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
    cut = tuple((any(f.cut[a][0] for f in fields), any(f.cut[a][1] for f in fields))
                for a in range(len(first.size)))
    return Field(tuple(size), first.jump, tuple(start), tuple(spans), first.offset,
                 next((f.odd for f in fields if f.odd), "") or _too_many_runs(spans), cut)


def sizes_vary(fields: list[Field], input_size: tuple[int, ...]) -> str:
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
