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


def figure_png(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (no pyplot state left behind)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


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


class Explorer:
    """An explorer shows ``self.box`` (its controls and outputs) when it is a cell's result."""

    box: widgets.Widget

    def _ipython_display_(self):
        from IPython.display import display

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
