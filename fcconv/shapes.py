"""Shapes, receptive fields and cost, for any PyTorch model, without running it for real.

``trace`` runs the model once on *meta* tensors (shapes only, no data, no compute), with a hook on
every leaf layer. Each hook records the layer's output shape, its parameters and multiply-
accumulates (MACs), and carries the receptive field forward with the classic recurrence

    size  += (k_eff - 1) * jump      # a kernel of k cells widens the field by k-1 jumps
    start -= padding * jump          # left padding moves the first window off the image
    jump  *= stride                  # neighbouring output cells sit `jump` input pixels apart

so that output cell i of a layer sees input pixels [start + i*jump, start + i*jump + size - 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

import torch
from torch import nn

Shape = tuple[int, ...]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
             nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


# --------------------------------------------------------------------------- output size

def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a conv or pooling window along one axis, exactly as PyTorch computes it.

    floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1, or the ceiling with
    ``ceil_mode`` (pooling), where PyTorch drops a last window that would start in the right
    padding. Raises ``ValueError`` where no output exists.
    """
    for name, value, low in (("size", size, 1), ("kernel", kernel, 1), ("stride", stride, 1),
                             ("padding", padding, 0), ("dilation", dilation, 1)):
        _check_int(name, value, low)
    span = dilation * (kernel - 1) + 1
    room = size + 2 * padding - span
    spans = f"kernel {kernel}" if dilation == 1 else \
        f"kernel {kernel} with dilation {dilation} spans {span} and"
    if not ceil_mode:
        if room < 0:
            raise ValueError(f"{spans} does not fit in input {size} + 2*{padding} padding "
                             f"(needs {span}, has {size + 2 * padding})")
        return room // stride + 1
    out = (room + stride - 1) // stride + 1
    if (out - 1) * stride >= size + padding:  # PyTorch: the last window must start in the input
        out -= 1
    if out < 1:
        raise ValueError(f"{spans} leaves no output on input {size} + 2*{padding} padding "
                         f"with stride {stride} and ceil_mode")
    return out


# --------------------------------------------------------------------------- receptive field

@dataclass(frozen=True)
class ReceptiveField:
    """Output cell i covers input pixels [start + i*jump, start + i*jump + size - 1].

    ``start < 0`` means the first window begins in the zero padding. Each field is an int when
    all spatial axes agree, else a tuple with one entry per axis (H, W).
    """

    size: int | tuple[int, ...]
    jump: int | tuple[int, ...]
    start: int | tuple[int, ...]

    def window(self, i: int, axis: int = 0) -> tuple[int, int]:
        """Inclusive input-pixel range ``(first, last)`` seen by output cell ``i`` on ``axis``."""
        size, jump, start = (v if isinstance(v, int) else v[axis]
                             for v in (self.size, self.jump, self.start))
        return start + i * jump, start + i * jump + size - 1


def _squeeze(values: tuple[int, ...]) -> int | tuple[int, ...]:
    return values[0] if len(set(values)) == 1 else tuple(values)


@dataclass
class _RFState:
    """Per-axis receptive field carried through the layers (None once it stops being uniform)."""

    size: list[int]
    jump: list[int]
    start: list[int]
    map_size: tuple[int, ...]  # spatial size of the last feature map seen
    collapsed: bool = False     # True once a flatten has folded the map into vectors
    uniform: bool = True

    def apply(self, kernel, stride, padding, dilation) -> None:
        for a in range(len(self.size)):
            span = dilation[a] * (kernel[a] - 1) + 1
            self.size[a] += (span - 1) * self.jump[a]
            self.start[a] -= padding[a] * self.jump[a]
            self.jump[a] *= stride[a]

    def field(self) -> ReceptiveField | None:
        if not self.uniform:
            return None
        return ReceptiveField(_squeeze(tuple(self.size)), _squeeze(tuple(self.jump)),
                              _squeeze(tuple(self.start)))


def _per_axis(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _update_rf(rf: _RFState, module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Advance the receptive field through one layer, given its input and output."""
    n = len(rf.size)
    if not rf.uniform:
        return
    spatial_in = tuple(x.shape[2:])
    if isinstance(module, _CONV + _POOL):
        pad = module.padding
        if isinstance(pad, str):  # "same" / "valid": PyTorch pads (span-1)//2 on the left
            spans = [d * (k - 1) for k, d in zip(_per_axis(module.kernel_size, n),
                                                 _per_axis(module.dilation, n))]
            pad = tuple(s // 2 for s in spans) if pad == "same" else (0,) * n
        rf.apply(_per_axis(module.kernel_size, n), _per_axis(module.stride or module.kernel_size, n),
                 _per_axis(pad, n), _per_axis(getattr(module, "dilation", 1), n))
    elif isinstance(module, _ADAPTIVE):
        out = tuple(y.shape[2:])
        if all(o == 1 for o in out):
            rf.apply(spatial_in, (1,) * n, (0,) * n, (1,) * n)
        elif all(i % o == 0 for i, o in zip(spatial_in, out)):
            k = tuple(i // o for i, o in zip(spatial_in, out))
            rf.apply(k, k, (0,) * n, (1,) * n)
        else:  # windows of unequal size: no single (size, jump, start) describes them
            rf.uniform = False
    elif isinstance(module, _CONV_T):
        rf.uniform = False
    elif isinstance(module, nn.Linear) and x.dim() == 2 and not rf.collapsed:
        # The first Linear after a flatten is a conv whose kernel is the whole feature map.
        rf.apply(rf.map_size, (1,) * n, (0,) * n, (1,) * n)
        rf.collapsed = True
    elif isinstance(module, nn.Linear) and x.dim() > 2:  # mixes along the last axis only
        rf.uniform = False
    if y.dim() == n + 2:
        rf.map_size = tuple(y.shape[2:])


# --------------------------------------------------------------------------- cost

def _macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Multiply-accumulates per example (bias additions not counted)."""
    per_example_out = y[0].numel()
    if isinstance(module, _CONV):
        return per_example_out * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, _CONV_T):
        return x[0].numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return per_example_out * module.in_features
    return 0


def _describe(module: nn.Module) -> str:
    """A short description in the course's notation: '3x3/1 p1, 64', '2x2/2'."""
    def side(v):
        v = _per_axis(v, 2)
        return "x".join(map(str, v)) if len(set(v)) > 1 else f"{v[0]}x{v[0]}"

    if isinstance(module, _CONV + _CONV_T):
        pad = module.padding if isinstance(module.padding, str) else max(_per_axis(module.padding, 1))
        s = max(_per_axis(module.stride, 1))
        return f"{side(module.kernel_size)}/{s} p{pad}, {module.out_channels}"
    if isinstance(module, _POOL):
        s = max(_per_axis(module.stride or module.kernel_size, 1))
        return f"{side(module.kernel_size)}/{s}"
    if isinstance(module, _ADAPTIVE):
        return f"to {side(module.output_size)}"
    if isinstance(module, nn.Linear):
        return f"{module.in_features} -> {module.out_features}"
    return ""


# --------------------------------------------------------------------------- trace

def format_shape(shape: Shape) -> str:
    """(C, H, W) -> '7x7x512' (the course's H x W x C); (C, L) -> 'Lx C'; (D,) -> 'D'."""
    shape = tuple(shape)
    if len(shape) <= 1:
        return "x".join(map(str, shape))
    return "x".join(map(str, shape[1:])) + f"x{shape[0]}"


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
                 _rf_text(r.rf_size), _rf_text(r.rf_jump), _rf_text(r.rf_start)] for r in self.rows]
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
        return "\n".join(lines) + f"\n{summary}"

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
                f"<p>{self.total_params:,} parameters, {human_macs(self.total_macs)}</p>")


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


def _normalize_input_shape(model: nn.Module, input_shape) -> Shape:
    """Accept 224, (224, 224), (3, 224, 224) or (N, 3, 224, 224); return (C, H, W)."""
    if isinstance(input_shape, int):
        input_shape = (input_shape, input_shape)
    shape = tuple(int(s) for s in input_shape)
    first = next((m for m in model.modules() if isinstance(m, _CONV + (nn.Linear,))), None)
    if len(shape) == 2 and isinstance(first, nn.Conv2d):
        shape = (first.in_channels, *shape)
    elif len(shape) == 4:
        shape = shape[1:]
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be positive sizes like (3, 224, 224); got {input_shape}")
    return shape


def _meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Meta stand-ins for every parameter and buffer: the model runs for shapes, not values."""
    tensors = list(model.named_parameters(remove_duplicate=False))
    tensors += list(model.named_buffers(remove_duplicate=False))
    return {name: torch.empty_like(t, device="meta") for name, t in tensors}


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 for none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def run_on_meta(model: nn.Module, input_shape: Shape, batch: int = 2) -> torch.Tensor:
    """Run ``model`` on a meta tensor of ``(batch, *input_shape)``; returns the meta output.

    Batch 2, not 1, so that BatchNorm in training mode accepts a 1x1 map.
    """
    x = torch.empty((batch, *input_shape), device="meta", dtype=model_dtype(model))
    return torch.func.functional_call(model, _meta_state(model), (x,), strict=False)


def _check_layer_input(name: str, module: nn.Module, x: torch.Tensor) -> None:
    """Raise a ValueError that names the layer and the arithmetic, before PyTorch would fail."""
    where = f"layer {name!r} ({type(module).__name__})"
    if isinstance(module, nn.Linear) and x.shape[-1] != module.in_features:
        got = tuple(x.shape[1:])
        raise ValueError(f"{where} expects {module.in_features} inputs but gets {x.shape[-1]} "
                         f"(a {format_shape(got)} tensor)")
    if isinstance(module, _CONV) and x.shape[1] != module.in_channels:
        raise ValueError(f"{where} expects {module.in_channels} input channels but gets "
                         f"{x.shape[1]}")
    if isinstance(module, _CONV + _POOL) and not isinstance(getattr(module, "padding", 0), str):
        n = x.dim() - 2
        for size, k, s, p, d in zip(x.shape[2:], _per_axis(module.kernel_size, n),
                                    _per_axis(module.stride or module.kernel_size, n),
                                    _per_axis(module.padding, n),
                                    _per_axis(getattr(module, "dilation", 1), n)):
            try:
                conv_output_size(size, k, s, p, d, getattr(module, "ceil_mode", False))
            except ValueError as err:
                raise ValueError(f"{where} on a {format_shape(tuple(x.shape[1:]))} map: {err}") \
                    from None


def trace(model: nn.Module, input_shape) -> Trace:
    """Shapes, parameters, MACs and receptive field of every layer, on meta tensors.

    input_shape: (C, H, W), (N, C, H, W), (H, W) or H (channels taken from the first conv).
    Each row's out_shape has no batch dim. Assumes the layers run as a chain (as every classifier
    in the course does); the receptive field follows the layers in the order they are called.
    """
    shape = _normalize_input_shape(model, input_shape)
    n_spatial = len(shape) - 1
    rf = _RFState([1] * n_spatial, [1] * n_spatial, [0] * n_spatial, tuple(shape[1:]),
                  uniform=n_spatial > 0)  # a plain vector input has no spatial field
    rows: list[Row] = []
    names = {m: n for n, m in model.named_modules()}

    def pre_hook(module, args):
        _check_layer_input(names[module], module, args[0])

    def hook(module, args, output):
        x = args[0]
        _update_rf(rf, module, x, output)
        rows.append(Row(names[module], type(module).__name__, _describe(module),
                        tuple(output.shape[1:]), sum(p.numel() for p in module.parameters()),
                        _macs(module, x, output), rf.field()))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_pre_hook(pre_hook) for m in leaves]
    handles += [m.register_forward_hook(hook) for m in leaves]
    try:
        run_on_meta(model, shape)
    except ValueError as err:
        raise ValueError(f"at input {format_shape(shape)}, {err}") from None
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"the model cannot run on input {shape}: {first}") from None
    finally:
        for h in handles:
            h.remove()
    return Trace(shape, rows, sum(p.numel() for p in model.parameters()))


def receptive_field(model: nn.Module, input_shape) -> ReceptiveField:
    """Receptive field of the model's output cells: cell i sees [start + i*jump, ... + size - 1].

    input_shape as for ``trace``. Raises ValueError where the field is not uniform.
    """
    t = trace(model, input_shape)
    field_ = t.rows[-1].rf if t.rows else ReceptiveField(1, 1, 0)
    if field_ is None:
        raise ValueError("the receptive field is not uniform: an adaptive pooling or a transposed "
                         "conv gives output cells windows of different sizes")
    return field_
