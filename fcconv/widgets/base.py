"""What every explorer shares: draw a figure or a message into an ``ipywidgets.Output``.

Outputs are set directly (not ``with out: plt.show()``) so that tests can read what a learner
would see, and so that a setting that makes no sense shows a sentence, never a traceback.
"""

from __future__ import annotations

import base64
import functools
import io
from html import escape

import ipywidgets as widgets
from IPython.display import HTML


def figure_png(fig, dpi: int = 90, margins: dict | None = None) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (no pyplot state left behind).

    With ``margins`` (inches of space left, right, bottom, top) the layout is fixed instead of
    measured: cropping to a tight box draws the figure twice, too slow for a live slider."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    if margins is None:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        return buf.getvalue()
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=margins["left"] / w, right=1 - margins["right"] / w,
                        bottom=margins["bottom"] / h, top=1 - margins["top"] / h)
    plt.close(fig)
    fig.set_dpi(dpi)
    return LiveFigure(fig, dpi).png()  # the same pixels as savefig, encoded faster


def show_png(out: widgets.Output, png: bytes, alt: str = "") -> None:
    """Replace what ``out`` shows with one PNG image; ``alt`` says in words what it shows now
    (what a screen reader announces).

    JupyterLab's image renderer drops image metadata, so the picture goes out as an HTML
    ``<img alt=...>`` (what a trusted output shows); the raw PNG rides along for untrusted views
    and for ``shown_png``, and the alt text is the plain-text form.
    """
    b64 = base64.b64encode(png).decode("ascii")
    data = {"text/html": f'<img src="data:image/png;base64,{b64}" alt="{escape(alt, quote=True)}">',
            "image/png": b64, "text/plain": alt}
    out.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)


def show_html(out: widgets.Output, html: str) -> None:
    """Replace what ``out`` shows with an HTML fragment."""
    out.outputs = ()
    out.append_display_data(HTML(html))


def show_message(out: widgets.Output, text: str) -> None:
    """Show a plain-words message (an impossible setting) in place of a figure."""
    show_html(out, f"<div class='fcconv-message' style='color:#b35806;padding:0.5em'>"
                   f"&#9888; {escape(text)}</div>")


def shown_png(out: widgets.Output) -> bytes | None:
    """The PNG bytes ``out`` currently shows, or None (what tests compare)."""
    for item in reversed(out.outputs):
        data = item.get("data", {})
        if "image/png" in data:
            png = data["image/png"]  # the Output keeps it base64-encoded, as the browser gets it
            return base64.b64decode(png) if isinstance(png, str) else png
    return None


def shown_alt(out: widgets.Output) -> str | None:
    """The alt text of the picture ``out`` currently shows, or None (what a screen reader reads)."""
    for item in reversed(out.outputs):
        data = item.get("data", {})
        if "image/png" in data:
            return data.get("text/plain", "")
    return None


def shown_text(out: widgets.Output) -> str:
    """All HTML/plain text ``out`` currently shows, pictures left out, joined (what tests search)."""
    parts = []
    for item in out.outputs:
        data = item.get("data", {})
        if "image/png" not in data:
            parts.append(data.get("text/html", "") or data.get("text/plain", ""))
    return "\n".join(parts)


# ipywidgets draws a slider as a noUiSlider handle (role "slider") that its visible label does
# not name, so a screen reader says only "slider, 3". This names each handle after its label;
# it runs once per page (JupyterLab, Voila, slides) and watches for sliders drawn later.
LABEL_SLIDERS_JS = """<script>
(() => {
  if (window.fcconvLabelSliders) return;
  window.fcconvLabelSliders = true;
  const label = () => document.querySelectorAll(".widget-slider .noUi-handle").forEach(h => {
    const l = h.closest(".widget-slider").querySelector(".widget-label");
    const name = l ? l.textContent.trim() : "";
    if (name && h.getAttribute("aria-label") !== name) h.setAttribute("aria-label", name);
  });
  let queued = false;
  new MutationObserver(() => {
    if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; label(); }); }
  }).observe(document.body, {childList: true, subtree: true});
  label();
})();
</script>"""


# A control's label gets a fixed 80 px by default: longer ones are cut ("window si...").
SHORT_LABEL = 9  # characters that fit in it


def fit_labels(box: widgets.Widget) -> None:
    """Give every control under ``box`` whose label is longer than ``SHORT_LABEL`` the width
    its label needs, and buttons the width of their text, so that no label is cut."""
    children = getattr(box, "children", ())
    for child in children:
        fit_labels(child)
    text = getattr(box, "description", "") or ""
    if isinstance(box, (widgets.Button, widgets.ToggleButton)):
        box.layout.width = box.layout.width or "auto"
    elif len(text) > SHORT_LABEL and hasattr(box.style, "description_width"):
        box.style.description_width = "initial"


class Explorer:
    """An explorer shows ``self.box`` (its controls and outputs) when it is a cell's result."""

    box: widgets.Widget

    def _ipython_display_(self):
        from IPython.display import display

        fit_labels(self.box)
        display(self.box)
        display(HTML(LABEL_SLIDERS_JS))


def never_raise(out_attr: str = "out", clear: tuple[str, ...] = ()):
    """Decorate an explorer's update method: any ValueError/TypeError becomes a message in
    ``out_attr``, and the outputs named in ``clear`` are emptied (no stale picture stays)."""
    def wrap(method):
        @functools.wraps(method)
        def inner(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except (ValueError, TypeError, RuntimeError) as err:
                for name in clear:
                    getattr(self, name).outputs = ()
                show_message(getattr(self, out_attr), str(err))
        return inner
    return wrap


class LiveFigure:
    """A figure kept between updates: the axes, ticks and labels are drawn once, and an update
    redraws only the artists that change (blitting), then encodes the pixels as a PNG.

    Drawing the axes is most of what a fresh figure costs (tick layout, text); an explorer whose
    control moves only some artists stays well under 100 ms this way. Changing artists are
    registered with ``changing``; the figure's layout is fixed at the first ``png``.
    """

    def __init__(self, fig, dpi: int = 80):
        import matplotlib.pyplot as plt
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        plt.close(fig)  # kept by this object, not by pyplot
        fig.set_dpi(dpi)
        self.fig, self.canvas = fig, FigureCanvasAgg(fig)
        self.artists: list = []
        self._background = None

    def changing(self, *artists):
        """Mark ``artists`` as redrawn at every update; returns the first (for chaining)."""
        for a in artists:
            a.set_animated(True)
            self.artists.append(a)
        return artists[0]

    def forget(self, *artists):
        """Remove ``artists`` (changing ones, e.g. last update's boxes) from the figure."""
        for a in artists:
            self.artists.remove(a)
            a.remove()

    def png(self) -> bytes:
        """The figure now, as PNG bytes: the saved background plus the changing artists."""
        from PIL import Image as PILImage

        if self._background is None:
            self.canvas.draw()  # everything not marked as changing
            self._background = self.canvas.copy_from_bbox(self.fig.bbox)
        else:
            self.canvas.restore_region(self._background)
        for a in self.artists:
            if a.get_visible():
                self.fig.draw_artist(a)
        buf = io.BytesIO()
        PILImage.frombuffer("RGBA", self.canvas.get_width_height(), self.canvas.buffer_rgba(),
                            "raw", "RGBA", 0, 1).save(buf, format="png", compress_level=1)
        return buf.getvalue()


def set_image(im, array, square: bool = True) -> None:
    """Show ``array`` (rows, cols) in image artist ``im`` of a LiveFigure, filling its axes; with
    ``square`` the pixels stay square and the picture is centred (the axes box never moves)."""
    rows, cols = array.shape
    im.set_data(array)
    im.set_extent((-0.5, cols - 0.5, rows - 0.5, -0.5))
    ax = im.axes
    xs, ys = cols, rows
    if square:
        box = ax.get_window_extent()
        ratio = box.width / box.height
        xs, ys = max(cols, rows * ratio), max(rows, cols / ratio)
    ax.set_xlim((cols - 1) / 2 - xs / 2, (cols - 1) / 2 + xs / 2)
    ax.set_ylim((rows - 1) / 2 + ys / 2, (rows - 1) / 2 - ys / 2)
