"""Read the measured tables in benchmarks/RESULTS.md (so notebooks quote them, not retype them)."""

from __future__ import annotations

import pathlib

from .folders import course_dir


def read_table(section: str, path: pathlib.Path | None = None) -> tuple[str, list[dict]]:
    """The 'Machine: ...' line and the rows (dicts by column name) of one section's table
    (``path``: benchmarks/RESULTS.md of the course folder unless given)."""
    path = path or course_dir() / "benchmarks" / "RESULTS.md"
    text = path.read_text()
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    if start not in text:
        raise ValueError(f"no section {section!r} in {path}; run its benchmark with --write")
    block = text.split(start, 1)[1].split(end, 1)[0]
    machine = next((line.split("Machine:", 1)[1].split(". Commit")[0].strip()
                    for line in block.splitlines() if line.startswith("Machine:")), "unknown")
    lines = [line for line in block.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(head, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    return machine, rows
