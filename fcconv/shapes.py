"""Shapes, receptive fields and cost, for any PyTorch model, without running it for real.

``trace`` follows ``forward`` with torch.fx (one row per call: a module used three times gives
three rows; ``F.max_pool2d`` and ``F.conv2d`` written in ``forward`` are rows too) and runs it once
on *meta* tensors (shapes only, no data, no compute). Each row records the call's output shape,
its parameters and multiply-accumulates (MACs), and the receptive field carried forward with the
classic recurrence (``formulas.field_step``)

    size  += (k_eff - 1) * jump      # a kernel of k cells widens the field by k-1 jumps
    start -= padding * jump          # left padding moves the first window off the image
    jump  *= stride                  # neighbouring output cells sit `jump` input pixels apart

so that output cell i of a layer sees input pixels [start + i*jump, start + i*jump + size - 1].
Where branches meet, every path is followed; where they disagree, or an op's effect on geometry
is unknown, the field is unknown ("-" in the table) and ``receptive_field`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from torch import nn

from . import _graph
from ._field import MAX_RUNS, Trail, seen
from ._fx import model_dtype, run_on_meta
from ._model import check_model
from ._model import input_shape as input_shape_of
from ._walk import analyse
from .formulas import checked_int, conv_output_size, format_shape

Shape = tuple[int, ...]

__all__ = ["ReceptiveField", "Row", "Trace", "conv_output_size", "format_shape", "human_macs",
           "model_dtype", "receptive_field", "run_on_meta", "trace"]


# --------------------------------------------------------------------------- receptive field

@dataclass(frozen=True)
class ReceptiveField:
    """Output cell i covers input pixels [start + i*jump, start + i*jump + size - 1].

    That span (``window``) is the classic recurrence: ``start < 0`` means the first window
    begins in the zero padding, and a window may reach past the image's last pixel. Each field
    is an int when all spatial axes agree, else a tuple with one entry per axis (H, W). A cell
    whose windows lie inside every layer's map depends on exactly its span, less ``gaps``: ''
    when it sees every pixel of it; else which pixels it skips (a dilated or strided tap
    spacing larger than the field before it), e.g. "along axis 0 a cell sees pixels 0, 4 of its
    5-pixel span, not 1..3". The span is what the receptive-field literature reports for
    dilated nets, and a window of that size is what sliding_windows and shift_and_stitch need.
    A cell at the border can depend on less (a tap on zero padding, a ceil-mode window hanging
    off a map, a crop): ``pixels`` lists exactly the pixels each cell depends on. All this is
    the architecture's: a weight that is 0, or a constant that multiplies some positions by 0
    (a mask), cuts a cell off from pixels its field still lists. Entries are
    in the order of the output's spatial axes; ``axes`` says which input axis each measures:
    () when they are the input's, in order; (1, 0) for a map whose H and W were swapped
    (x.transpose(2, 3)): then its axis 0 runs along the input's width, and ``pixels(i, 0)``
    lists input columns.
    """

    size: int | tuple[int, ...]
    jump: int | tuple[int, ...]
    start: int | tuple[int, ...]
    gaps: str = ""
    runs: tuple = field(default=(), repr=False, compare=False)  # per axis: (first, last) seen
    trail: Trail | None = field(default=None, repr=False, compare=False)  # how cells were made
    axes: tuple[int, ...] = ()   # per output axis, the input axis it measures ((): in order)

    def __repr__(self) -> str:
        gaps = f", gaps={self.gaps!r}" if self.gaps else ""
        axes = f", axes={self.axes}" if self.axes else ""
        return f"ReceptiveField(size={self.size}, jump={self.jump}, start={self.start}{gaps}" \
               f"{axes})"

    def window(self, i: int, axis: int = 0) -> tuple[int, int]:
        """The span ``(first, last)`` of output cell ``i`` on ``axis``, inclusive: the formula
        start + i*jump .. start + i*jump + size - 1 (it may begin in the padding, < 0)."""
        i, axis = checked_int("i", i, 0), self._axis(axis)
        size, jump, start = (v if isinstance(v, int) else v[axis]
                             for v in (self.size, self.jump, self.start))
        return start + i * jump, start + i * jump + size - 1

    def pixels(self, i: int, axis: int = 0) -> list[int]:
        """The input pixels output cell ``i`` depends on along ``axis``, exactly, border cells
        included: its span less its gaps inside the map; at the border, less the taps that
        fall on padding or off a map as well."""
        first, last = self.window(i, axis)
        if self.trail is None:  # a field made by hand: the formula
            return [first + p for lo, hi in self.runs[axis] for p in range(lo, hi + 1)] \
                if self.runs else list(range(first, last + 1))
        axis = self._axis(axis)
        cells = self.trail.cells[axis]
        if i >= cells:
            raise ValueError(f"cell {i} does not exist: at the input this field was computed "
                             f"for, the output has {cells} cells along axis {axis}")
        runs = seen(self.trail, axis, i)
        if runs is None:
            raise ValueError(f"cell {i} depends on pixels in more than {MAX_RUNS:,} separate "
                             "runs: fcconv does not list them")
        return [p for lo, hi in runs for p in range(lo, hi + 1)]

    def _axis(self, axis: int) -> int:
        axis = checked_int("axis", axis, 0)
        axes = len(self.trail.cells) if self.trail is not None else \
            3 if isinstance(self.size, int) else len(self.size)  # an int: the same on each
        if axis >= axes:
            raise ValueError(f"axis must be below {axes} (one per spatial axis); got {axis}")
        return axis


def _squeeze(values: tuple[int, ...]) -> int | tuple[int, ...]:
    return values[0] if len(set(values)) == 1 else tuple(values)


# --------------------------------------------------------------------------- trace

@dataclass
class Row:
    """One layer of a trace. ``out_shape`` has no batch dimension: (C, H, W) or (D,)."""

    name: str
    kind: str
    desc: str
    out_shape: Shape
    params: int
    macs: int
    rf: ReceptiveField | None

    @property
    def rf_size(self):
        return None if self.rf is None else self.rf.size

    @property
    def rf_jump(self):
        return None if self.rf is None else self.rf.jump

    @property
    def rf_start(self):
        return None if self.rf is None else self.rf.start

    @property
    def shape_str(self) -> str:
        return format_shape(self.out_shape)


@dataclass
class Trace:
    """The layers of a model at one input size: iterate for ``Row``s; totals below.

    Renders as an HTML table in Jupyter and as aligned text in a terminal.
    """

    input_shape: Shape
    rows: list[Row]
    total_params: int
    total_macs: int = field(init=False)

    def __post_init__(self):
        self.total_macs = sum(r.macs for r in self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key: int | str) -> Row:
        """A row by position, or by layer name (the last call of that layer)."""
        if isinstance(key, str):
            for row in reversed(self.rows):
                if row.name == key:
                    return row
            raise KeyError(f"no layer named {key!r}; layers are: {', '.join(self.names)}")
        return self.rows[key]

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    @property
    def output_shape(self) -> Shape:
        return self.rows[-1].out_shape if self.rows else self.input_shape

    def table(self) -> list[list[str]]:
        """Header plus one list of strings per row, plus the totals: what both renderings show."""
        head = ["layer", "kind", "", "output", "params", "MACs", "RF size", "jump", "start"]
        body = [[r.name, r.kind, r.desc, r.shape_str, f"{r.params:,}", f"{r.macs:,}",
                 _rf_text(r.rf_size) + ("*" if r.rf and r.rf.gaps else ""), _rf_text(r.rf_jump),
                 _rf_text(r.rf_start)] for r in self.rows]
        total = ["total", "", "", "", f"{self.total_params:,}", f"{self.total_macs:,}", "", "", ""]
        return [head, ["input", "", "", format_shape(self.input_shape), "", "", "1", "1", "0"],
                *body, total]

    def __str__(self) -> str:
        rows = self.table()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        numeric = {4, 5, 6, 7, 8}
        lines = ["  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                           for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(-1, "-" * len(lines[0]))
        summary = f"{self.total_params:,} parameters, {human_macs(self.total_macs)}"
        return "\n".join(lines) + f"\n{summary}" + "".join(f"\n{n}" for n in self.footnotes())

    def footnotes(self) -> list[str]:
        """What a '*' after an RF size means, if some row has one."""
        if not any(r.rf and r.rf.gaps for r in self.rows):
            return []
        return ["* the field has gaps: a cell skips some pixels of that span "
                "(receptive_field(...).gaps says which)"]

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = self.table()
        th = "".join(f"<th>{escape(c)}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>"
                       for r in rows[1:-1])
        foot = "".join(f"<th>{escape(c)}</th>" for c in rows[-1])
        return (f"<table class='fcconv-trace'><thead><tr>{th}</tr></thead><tbody>{body}</tbody>"
                f"<tfoot><tr>{foot}</tr></tfoot></table>"
                f"<p>{self.total_params:,} parameters, {human_macs(self.total_macs)}</p>"
                + "".join(f"<p>{escape(n)}</p>" for n in self.footnotes()))


def human_macs(macs: int) -> str:
    """15470264320 -> '15.47 GMACs'; 416520 -> '0.42 MMACs'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if macs >= scale / 10:
            return f"{macs / scale:.2f} {unit}MACs"
    return f"{macs} MACs"


def _rf_text(v) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) else "x".join(map(str, v))


def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {model!r} ({type(model).__name__})")
    check_model(model)


def _field(g: _graph.Geo) -> ReceptiveField | None:
    """The field of a step's output, its axes in the order of the tensor's spatial dims."""
    f = _graph.tensor_field(g) if g.kind != "unknown" else None
    if f is None or f.odd:  # not a window: no (size, jump, start) to show
        return None
    return ReceptiveField(_squeeze(f.size), _squeeze(f.jump), _squeeze(f.start), f.gaps(),
                          f.spans if f.gaps() else (), f.trail,
                          f.axes if f.axes != tuple(sorted(f.axes)) else ())


def _analyse(model: nn.Module, input_shape, explain: bool) -> _graph.Graph:
    _check_model(model)
    shape = input_shape_of(model, input_shape)
    try:
        return analyse(model, shape, explain)
    except ValueError as err:
        if str(err).startswith(("the model cannot run", "fcconv follows", "an input of")):
            raise
        raise ValueError(f"at input {format_shape(shape)}, {err}") from None


def trace(model: nn.Module, input_shape) -> Trace:
    """Shapes, parameters, MACs and receptive field of every call in ``forward``, on meta tensors.

    input_shape: (C, H, W), (N, C, H, W), (H, W) or H (channels taken from the first conv).
    One row per layer call (a module, or a conv/pool written as a function); out_shape has no
    batch dim; a parameter shared by several calls is counted on the first.
    """
    g = _analyse(model, input_shape, explain=False)
    rows = [Row(s.name, s.kind, s.desc, tuple(s.out[1:]), s.params, s.macs, _field(s.geo))
            for s in g.steps.values() if s.layer and s.out is not None]
    return Trace(g.input_shape, rows, sum(p.numel() for p in model.parameters()))


def receptive_field(model: nn.Module, input_shape) -> ReceptiveField:
    """Receptive field of the model's output cells: cell i sees [start + i*jump, ... + size - 1].

    input_shape as for ``trace``. Follows every path through ``forward``; a model that returns a
    tuple of heads is asked about all of them (they must agree). A span with pixels a cell skips
    comes back with ``.gaps`` saying which; a ValueError names the op (and its line) where the
    field is not one span the same for every cell.
    """
    g = _analyse(model, input_shape, explain=True)
    if g.returns():
        raise ValueError(f"the model's forward returns {g.returns()}; receptive_field needs a "
                         "tensor, or a tuple of tensors (heads) that all see the same field")
    fields = [_one_field(g, node) for node in g.outputs()]
    if any(f != fields[0] for f in fields):
        heads = ", ".join(f"{node.name}: {f.size}/{f.jump}/{f.start}"
                          for node, f in zip(g.outputs(), fields))
        raise ValueError(f"the model's heads see different fields (size/jump/start: {heads}); "
                         "ask about one head at a time (a model that returns just it)")
    return fields[0]


def _one_field(g: _graph.Graph, node) -> ReceptiveField:
    """The field of one output of the graph, or a ValueError saying why it has none."""
    geo = g.steps[node].geo
    if geo.kind == "unknown":
        raise ValueError(f"no single receptive field: {geo.why}")
    if geo.field is None:
        raise ValueError("the output has no receptive field over the input's pixels")
    if geo.field.odd:
        raise ValueError(f"no single receptive field: {geo.field.odd}")
    return _field(geo)
