"""Slide metadata for the walkthroughs (jupyterlab-slideshow in JupyterLab, or Voila's reveal
template).

Every cell gets a ``slideshow.slide_type``: a heading starts a slide, explanations and results
appear as fragments, an explorer gets a slide of its own, import-only cells are skipped.
Existing choices are kept, so an instructor's hand edits survive a re-run; only an explorer on a
subslide (this module's old rule) becomes a slide: the deck's left and right arrows step over
subslides, so one of the two ways skipped the explorer or its heading.

    python -m fcconv.slides notebooks/0*.ipynb [--reset]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

SLIDE_TYPES = ("slide", "subslide", "fragment", "skip", "notes", "-")
_IMPORTS_ONLY = re.compile(r"^\s*((from\s+\S+\s+)?import\s+[^\n]+|#[^\n]*)?\s*$")


def lecture_slide_type(cell) -> str:
    """The slide type the rules give one cell."""
    src = cell.source.strip()
    if cell.cell_type == "markdown":
        return "slide" if src.startswith(("# ", "## ")) else "fragment"
    if all(_IMPORTS_ONLY.match(line) for line in src.splitlines()):
        return "skip"
    return "slide" if is_explorer(cell) else "fragment"


def is_explorer(cell) -> bool:
    """Does this cell show one of the course's explorers?"""
    return cell.cell_type == "code" and "Explorer(" in cell.source


# RISE's settings, read from the notebook: the "white" theme ships its fonts (the default one
# fetches Google Fonts, which a lecture hall without network cannot reach); long slides scroll.
RISE = {"theme": "white", "scroll": True, "transition": "none"}


def annotate(nb, reset: bool = False) -> int:
    """Give every cell a slide type (and the notebook RISE's settings); returns cells changed."""
    if reset or "rise" not in nb.metadata:
        nb.metadata["rise"] = dict(RISE)
    changed = 0
    for cell in nb.cells:
        show = cell.metadata.setdefault("slideshow", {})
        outdated = is_explorer(cell) and show.get("slide_type") == "subslide"
        if reset or outdated or show.get("slide_type") not in SLIDE_TYPES:
            new = lecture_slide_type(cell)
            changed += show.get("slide_type") != new
            show["slide_type"] = new
    return changed


def main(argv: list[str]) -> int:
    """``python -m fcconv.slides NOTEBOOK... [--reset]``: write slide metadata into notebooks."""
    p = argparse.ArgumentParser(prog="python -m fcconv.slides",
                                description="Give walkthroughs slide metadata (jupyterlab-slideshow).")
    p.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK")
    p.add_argument("--reset", action="store_true", help="recompute every cell's slide type")
    args = p.parse_args(argv)
    missing = [str(n) for n in args.notebooks if not n.is_file()]
    if missing:
        p.error(f"no such notebook: {', '.join(missing)}")
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        had_rise = "rise" in nb.metadata
        if annotate(nb, args.reset) or not had_rise:
            nbformat.write(nb, path)
            print(f"slide metadata written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
