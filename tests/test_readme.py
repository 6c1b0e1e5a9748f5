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


def layout_paths() -> tuple[set[str], set[str]]:
    """The files and the folders the README's Layout block names (indentation nests them)."""
    block = README.split("## Layout", 1)[1].split("```", 2)[1]
    files, folders, stack = set(), set(), []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.split()[0]
        stack[depth:] = [name]
        path = "".join(stack)
        (folders if name.endswith("/") else files).add(path.rstrip("/"))
    return files, folders


def test_layout_matches_the_tree():
    """Every file the Layout names exists, and every library and tools file is named (a folder
    named without its files covers them; a package's __init__.py goes without saying)."""
    files, folders = layout_paths()
    assert not [p for p in files | folders if not (ROOT / p).exists()], "named but missing"
    covered = [f for f in folders if not any(p.startswith(f + "/") for p in files | folders)]
    actual = [p.relative_to(ROOT).as_posix() for top in ("fcconv", "tools")
              for p in (ROOT / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    unnamed = [p for p in actual if p not in files and not any(p.startswith(c + "/") for c in covered)
               and not (p.endswith("/__init__.py") and p.rsplit("/", 1)[0] in folders)]
    assert not unnamed, f"README Layout does not name: {unnamed}"
