"""The setup notebook's live widget: a slider that moves a 3-tap kernel along a 1-D signal.

``draw(position)`` is the plain function; ``SetupExplorer`` wires an IntSlider to it.
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import numpy as np

from .base import Explorer, LiveFigure, never_raise, show_png

SIGNAL = np.sin(np.linspace(0, 3 * np.pi, 16)).round(2)
KERNEL = np.array([0.25, 0.5, 0.25])


def smoothed(signal: np.ndarray = SIGNAL, kernel: np.ndarray = KERNEL) -> np.ndarray:
    """Valid 1-D correlation: (L,) , (k,) -> (L - k + 1,)."""
    return np.correlate(signal, kernel, mode="valid")


@functools.cache
def _picture():
    """The figure, drawn once: the signal and axes stay; the window and outputs move."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(6, 2.7))
    ax.plot(SIGNAL, "o-", color="#0072B2", label="input signal")
    window = ax.add_patch(Rectangle((-0.4, -1.3), len(KERNEL) - 0.2, 2.6, color="#E69F00",
                                    alpha=0.3, label="kernel window at 0"))
    done, = ax.plot([], [], "s-", color="#009E73", label="output so far")
    ax.set_xlabel("position")
    ax.set_ylabel("value")
    ax.set_xlim(-0.8, len(SIGNAL) - 0.2)
    ax.set_ylim(-1.3, 1.3)
    # above the axes: inside, it would hide the signal's trough
    legend = ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=8, ncol=3, frameon=False)
    fig.tight_layout()
    live = LiveFigure(fig)
    live.changing(window, done, legend)
    return live, window, done, legend


def draw(position: int) -> bytes:
    """PNG of the signal, the kernel's window at ``position`` and the outputs computed so far."""
    out = smoothed()
    if not 0 <= position < len(out):
        raise ValueError(f"position must be between 0 and {len(out) - 1}; got {position}")
    live, window, done, legend = _picture()
    window.set_x(position - 0.4)
    centres = np.arange(len(out)) + len(KERNEL) // 2
    done.set_data(centres[: position + 1], out[: position + 1])
    legend.get_texts()[1].set_text(f"kernel window at {position}")
    return live.png()


def describe(position: int) -> str:
    """The picture at ``position`` in words (its alt text)."""
    out = smoothed()
    last = position + len(KERNEL) - 1
    return (f"Line plot of a {len(SIGNAL)}-point signal; the {len(KERNEL)}-tap kernel window "
            f"covers input positions {position}-{last}; {position + 1} of {len(out)} smoothed "
            f"outputs drawn so far, the newest {out[position]:+.2f}.")


class SetupExplorer(Explorer):
    """A slider that redraws the figure: if it moves, widgets work in this JupyterLab."""

    def __init__(self):
        self.slider = widgets.IntSlider(value=0, min=0, max=len(smoothed()) - 1,
                                        description="kernel at")
        self.out = widgets.Output()
        self.slider.observe(lambda _: self.update(), names="value")
        self.update()
        self.box = widgets.VBox([self.slider, self.out])

    @never_raise()
    def update(self) -> None:
        show_png(self.out, draw(self.slider.value), describe(self.slider.value))
