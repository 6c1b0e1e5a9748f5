"""The checks behind notebooks/00_setup_check: versions, and the JupyterLab widget manager.

Each check returns a ``Check`` with a verdict and, when it fails, what to do in plain words.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from dataclasses import dataclass

FIX = "From the course folder run `make lab` again (it reinstalls what is missing), " \
      "or `pip install -e .` inside the environment you use."

# package -> the lowest version the course is tested with
MINIMUM = {"torch": "2.2", "numpy": "1.24", "matplotlib": "3.7", "ipywidgets": "8.0"}


@dataclass
class Check:
    """One line of the setup report."""

    name: str
    ok: bool
    found: str
    advice: str = ""


def version_tuple(text: str) -> tuple[int, ...]:
    """"2.13.0+cpu" -> (2, 13, 0); "1.26.0rc1" -> (1, 26, 0): the release numbers, compared as ints."""
    parts = []
    for piece in text.split("+")[0].split("."):
        digits = re.match(r"\d*", piece).group()  # '0rc1' -> '0'
        if not digits:
            break
        parts.append(int(digits))
        if digits != piece:
            break
    return tuple(parts)


def check_python(version: tuple[int, int] | None = None) -> Check:
    """Python 3.10 or newer."""
    v = version or sys.version_info[:2]
    ok = tuple(v) >= (3, 10)
    return Check("python", ok, ".".join(map(str, v)),
                 "" if ok else "This course needs Python 3.10 or newer: install it (python.org or "
                               "conda), then run `make lab` with it (`make lab PYTHON=python3.11`).")


def check_package(name: str, minimum: str | None = None) -> Check:
    """``name`` imports and is at least ``minimum``."""
    minimum = minimum or MINIMUM[name]
    try:
        module = importlib.import_module(name)
    except ImportError:
        return Check(name, False, "not installed", f"{name} is not installed. {FIX}")
    found = getattr(module, "__version__", "unknown")
    ok = version_tuple(found) >= version_tuple(minimum)
    return Check(name, ok, found,
                 "" if ok else f"{name} {found} is older than the {minimum} the course needs. {FIX}")


def widget_manager_dirs() -> list[str]:
    """Folders where JupyterLab looks for prebuilt extensions (ipywidgets' manager lives there)."""
    from jupyter_core.paths import jupyter_path

    return [os.path.join(p, "@jupyter-widgets", "jupyterlab-manager")
            for p in jupyter_path("labextensions")]


def check_widget_manager() -> Check:
    """The JupyterLab widget manager (package jupyterlab_widgets) is installed as an extension."""
    found = [d for d in widget_manager_dirs() if os.path.isdir(d)]
    if found:
        return Check("jupyterlab widget manager", True, found[0])
    return Check("jupyterlab widget manager", False, "not found",
                 "Sliders will show as text like 'IntSlider(value=3)'. Install the manager with "
                 "`pip install 'ipywidgets>=8'` (it brings jupyterlab_widgets), then restart "
                 "JupyterLab and reload the page.")


def run_checks() -> list[Check]:
    """Every check of the setup notebook, in the order it shows them."""
    return [check_python(), *(check_package(n) for n in MINIMUM), check_widget_manager()]


def _badge(ok: bool) -> str:
    # Words in colour, not emoji: emoji fonts are missing on some offline machines.
    colour, word = ("#009E73", "OK") if ok else ("#D55E00", "FIX")
    return f"<b style='color:{colour}'>{word}</b>"


def report_html(checks: list[Check]) -> str:
    """A small table: a tick or a cross per check, and what to do for each cross."""
    from html import escape

    rows = "".join(
        f"<tr><td>{_badge(c.ok)}</td><td>{escape(c.name)}</td>"
        f"<td><code>{escape(c.found)}</code></td><td>{escape(c.advice)}</td></tr>" for c in checks)
    verdict = ("All checks passed: you are ready for the course." if all(c.ok for c in checks)
               else "Some checks failed: follow the advice in the last column, then run this "
                    "notebook again.")
    return (f"<table><tr><th></th><th>check</th><th>found</th><th>what to do</th></tr>{rows}"
            f"</table><p><b>{verdict}</b></p>")
