"""Grade exercise notebooks: run each in a fresh kernel, one cell at a time with a time limit,
and read the verdict lines that ``fcconv.checks`` prints.

    python -m fcconv grade exercises/01_fc_is_a_convolution.ipynb [...] [--timeout 60]

Prints a score per exercise and a total; exits 0 only when every exercise is correct. A cell
that runs past the limit (an infinite loop), a syntax error or a deleted check cell is reported
as such; the grader never hangs on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .checks import MARK

_LINE = re.compile(rf"{re.escape(MARK)} (\S+) (correct|wrong|not attempted) — (.*)")


@dataclass
class Report:
    path: Path
    results: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (status, message)
    problems: list[str] = field(default_factory=list)

    @property
    def score(self) -> int:
        return sum(status == "correct" for status, _ in self.results.values())

    @property
    def passed(self) -> bool:
        return bool(self.results) and self.score == len(self.results)


def _expected(nb) -> list[str]:
    listed = nb.metadata.get("fcconv", {}).get("exercises")
    if listed:
        return list(listed)
    return [c.metadata["fcconv"]["exercise"] for c in nb.cells
            if c.metadata.get("fcconv", {}).get("role") == "check"]


def _error_text(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}".strip()
    return None


def grade_notebook(path: str | Path, cell_timeout: int = 60) -> Report:
    """Run one notebook in a fresh kernel; collect every exercise's verdict and every problem."""
    from nbclient import NotebookClient

    path = Path(path)
    report = Report(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # not a notebook at all
        report.problems.append(f"cannot read the notebook: {err}")
        return report
    expected = _expected(nb)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, record_timing=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    check_cells: dict[str, int] = {}
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            ex = cell.metadata.get("fcconv", {})
            if ex.get("role") == "check":
                check_cells[ex["exercise"]] = index
            client.execute_cell(cell, index)
            error = _error_text(cell)
            if error and error.startswith("KeyboardInterrupt"):
                report.problems.append(f"cell {index + 1} ran longer than {cell_timeout} s and was "
                                       "stopped: an infinite loop?")
            elif error:
                report.problems.append(f"cell {index + 1} failed: {error}")
            for out in cell.get("outputs", []):
                for line in out.get("text", "").splitlines():
                    m = _LINE.match(line)
                    if m:
                        report.results[m.group(1)] = (m.group(2), m.group(3))
    for ex in expected:
        if ex in report.results:
            continue
        if ex not in check_cells:
            report.results[ex] = ("missing", "its check cell was deleted: restore it "
                                             "(copy it from a fresh exercises/ notebook)")
        else:
            cell = nb.cells[check_cells[ex]]
            report.results[ex] = ("error", f"the check cell did not finish: "
                                           f"{_error_text(cell) or 'no verdict printed'}")
    return report


def format_report(r: Report) -> str:
    lines = [f"{r.path}"]
    for ex, (status, message) in sorted(r.results.items()):
        lines.append(f"  {ex}  {1 if status == 'correct' else 0}/1  {status}: {message}")
    for p in r.problems:
        lines.append(f"  ! {p}")
    total = len(r.results)
    lines.append(f"  score {r.score}/{total} ({100 * r.score / total if total else 0:.0f}%)")
    return "\n".join(lines)


def main(paths: list[str], cell_timeout: int = 60) -> int:
    """Grade every notebook; print reports and the total. 0 only when all pass."""
    reports = [grade_notebook(p, cell_timeout) for p in paths]
    for r in reports:
        print(format_report(r))
    score = sum(r.score for r in reports)
    total = sum(len(r.results) for r in reports)
    print(f"total {score}/{total} ({100 * score / total if total else 0:.0f}%)")
    return 0 if reports and all(r.passed for r in reports) else 1
