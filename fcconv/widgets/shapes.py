"""Notebook 02's explorers: shapes through a network, and the output-size formula in 1-D.

Plain functions: ``shapes_view`` (a Trace), ``slide_1d_note`` (the formula, with a warning when
the division is not exact). The widgets wire controls to them.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets

from .. import plots
from ..models import MODELS, build
from ..shapes import conv_output_size, trace
from ..torch_ops import convolutionalize
from .base import (
    Explorer,
    LiveFigure,
    fix_margins,
    kept,
    never_raise,
    show_html,
    show_message,
    show_png,
    when_idle,
)

# Fixed layouts: measuring a tight box would draw each picture twice per slider move.
VOLUME_MARGINS = {"left": 0.05, "right": 0.05, "bottom": 0.05, "top": 0.55}  # inches
SLIDE_MARGINS = {"left": 0.6, "right": 0.15, "bottom": 0.75, "top": 0.05}


@functools.cache
def _model(arch: str, convolutionalized: bool):
    model, train_shape = build(arch, device="meta")  # shapes only: instant, no weights
    if convolutionalized:
        model = convolutionalize(model, train_shape)
    return model, train_shape


@functools.cache
def _fc_input(arch: str) -> tuple[int, ...]:
    """(C, H, W) of the map the first FC layer of ``arch`` flattens, at the training size."""
    model, train_shape = _model(arch, False)
    rows = list(trace(model, train_shape))
    first_fc = next(i for i, r in enumerate(rows) if r.kind == "Linear")
    return next(r.out_shape for r in reversed(rows[:first_fc]) if len(r.out_shape) == 3)


def shapes_view(arch: str, size: int, convolutionalized: bool = False):
    """The trace of course model ``arch`` on a size x size input (channels as in training)."""
    model, train_shape = _model(arch, convolutionalized)
    window = train_shape[-1]
    if convolutionalized and size < window:  # no Linear is left to blame: name the conv
        c, h, w = _fc_input(arch)
        raise ValueError(f"input {size}x{size} is smaller than the {window}x{window} window the "
                         f"classifier was trained on: its first FC layer, now a {h}x{w} conv over "
                         f"the {c}-channel map, has no position to fit. Give it at least "
                         f"{window}x{window}.")
    try:
        return trace(model, (train_shape[0], size, size))
    except ValueError as err:
        hint = "" if convolutionalized else (
            " An FC layer takes a fixed number of inputs: switch on 'convolutionalized' to "
            "slide the classifier over a larger image instead.")
        raise ValueError(f"{err}.{hint}") from None


def describe_volumes(t, arch: str, convolutionalized: bool) -> str:
    """The volume-stack picture of trace ``t`` in words (its alt text)."""
    from ..shapes import format_shape

    what = "convolutionalized " if convolutionalized else ""
    return (f"Boxes, one per layer output, of the {what}{arch} network: from the input "
            f"{format_shape(t.input_shape)} to the output {format_shape(t.rows[-1].out_shape)}.")


class ShapesExplorer(Explorer):
    """Architecture, input size (slider and free entry) and a convolutionalized toggle."""

    def __init__(self, arch: str = "vgg16", size: int = 224, convolutionalized: bool = False):
        self.arch = widgets.Dropdown(options=sorted(MODELS), value=arch, description="network")
        self.size = widgets.IntSlider(value=size, min=16, max=1024, description="input size",
                                      continuous_update=False)
        self.entry = widgets.BoundedIntText(value=size, min=1, max=4096, description="or type",
                                            layout=widgets.Layout(width="180px"))
        # The typed entry is the size; the slider follows it where it can (entry may exceed it).
        self.size.observe(lambda c: setattr(self.entry, "value", c["new"]), names="value")
        self.entry.observe(self._typed, names="value")
        self.conv = widgets.ToggleButton(value=convolutionalized, description="convolutionalized",
                                         layout=widgets.Layout(width="auto"))
        self.table, self.picture = widgets.Output(), widgets.Output()
        self._shown: dict[tuple, tuple] = {}   # (arch, size, convolutionalized) -> what is shown
        self._live: dict[int, LiveFigure] = {}  # number of volumes drawn -> their figure
        self.arch.observe(self._arch_changed, names="value")
        self.conv.observe(lambda _: self.update(), names="value")
        self.update()
        self.box = widgets.VBox([widgets.HBox([self.arch, self.conv]),
                                 widgets.HBox([self.size, self.entry]), self.picture, self.table])
        # Every network at its training size, both ways: a first visit drew a new figure
        # (150 ms from key press to picture in the browser, 2 cores); kept, it is shown at once.
        when_idle(functools.partial(self.keep, arch, MODELS[arch][1][-1], conv)
                  for arch in self.arch.options for conv in (False, True))

    def keep(self, arch: str, size: int, convolutionalized: bool) -> None:
        """Work out (and keep) what a setting shows, without showing it."""
        kept(self._shown, (arch, size, convolutionalized),
             lambda: self._view(arch, size, convolutionalized, show=False))

    def _typed(self, change) -> None:
        if self.size.min <= change["new"] <= self.size.max:
            self.size.value = change["new"]
        self.update()

    def _arch_changed(self, change) -> None:
        size = MODELS[change["new"]][1][-1]  # jump to the training size
        if self.entry.value != size:
            self.entry.value = size  # which redraws (_typed): once, not twice
        else:
            self.update()

    @never_raise("table", clear=("picture",))
    def update(self) -> None:
        self.conv.icon = "check" if self.conv.value else ""  # the tick shows the state: on only
        key = (self.arch.value, self.entry.value, self.conv.value)  # entry: any size
        html, png, alt = kept(self._shown, key, lambda: self._view(*key))
        show_html(self.table, html)
        show_png(self.picture, png, alt)

    def _view(self, arch: str, size: int, convolutionalized: bool,
              show: bool = True) -> tuple[str, bytes, str]:
        """(table as HTML, picture, alt text) of one setting; ``show``: the table is shown at
        once, while the boxes are drawn."""
        t = shapes_view(arch, size, convolutionalized)
        if show:
            show_html(self.table, t._repr_html_())
        return t._repr_html_(), self._draw(t), describe_volumes(t, arch, convolutionalized)

    def _draw(self, t) -> bytes:
        """PNG of the volume stack of trace ``t``: one figure per number of volumes, kept (a
        ``LiveFigure``); another size or network moves and relabels its boxes, the title stays
        drawn."""
        n = len(plots.stacked_volumes(t))
        if n not in self._live:
            fig = plots.volume_stack(t)
            fix_margins(fig, VOLUME_MARGINS)
            ax = fig.axes[0]
            self._live[n] = LiveFigure(fig, dpi=72)
            self._live[n].changing(*ax.collections, *ax.texts)  # the title stays
        else:
            plots.volume_stack(t, fig=self._live[n].fig)
        return self._live[n].png()


def slide_1d_note(size: int, kernel: int, stride: int, padding: int) -> tuple[int, str]:
    """Output size and the formula in words; notes when (W - F + 2P) / S is not a whole number."""
    n = conv_output_size(size, kernel, stride, padding)
    room = size - kernel + 2 * padding
    text = f"({size} - {kernel} + 2*{padding}) / {stride} + 1 = {room / stride + 1:g}"
    if room % stride:
        left = room % stride             # cells after the last window's end: never covered
        real = max(0, left - padding)    # of those, the ones that are input, not padding
        row = "padded row" if padding else "row"
        cells = f"cell of the {row} is" if left == 1 else f"{left} cells of the {row} are"
        if real == 0:
            lost = "only padding: no input pixel is lost"
        elif real == left:
            lost = "input pixels, ignored" if left > 1 else "an input pixel, ignored"
        else:
            lost = f"{real} of them input pixel{'s' if real > 1 else ''}, ignored"
        text += (f": not a whole number. The stride does not fit the input exactly; PyTorch "
                 f"rounds down to {n} outputs, and the last {cells} never covered "
                 f"by any window ({lost}).")
    else:
        text += f": {n} outputs."
    if stride > kernel:
        text += (f" With a stride larger than the kernel, the {stride - kernel} cell"
                 f"{'s' if stride - kernel > 1 else ''} between neighbouring windows "
                 f"{'are' if stride - kernel > 1 else 'is'} never covered either.")
    return n, text


def describe_1d(size: int, kernel: int, stride: int, padding: int, position: int, n: int) -> str:
    """The 1-D sliding picture in words (its alt text); padded cells have negative positions."""
    first = position * stride - padding
    return (f"A row of {size} input cells with {padding} zero-padding cell(s) each side; a kernel "
            f"of {kernel} at stride {stride} gives {n} outputs; output {position} reads input "
            f"positions {first} to {first + kernel - 1}.")


class Slide1DExplorer(Explorer):
    """Input size, kernel, stride, padding and which output: the 1-D picture and the formula."""

    def __init__(self, size: int = 7, kernel: int = 3, stride: int = 1, padding: int = 0):
        self.size = widgets.IntSlider(value=size, min=1, max=16, description="input W")
        self.kernel = widgets.IntSlider(value=kernel, min=1, max=9, description="kernel F")
        self.stride = widgets.IntSlider(value=stride, min=1, max=5, description="stride S")
        self.padding = widgets.IntSlider(value=padding, min=0, max=4, description="padding P")
        self.position = widgets.IntSlider(value=0, min=0, max=0, description="output #")
        self.out, self.note = widgets.Output(), widgets.Output()
        self._shown: dict[tuple, bytes] = {}  # (size, kernel, stride, padding, output) -> PNG
        self._live, self._row = None, None    # one figure, redrawn with new cells
        for w in (self.size, self.kernel, self.stride, self.padding, self.position):
            w.observe(lambda _: self.update(), names="value")
        self.update()
        self.box = widgets.VBox([widgets.HBox([widgets.VBox([self.size, self.kernel]),
                                               widgets.VBox([self.stride, self.padding])]),
                                 self.position, self.out, self.note])

    @never_raise()
    def update(self) -> None:
        try:
            n, text = slide_1d_note(self.size.value, self.kernel.value, self.stride.value,
                                    self.padding.value)
        except ValueError as err:
            show_html(self.note, "")
            show_message(self.out, str(err))
            return
        self.position.max = n - 1  # may clamp position, which calls update again
        args = (self.size.value, self.kernel.value, self.stride.value, self.padding.value,
                min(self.position.value, n - 1))
        show_png(self.out, kept(self._shown, args, lambda: self._draw(args)), describe_1d(*args, n))
        show_html(self.note, f"<p>{text}</p>")

    def _draw(self, args: tuple) -> bytes:
        """PNG of ``plots.sliding_1d(*args)``. One figure, kept (a ``LiveFigure``): its axes and
        the input row are drawn again only when the size or padding changes; a kernel, stride
        or output move redraws the kernel's box, the outputs and the formula under them."""
        if self._live is None:
            self._live = LiveFigure(plots.sliding_1d(*args), dpi=110)
            self._live.changing(self._live.fig.axes[0].xaxis)  # no ticks: the formula
        else:
            ax = self._live.fig.axes[0]
            self._live.forget(*[a for a in ax.get_children() if a in self._live.artists
                                and a is not ax.xaxis])
            plots.sliding_1d(*args, fig=self._live.fig)  # the input row too, drawn or not
        ax = self._live.fig.axes[0]
        row = (args[0], args[3])  # size and padding: the input row
        if row != self._row:
            self._row = row
            self._live.redraw_all()
        fix_margins(self._live.fig, SLIDE_MARGINS)  # in inches: the figure may have widened
        self._live.changing(*[a for a in ax.get_children() if a.get_gid() is None
                              and a in [*ax.collections, *ax.patches, *ax.texts]])
        return self._live.png()
