"""nbgrader as it is (no manual step): solutions/ is a valid nbgrader source. generate_assignment
releases exactly our exercises/, and autograde gives the solutions full marks, the stubs zero
("not attempted" in the feedback) and a wrong answer partial marks with its hint in the feedback.
One course folder, one generate, one autograde of two notebooks for three students."""

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

pytest.importorskip("nbgrader")
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
GRADED = ["02_shapes_exercises", "08_find_the_digits_exercises"]
WRONG = {  # notebook: (the right line, a wrong one, the hint the feedback must show)
    "02_shapes_exercises": ("return (W - F + 2 * P) // S + 1", "return (W - F + 2 * P) / S + 1",
                            "rounds the division down"),
    "08_find_the_digits_exercises": ("return (n - 1) * s - 2 * p + k", "return n * s",
                                     "n * stride is right only"),
}


def nbgrader(course: Path, *args):
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs alembic: the venv's must be on PATH
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"],
           "JUPYTER_CONFIG_DIR": str(course / ".jupyter"), "JUPYTER_DATA_DIR": str(course / ".data")}
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def learners_view(path):
    return [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]


def text_of(html_path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_path.read_text()))


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    (course / "source" / "ps").mkdir(parents=True)
    for path in SOLUTIONS:
        shutil.copy(path, course / "source" / "ps")
    nbgrader(course, "generate_assignment", "ps")
    for student in ("solved", "stub", "wrong"):
        folder = course / "submitted" / student / "ps"
        folder.mkdir(parents=True)
        for name in GRADED:
            origin = "release" if student == "stub" else "source"
            text = (course / origin / "ps" / f"{name}.ipynb").read_text()
            if student == "wrong":
                right, wrong, _ = WRONG[name]
                assert right in text
                text = text.replace(right, wrong)
            (folder / f"{name}.ipynb").write_text(text)
    nbgrader(course, "autograde", "ps", "--create")
    nbgrader(course, "generate_feedback", "ps")
    return course


def test_generate_assignment_releases_exactly_our_exercises(course):
    for path in SOLUTIONS:
        assert learners_view(course / "release" / "ps" / path.name) == \
            learners_view(ROOT / "exercises" / path.name), path.name


def test_autograde_full_marks_zero_and_partial_with_the_hint(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {(s, n): gb.find_submission_notebook(n, "ps", s).score
                  for s in ("solved", "stub", "wrong") for n in GRADED}
    for name in GRADED:
        assert (scores["solved", name], scores["stub", name], scores["wrong", name]) == (3, 0, 2), name
        assert WRONG[name][2] in text_of(course / "feedback" / "wrong" / "ps" / f"{name}.html")
        assert "not attempted" in text_of(course / "feedback" / "stub" / "ps" / f"{name}.html")
