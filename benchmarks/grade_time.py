"""How long `python -m fcconv grade` takes on the course's own notebooks: solutions/ (every answer
right: 25/25 expected) and exercises/ (the stubs: 0 expected), each folder in one run with the
command's defaults (two notebooks at once, each kernel isolated where the system allows it).

    .venv/bin/python benchmarks/grade_time.py [--write]     # goal: each run under 60 s on 2 cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from results import git_rev, machine, write_section

from fcconv.course import grade, sandbox

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 60


def run(folder: str) -> tuple[int, int, float]:
    """(score, out of, wall seconds) of grading every notebook of ``folder``."""
    paths = sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb"))
    t0 = time.perf_counter()
    reports = list(grade.grade_all(paths, jobs=2))
    return sum(r.score for r in reports), sum(len(r.results) for r in reports), time.perf_counter() - t0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help="write the table into RESULTS.md")
    args = p.parse_args(argv)
    isolated = sandbox.isolation(grade.python_paths())[0] is not None
    load = os.getloadavg()[0]
    rows = [(folder, *run(folder)) for folder in ("solutions", "exercises")]
    lines = ["## Grading the course's notebooks (python -m fcconv grade)", "",
             f"Machine: {machine()}; load average {load:.1f} at the start; kernels "
             f"{'isolated (namespaces)' if isolated else 'not isolated'}. Commit {git_rev()}. Command: "
             "`.venv/bin/python benchmarks/grade_time.py --write` (each folder in one run, "
             f"--jobs 2). Goal: each under {GOAL_S} s.", "",
             "| notebooks | score | wall (s) | goal met |", "|---|---|---|---|"]
    lines += [f"| {folder}/ | {score}/{total} | {wall:.1f} | {'yes' if wall < GOAL_S else 'NO'} |"
              for folder, score, total, wall in rows]
    print("\n".join(lines))
    if args.write:
        write_section("grade_time", "\n".join(lines))
    right = rows[0][1] == rows[0][2] and rows[1][1] == 0
    return 0 if right and all(wall < GOAL_S for *_, wall in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
