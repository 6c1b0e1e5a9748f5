"""Every walkthrough carries valid slide metadata, chosen for a lecture."""

import nbformat
import pytest
from conftest import NOTEBOOKS

from fcconv.course import slides


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_cell_has_a_slide_type_and_every_section_a_slide(path):
    nb = nbformat.read(path, as_version=4)
    kinds = [c.metadata.get("slideshow", {}).get("slide_type") for c in nb.cells]
    assert all(k in slides.SLIDE_TYPES for k in kinds), [i for i, k in enumerate(kinds)
                                                          if k not in slides.SLIDE_TYPES]
    assert kinds[0] == "slide"
    sections = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert sections and all(c.metadata["slideshow"]["slide_type"] == "slide" for c in sections)
    # an explorer on a subslide is stepped over by the deck's right arrow (or its heading by the
    # left one): each explorer is a slide, reached both ways
    explorers = [c for c in nb.cells if slides.is_explorer(c)]
    assert all(c.metadata["slideshow"]["slide_type"] == "slide" for c in explorers)


def test_rules_skip_imports_and_give_explorers_a_slide_of_their_own():
    cell = nbformat.v4.new_code_cell
    assert slides.lecture_slide_type(cell("import torch\n\nfrom fcconv import plots")) == "skip"
    assert slides.lecture_slide_type(cell("from x import Y\n\nY.Explorer()")) == "slide"
    assert slides.lecture_slide_type(cell("print(1)")) == "fragment"
    assert slides.lecture_slide_type(nbformat.v4.new_markdown_cell("## 2. Shapes")) == "slide"


def test_annotate_moves_an_explorer_off_a_subslide_and_keeps_other_choices():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"),
                                         nbformat.v4.new_code_cell("X.Explorer()"),
                                         nbformat.v4.new_code_cell("print(2)")])
    nb.cells[1].metadata["slideshow"] = {"slide_type": "subslide"}
    nb.cells[2].metadata["slideshow"] = {"slide_type": "subslide"}
    slides.annotate(nb)
    assert [c.metadata["slideshow"]["slide_type"] for c in nb.cells] == ["slide", "slide", "subslide"]


def test_annotate_keeps_an_instructors_choice():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"),
                                         nbformat.v4.new_code_cell("print(1)")])
    nb.cells[1].metadata["slideshow"] = {"slide_type": "notes"}
    assert slides.annotate(nb) == 1
    assert nb.cells[1].metadata["slideshow"]["slide_type"] == "notes"


def test_the_command_instructors_run_writes_the_same_metadata(tmp_path):
    """``python -m fcconv.slides NOTEBOOK`` (the command the README gives) against annotate()."""
    import subprocess
    import sys

    nb = nbformat.read(NOTEBOOKS[1], as_version=4)
    for c in nb.cells:
        c.metadata.pop("slideshow", None)
    path = tmp_path / NOTEBOOKS[1].name
    nbformat.write(nb, path)
    run = subprocess.run([sys.executable, "-m", "fcconv.slides", str(path)], capture_output=True,
                         text=True)
    assert run.returncode == 0 and "slide metadata written" in run.stdout, run.stderr
    slides.annotate(nb)
    written = nbformat.read(path, as_version=4)
    assert [c.metadata["slideshow"] for c in written.cells] == \
        [c.metadata["slideshow"] for c in nb.cells]
