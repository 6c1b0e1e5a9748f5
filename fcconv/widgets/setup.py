"""The setup notebook's live widget: a slider that moves a 3-tap kernel along a 1-D signal.

``draw(position)`` is the plain function; ``SetupExplorer`` wires an IntSlider to it.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from .base import Explorer, figure_png, never_raise, show_png

SIGNAL = np.sin(np.linspace(0, 3 * np.pi, 16)).round(2)
KERNEL = np.array([0.25, 0.5, 0.25])


def smoothed(signal: np.ndarray = SIGNAL, kernel: np.ndarray = KERNEL) -> np.ndarray:
    """Valid 1-D correlation: (L,) , (k,) -> (L - k + 1,)."""
    return np.correlate(signal, kernel, mode="valid")


def draw(position: int) -> bytes:
    """PNG of the signal, the kernel's window at ``position`` and the outputs computed so far."""
    import matplotlib.pyplot as plt

    out = smoothed()
    if not 0 <= position < len(out):
        raise ValueError(f"position must be between 0 and {len(out) - 1}; got {position}")
    fig, ax = plt.subplots(figsize=(6, 2.4))
    ax.plot(SIGNAL, "o-", color="#0072B2", label="input signal")
    ax.axvspan(position - 0.4, position + len(KERNEL) - 0.6, color="#E69F00", alpha=0.3,
               label=f"kernel window at {position}")
    centres = np.arange(len(out)) + len(KERNEL) // 2
    ax.plot(centres[: position + 1], out[: position + 1], "s-", color="#D55E00",
            label="output so far")
    ax.set_xlabel("position")
    ax.set_ylabel("value")
    ax.set_ylim(-1.3, 1.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7, ncol=3, frameon=False)
    return figure_png(fig)


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
