"""Python's cycle collector and a course kernel's big imports: an IPython extension that every
kernel the course starts loads (``--ext=fcconv.course.import_gc``, ``fcconv.course.kernels``).

Importing PyTorch makes about 250,000 Python objects, and the first model run on the meta device
imports sympy and torch._dynamo, about 100,000 more (fcconv's own walk needs neither). None of
them is ever garbage, yet the cycle collector walks all of them at each of its full collections:
several while they import, then every few cells, for the rest of the kernel's life. Measured on
the 2-core Xeon (busy), in the kernels of notebooks 01, 02 and 09: 0.6-0.85 s in the collector
each; with this extension about 0.4 s.

So the collector pauses while these modules import (``PAUSED``), and the objects alive when
``torch`` or ``matplotlib.pyplot`` has just imported are frozen (``gc.freeze``): later
collections skip them. One full collection comes first, so what is garbage by then is freed,
not frozen. What freezing costs: an object alive at that moment that later becomes garbage
*inside a reference cycle* is never freed (anything else is freed as usual, by its reference
count). Those two modules are imported by a cell's import statements, where little else is
alive. sympy and torch._dynamo are imported in the middle of a call (PyTorch's first meta-device
op, inside a model's forward), where half a forward pass is alive: they only pause the
collector, they freeze nothing.
"""

from __future__ import annotations

import gc
import importlib.abc
import sys

FREEZE_AFTER = ("torch", "matplotlib.pyplot")
PAUSED = (*FREEZE_AFTER, "torch.fx.experimental.symbolic_shapes", "torch._dynamo")


class PausedImports(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a module in PAUSED it takes the spec the other finders give and
    runs the module's code with the collector paused (then freezes, for FREEZE_AFTER)."""

    def find_spec(self, name, path, target=None):
        if name not in PAUSED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader.exec_module = _paused(spec.loader.exec_module, name in FREEZE_AFTER)
        return spec


def _paused(exec_module, freeze: bool):
    def run(module):
        was_on = gc.isenabled()
        gc.disable()
        try:
            exec_module(module)
        finally:
            if was_on:
                gc.enable()
        if freeze:
            gc.collect()   # what is garbage already is freed, not frozen
            gc.freeze()
    return run


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, PausedImports) for f in sys.meta_path):
        sys.meta_path.insert(0, PausedImports())


def load_ipython_extension(ipython) -> None:
    """IPython calls this when a kernel loads the extension."""
    install()
