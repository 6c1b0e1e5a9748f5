"""The instructor's guide quotes the checks' hints; the quotes must stay true to the code."""

import re

from conftest import ROOT

GUIDE = (ROOT / "docs" / "instructor.md").read_text()
CHECKS = "\n".join(p.read_text() for p in sorted((ROOT / "fcconv" / "course" / "checks").glob("*.py")))


def test_every_quoted_hint_is_in_fcconv_checks():
    section = GUIDE.split("## The mistakes learners make most", 1)[1].split("\n## ", 1)[0]
    quotes = re.findall(r'"([^"]{12,})"', section)
    assert len(quotes) >= 10
    flat = re.sub(r'"\s*\\?\n\s*f?"', "", CHECKS)
    missing = [q for q in quotes if q not in flat]
    assert not missing, missing


def test_guide_has_both_lecture_plans_and_names_every_explorer_it_demos():
    assert "## A 50-minute lecture" in GUIDE and "## A 90-minute lecture" in GUIDE
    for name in ("FC vs conv explorer", "shapes explorer", "photo explorer", "efficiency explorer",
                 "digit detector explorer", "weight-row explorer"):
        assert name in GUIDE
    for topic in ("repo2docker", "Zero to JupyterHub", "nbgrader", "environment.yml"):
        assert topic in GUIDE


# Each demo the lecture plans name -> (its notebook, the explorer class that notebook shows).
DEMOS = {"FC vs conv explorer": ("01", "FCvsConvExplorer("),
         "1-D slide explorer": ("02", "Slide1DExplorer("),
         "shapes explorer": ("02", "ShapesExplorer("),
         "weight-row explorer": ("03", "WeightRowExplorer("),
         "score-map explorer": ("04", "ScoreMapExplorer("),
         "photo explorer": ("05", "FaceMapExplorer("),
         "efficiency explorer": ("06", "EfficiencyExplorer("),
         "digit detector explorer": ("08", "DigitDetectorExplorer(")}


def test_each_demo_of_the_lecture_plans_is_an_explorer_of_the_notebook_on_its_row():
    rows = [line for line in GUIDE.splitlines() if line.startswith("| ") and "`0" in line]
    seen = set()
    for row in rows:
        number = re.search(r"`(\d\d)_", row).group(1)
        for name in re.findall(r"\*\*([^*]+ explorer)\*\*", row):
            assert DEMOS[name][0] == number, (name, row)
            notebook = next((ROOT / "notebooks").glob(f"{number}_*.ipynb")).read_text()
            assert DEMOS[name][1] in notebook, (name, number)
            seen.add(name)
    assert seen == set(DEMOS)


def test_the_stride_demo_the_guide_gives_drops_an_input_cell():
    from fcconv.widgets.shapes import slide_1d_note

    assert "W = 8, F = 3, S = 2, P = 0" in GUIDE
    assert "an input pixel, ignored" in slide_1d_note(8, 3, 2, 0)[1]
    assert "no input pixel is lost" in slide_1d_note(8, 3, 2, 1)[1]   # padded: nothing to see


def test_exercise_notebooks_grade_with_the_interpreter_make_lab_installs():
    """The system python lacks torch: the grading line names the course's .venv and the notebook."""
    venv = re.search(r"^VENV\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    for path in sorted((ROOT / "exercises").glob("*.ipynb")):
        commands = re.findall(r"`([^`]*-m fcconv grade[^`]*)`", path.read_text())
        assert commands and all(c == f"{venv}/bin/python -m fcconv grade exercises/{path.name}"
                                for c in commands), (path.name, commands)


def test_walkthrough_markdown_has_no_bare_products_that_render_as_italics():
    """`C*H*W` outside a code span renders as C<em>H</em>W: products go in code spans or math."""
    import json

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "markdown":
                text = re.sub(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$", "", "".join(cell["source"]), flags=re.S)
                assert not re.search(r"\w\*\w", text), (path.name, i)
