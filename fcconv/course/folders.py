"""Where the course's files are: the course folder (notebooks/, exercises/, benchmarks/) and the
cache. Found at run time, never from where this package is installed, so an installed ``fcconv``
works on any checkout or copy of the course.
"""

from __future__ import annotations

import os
from pathlib import Path

# What marks the course folder: the walkthroughs and the measured results they quote.
MARKERS = ("notebooks", "benchmarks/RESULTS.md")


def is_course_dir(folder: Path) -> bool:
    """Does ``folder`` hold the walkthroughs and benchmarks/RESULTS.md?"""
    return all((folder / m).exists() for m in MARKERS)


def course_dir() -> Path:
    """The course folder: ``$FCCONV_COURSE_DIR``, else the nearest folder at or above the current
    directory holding notebooks/ and benchmarks/RESULTS.md (a notebook runs in notebooks/, one
    level down). Raises FileNotFoundError naming what it looked for."""
    looked_for = " and ".join(f"{m}/" if "." not in m else m for m in MARKERS)
    if os.environ.get("FCCONV_COURSE_DIR"):
        folder = Path(os.environ["FCCONV_COURSE_DIR"]).expanduser().resolve()
        if not is_course_dir(folder):
            raise FileNotFoundError(f"FCCONV_COURSE_DIR={folder} is not the course folder: it "
                                    f"should hold {looked_for}")
        return folder
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if is_course_dir(folder):
            return folder
    raise FileNotFoundError(f"no course folder (one holding {looked_for}) at or above {here}: "
                            "run from inside the course folder, or set FCCONV_COURSE_DIR to it")


def cache_dir() -> Path:
    """Where the course may keep files it can rebuild: ``$FCCONV_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/fcconv``, else ``~/.cache/fcconv``. Created on first use."""
    base = os.environ.get("FCCONV_CACHE_DIR") or \
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fcconv"
    folder = Path(base).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder
