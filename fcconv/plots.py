"""The course's pictures, in matplotlib. Each function returns a Figure; nothing is shown here.

Colours are colour-blind safe: Okabe-Ito for categories, viridis for magnitudes (dark purple
low, yellow high), PuOr for signed weights (orange negative, white zero, purple positive: the
names come from ``scale_ends``, so alt text cannot contradict a colour bar). Every axis is
labelled.
"""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PatchCollection, PolyCollection
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .formulas import conv_output_size, score_map_side

OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
SEQUENTIAL = "viridis"
DIVERGING = "PuOr"


def colour_name(rgb) -> str:
    """A plain word for an RGB colour (components in [0, 1]), as alt text would say it."""
    import colorsys

    h, light, sat = colorsys.rgb_to_hls(*rgb[:3])
    if sat < 0.2 or light < 0.08 or light > 0.92:
        return "black" if light < 0.25 else "white" if light > 0.85 else "grey"
    hue = h * 360
    for name, upto in (("red", 15), ("orange", 45), ("yellow", 70), ("green", 170),
                       ("blue", 250), ("purple", 340), ("red", 360)):
        if hue <= upto:
            return name
    return "red"


def scale_ends(cmap: str) -> tuple[str, str]:
    """The words for a colour map's lowest and highest colours: ('orange', 'purple') for PuOr."""
    colours = matplotlib.colormaps[cmap]
    return colour_name(colours(0.0)), colour_name(colours(1.0))


def probability_rgba(probs: np.ndarray, cmap: str = SEQUENTIAL) -> np.ndarray:
    """(rows, cols) probabilities in [0, 1] -> (rows, cols, 4) colours whose opacity grows with
    the probability (transparent at 0), so a photo under them stays visible where nothing fires."""
    p = np.clip(np.asarray(probs, dtype=float), 0, 1)
    rgba = matplotlib.colormaps[cmap](p)
    rgba[..., 3] = 0.85 * p
    return rgba


def _probability_colorbar(fig, ax, label: str) -> None:
    """A colour bar for ``probability_rgba`` (the colours at full opacity)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig.colorbar(ScalarMappable(Normalize(0, 1), SEQUENTIAL), ax=ax, shrink=0.7,
                 label=label + " (clear at 0)")


def _signed_limits(*arrays) -> dict:
    m = max(float(np.abs(a).max()) for a in arrays) or 1.0
    return {"cmap": DIVERGING, "vmin": -m, "vmax": m}


def _integer_ticks(ax) -> None:
    """Rows and columns of a grid are whole numbers: never a tick at 2.5."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


# --------------------------------------------------------------------------- notebook 00/02: 1-D slide

def sliding_1d(size: int, kernel: int, stride: int, padding: int, position: int, fig=None):
    """A 1-D input of ``size`` cells with ``padding`` zeros each side and the kernel at output
    ``position``: the picture behind (W - F + 2P) / S + 1.

    With ``fig`` (an earlier result of this function) its cells, numbers and words are drawn
    anew in it instead of a new figure: the figure and its axes are kept (a slider is faster)."""
    n_out = conv_output_size(size, kernel, stride, padding)
    if not 0 <= position < n_out:
        raise ValueError(f"position must be between 0 and {n_out - 1}; got {position}")
    total = size + 2 * padding
    figsize = (max(5, total * 0.45), 2.2)
    if fig is None:
        fig, ax = plt.subplots(figsize=figsize)
        ax.set_ylim(-0.9, 2.4)
        ax.set_xticks([])
        ax.set_yticks([-0.1, 1.5], ["output", "input"])
        for side in ("top", "right", "left", "bottom"):
            ax.spines[side].set_visible(False)
    else:
        ax = fig.axes[0]
        for artist in [*ax.texts, *ax.patches, *ax.collections]:
            artist.remove()
        fig.set_size_inches(*figsize)
    # One collection per kind of cell, not one patch each: a slider redraws this live. The
    # input row depends on size and padding only (gid "input": a live figure keeps it drawn).
    pads = [i for i in range(total) if i < padding or i >= padding + size]
    ax.add_collection(PatchCollection([Rectangle((i, 1), 1, 1) for i in range(total)],
                                      facecolor="white", edgecolor="black", gid="input"))
    ax.add_collection(PatchCollection([Rectangle((i, 1), 1, 1) for i in pads], gid="input",
                                      facecolor="#bbbbbb", edgecolor="black", hatch="//"))
    # each cell shows its input position; padding cells lie outside 0 .. size - 1
    for i in range(total):
        ax.text(i + 0.5, 1.5, str(i - padding), ha="center", va="center", fontsize=9,
                bbox={"facecolor": "#bbbbbb", "edgecolor": "none", "pad": 0.5} if i in pads
                else None, gid="input")
    start = position * stride
    ax.add_patch(Rectangle((start, 0.95), kernel, 1.1, fill=False, edgecolor=OKABE_ITO[5], lw=3))
    centres = [j * stride + kernel / 2 for j in range(n_out)]
    ax.add_collection(PatchCollection([Rectangle((x - 0.5, -0.6), 1, 1) for x in centres],
                                      facecolor=[OKABE_ITO[0] if j == position else "white"
                                                 for j in range(n_out)], edgecolor="black"))
    for j, centre in enumerate(centres):
        ax.text(centre, -0.1, str(j), ha="center", va="center", fontsize=9)
    ax.set_xlim(-0.5, total + 0.5)
    ax.set_xlabel(f"numbers: input positions; hatched grey: zero padding"
                  f"\noutput size = ({size} - {kernel} + 2*{padding}) // {stride} + 1 = {n_out}")
    return fig


# --------------------------------------------------------------------------- notebook 02: volumes

def stacked_volumes(trace, max_volumes: int = 12) -> list[tuple[str, tuple]]:
    """The (layer name, output shape) pairs ``volume_stack`` draws, the input first: layers
    that change the volume, at most ``max_volumes`` (the input, the last layers and evenly
    spaced others)."""
    rows = [r for r in trace.rows if r.kind not in ("ReLU", "Dropout", "Flatten", "Identity")]
    shown = [(("input", trace.input_shape))] + [(r.name, r.out_shape) for r in rows]
    if len(shown) > max_volumes:
        keep = sorted(set(np.linspace(0, len(shown) - 1, max_volumes).round().astype(int)))
        shown = [shown[i] for i in keep]
    return shown


def volume_stack(trace, max_volumes: int = 12, fig=None):
    """Each layer's output drawn as a box: width ~ W, height ~ H, depth ~ log(C).

    With ``fig`` (an earlier result of this function for as many volumes: another input size
    or network) the boxes and labels of that figure are moved and relabelled instead of drawing
    a new one: a live explorer's control is faster (the title and axes are kept)."""
    from .shapes import format_shape

    shown = stacked_volumes(trace, max_volumes)
    if fig is None:
        fig, ax = plt.subplots(figsize=(min(14, 1.25 * len(shown) + 1), 3.8))
        ax.add_collection(PolyCollection([], edgecolors="black"))
        for _ in shown:
            ax.text(0, 0, "", ha="center", va="top", fontsize=9,
                    rotation=30 if len(shown) > 8 else 0)
            ax.text(0, 0, "", ha="center", va="bottom", fontsize=9, rotation=45)
        ax.set_ylim(-1.4, 4.3)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title("each volume: height x width x channels; box height and width grow with the "
                     "square root of the map's,\ndepth with the logarithm of the channels (blue: "
                     "spatial maps, orange: 1x1 or vectors)", fontsize=10)
    ax = fig.axes[0]
    if len(ax.texts) != 2 * len(shown):
        raise ValueError(f"fig shows {len(ax.texts) // 2} volumes, this trace {len(shown)}: "
                         "draw a new figure")
    biggest = max(max(s[1:]) if len(s) == 3 else 1 for _, s in shown)
    side = lambda n: 0.15 + 2.2 * math.sqrt(n / biggest)  # noqa: E731  (one scale: squares stay square)
    x = 0.0
    faces, colours = [], []  # every face of every box, drawn as one collection
    for (name, shape), below, above in zip(shown, ax.texts[0::2], ax.texts[1::2]):
        c, h, w = shape if len(shape) == 3 else (shape[0], 1, 1)
        hh, ww = side(h), side(w)
        depth = 0.12 + 0.22 * math.log2(max(c, 1)) / 12
        colour = OKABE_ITO[4] if len(shape) == 3 and (h > 1 or w > 1) else OKABE_ITO[0]
        for face, alpha in _box_faces(x, 0, ww, hh, depth):
            faces.append(face)
            colours.append(matplotlib.colors.to_rgba(colour, alpha))
        below.set_position((x + ww / 2, -0.35))
        below.set_text(format_shape(shape))
        above.set_position((x + ww / 2, hh + depth + 0.15))
        above.set_text(name)
        x += ww + depth + 0.45
    ax.collections[0].set_verts(faces)
    ax.collections[0].set_facecolors(colours)
    ax.set_xlim(-0.3, x)
    return fig


def _box_faces(x, y, w, h, d):
    """A 3-D looking box: (front face, top, side) polygons, each with its alpha."""
    return [([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], 0.85),
            ([(x, y + h), (x + d, y + h + d), (x + w + d, y + h + d), (x + w, y + h)], 0.55),
            ([(x + w, y), (x + w + d, y + d), (x + w + d, y + h + d), (x + w, y + h)], 0.4)]


# --------------------------------------------------------------------------- notebooks 01/03: weights

def filter_mosaic(filters: np.ndarray) -> np.ndarray:
    """Filters (K, C, H, W) as one image (K*(H+1)-1, C*(W+1)-1): filter i's channel j at block
    (i, j), one blank (NaN) line between blocks."""
    k, c, h, w = filters.shape
    mosaic = np.full((k * (h + 1) - 1, c * (w + 1) - 1), np.nan)
    for i in range(k):
        for j in range(c):
            mosaic[i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = filters[i, j]
    return mosaic


def matrix_and_filters(weight: np.ndarray, filters: np.ndarray, max_filters: int = 6,
                       in_shape=None):
    """Left: the FC weight matrix (K x C*H*W). Right: the same numbers as K filters of C x H x W.

    weight (K, c*H*W) may be the first c channels' part of longer rows: ``in_shape`` (C, H, W),
    the whole input, then names that part in the label. A line marks each channel's block.

    The filters are one mosaic image (a row per filter, a column per channel, white gaps), not one
    small axes each: two axes draw in a fraction of the time, so a slider can redraw it live.
    """
    k, c, h, w = filters.shape
    shown = min(k, max_filters)
    fig, (ax, right) = plt.subplots(1, 2, figsize=(11, 1.2 + 0.9 * shown),
                                    gridspec_kw={"width_ratios": [max(4, c * 1.2), c * 1.1]})
    lim = _signed_limits(weight)
    ax.imshow(weight[:shown], aspect="auto", interpolation="nearest", **lim)
    for j in range(c):  # channel j's block: inputs j*H*W to (j+1)*H*W - 1, a green line before it
        if j:
            ax.axvline(j * h * w - 0.5, color=OKABE_ITO[2], lw=2.5)
        ax.text((j + 0.5) * h * w - 0.5, -0.55, f"ch {j}", ha="center", va="bottom", fontsize=8)
    if in_shape is None or tuple(in_shape) == (c, h, w):
        ax.set_xlabel(f"input index (C*H*W = {c}*{h}*{w} = {c * h * w})")
    else:
        big_c, big_h, big_w = in_shape
        ax.set_xlabel(f"input index 0-{c * h * w - 1}: channels 0-{c - 1}, {h}*{w} = {h * w} each"
                      f"\n(the whole row: {big_c}*{big_h}*{big_w} = {big_c * big_h * big_w:,})")
    ax.set_ylabel("neuron (row)")
    ax.set_yticks(range(shown))
    ax.set_title("FC weight matrix: one row per neuron", fontsize=9, pad=16)
    img = right.imshow(filter_mosaic(filters[:shown]), interpolation="nearest", **lim)
    right.set_facecolor("white")
    right.set_xticks([j * (w + 1) + (w - 1) / 2 for j in range(c)],
                     [f"channel {j}" for j in range(c)], fontsize=8)
    right.set_yticks([i * (h + 1) + (h - 1) / 2 for i in range(shown)],
                     [f"filter {i}" for i in range(shown)], fontsize=8)
    right.tick_params(length=0)
    for side in right.spines.values():
        side.set_visible(False)
    full_c = c if in_shape is None else in_shape[0]
    part = "" if full_c == c else f": channels 0-{c - 1} shown"
    right.set_title(f"the same rows as {shown} filters of {full_c}x{h}x{w}{part}", fontsize=9)
    fig.colorbar(img, ax=[ax, right], shrink=0.6, label="weight")
    return fig


def row_into_cube(row: np.ndarray, in_shape, channel: int, order: str = "chw"):
    """One FC row (length C*H*W) and where channel ``channel``'s H x W slice sits inside it."""
    fig, parts = row_into_cube_parts(in_shape, order, float(np.abs(row).max()) or 1.0)
    draw_row(parts, row, channel)
    return fig


def row_into_cube_parts(in_shape, order: str, limit: float):
    """The figure of ``row_into_cube`` without a row: (figure, the artists ``draw_row`` sets).

    Everything that depends only on the shape and the order is drawn here; weights are shown
    on a fixed scale of +-``limit`` (so an explorer can keep the axes and redraw only the data).
    """
    c, h, w = in_shape
    idx = np.arange(c * h * w)
    chan_of = idx // (h * w) if order == "chw" else idx % c
    fig = plt.figure(figsize=(11, 3.8))
    grid = fig.add_gridspec(2, 2, width_ratios=[4, 1], height_ratios=[1, 1.2], hspace=0.75)
    top = fig.add_subplot(grid[0, :])
    others, = top.plot([], [], ".", markersize=2, color="#999999", label="other channels")
    mine, = top.plot([], [], ".", markersize=4, color=OKABE_ITO[5], label="channel 0")
    top.set_xlim(-0.01 * idx.size, 1.01 * idx.size)
    top.set_ylim(-1.05 * limit, 1.05 * limit)
    top.set_xlabel(f"position in the flattened input (length {c * h * w}, {order.upper()} order)")
    top.set_ylabel("weight")
    top.set_title("the neuron's weight row", fontsize=9)
    legend = top.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, fontsize=7,
                        markerscale=3, frameon=False)  # above the axes: inside, it would hide weights
    where = fig.add_subplot(grid[1, 0])
    where.plot(idx, chan_of, ",", color=OKABE_ITO[4])
    marks, = where.plot([], [], "|", color=OKABE_ITO[5], markersize=6)
    where.set_xlim(top.get_xlim())
    where.set_ylim(-0.05 * c, 1.05 * (c - 1) + 0.05 * c)
    where.set_xlabel("position in the flattened input")
    where.set_ylabel("channel")
    where.set_title(" ", fontsize=9)
    sl = fig.add_subplot(grid[1, 1])
    image = sl.imshow(np.zeros((h, w)), interpolation="nearest", cmap=DIVERGING, vmin=-limit,
                      vmax=limit)
    sl.set_title(" ", fontsize=9)
    sl.set_xlabel("x")
    sl.set_ylabel("y")
    parts = {"shape": (c, h, w), "order": order, "idx": idx, "chan_of": chan_of,
             "others": others, "mine": mine, "legend": legend, "marks": marks,
             "where_title": where.title, "image": image, "slice_title": sl.title}
    return fig, parts


def draw_row(parts: dict, row: np.ndarray, channel: int) -> list:
    """Show ``row`` (C*H*W,) and channel ``channel`` in ``row_into_cube_parts``'s figure; returns
    the artists that changed."""
    c, h, w = parts["shape"]
    if not 0 <= channel < c:
        raise ValueError(f"channel must be between 0 and {c - 1}; got {channel}")
    idx, chan_of, order = parts["idx"], parts["chan_of"], parts["order"]
    is_mine = chan_of == channel
    parts["others"].set_data(idx[~is_mine], row[~is_mine])
    parts["mine"].set_data(idx[is_mine], row[is_mine])
    parts["legend"].get_texts()[1].set_text(f"channel {channel}")
    parts["marks"].set_data(idx[is_mine], chan_of[is_mine])
    spread = "one block" if order == "chw" else f"every {c}th position"
    parts["where_title"].set_text(f"channel {channel} occupies {spread}")
    cube = row.reshape(c, h, w) if order == "chw" else row.reshape(h, w, c).transpose(2, 0, 1)
    parts["image"].set_data(cube[channel])
    parts["slice_title"].set_text(f"filter slice, channel {channel}")
    return [parts[k] for k in ("others", "mine", "legend", "marks", "where_title", "image",
                               "slice_title")]


# --------------------------------------------------------------------------- score maps

def _heatmap(values: np.ndarray, title: str, axes: tuple[str, str], label: str, figsize):
    """One (rows, cols) map, a cell per value; ``axes``: (x label, y label); a colour bar."""
    fig, ax = plt.subplots(figsize=figsize)
    img = ax.imshow(values, cmap=SEQUENTIAL, interpolation="nearest")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    _integer_ticks(ax)
    ax.set_title(title, fontsize=9, y=1.0)  # where it goes anyway (no ticks on top): not measured
    fig.colorbar(img, ax=ax, label=label)
    return fig


def score_map(scores: np.ndarray, title: str = "score map", labels=None):
    """A (rows, cols) map of one class's scores, one cell per window."""
    return _heatmap(scores, title, ("window column", "window row"), labels or "score", (3.6, 3.2))


# ------------------------------------------------------------------ notebook 05: windows on a photo

def windows_on_photo(image, window: int, jump: int, cell=(0, 0), rf=None, all_windows=True,
                     scores=None):
    """The photo with every window's top-left corner, the picked cell's window (solid) and,
    if given, its receptive field (dashed; it may reach past the photo into the padding).

    image: (3, H, W) in [0, 1]. rf: a ReceptiveField. scores: (rows, cols) shown beside it.
    """
    h, w = image.shape[1:]
    rows, cols = score_map_side(h, window, jump), score_map_side(w, window, jump)
    r, c = cell
    if not (0 <= r < rows and 0 <= c < cols):
        raise ValueError(f"cell must be within the {rows}x{cols} map; got ({r}, {c})")
    ncols = 2 if scores is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 5),
                             gridspec_kw={"width_ratios": [1.4, 1][:ncols]})
    ax = axes[0] if ncols == 2 else axes
    ax.imshow(image.permute(1, 2, 0).numpy(), extent=(0, w, h, 0))
    if all_windows:
        ys, xs = np.meshgrid(np.arange(rows) * jump, np.arange(cols) * jump, indexing="ij")
        ax.plot(xs.ravel(), ys.ravel(), "+", color="white", markersize=5,
                label="window corners")
    ax.add_patch(Rectangle((c * jump, r * jump), window, window, fill=False, lw=2.5,
                           edgecolor=OKABE_ITO[0], label=f"window {window}x{window}"))
    margin = 20
    if rf is not None:
        (y0, y1), (x0, x1) = rf.window(r, 0), rf.window(c, 1 if not isinstance(rf.size, int) else 0)
        ax.add_patch(Rectangle((x0, y0), x1 - x0 + 1, y1 - y0 + 1, fill=False, lw=2, ls="--",
                               edgecolor=OKABE_ITO[2],
                               label=f"receptive field {y1 - y0 + 1} px"))
        margin = max(margin, -y0, -x0, y1 - h + 1, x1 - w + 1) + 10
    ax.set_xlim(-margin, w + margin)
    ax.set_ylim(h + margin, -margin)
    ax.add_patch(Rectangle((0, 0), w, h, fill=False, lw=1, edgecolor="black"))
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(f"cell ({r}, {c}) of the {rows}x{cols} map", fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=7,
              facecolor="#bbbbbb")
    if scores is not None:
        img = axes[1].imshow(scores, cmap=SEQUENTIAL, interpolation="nearest")
        axes[1].add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, lw=2.5,
                                    edgecolor=OKABE_ITO[0]))
        axes[1].set_xlabel("window column")
        axes[1].set_ylabel("window row")
        _integer_ticks(axes[1])
        axes[1].set_title("best class score in every cell", fontsize=9)
        fig.colorbar(img, ax=axes[1], shrink=0.7, label="score")
    return fig


def border_difference(diff: np.ndarray, title: str):
    """Where dense and crop features differ inside one window: (h, w) map of |difference|."""
    axes = ("feature-map column inside the window", "feature-map row inside the window")
    return _heatmap(diff, title, axes, "mean |dense - crop|", (4.2, 3.6))


def stride_grid(size: int, window: int, jump: int, step: int, passes):
    """Window corners at stride ``step`` on a size x size image: the full grid (grey rings) and
    the corners that the shifted passes in ``passes`` [(dy, dx) in pixels] actually produce."""
    from matplotlib.ticker import MultipleLocator

    last = size - window
    fig, ax = plt.subplots(figsize=(4.6, 4.6))
    grid = np.arange(0, last + 1, step)
    ys, xs = np.meshgrid(grid, grid, indexing="ij")
    ax.plot(xs.ravel(), ys.ravel(), "o", mfc="none", color="#999999", markersize=11,
            label=f"full stride-{step} grid ({len(grid)}x{len(grid)} windows)")
    for k, (dy, dx) in enumerate(passes):
        py, px = np.arange(dy, last + 1, jump), np.arange(dx, last + 1, jump)
        yy, xx = np.meshgrid(py, px, indexing="ij")
        ax.plot(xx.ravel(), yy.ravel(), "os^D"[k % 4], color=OKABE_ITO[k % 8], markersize=6,
                label=f"pass shifted by ({dy}, {dx}): {len(py) * len(px)} windows")
    ax.xaxis.set_major_locator(MultipleLocator(2 * step))
    ax.yaxis.set_major_locator(MultipleLocator(2 * step))
    ax.set_xlim(-step / 2, last + step / 2)
    ax.set_ylim(last + step / 2, -step / 2)
    ax.set_xlabel("window's left edge x (pixels)")
    ax.set_ylabel("window's top edge y (pixels)")
    ax.set_title(f"{size}x{size} image, {window}x{window} windows", fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=7)
    return fig


def face_map(image: np.ndarray, probs: np.ndarray, scale, jump: int, window: int,
             boxes=(), truth=None, title: str = ""):
    """A grey photo (H, W) with one pyramid level's face probabilities (rows, cols) drawn over
    the window centres (mapped back through ``scale`` = (sy, sx)), detections
    [(x0, y0, x1, y1, label, p)] (orange, solid) and the marked face ``truth`` (blue, dashed)."""
    sy, sx = scale
    rows, cols = probs.shape
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    half = window / 2 - jump / 2
    ax.imshow(probability_rgba(probs), interpolation="nearest",
              extent=(half / sx, (half + cols * jump) / sx, (half + rows * jump) / sy, half / sy))
    if truth is not None:
        x0, y0, x1, y1 = truth[:4]
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False,
                               ls="--", lw=1.5, edgecolor=OKABE_ITO[1], label="marked face"))
    for k, (x0, y0, x1, y1, _label, p) in enumerate(boxes):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False,
                               lw=2, edgecolor=OKABE_ITO[0], label="window" if k == 0 else None))
        near_top = y0 < 0.05 * image.shape[0]        # a label above it would leave the photo
        ax.text(x0, y0 + 3 if near_top else y0 - 3, f"{p:.3f}", color="black", fontsize=7,
                va="top" if near_top else "baseline",
                bbox={"facecolor": OKABE_ITO[0], "edgecolor": "none", "pad": 1})
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    ax.set_title(title, fontsize=9)
    _probability_colorbar(fig, ax, "P(face) of the window centred here")
    if boxes or truth is not None:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=7)
    return fig


# --------------------------------------------------------------------------- notebook 06: cost

def cost_curves(sizes, dense, crops, unit: str = "GMACs"):
    """Cost of one dense pass and of all crops against the image side, on a log scale."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(sizes, crops, "o-", color=OKABE_ITO[5], label="every crop through the classifier")
    ax.plot(sizes, dense, "s-", color=OKABE_ITO[4], label="one dense pass (convolutionalized)")
    ax.set_yscale("log")
    ax.set_xlabel("image side (pixels)")
    ax.set_ylabel(unit + " (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig



def ratio_curve(sizes, ratios, limit: float):
    """MAC ratio (crops / dense) against the image side, with its limit as a dashed line."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(sizes, ratios, "o-", color=OKABE_ITO[4], label="crops / dense, in MACs")
    ax.axhline(limit, ls="--", color=OKABE_ITO[5], label=f"limit {limit:.1f}x (head not shared)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("image side (pixels, log scale)")
    ax.set_ylabel("times fewer MACs dense")
    ax.set_ylim(0, limit * 1.1)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig

# ------------------------------------------------------------------ notebook 07: conv as a matrix

def conv_matrix_picture(m: np.ndarray, title: str = "", fig=None):
    """The dense matrix of a conv: each row one output, each column one input; white = zero.

    With ``fig`` (an earlier result of this function) the same picture is drawn into it instead
    of a new figure: the colour bar and axes are reused (a live explorer's slider is faster)."""
    # never shorter than 3 in: a matrix of few rows keeps its axis label and colour bar whole
    size = (6.5, 6.5 * min(2.0, max(3.0 / 6.5, m.shape[0] / m.shape[1])))
    nz = np.where(m != 0, m, np.nan)
    lim = _signed_limits(m)
    if fig is None:
        fig, ax = plt.subplots(figsize=size)
        im = ax.imshow(nz, aspect="auto", interpolation="nearest", **lim)
        fig.colorbar(im, ax=ax, shrink=0.8, label="weight (white: zero)")
        ax.set_facecolor("white")
        _integer_ticks(ax)
    else:
        fig.set_size_inches(*size)
        ax = fig.axes[0]
        im = ax.images[0]
        im.set_data(nz)
        im.set_clim(lim["vmin"], lim["vmax"])  # the colour bar follows its image
        im.set_extent((-0.5, m.shape[1] - 0.5, m.shape[0] - 0.5, -0.5))
    # about one tick per half inch of height: a short matrix keeps its tick labels apart
    ax.yaxis.set_major_locator(MaxNLocator(nbins=max(2, int(2 * size[1])), integer=True))
    ax.set_xlabel(f"input (C*H*W = {m.shape[1]} columns)")
    ax.set_ylabel(f"output: K*H'*W'\n= {m.shape[0]} rows")
    # y: where it goes anyway (no ticks on top); placing it by measuring the tick labels was
    # about a tenth of a redraw
    ax.set_title(title or f"{np.count_nonzero(m)} non-zero of {m.size} entries", fontsize=9, y=1.0)
    return fig



def toeplitz_blocks(m: np.ndarray, out_side: int, in_side: int, title: str = ""):
    """``conv_matrix_picture`` of a one-channel conv, with lines between its blocks.

    m (out_side^2, in_side^2): block (i, j), out_side x in_side, is how output row i uses input
    row j; the lines make the doubly block Toeplitz pattern visible.
    """
    fig = conv_matrix_picture(m, title)
    ax = fig.axes[0]
    for r in range(1, out_side):
        ax.axhline(r * out_side - 0.5, color="0.6", lw=0.6)
    for c in range(1, in_side):
        ax.axvline(c * in_side - 0.5, color="0.6", lw=0.6)
    # ticks on the block boundaries: the first row / column of each block
    ax.set_yticks([r * out_side - 0.5 for r in range(out_side + 1)],
                  [str(r * out_side) for r in range(out_side + 1)])
    ax.set_xticks([c * in_side - 0.5 for c in range(in_side + 1)],
                  [str(c * in_side) for c in range(in_side + 1)])
    return fig

# ------------------------------------------------------------------ notebook 08: digits

def digits_canvas(image: np.ndarray, boxes=(), detections=(), heat=None, jump: int = 4,
                  window: int = 28, title: str = "", caption: str | None = None):
    """A canvas with ground-truth boxes (dashed), detections (solid, labelled) and, optionally,
    a (rows, cols) heat map of probabilities drawn over the window centres (``probability_rgba``).

    ``caption`` (under the x axis) says what the marks mean; by default it names only the marks
    drawn (an explorer that adds boxes later passes its own)."""
    fig, ax = plt.subplots(figsize=(5.4, 5.4) if heat is None else (5.8, 4.6))
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    if heat is not None:
        rows, cols = heat.shape
        half = window / 2 - jump / 2
        ax.imshow(probability_rgba(heat), interpolation="nearest",
                  extent=(half - 0.5, half + cols * jump - 0.5, half + rows * jump - 0.5,
                          half - 0.5))
        _probability_colorbar(fig, ax, "probability")
    digits_boxes(ax, boxes, detections)
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    if caption is None:
        caption = ", ".join((["dashed blue: true boxes"] if len(boxes) else [])
                            + (["orange: detections"] if len(detections) else []))
    ax.set_xlabel("x (pixels)" + (f"   {caption}" if caption else ""))
    ax.set_ylabel("y (pixels)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def digits_boxes(ax, boxes=(), detections=()) -> None:
    """Draw ground-truth boxes (dashed blue) and labelled detections (orange) on ``ax``."""
    for x0, y0, x1, y1, _label in boxes:
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False,
                               ls="--", lw=1, edgecolor=OKABE_ITO[1]))
    for x0, y0, x1, y1, label, score in detections:
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False,
                               lw=2, edgecolor=OKABE_ITO[0]))
        ax.text(x0, y0 - 2, f"{label} ({score:.2f})", color="black", fontsize=8,
                bbox={"facecolor": OKABE_ITO[0], "edgecolor": "none", "pad": 1})


def class_heatmaps(probs: np.ndarray, classes, names=None):
    """One small heat map of probabilities per class: (K, rows, cols)."""
    fig, axes = plt.subplots(1, len(classes), figsize=(2.3 * len(classes), 2.7), squeeze=False,
                             sharey=True)
    for i, (ax, k) in enumerate(zip(axes[0], classes)):
        img = ax.imshow(probs[k], cmap=SEQUENTIAL, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(names[k] if names else f"class {k}", fontsize=9)
        ax.set_xlabel("window column", fontsize=8)
        if i == 0:  # the rows are shared: one label, so it cannot run into the next map
            ax.set_ylabel("window row", fontsize=8)
        ax.tick_params(labelsize=7)
        for axis in (ax.xaxis, ax.yaxis):  # few ticks: readable at this size
            axis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    fig.colorbar(img, ax=axes[0].tolist(), shrink=0.8, label="probability")
    return fig


def segmentation_pair(pred: np.ndarray, truth: np.ndarray, background: int = 10):
    """Predicted and true per-pixel labels side by side (background white)."""
    from matplotlib.colors import ListedColormap

    colours = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
               "#000000", "#999999", "#882255", "#ffffff"]
    cmap = ListedColormap(colours[: background + 1])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
    for ax, labels, name in ((axes[0], pred, "predicted (upsampled score map)"),
                             (axes[1], truth, "ground truth (ink pixels)")):
        ax.imshow(labels, cmap=cmap, vmin=-0.5, vmax=background + 0.5, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("x (pixels)")
        ax.set_ylabel("y (pixels)")
    handles = [Rectangle((0, 0), 1, 1, color=colours[k]) for k in range(background)]
    fig.subplots_adjust(bottom=0.25)
    fig.legend(handles, [str(k) for k in range(background)], loc="lower center", ncol=10,
               fontsize=8, title="digit")
    return fig
