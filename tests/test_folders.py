"""The course folder is found from where one works (not from where fcconv is installed), and the
cache goes where the user says."""

import pytest
from conftest import ROOT

from fcconv.course import folders, grade
from fcconv.course.folders import cache_dir, course_dir


def test_course_dir_from_the_folder_a_notebook_runs_in(monkeypatch):
    monkeypatch.delenv("FCCONV_COURSE_DIR", raising=False)
    for here in (ROOT, ROOT / "notebooks", ROOT / "exercises"):
        monkeypatch.chdir(here)
        assert course_dir() == ROOT


def test_course_dir_from_a_copy_of_notebooks_elsewhere(monkeypatch, tmp_path):
    # what a JupyterLab rooted at a copy of notebooks/ sees: the editable install leads home
    monkeypatch.delenv("FCCONV_COURSE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    if folders.installed_from() != ROOT:
        pytest.skip(f"fcconv is not installed editable from {ROOT} here")
    assert course_dir() == ROOT


def test_course_dir_names_what_it_looked_for(monkeypatch, tmp_path):
    monkeypatch.delenv("FCCONV_COURSE_DIR", raising=False)
    monkeypatch.setattr(folders, "installed_from", lambda: None)  # an ordinary install
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="benchmarks/RESULTS.md.*FCCONV_COURSE_DIR"):
        course_dir()
    monkeypatch.setenv("FCCONV_COURSE_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="is not the course folder"):
        course_dir()
    monkeypatch.setenv("FCCONV_COURSE_DIR", str(ROOT))
    assert course_dir() == ROOT


def test_grader_without_a_course_folder_says_so(monkeypatch, tmp_path):
    monkeypatch.delenv("FCCONV_COURSE_DIR", raising=False)
    monkeypatch.setattr(folders, "installed_from", lambda: None)
    monkeypatch.chdir(tmp_path)
    limits = dict(cell_timeout=60, memory_gb=4.0, output_mb=10.0, deadline=600)
    lost = grade.prepare(ROOT / "exercises" / "02_shapes_exercises.ipynb", limits, None, None)
    assert lost.job is None and not lost.report.results
    assert any("FCCONV_COURSE_DIR" in p for p in lost.report.problems), lost.report.problems
    monkeypatch.setenv("FCCONV_COURSE_DIR", str(ROOT))
    found = grade.prepare(ROOT / "exercises" / "02_shapes_exercises.ipynb", limits, None, grade.Watch())
    assert found.job is not None and set(found.report.results) == {"02.1", "02.2", "02.3"}


def test_cache_dir_follows_the_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("FCCONV_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine" and cache_dir().is_dir()
    monkeypatch.delenv("FCCONV_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "fcconv"
