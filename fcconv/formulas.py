"""The course's formulas, each written once, in plain Python (no torch, no NumPy).

Axis order everywhere: (y, x) for positions, (y0, x0, y1, x1) for inclusive windows, as NumPy
indexes an image (row first). Every other module calls these instead of re-deriving them.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- argument checks

def checked_int(name: str, value, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; TypeError for bools, floats, strings; ValueError below."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int; got {value!r} ({type(value).__name__})")
    value = int(value.__index__())
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value


def checked_shape(name: str, value, lengths=(1, 2, 3)) -> tuple[int, ...]:
    """A shape argument as a tuple of positive ints, of one of ``lengths``; clear errors otherwise.

    A string is refused ("233" is not (2, 3, 3)), and so are floats and bools (3.9 is not 3).
    """
    forms = {1: "(C,)", 2: "(C, L)", 3: "(C, H, W)", 4: "(N, C, H, W)"}
    want = " or ".join(forms.get(n, f"{n} sizes") for n in lengths)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a tuple of ints like {want}; got {value!r} "
                        f"({type(value).__name__})")
    items = tuple(value)
    if len(items) not in lengths:
        raise ValueError(f"{name} must be {want}; got {value!r} ({len(items)} sizes)")
    return tuple(checked_int(f"{name}[{i}]", s, 1) for i, s in enumerate(items))


def checked_bool(name: str, value) -> bool:
    """``value`` if it is a real bool (``"no"`` is not False)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")
    return value


# --------------------------------------------------------------------------- sizes

def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a conv or pooling window along one axis, exactly as PyTorch computes it.

    floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1, or the ceiling with
    ``ceil_mode`` (pooling), where PyTorch drops a last window that would start in the right
    padding. Raises ``ValueError`` where no output exists.
    """
    size, kernel, stride = (checked_int(n, v, 1) for n, v in
                            (("size", size), ("kernel", kernel), ("stride", stride)))
    padding, dilation = checked_int("padding", padding, 0), checked_int("dilation", dilation, 1)
    checked_bool("ceil_mode", ceil_mode)
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


def score_map_side(size: int, window: int, jump: int) -> int:
    """Cells along one side of a score map: windows of ``window`` px, ``jump`` px apart, that fit
    in ``size`` px. (size - window) // jump + 1; the same count sliding windows give."""
    size, window, jump = (checked_int(n, v, 1) for n, v in
                          (("size", size), ("window", window), ("jump", jump)))
    if window > size:
        raise ValueError(f"the {window} px window does not fit in {size} px")
    return (size - window) // jump + 1


def cell_window(cell, window, jump) -> tuple[int, int, int, int]:
    """The input window (y0, x0, y1, x1), inclusive, that score-map cell (row, col) stands for.

    window and jump: an int, or a (height, width) pair. Cell (i, j) starts at (i*jump, j*jump).
    """
    (i, j), (wh, ww), (jh, jw) = (_pair(n, v, m) for n, v, m in
                                  (("cell", cell, 0), ("window", window, 1), ("jump", jump, 1)))
    return i * jh, j * jw, i * jh + wh - 1, j * jw + ww - 1


def field_step(size: int, jump: int, start: int, kernel: int, stride: int = 1,
               padding: int = 0, dilation: int = 1) -> tuple[int, int, int]:
    """One layer of the receptive-field recurrence, along one axis: (size, jump, start) after it.

    A kernel spanning k_eff cells widens the field by k_eff - 1 jumps; left padding moves the
    first window off the image; neighbouring outputs sit ``jump * stride`` input pixels apart.
    """
    size, jump, kernel, stride, dilation = (checked_int(n, v, 1) for n, v in (
        ("size", size), ("jump", jump), ("kernel", kernel), ("stride", stride),
        ("dilation", dilation)))
    start, padding = checked_int("start", start, -2**63), checked_int("padding", padding, -2**63)
    span = dilation * (kernel - 1) + 1
    return size + (span - 1) * jump, jump * stride, start - padding * jump


def stitch_factor(jump: int, step: int) -> int:
    """f = jump / step: shift-and-stitch runs f passes per axis (f^2 in all)."""
    jump, step = checked_int("jump", jump, 1), checked_int("step", step, 1)
    if jump % step:
        raise ValueError(f"step must divide the network's jump {jump}; got {step} "
                         f"(try one of {[d for d in range(1, jump + 1) if jump % d == 0]})")
    return jump // step


def _pair(name: str, v, minimum: int) -> tuple[int, int]:
    """An int, or a pair of ints, as a checked pair: (v, v) or (v[0], v[1])."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a (height, width) pair; got {v!r}")
        return checked_int(f"{name}[0]", v[0], minimum), checked_int(f"{name}[1]", v[1], minimum)
    v = checked_int(name, v, minimum)
    return v, v


def format_shape(shape) -> str:
    """(C, H, W) -> '7x7x512' (the course's H x W x C); (C, L) -> 'Lx C'; (D,) -> 'D'."""
    shape = tuple(shape)
    if len(shape) <= 1:
        return "x".join(map(str, shape))
    return "x".join(map(str, shape[1:])) + f"x{shape[0]}"
