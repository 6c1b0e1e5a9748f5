"""Write one benchmark's table into benchmarks/RESULTS.md, between its own markers; and the
benchmarks' timer (median_ms).

Each script owns a section, so re-running one benchmark leaves the others' numbers alone.
"""

from __future__ import annotations

import os
import pathlib
import platform
import subprocess

RESULTS = pathlib.Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEvery table names the machine and the command that produced it.\n"


def median_ms(fn, repeats: int = 7) -> float:
    """Median wall time of ``fn()`` in milliseconds, after one warm-up call: the course's own
    timer (``fcconv.course.timing``), with more repeats."""
    from fcconv.course.timing import median_ms as course_median_ms

    return course_median_ms(fn, repeats)


def machine() -> str:
    """One line naming this machine: CPU model, cores, Python, torch, numpy."""
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu}, {cores} cores, Python {platform.python_version()}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), numpy {numpy.__version__}")


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=RESULTS.parent).stdout.strip()
    except OSError:
        return "unknown"


def write_section(name: str, body: str, path: pathlib.Path = RESULTS) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md (or of the Markdown file ``path``,
    e.g. a guide that quotes a table) with ``body``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else HEADER
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
