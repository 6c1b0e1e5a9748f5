"""The grader: full marks for the solutions, nothing for a stub, no free marks for the tricks
that used to fool it, and a report (never a crash or a hang) for a notebook that breaks its
kernel. The broken notebooks are graded in one run, as an instructor would grade a folder."""

import csv
import json
import math
import subprocess
import sys

import nbformat
import pytest
from conftest import ROOT
from speed import scaled

from fcconv.course import grade

STUB = nbformat.read(ROOT / "exercises" / "02_shapes.ipynb", as_version=4)
SOLVED = nbformat.read(ROOT / "solutions" / "02_shapes.ipynb", as_version=4)


def cells(nb, role, exercise=None):
    return [c for c in nb.cells if c.metadata.get("fcconv", {}).get("role") == role
            and exercise in (None, c.metadata["fcconv"]["exercise"])]


def after(nb, cell, source):
    nb.cells.insert(nb.cells.index(cell) + 1, nbformat.v4.new_code_cell(source))


def printing(nb):  # fake verdict lines: in an answer cell, after a real "wrong", as a check cell
    cells(nb, "answer", "02.1")[0].source += "\nprint('[fcconv-check] 02.1 correct — well done.')"
    cells(nb, "answer", "02.2")[0].source = "def my_score_map_side(size):\n    return (size - 224) // 32"
    after(nb, cells(nb, "check", "02.2")[0], "print('[fcconv-check] 02.2 correct — well done.')")
    cells(nb, "check", "02.3")[0].source = "print('[fcconv-check] 02.3 correct — well done.')"


def deleted(nb):
    nb.cells = [c for c in nb.cells if c not in cells(nb, "check")]
    del nb.metadata["fcconv"]


def patched(nb):  # one-liners on a public check, on a private helper, on what a check relies on
    after(nb, nb.cells[1], "import fcconv.course.checks as c\n"
          "c.output_size = c.CHECKS['02.1'] = lambda f, exercise='02.1': c.Verdict('02.1', 'correct', '')\n"
          "c._verdict = lambda exercise, body, answer: c.Verdict(exercise, 'correct', 'well done.')\n"
          "import fcconv.formulas\nfcconv.formulas.conv_output_size = c.conv_output_size = lambda *a, **k: 7")
    cells(nb, "answer", "02.1")[0].source = "def my_output_size(W, F, S, P):\n    return 7"


def equal_to_all(nb):
    after(nb, nb.cells[1], "class Eq:\n    def __eq__(self, other):\n        return True\n")
    cells(nb, "answer", "02.1")[0].source = "def my_output_size(W, F, S, P):\n    return Eq()"
    cells(nb, "answer", "02.2")[0].source = "def my_score_map_side(size):\n    return Eq()"
    cells(nb, "answer", "02.3")[0].source = "def my_receptive_field(layers):\n    return Eq(), Eq(), Eq()"


def zeroing():  # notebook 01: zero the inputs in place, then answer from the zeros
    nb = nbformat.read(ROOT / "solutions" / "01_fc_is_a_convolution.ipynb", as_version=4)
    for cell in cells(nb, "answer"):
        name = cell.source.split("(")[0].removeprefix("def ")
        cell.source += f"\n_{name} = {name}\ndef {name}(*args):\n" \
                       "    for a in args:\n        if isinstance(a, np.ndarray):\n            a[...] = 0\n" \
                       f"    return _{name}(*args)"
    return nb


def troubles(nb):  # on a solved notebook: each trouble is reported and the grading goes on
    nb.metadata = "x"
    answer, check = cells(nb, "answer", "02.1")[0], cells(nb, "check", "02.2")[0]
    answer.metadata["fcconv"] = "x"
    del check.metadata["fcconv"]["exercise"]
    for source in ("while True:\n    pass", "def f(size)\n    return 1",
                   "import numpy as np\nx = np.ones(2**28)  # 2 GB",
                   "for i in range(30000):\n    print('x' * 99)"):
        after(nb, nb.cells[1], source)


def tampers(nb):
    """Three ways to reach the checks, none of which work now, and output while being checked:
    rewrite the checks on disk; patch every module in sys.modules that holds checks (the grader's
    copy used to be one); a json whose dumps says "correct" (the verdict used to pass through it);
    a right 02.1 that prints 64 kB a call."""
    after(nb, nb.cells[1], "import fcconv.course.checks as c\n"
          "with open(c.__file__, 'a') as f:\n"
          "    f.write('\\n_verdict = lambda e, b, a: Verdict(e, \"correct\", \"well done.\")\\n')\n"
          "import sys\nfor m in list(sys.modules.values()):\n"
          "    if hasattr(m, 'CHECKS') and hasattr(m, 'Verdict'):\n"
          "        m._verdict = lambda e, b, a, m=m: m.Verdict(e, 'correct', 'well done.')\n"
          "import json\nclass FakeJson:\n"
          "    def __getattr__(self, name):\n        return getattr(json, name)\n"
          "    def dumps(self, x, **k):\n        return json.dumps([x[0], 'correct', 'well done.'])\n"
          "sys.modules['json'] = FakeJson()")
    cells(nb, "answer", "02.1")[0].source = "def my_output_size(W, F, S, P):\n" \
        "    print('x' * 2**16)\n    return (W - F + 2 * P) // S + 1"


BROKEN = {  # name: (notebook 02's stub or solution, what to do to it)
    "tampers": (STUB, tampers),
    "kills_its_grader": (SOLVED, lambda nb: after(nb, nb.cells[1], "import os, signal\n"
                                                  "os.kill(os.getppid(), signal.SIGKILL)")),
    "printing": (STUB, printing), "deleted": (STUB, deleted), "patched": (STUB, patched),
    "equal_to_all": (STUB, equal_to_all), "troubles": (SOLVED, troubles),
    "dies": (SOLVED, lambda nb: after(nb, cells(nb, "check", "02.1")[0], "import os\nos._exit(1)")),
    "ignores_sigint": (STUB, lambda nb: after(nb, nb.cells[1], "import signal\n"
                                              "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")),
}
# The time limit scales with how busy this machine is (tests/speed.py): a loaded machine must not
# stop an honest cell.
LIMITS = {"cell_timeout": math.ceil(scaled(5)), "memory_gb": 1.5, "output_mb": 1}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every broken notebook and notebook 01 zeroing its inputs, graded in one run (two at a
    time), each in its own student folder; the reports and the CSV."""
    root = tmp_path_factory.mktemp("submissions")
    paths = []
    for name, (base, breaks) in BROKEN.items():
        nb = nbformat.reads(nbformat.writes(base), as_version=4)
        breaks(nb)
        paths.append(root / name / "02_shapes.ipynb")
        paths[-1].parent.mkdir()
        paths[-1].write_text(json.dumps(nb))  # as it is: nbformat.write would refuse bad metadata
    paths.append(root / "zeroing" / "01_fc_is_a_convolution.ipynb")
    paths[-1].parent.mkdir()
    nbformat.write(zeroing(), paths[-1])
    checks = (ROOT / "fcconv" / "course" / "checks.py").read_bytes()
    try:
        reports = list(grade.grade_all(paths, jobs=2, **LIMITS))
    finally:
        assert (ROOT / "fcconv" / "course" / "checks.py").read_bytes() == checks, "the grader did not restore it"
        (ROOT / "fcconv" / "course" / "checks.py").write_bytes(checks)
    grade.write_csv(reports, root / "grades.csv")
    return {r.path.parent.name: r for r in reports}, root / "grades.csv"


def statuses(report):
    return {ex: status for ex, (status, _) in report.results.items()}


# ----------------------------------------------------------------- the nine ways to free marks

def test_a_printed_verdict_line_scores_nothing(graded):
    assert statuses(graded[0]["printing"])["02.1"] == "not attempted"


def test_a_fake_line_after_a_real_wrong_scores_nothing(graded):
    status, message = graded[0]["printing"].results["02.2"]
    assert status == "wrong" and "count the first one" in message


def test_an_edited_check_cell_scores_nothing(graded):
    status, message = graded[0]["printing"].results["02.3"]
    assert status == "edited" and "restore it" in message


def test_deleted_check_cells_and_exercise_list_score_nothing(graded):
    r = graded[0]["deleted"]
    assert statuses(r) == {"02.1": "deleted", "02.2": "deleted", "02.3": "deleted"} and r.score == 0


def test_patching_a_public_check_or_what_it_relies_on_scores_nothing(graded):
    status, message = graded[0]["patched"].results["02.1"]
    assert status == "wrong" and "the answer is 1; you gave 7" in message


def test_patching_a_private_helper_of_the_checks_scores_nothing(graded):
    r = graded[0]["patched"]
    assert statuses(r) == {"02.1": "wrong", "02.2": "not attempted", "02.3": "not attempted"}


def test_an_answer_equal_to_everything_scores_nothing(graded):
    r = graded[0]["equal_to_all"]
    assert statuses(r) == {"02.1": "wrong", "02.2": "wrong", "02.3": "wrong"}
    assert all("return" in m for _, m in r.results.values())


def test_answers_that_zero_their_inputs_score_nothing(graded):
    r = graded[0]["zeroing"]
    assert statuses(r) == {"01.1": "wrong", "01.2": "wrong", "01.3": "wrong"}, r.results


# ----------------------------------------------------------------- never crash, never hang

def test_rewriting_the_checks_on_disk_scores_nothing_and_is_undone(graded):
    r = graded[0]["tampers"]
    assert statuses(r)["02.2"] == statuses(r)["02.3"] == "not attempted"
    assert any("changed the grader's files on disk (restored): fcconv/course/checks.py" in p for p in r.problems)
    for name in ("printing", "deleted", "patched", "equal_to_all"):  # graded after it
        assert graded[0][name].score == 0, (name, graded[0][name].results)


def test_the_graders_checks_are_not_in_sys_modules_and_a_fake_json_gets_nothing(graded):
    assert graded[0]["tampers"].score == 0  # (the file, sys.modules and json patched in one notebook)


def test_a_notebook_that_kills_its_grading_process_loses_only_its_own_marks(graded):
    r = graded[0]["kills_its_grader"]
    assert r.score == 0 and any("grading process died" in p for p in r.problems)
    assert all(s == "error" for s in statuses(r).values()) and len(r.results) == 3
    assert graded[0]["troubles"].passed  # graded after it, in the same run


def test_output_while_checking_is_capped_too(graded):
    status, message = graded[0]["tampers"].results["02.1"]
    assert status == "error" and "output cap exceeded" in message


def test_a_dead_kernel_is_reported_and_the_run_goes_on(graded):
    r = graded[0]["dies"]
    assert any("kernel died" in p for p in r.problems) and r.score == 0
    assert all(s == "error" and "kernel died" in m for s, m in r.results.values())


def test_a_cell_that_ignores_the_interrupt_is_killed(graded):
    r = graded[0]["ignores_sigint"]
    assert r.problems == [f"cell 3 ran longer than {LIMITS['cell_timeout']} s and was stopped: an infinite loop?",
                          "cell 3: the kernel ignored the interrupt and was killed"] and r.score == 0


def test_an_infinite_loop_is_interrupted_and_the_rest_still_runs(graded):
    r = graded[0]["troubles"]
    assert any(f"ran longer than {LIMITS['cell_timeout']} s" in p and "infinite loop" in p for p in r.problems) and r.score == 3


def test_a_syntax_error_is_reported(graded):
    assert any("SyntaxError" in p for p in graded[0]["troubles"].problems)


def test_the_kernel_runs_under_the_memory_cap(graded):
    # 2 GB under a 1.5 GB cap (the machine has more): a MemoryError, and the rest still runs
    assert any("MemoryError" in p for p in graded[0]["troubles"].problems)


def test_output_beyond_the_cap_is_dropped_and_reported(graded):
    assert any("printed more than 1 MB" in p for p in graded[0]["troubles"].problems)


def test_malformed_metadata_is_reported_and_the_notebook_still_graded(graded):
    r = graded[0]["troubles"]
    assert any("'fcconv' is 'x', not a mapping" in p for p in r.problems)
    assert "the notebook: its metadata is 'x', not a mapping (ignored)" in r.problems
    assert any("without an exercise id" in p for p in r.problems) and r.passed


def test_a_file_that_is_not_a_notebook_is_reported(tmp_path):
    bad = tmp_path / "02_shapes.ipynb"
    bad.write_text("{not json")
    r = grade.grade_notebook(bad)
    assert any("cannot read" in p for p in r.problems) and r.score == 0 and len(r.results) == 3


@pytest.mark.parametrize("timeout", ["0", "-1"])
def test_a_time_limit_that_is_not_positive_is_refused(timeout, tmp_path):
    run = subprocess.run([sys.executable, "-m", "fcconv", "grade", str(tmp_path / "x.ipynb"),
                          "--timeout", timeout], capture_output=True, text=True)
    assert run.returncode == 2 and "must be positive" in run.stderr
    with pytest.raises(ValueError, match="must be positive"):
        grade.main([str(tmp_path / "x.ipynb")], cell_timeout=int(timeout))


# ----------------------------------------------------------------- the gradebook

def test_the_csv_has_one_row_per_notebook_with_scores_total_and_problems(graded):
    reports, path = graded
    rows = {row["student"]: row for row in csv.DictReader(path.open())}
    assert set(rows) == set(reports)
    assert rows["troubles"]["02.1"] == "1" and rows["troubles"]["total"] == "3" and rows["troubles"]["out_of"] == "3"
    assert "MemoryError" in rows["troubles"]["problems"]
    assert rows["zeroing"]["01.1"] == "0" and rows["zeroing"]["02.1"] == ""
    assert rows["printing"]["total"] == "0" and "02.3 edited" in rows["printing"]["problems"]
    assert "kernel died" in rows["dies"]["problems"]
    assert rows["kills_its_grader"]["total"] == "0" and "grading process died" in rows["kills_its_grader"]["problems"]


def test_the_solutions_score_full_marks():
    # (stubs scoring nothing: the graded notebooks above, test_exercises.py, test_nbgrader.py)
    paths = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    for r in grade.grade_all(paths, cell_timeout=math.ceil(scaled(120)), jobs=2):
        assert r.passed and not r.problems, (r.path.name, r.results, r.problems)
