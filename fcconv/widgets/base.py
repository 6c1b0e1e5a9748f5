"""What every explorer shares: draw a figure or a message into an ``ipywidgets.Output``.

Outputs are set directly (not ``with out: plt.show()``) so that tests can read what a learner
would see, and so that a setting that makes no sense shows a sentence, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import re
from html import escape, unescape

import ipywidgets as widgets
from IPython.display import HTML

PNG_URI = "data:image/png;base64,"
JPEG_URI = "data:image/jpeg;base64,"
_IMG = re.compile(r'^<img src="data:image/(?:png|jpeg);base64,(?P<b64>[A-Za-z0-9+/=]*)" '
                  r'alt="(?P<alt>[^"]*)">$')


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
    fix_margins(fig, margins)
    return LiveFigure(fig, dpi).png()  # the same pixels as savefig, encoded faster


def fix_margins(fig, margins: dict) -> None:
    """Leave ``margins`` (inches of space left, right, bottom, top) around ``fig``'s axes."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=margins["left"] / w, right=1 - margins["right"] / w,
                        bottom=margins["bottom"] / h, top=1 - margins["top"] / h)


def show_png(out: widgets.Output, png: bytes, alt: str = "") -> None:
    """Replace what ``out`` shows with one PNG image; ``alt`` says in words what it shows now
    (what a screen reader announces).

    JupyterLab's image renderer drops image metadata, so the picture goes out as an HTML
    ``<img alt=...>`` (what a trusted output shows), and the alt text as the plain-text form.
    The PNG is sent once, in the HTML: a second copy as image/png doubled every message.
    """
    _show_image(out, PNG_URI, png, alt)


def show_jpeg(out: widgets.Output, jpeg: bytes, alt: str = "") -> None:
    """``show_png`` for a photo as JPEG bytes (``photo_jpeg``)."""
    _show_image(out, JPEG_URI, jpeg, alt)


def photo_jpeg(img) -> bytes:
    """A Pillow image of a photo (with boxes drawn on it) as JPEG bytes. A photo's PNG is about
    6 times bigger (445 kB against 75 kB for a 512x512 one), and sending and decoding it at every
    move of a control was most of what a learner waited for in the browser."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _show_image(out: widgets.Output, uri: str, data: bytes, alt: str) -> None:
    b64 = base64.b64encode(data).decode("ascii")
    _show(out, {"text/html": f'<img src="{uri}{b64}" alt="{escape(alt, quote=True)}">',
                "text/plain": alt})


def _show(out: widgets.Output, data: dict) -> None:
    """Replace what ``out`` shows with one output of ``data`` (mime type -> content)."""
    out.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)


def show_html(out: widgets.Output, html: str) -> None:
    """Replace what ``out`` shows with an HTML fragment, in one message (emptying the output
    and then appending to it sent two, with an empty output in between)."""
    _show(out, {"text/plain": repr(HTML(html)), "text/html": html})  # as IPython's display


def show_message(out: widgets.Output, text: str) -> None:
    """Show a plain-words message (an impossible setting) in place of a figure."""
    show_html(out, f"<div class='fcconv-message' style='color:#b35806;padding:0.5em'>"
                   f"&#9888; {escape(text)}</div>")


def _shown_img(out: widgets.Output) -> re.Match | None:
    for item in reversed(out.outputs):
        found = _IMG.search(item.get("data", {}).get("text/html", ""))
        if found:
            return found
    return None


def shown_png(out: widgets.Output) -> bytes | None:
    """The picture's bytes ``out`` currently shows (PNG; JPEG for a photo), or None (what tests
    compare)."""
    found = _shown_img(out)
    return base64.b64decode(found["b64"]) if found else None


def shown_alt(out: widgets.Output) -> str | None:
    """The alt text of the picture ``out`` currently shows, or None (what a screen reader reads)."""
    found = _shown_img(out)
    return unescape(found["alt"]) if found else None


def shown_text(out: widgets.Output) -> str:
    """All HTML/plain text ``out`` currently shows, pictures left out, joined (what tests search)."""
    parts = []
    for item in out.outputs:
        data = item.get("data", {})
        if not _IMG.search(data.get("text/html", "")):
            parts.append(data.get("text/html", "") or data.get("text/plain", ""))
    return "\n".join(parts)


# What an explorer's page needs besides its widgets, sent once per explorer as one HTML output
# (it runs once per page: JupyterLab, Voila, slides, handouts):
# - keyboard: every control moves with the arrow keys. A slider handle, a drop-down and toggle
#   buttons tell JupyterLab to leave their keys alone (data-lm-suppress-shortcuts), else ArrowUp/
#   ArrowDown move to another cell; toggle buttons get the arrow keys of a radio group (one of
#   several) or of a switch (a single toggle: right/up on, left/down off);
# - screen readers: a slider handle is named after its label and reads what its readout shows
#   (aria-valuetext: a selection slider's position is an index, its value the label); toggle
#   buttons say which is on (aria-checked, aria-pressed);
# - a reopened notebook: an explorer lives in a running kernel, so a saved notebook has none.
#   In its place JupyterLab's widget renderer would write "Error displaying widget: model not
#   found", the words notebook 00 gives for a broken install; the style hides that and shows
#   REOPEN_NOTE instead, until the cell runs again (a live explorer hides the note);
# - slides: jupyterlab-slideshow's deck starts at the active cell, which after Run All is the
#   last one; a deck that starts there starts at the first slide instead.
REOPEN_NOTE = "This explorer lives in a running kernel: run this cell (Shift+Enter) to bring it back."

PAGE_HTML = """<style>
.fcconv-reopen { visibility: hidden; animation: fcconv-reopen 0s 1.5s forwards;
  color: var(--jp-ui-font-color2, #555); font-style: italic; padding: 0.25em 0; }
@keyframes fcconv-reopen { to { visibility: visible; } }
.jp-OutputArea:has(.widget-box) .fcconv-reopen { display: none; }
.jp-OutputArea:has(.fcconv-reopen) .jp-OutputArea-output.jupyter-widgets:not(:has(*)) { display: none; }
</style><div class="fcconv-reopen">&#8635; """ + REOPEN_NOTE + """</div><script>
(() => {
  if (window.fcconvControls) return;
  window.fcconvControls = true;
  const SUPPRESS = "data-lm-suppress-shortcuts";
  const set = (el, name, value) => {
    if (el.getAttribute(name) !== value) el.setAttribute(name, value);
  };
  const forward = k => k === "ArrowRight" || k === "ArrowDown";
  const back = k => k === "ArrowLeft" || k === "ArrowUp";
  function slider(s) {
    const handle = s.querySelector(".noUi-handle");
    if (!handle) return;
    const label = s.querySelector(".widget-label"), readout = s.querySelector(".widget-readout");
    const name = label ? label.textContent.trim() : "";
    if (name) set(handle, "aria-label", name);
    if (readout && readout.textContent.trim()) set(handle, "aria-valuetext", readout.textContent.trim());
    set(handle, SUPPRESS, "true");
  }
  function group(g) {  // ToggleButtons: a radio group
    const buttons = [...g.querySelectorAll("button")];
    set(g, SUPPRESS, "true");
    const box = g.querySelector(".btn-group") || g;
    set(box, "role", "radiogroup");
    const label = g.querySelector(".widget-label");
    if (label && label.textContent.trim()) set(box, "aria-label", label.textContent.trim());
    buttons.forEach(b => {
      const on = b.classList.contains("mod-active");
      set(b, "role", "radio");
      set(b, "aria-checked", String(on));
      set(b, "tabindex", on ? "0" : "-1");
    });
    if (!g.fcconvKeys) {
      g.fcconvKeys = true;
      g.addEventListener("keydown", e => {
        if (!forward(e.key) && !back(e.key)) return;
        const all = [...g.querySelectorAll("button")];
        const i = all.indexOf(document.activeElement);
        if (i < 0) return;
        e.preventDefault();
        const next = all[(i + (forward(e.key) ? 1 : all.length - 1)) % all.length];
        next.click();
        next.focus();
      });
    }
  }
  function toggle(b) {  // a single ToggleButton: a switch
    set(b, SUPPRESS, "true");
    set(b, "aria-pressed", String(b.classList.contains("mod-active")));
    if (!b.fcconvKeys) {
      b.fcconvKeys = true;
      b.addEventListener("keydown", e => {
        if (!forward(e.key) && !back(e.key)) return;
        e.preventDefault();
        const on = b.classList.contains("mod-active");
        if ((e.key === "ArrowRight" || e.key === "ArrowUp") !== on) b.click();
      });
    }
  }
  let deck = null;
  function deckStarted() {  // from the last cell (Run All leaves it active) to the first
    const notebook = document.querySelector(".jp-Deck .jp-Notebook");
    const cells = notebook ? notebook.querySelectorAll(".jp-Cell") : [];
    if (cells.length > 1 && cells[cells.length - 1].classList.contains("jp-mod-active")) {
      for (const type of ["mousedown", "mouseup"])
        cells[0].dispatchEvent(new MouseEvent(type, {bubbles: true, button: 0}));
    }
    const active = notebook && notebook.querySelector(".jp-Cell.jp-mod-active");
    if (active) active.focus({preventScroll: true});  // the arrow keys step through the deck
  }
  function decorate() {
    const mode = document.body.getAttribute("data-jp-deck-mode");
    if (mode !== deck && (deck = mode) === "presenting") deckStarted();
    document.querySelectorAll(".widget-slider").forEach(slider);
    document.querySelectorAll(".widget-dropdown select").forEach(s => set(s, SUPPRESS, "true"));
    document.querySelectorAll(".widget-toggle-buttons").forEach(group);
    document.querySelectorAll(".widget-toggle-button:not(.widget-toggle-buttons *)").forEach(toggle);
  }
  let queued = false;
  new MutationObserver(() => {
    if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; decorate(); }); }
  }).observe(document.body, {childList: true, subtree: true, characterData: true, attributes: true,
                             attributeFilter: ["class", "aria-valuetext", "data-jp-deck-mode"]});
  decorate();
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
        bundle = self.box._repr_mimebundle_()
        bundle["text/plain"] = REOPEN_NOTE  # what a view without the widget manager shows
        display(bundle, raw=True)
        display(HTML(PAGE_HTML))


def kept(cache: dict, key, make, limit: int = 64):
    """``cache[key]``, made by ``make()`` the first time it is asked for: what a control's
    setting shows, so that a learner going back sees it at once. Past ``limit`` entries the
    oldest is dropped (a kernel's memory is shared by a whole class on one server)."""
    if key not in cache:
        cache[key] = make()
        if len(cache) > limit:
            del cache[next(iter(cache))]
    return cache[key]


def when_idle(tasks, first_s: float = 0.3) -> None:
    """Run ``tasks`` (callables), one at a time, on the kernel's event loop between its
    messages: what a learner is likely to pick next (another network in a drop-down) is kept
    before it is picked. A key press waits for at most the task running when it comes. Outside
    a running loop (a script, a test) nothing runs; a task that raises is dropped (the control
    shows the error when it is moved there)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    queue = list(tasks)

    def step():
        if queue:
            with contextlib.suppress(Exception):
                queue.pop(0)()
            loop.call_later(0.02, step)

    loop.call_later(first_s, step)


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
    registered with ``changing`` and drawn in matplotlib's order (axes by axes, by zorder within
    each, as registered within one zorder), so that the picture is the one a fresh figure draws,
    as long as nothing unchanging lies over a changing artist (mark that too: an axes' frame over
    its image, a colour bar a title may reach). The rest is drawn once, and again after
    ``redraw_all`` or when an axes or title moved.
    """

    def __init__(self, fig, dpi: int = 80):
        import matplotlib.pyplot as plt
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        plt.close(fig)  # kept by this object, not by pyplot
        fig.set_dpi(dpi)
        self.fig, self.canvas = fig, FigureCanvasAgg(fig)
        self.artists: list = []
        self._background, self._where = None, []

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

    def redraw_all(self) -> None:
        """The unchanging part changed (the axes' limits and ticks, the figure's size): draw it
        again with the next picture."""
        self._background = None

    def _layout(self) -> list:
        """The figure's size, and where its axes and titles are now, each axes' aspect applied
        (as a draw places them): an axes with a fixed aspect narrows or widens as its limits
        change. An axes that is off draws no frame or ticks, so only its title is checked (its
        other artists, which move with it, must be changing)."""
        renderer = self.canvas.get_renderer()
        where = [tuple(self.fig.bbox.bounds)]  # the figure's own size, in pixels
        for ax in self.fig.axes:
            locator = ax.get_axes_locator()
            ax.apply_aspect(locator(ax, renderer) if locator else None)
            if ax.axison:
                where.append(tuple(round(v, 6) for v in ax.get_position().bounds))
            if ax.title not in self.artists and ax.title.get_text():
                xy = ax.title.get_transform().transform(ax.title.get_position())
                where.append(tuple(round(float(v), 3) for v in xy))  # pixels
        return where

    def _draw_order(self, artist) -> tuple:
        """Where a fresh draw paints ``artist``: the figure draws its axes (and its own artists)
        one after another by zorder, and each axes its children by zorder; so an artist of an
        axes drawn later (a colour bar) lies over one of an axes drawn before, whatever their
        own zorders. Python's sort is stable: equal keys keep the order they were marked in."""
        top = artist.axes if artist.axes is not None and artist is not artist.axes else artist
        tops = sorted(self.fig.get_children(), key=lambda c: c.get_zorder())
        place = next((i for i, c in enumerate(tops) if c is top), len(tops))
        return (place, float("-inf") if top is artist else artist.get_zorder())

    def rgb(self):
        """The figure now, as a Pillow RGB image: the saved background plus the changing
        artists (RGB: the figures are opaque, an alpha channel would only add bytes). If an
        axes or a title of the background moved since it was drawn, it is drawn again."""
        from PIL import Image as PILImage

        if self._background is not None and self._layout() != self._where:
            self._background = None
        if self._background is None:
            self.canvas.draw()  # everything not marked as changing
            self._background = self.canvas.copy_from_bbox(self.fig.bbox)
            self._where = self._layout()
        else:
            self.canvas.restore_region(self._background)
        for a in sorted(self.artists, key=self._draw_order):
            if a.get_visible():
                self.fig.draw_artist(a)
        return PILImage.frombuffer("RGBA", self.canvas.get_width_height(),
                                   self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")

    def png(self) -> bytes:
        """The figure now, as PNG bytes."""
        buf = io.BytesIO()
        self.rgb().save(buf, format="png", compress_level=1)
        return buf.getvalue()

    def jpeg(self) -> bytes:
        """The figure now, as JPEG bytes: for a figure that is mostly a photo (a noisy canvas),
        whose PNG is several times bigger. Quality 95 without colour subsampling keeps its
        lines and labels sharp (``photo_jpeg`` is for a photo alone)."""
        buf = io.BytesIO()
        self.rgb().save(buf, format="JPEG", quality=95, subsampling=0)
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
