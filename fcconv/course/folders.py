"""Where the course's files are: the course folder (notebooks/, exercises/, benchmarks/) and the
cache. Found at run time from where one works, never by walking up from this file, so an installed
``fcconv`` works on any checkout or copy of the course.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

# What marks the course folder: the walkthroughs and the measured results they quote.
MARKERS = ("notebooks", "benchmarks/RESULTS.md")


def is_course_dir(folder: Path) -> bool:
    """Does ``folder`` hold the walkthroughs and benchmarks/RESULTS.md?"""
    return all((folder / m).exists() for m in MARKERS)


def installed_from() -> Path | None:
    """The folder ``fcconv`` was installed from in editable mode (``make venv`` runs
    ``pip install -e .``), as pip records it (PEP 610 ``direct_url.json``); None otherwise."""
    # every copy of the metadata on sys.path: a source tree's fcconv.egg-info has no record
    for dist in metadata.distributions(name="fcconv"):
        try:
            record = json.loads(dist.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        url = urlparse(record.get("url", ""))
        if url.scheme == "file" and record.get("dir_info", {}).get("editable"):
            return Path(unquote(url.path))
    return None


def course_dir() -> Path:
    """The course folder: ``$FCCONV_COURSE_DIR``, else the nearest folder at or above the current
    directory holding notebooks/ and benchmarks/RESULTS.md (a notebook runs in notebooks/, one
    level down), else the course folder ``fcconv`` was installed from in editable mode (a copy of
    notebooks/ opened elsewhere, e.g. a JupyterHub home). Raises FileNotFoundError naming what it
    looked for."""
    looked_for = " and ".join(f"{m}/" if "." not in m else m for m in MARKERS)
    if os.environ.get("FCCONV_COURSE_DIR"):
        folder = Path(os.environ["FCCONV_COURSE_DIR"]).expanduser().resolve()
        if not is_course_dir(folder):
            raise FileNotFoundError(f"FCCONV_COURSE_DIR={folder} is not the course folder: it "
                                    f"should hold {looked_for}")
        return folder
    here = Path.cwd().resolve()
    for folder in (here, *here.parents, installed_from()):
        if folder is not None and is_course_dir(folder):
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
