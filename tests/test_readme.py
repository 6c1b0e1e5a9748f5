"""The README shows the two commands first and maps every notebook."""

from conftest import NOTEBOOKS, ROOT

README = (ROOT / "README.md").read_text()


def test_two_commands_come_first():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert "make lab" in first_block and "make test" in first_block


def test_course_map_lists_every_notebook():
    course_map = README.split("## Course map", 1)[1].split("\n## ", 1)[0]
    missing = [p.stem for p in NOTEBOOKS if f"`{p.stem}`" not in course_map]
    assert not missing, f"README course map lacks: {missing}"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci/run").read_text()
