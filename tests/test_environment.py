"""environment.yml (conda-forge) and pyproject.toml list the same dependencies."""

import re

import pytest
import yaml
from conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

# conda-forge name -> PyPI name, where they differ
CONDA_TO_PYPI = {"pytorch": "torch"}
CONDA_ONLY = {"python", "pip"}


def split_requirement(req: str) -> tuple[str, str]:
    """'torch>=2.2,<3' -> ('torch', '>=2.2,<3'), names lower-cased with - and _ as one."""
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)", req)
    name = re.sub(r"[-_.]+", "-", m.group(1).lower())
    return name, m.group(2).replace(" ", "")


def pyproject_deps(text: str) -> dict[str, str]:
    project = tomllib.loads(text)["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return dict(split_requirement(r) for r in reqs if not r.startswith("fcconv"))


def conda_deps(text: str) -> dict[str, str]:
    deps = {}
    for item in yaml.safe_load(text)["dependencies"]:
        if isinstance(item, str):
            name, spec = split_requirement(item)
            if name not in CONDA_ONLY:
                deps[CONDA_TO_PYPI.get(name, name)] = spec
    return deps


def differences(pyproject_text: str, env_text: str) -> list[str]:
    py, conda = pyproject_deps(pyproject_text), conda_deps(env_text)
    out = [f"{n}: only in pyproject.toml" for n in sorted(py.keys() - conda.keys())]
    out += [f"{n}: only in environment.yml" for n in sorted(conda.keys() - py.keys())]
    out += [f"{n}: pyproject says {py[n]!r}, environment.yml says {conda[n]!r}"
            for n in sorted(py.keys() & conda.keys()) if py[n] != conda[n]]
    return out


def test_environment_yml_matches_pyproject():
    diffs = differences((ROOT / "pyproject.toml").read_text(), (ROOT / "environment.yml").read_text())
    assert not diffs, "environment.yml and pyproject.toml disagree:\n" + "\n".join(diffs)


def test_environment_yml_is_conda_forge_and_names_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    assert any(str(d).startswith("python>=3.10") for d in env["dependencies"])


def test_the_comparison_catches_a_drift():
    pyproject = '[project]\ndependencies = ["torch>=2.2,<3", "numpy>=1.24"]\n'
    env = "dependencies:\n  - python>=3.10\n  - pytorch>=2.1\n  - tqdm\n"
    assert differences(pyproject, env) == [
        "numpy: only in pyproject.toml", "tqdm: only in environment.yml",
        "torch: pyproject says '>=2.2,<3', environment.yml says '>=2.1'"]


def test_make_pins_torch_through_constraints():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
