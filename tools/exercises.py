"""Generate exercises/ from solutions/: the single source of the self-check exercises.

Every answer cell of a solution notebook holds its answer between nbgrader's markers
``### BEGIN SOLUTION`` and ``### END SOLUTION``. The exercise notebook gets the same cells with
that part replaced by a stub that runs without error: ``raise NotImplementedError()`` inside a
function (the check reports "not attempted"), or the cell's ``fcconv.stub`` line at top level.

Answer and check cells carry nbgrader's own metadata too (``nbgrader_metadata``), so that
``nbgrader generate_assignment`` takes solutions/ as its source as it is; a check cell's assertion
fails with the hint as its message, which is what ``nbgrader autograde`` reports.

    python -m tools.exercises           # (re)write exercises/
    python -m tools.exercises --check   # exit 1 when exercises/ is out of date
    python -m tools.exercises --mark    # give solutions/ nbgrader's metadata (a new exercise)
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

from fcconv.course.folders import course_dir

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_REGION = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*$",
                     re.S | re.M)


def stub_source(source: str, stub: str | None = None) -> str:
    """Replace every solution region of a cell's source with a stub (same indentation)."""
    def replace(m: re.Match) -> str:
        indent = m.group(1)
        body = "raise NotImplementedError()" if indent or stub is None else stub
        return f"{indent}# YOUR CODE HERE\n{indent}{body}"

    if BEGIN not in source:
        raise ValueError(f"an answer cell has no {BEGIN!r} marker:\n{source}")
    return _REGION.sub(replace, source)


def exercise_ids(nb) -> list[str]:
    """The exercises a notebook holds, in order, from its check cells."""
    return [c.metadata["fcconv"]["exercise"] for c in nb.cells
            if c.metadata.get("fcconv", {}).get("role") == "check"]


def nbgrader_metadata(exercise: str, role: str) -> dict:
    """nbgrader's cell metadata for an exercise's answer cell (autograded answer) or check cell
    (autograded tests, locked, 1 point)."""
    grade_id = f"ex{exercise.replace('.', '_')}_{role}"
    common = {"grade_id": grade_id, "schema_version": 3, "task": False}
    if role == "answer":
        return {"grade": False, "locked": False, "solution": True, **common}
    return {"grade": True, "locked": True, "points": 1, "solution": False, **common}


def mark(nb) -> bool:
    """Give every answer and check cell its nbgrader metadata; True when something changed."""
    changed = False
    for cell in nb.cells:
        meta = cell.metadata.get("fcconv", {})
        if meta.get("role") in ("answer", "check"):
            want = nbgrader_metadata(meta["exercise"], meta["role"])
            changed |= cell.metadata.get("nbgrader") != want
            cell.metadata["nbgrader"] = want
    return changed


def check_cells_call_their_checks(nb) -> None:
    """Every check cell calls the check declared for its exercise (fcconv/course/checks/nNN.py),
    in the form the grader reads: ValueError, naming the cell, otherwise."""
    from fcconv.course.checks import CHECKS

    for cell in nb.cells:
        meta = cell.metadata.get("fcconv", {})
        if meta.get("role") == "check":
            ex = meta.get("exercise")
            check = CHECKS.get(ex)
            first = cell.source.split("\n", 1)[0]
            if check is None or not re.fullmatch(rf"verdict = checks\.{check.__name__}\(\w+\)", first):
                raise ValueError(f"the check cell of {ex} should start with 'verdict = checks."
                                 f"{check.__name__ if check else 'NAME'}(my_answer)' (declare the "
                                 f"check with @check({ex!r}) in fcconv/course/checks/): {first!r}")


def make_exercise(solution) -> nbformat.NotebookNode:
    """The student version of a solution notebook (a new notebook; the input is untouched)."""
    check_cells_call_their_checks(solution)
    nb = copy.deepcopy(solution)
    for cell in nb.cells:
        meta = cell.metadata.get("fcconv", {})
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if meta.get("role") == "answer":
                cell.source = stub_source(cell.source, meta.get("stub"))
    # The grader compares what it finds with this list: a deleted check cell is then reported.
    nb.metadata["fcconv"] = {"exercises": exercise_ids(nb), "generated_from":
                             "solutions/ by python -m tools.exercises; do not edit by hand"}
    return nb


def generate(root: Path | None = None) -> dict[Path, str]:
    """Every exercises/ notebook's text, keyed by path (``root``: the course folder)."""
    root = root or course_dir()
    out = {}
    for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        nb = make_exercise(nbformat.read(path, as_version=4))
        out[root / "exercises" / path.name] = nbformat.writes(nb) + "\n"
    return out


def main(argv: list[str]) -> int:
    """``python -m tools.exercises [--check] [--mark]``: write exercises/ from solutions/."""
    p = argparse.ArgumentParser(prog="python -m tools.exercises",
                                description="Generate exercises/ from solutions/ (never edit it).")
    p.add_argument("--check", action="store_true", help="only say whether exercises/ is current")
    p.add_argument("--mark", action="store_true", help="first add nbgrader metadata to solutions/")
    args = p.parse_args(argv)
    root = course_dir()
    if args.mark:
        for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            if mark(nb):
                nbformat.write(nb, path)
                print(f"marked {path.relative_to(root)} for nbgrader")
    files = generate(root)
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"out of date: {p.relative_to(root)} (run python -m tools.exercises)")
        return 1 if stale else 0
    for p in stale:
        p.parent.mkdir(exist_ok=True)
        p.write_text(files[p])
        print(f"wrote {p.relative_to(root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
