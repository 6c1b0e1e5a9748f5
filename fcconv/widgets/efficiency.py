"""Notebook 06's explorer: at each image size, windows, MACs and measured time, both ways.

``cost_at`` is the plain function; ``EfficiencyExplorer`` wires an image-size slider to it (the
counts, at once) and a button that times both ways at that size (seconds on a big image, so only
when asked, with a busy sign; each size is timed once).
"""

from __future__ import annotations

import statistics
import time

import ipywidgets as widgets
import torch

from ..course.detect import one_thread
from ..course.timing import paired_median_ms
from ..formulas import score_map_side
from ..shapes import human_macs, receptive_field, trace
from ..torch_ops import sliding_windows
from .base import Explorer, never_raise, show_html


@torch.no_grad()
def cost_at(model, fcn, window: int, channels: int, size: int, measure: bool = True) -> dict:
    """Windows, MACs (from trace) and, if ``measure``, median ms for crops and one dense pass.

    image (1, channels, size, size); windows = ((size - window) // jump + 1)^2. Both ways are
    timed on one thread, in alternation. At one window both do the same work, so nothing is
    timed (a ratio there would be noise).
    """
    if size < window:
        raise ValueError(f"image {size}x{size} is smaller than the {window}x{window} window")
    jump = receptive_field(fcn, (channels, size, size)).jump
    side = score_map_side(size, window, jump)
    windows = side * side
    r = {"size": size, "jump": jump, "windows": windows,
         "dense_macs": trace(fcn, (channels, size, size)).total_macs,
         "crops_macs": windows * trace(model, (channels, window, window)).total_macs}
    if measure and windows > 1:
        dtype = next(model.parameters()).dtype
        image = torch.randn(1, channels, size, size, dtype=dtype)
        # One thread: on a machine whose cores are busy with other programs, threads that wait
        # for each other at every layer made small dense passes up to 100x slower than the work.
        with one_thread():
            r["dense_ms"], r["crops_ms"] = paired_median_ms(
                lambda: fcn(image), lambda: sliding_windows(model, image, window, jump, 256))
    return r


def minor_page_faults() -> int | None:
    """Minor page faults of this process so far: each is the operating system handing over one
    fresh page of memory (4 KB on most systems) at its first write. None where the OS does not
    count them."""
    try:
        import resource
    except ImportError:  # Windows has no getrusage
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@torch.no_grad()
def layer_costs(runs: dict, repeats: int = 3) -> dict[str, list[dict]]:
    """Every top-level layer timed inside real forward passes, one thread, for several runs.

    runs: label -> (model, x (N, C, H, W)). The runs take turns, pass by pass (a warm-up round,
    then ``repeats`` rounds), so a burst of load on a shared machine hits every run alike.
    Returns label -> one dict per layer: ``name``, ``kind``, ``ms`` and ``faults`` (minor page
    faults; None where the OS does not count them) of that layer in one pass, medians over the
    rounds; ``macs`` (from trace, times N; 0 for ReLU, pooling, flatten) and ``numbers`` (how
    many numbers the layer writes), for the whole batch.
    """
    seen = {label: {} for label in runs}   # label -> layer name -> [(ms, faults, numbers)]
    now = {"label": None}                  # the run whose pass is going on (a model may be in two)
    start = {}

    def before(name):
        return lambda *_: start.__setitem__(name, (time.perf_counter(), minor_page_faults()))

    def after(name):
        def hook(_module, _inputs, out):
            t1, f1 = time.perf_counter(), minor_page_faults()
            t0, f0 = start[name]
            seen[now["label"]].setdefault(name, []).append(
                (1e3 * (t1 - t0), None if f0 is None else f1 - f0, out.numel()))
        return hook

    models = {id(m): m for m, _ in runs.values()}
    handles = [h for m in models.values() for name, layer in m.named_children()
               for h in (layer.register_forward_pre_hook(before(name)),
                         layer.register_forward_hook(after(name)))]
    try:
        with one_thread():
            for _ in range(repeats + 1):
                for label, (model, x) in runs.items():
                    now["label"] = label
                    model(x)
    finally:
        for h in handles:
            h.remove()
    return {label: _layer_rows(model, x, seen[label]) for label, (model, x) in runs.items()}


def _layer_rows(model, x, seen: dict) -> list[dict]:
    """``layer_costs``'s rows of one run from what its hooks saw (the first round: warm-up)."""
    macs = {row.name: row.macs * x.shape[0] for row in trace(model, tuple(x.shape[1:]))}
    rows = []
    for name, layer in model.named_children():
        kept = seen[name][1:]
        faults = [f for _, f, _ in kept]
        rows.append({"name": name, "kind": type(layer).__name__, "macs": macs.get(name, 0),
                     "ms": statistics.median(t for t, _, _ in kept), "numbers": kept[0][2],
                     "faults": None if None in faults else statistics.median(faults)})
    return rows


def layer_costs_html(runs: dict[str, list[dict]]) -> str:
    """``layer_costs`` of several runs (by label) side by side, matched by layer name: per layer,
    nanoseconds per MAC (convs, linear) or per number written (ReLU, pooling), and page faults
    per pass. A layer one run lacks (the Flatten of a convolutionalized net) shows a dash."""
    names = list(dict.fromkeys(row["name"] for rows in runs.values() for row in rows))
    by_name = {label: {row["name"]: row for row in rows} for label, rows in runs.items()}
    head = "".join(f"<th>{label}</th>" for label in runs)
    body = []
    for name in sorted(names, key=lambda n: (int(n) if n.isdigit() else 0, n)):
        any_row = next(rows[name] for rows in by_name.values() if name in rows)
        cells = []
        for rows in by_name.values():
            row = rows.get(name)
            if row is None:
                cells.append("<td>&mdash;</td>")
                continue
            ns = 1e6 * row["ms"] / max(row["macs"] or row["numbers"], 1)
            faults = "" if row["faults"] is None else f"; {row['faults']:,.0f} faults"
            cells.append(f"<td>{ns:.3f}{faults}</td>")
        unit = "MAC" if any_row["macs"] else "number"
        kinds = "/".join(dict.fromkeys(rows[name]["kind"] for rows in by_name.values()
                                       if name in rows))
        body.append(f"<tr><td>{name} {kinds}</td><td>ns per {unit}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>layer</th><th>unit</th>{head}</tr>{''.join(body)}</table>"


def cost_html(r: dict) -> str:
    rows = [("windows scored", f"{r['windows']:,}", "1 image"),
            ("MACs", human_macs(r["crops_macs"]), human_macs(r["dense_macs"]))]
    if "dense_ms" in r:
        rows.append(("measured time (median, one thread)", f"{r['crops_ms']:.1f} ms",
                     f"{r['dense_ms']:.1f} ms"))
    body = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    if r["windows"] == 1:
        verdict = ("one window: the dense pass is the crop, the same MACs and the same work; "
                   "nothing to share, so no ratio")
    else:
        verdict = f"dense: {r['crops_macs'] / r['dense_macs']:.1f}x fewer MACs"
        if "dense_ms" in r:
            verdict += f", {r['crops_ms'] / r['dense_ms']:.1f}x faster on this machine"
    return (f"<table><tr><th>{r['size']}x{r['size']}</th><th>crops</th><th>dense pass</th></tr>"
            f"{body}</table><p><b>{verdict}</b></p>")


class EfficiencyExplorer(Explorer):
    """An image-size slider: windows and MACs for crops and for one dense pass, at once; the
    "time both ways" button measures both at that size on this machine."""

    IDLE = "time both ways"
    SIGN_S = 0.15  # seconds the busy sign has to be drawn before the timing starts

    def __init__(self, model, fcn, window: int, channels: int, max_size: int, step: int = 8):
        self.model, self.fcn, self.window, self.channels = model, fcn, window, channels
        self.size = widgets.IntSlider(value=window, min=window, max=max_size, step=step,
                                      description="image size", continuous_update=False)
        self.time_it = widgets.Button(description=self.IDLE, icon="clock-o",
                                      tooltip="run crops and the dense pass at this size, "
                                              "several times each, and show the median times")
        self.out = widgets.Output()
        self._measured: dict[int, dict] = {}  # size -> cost_at with times: each size timed once
        self.size.observe(lambda _: self.update(), names="value")
        self.time_it.on_click(lambda _: self.measure())
        self.update()
        self.box = widgets.VBox([widgets.HBox([self.size, self.time_it]), self.out])

    def counts(self, size: int) -> dict:
        """``cost_at`` at ``size``: measured if it was timed, else the counts alone (instant)."""
        return self._measured.get(size) or cost_at(self.model, self.fcn, self.window,
                                                   self.channels, size, measure=False)

    @never_raise()
    def update(self) -> None:
        r = self.counts(self.size.value)
        can_time = r["windows"] > 1 and "dense_ms" not in r
        self.time_it.disabled = not can_time
        hint = ("<p>Press <b>time both ways</b> to measure both on this machine.</p>"
                if can_time else "")
        show_html(self.out, cost_html(r) + hint)

    @never_raise()
    def measure(self) -> None:
        size = self.size.value
        if size in self._measured:
            return self.update()
        counts = self.counts(size)
        self.time_it.disabled, self.time_it.description, self.time_it.icon = \
            True, "timing...", "hourglass-half"
        show_html(self.out, cost_html(counts) + "<p><i>&#8987; timing both ways on this "
                                                "machine...</i></p>")
        # The browser draws the sign on the same cores the timing is about to fill: give it a
        # moment first (on 2 cores the sign took 130 ms to appear, and 96 ms on a quieter run).
        time.sleep(self.SIGN_S)
        try:
            self._measured[size] = cost_at(self.model, self.fcn, self.window, self.channels, size)
        finally:
            self.time_it.description, self.time_it.icon = self.IDLE, "clock-o"
        if self.size.value == size:
            self.update()
