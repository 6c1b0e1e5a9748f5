"""Notebook housekeeping: notebooks are committed without outputs or execution counts.

    python -m tools.nbtools strip notebooks/*.ipynb
"""

from __future__ import annotations

import sys

import nbformat


def strip(path: str) -> bool:
    """Remove outputs and execution counts in place; True when the file changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
            cell.outputs, cell.execution_count = [], None
            changed = True
        if cell.metadata.pop("execution", None) is not None:
            changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "strip":
        print("usage: python -m tools.nbtools strip NOTEBOOK...", file=sys.stderr)
        return 2
    for path in argv[1:]:
        if strip(path):
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
