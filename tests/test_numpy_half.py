"""The NumPy half of the course works without torch: a real virtual environment with NumPy,
matplotlib and ipywidgets but no torch runs tests/numpy_half.py (the library's NumPy modules, the
explorers of notebooks 00, 01 and 07, their exercise checks, and ``import torch`` failing there).

The environment is built once, in the course's cache folder (FCCONV_CACHE_DIR, else
~/.cache/fcconv), under a name that changes with the Python and package versions; later runs reuse it.
"""

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from conftest import ROOT

from fcconv.course.folders import cache_dir

# What the NumPy half needs, at the versions the main environment has (found in pip's cache).
PACKAGES = [f"{name}=={importlib.metadata.version(name)}"
            for name in ("numpy", "matplotlib", "ipywidgets", "jupyter_core")]


def numpy_only_python() -> str:
    """The python of a torch-free venv, built on first use (into a temporary name, then renamed,
    so that an interrupted build is never reused)."""
    key = hashlib.sha256(" ".join([sys.version, *PACKAGES]).encode()).hexdigest()[:12]
    venv = cache_dir() / f"venv-numpy-half-{key}"
    python = venv / "bin" / "python"
    if not python.exists():
        tmp = tempfile.mkdtemp(prefix="venv-building-", dir=cache_dir())
        try:
            subprocess.run([sys.executable, "-m", "venv", tmp], check=True)
            pip = subprocess.run([f"{tmp}/bin/python", "-m", "pip", "install", "--quiet",
                                  "--disable-pip-version-check", *PACKAGES],
                                 capture_output=True, text=True)
            if pip.returncode:  # no index and no cached wheels: offline, say so (CI: a failure)
                msg = f"could not install {' '.join(PACKAGES)} into a torch-free venv: " \
                      f"{pip.stderr.strip().splitlines()[-1:]}"
                if os.environ.get("CI") == "true":
                    pytest.fail(msg)
                pytest.skip(msg)
            os.replace(tmp, venv)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(python)


def test_the_numpy_half_runs_without_torch():
    # PYTHONPATH, not an install: the venv always runs this checkout's fcconv
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    run = subprocess.run([numpy_only_python(), str(ROOT / "tests" / "numpy_half.py")], env=env,
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    for part in ("no_torch_here", "library", "explorers", "setup_report", "exercise_checks"):
        assert f"ok: {part}" in run.stdout
