"""The grader across its process boundary: full marks for the solutions and for right answers in
another form, nothing for a stub or for any of the ways that used to give marks, and a report
(never a crash, a hang, or a process left behind) for a notebook that breaks its kernel. The
attack notebooks are built in tests/attacks.py and graded in one run, as an instructor would grade
a folder; a second run does the same without namespaces (as on a system without them)."""

import csv
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from attacks import (
    LIBRARY,
    SOLVED02,
    STUB02,
    bf16,
    builtins,
    deleted,
    dies,
    equal_to_all,
    fair01,
    fair07,
    fair08,
    families02,
    families07,
    floods,
    forbidden,
    forger,
    hides_calls,
    ignores_sigint,
    impulses,
    injector,
    kills_its_grader,
    launders,
    load,
    lookup07,
    named_like,
    not_a_matrix,
    patched,
    planter,
    printing,
    prober,
    redirects,
    resets,
    shared_memory,
    subclass03,
    subclass04,
    survives,
    tampers,
    troubles,
    victim,
    write,
    zeroing,
)
from conftest import ROOT
from speed import scaled

from fcconv.course import grade, sandbox, scan
from fcconv.course.checks import CHECKS, core, wire

# The time limit scales with how busy this machine is (tests/speed.py): a loaded machine must not
# stop an honest cell.
LIMITS = {"cell_timeout": math.ceil(scaled(5)), "memory_gb": 1.5, "output_mb": 1}
MODE = sandbox.isolation(grade.python_paths())[0]  # "root", "user" or None: how kernels are boxed
ISOLATED = MODE is not None
COUNTED = MODE == "root" or (MODE == "user" and os.geteuid() != 0)  # the process limit applies


def _processes_with(token: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                found.append(int(pid))
        except OSError:
            pass
    return found


def _site_packages():
    """This test's venv's site-packages (the only Python installation an attack here may touch)."""
    import sysconfig
    path = sysconfig.get_paths()["purelib"]
    assert sys.prefix != sys.base_prefix and path.startswith(sys.prefix), "tests must run in a venv"
    return path


def _remove_plants() -> list[str]:
    """What an attack here planted and the grader left (the tests fail on it), removed, so that
    a run that fails, or stops half-way, leaves this venv and the library clean."""
    import shutil
    plants = [os.path.join(_site_packages(), "zz_fcconv_plant.pth"),
              os.path.join(_site_packages(), "zz_fcconv_planted"), str(LIBRARY / "formulas")]
    left = [p for p in plants if os.path.lexists(p)]
    for p in left:
        shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
    return left


def _escapes(root: Path) -> list[str]:
    """Where the prober tries to write: the course folder, the library, this venv's site-packages
    and a root-owned folder standing for /usr/local/sbin (in the test's temporary folder): the
    worktree and the temporary folder only, never a system path."""
    planted_bin = root / "usr-local-sbin"
    planted_bin.mkdir(exist_ok=True)
    return [str(ROOT / ".fcconv-escape-probe"), str(LIBRARY / "escape_probe.py"),
            os.path.join(_site_packages(), "zz_fcconv_escape.pth"), str(planted_bin / "unshare")]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every attack notebook graded in one run, two at a time, each in its own student folder;
    the reports, the CSV and what the attacks would have left behind."""
    import socket
    root = tmp_path_factory.mktemp("submissions")
    trap = root / "trap"  # a listening socket of the machine that a kernel points its channels at
    trap.mkdir()
    os.chmod(trap, 0o777)
    trapped = socket.socket(socket.AF_UNIX)
    trapped.bind(str(trap / "k-2"))
    trapped.listen(64)
    trapped.setblocking(False)
    os.chmod(trap / "k-2", 0o777)
    marker, token, csv_path = root / "planted-ran", f"fcconv-test-{secrets.token_hex(4)}", root / "grades.csv"
    listener = socket.create_server(("127.0.0.1", 0))  # the grader's loopback: no kernel may reach it
    escapes = _escapes(root)
    (root / "secret.txt").write_text("another student's work")
    reads = [str(ROOT / "solutions" / "02_shapes_exercises.ipynb"), str(ROOT / "tests" / "test_exercises.py"),
             str(root / "secret.txt"), *(str(p) for p in Path.home().iterdir() if p.is_file())]
    attacks = {  # name: (the notebook it starts from, what it does to it)
        "tampers": (STUB02, tampers), "kills_its_grader": (SOLVED02, kills_its_grader),
        "printing": (STUB02, printing), "deleted": (STUB02, deleted), "patched": (STUB02, patched),
        "equal_to_all": (STUB02, equal_to_all), "troubles": (SOLVED02, troubles),
        "dies": (SOLVED02, dies), "ignores_sigint": (STUB02, ignores_sigint),
        "zeroing": (None, zeroing), "builtins": (STUB02, builtins), "forbidden": (STUB02, forbidden),
        "subclass03": (None, subclass03), "subclass04": (None, subclass04), "lookup07": (None, lookup07),
        "planter": (STUB02, planter(marker, _site_packages())), "survives": (SOLVED02, survives(token, csv_path)),
        "fair01": (None, fair01), "fair07": (None, fair07), "fair08": (None, fair08),
        "solved04": (ROOT / "solutions" / "04_convolutionalize_exercises.ipynb", lambda nb: None),
        "launders": (STUB02, launders), "hides_calls": (STUB02, hides_calls), "bf16": (None, bf16),
        "not_a_matrix": (None, not_a_matrix), "impulses": (None, impulses),
        **{f"named_like{b}": (None, named_like(b)) for b in ("01", "02", "05", "08")},
        "resets": (SOLVED02, resets), "floods": (STUB02, floods),
        "prober": (STUB02, prober(escapes, reads, listener.getsockname()[1])),
        "injector": (STUB02, injector), "victim": (STUB02, victim),
        "redirects": (SOLVED02, redirects(trap)), "forger": (STUB02, forger),
        "families02": (STUB02, families02), "families07": (None, families07),
    }
    paths = []
    for name, (base, edit) in attacks.items():
        nb = load(base) if base else None
        nb = edit(nb) or nb
        notebook = {"zeroing": "01_fc_is_a_convolution", "subclass03": "03_weight_reshaping",
                    "subclass04": "04_convolutionalize", "lookup07": "07_conv_to_fc",
                    "fair01": "01_fc_is_a_convolution", "fair07": "07_conv_to_fc",
                    "fair08": "08_find_the_digits", "solved04": "04_convolutionalize",
                    "bf16": "04_convolutionalize", "not_a_matrix": "07_conv_to_fc",
                    "impulses": "07_conv_to_fc", "families07": "07_conv_to_fc",
                    "named_like01": "01_fc_is_a_convolution",
                    "named_like05": "05_score_maps", "named_like08": "08_find_the_digits"}.get(name, "02_shapes")
        paths.append(write(nb, root / name / f"{notebook}_exercises.ipynb"))
    library = {p: p.read_bytes() for p in LIBRARY.rglob("*") if p.is_file()}
    children = set(sandbox.children(os.getpid()))
    try:
        reports = list(grade.grade_all(paths, jobs=2, **LIMITS))
    finally:
        left = _remove_plants()
        escaped = [p for p in escapes if os.path.lexists(p)]
        for p in escaped:
            os.unlink(p)
        listener.close()
    try:
        trapped.accept()
        reached = True
    except BlockingIOError:
        reached = False
    trapped.close()
    grade.write_csv(reports, csv_path)
    time.sleep(4)  # a detached process of "survives" would have rewritten the CSV by now
    return {"reports": {r.path.parent.name: r for r in reports}, "csv": csv_path, "marker": marker,
            "token": token, "library": library, "children": children, "left": left, "escaped": escaped,
            "trap_reached": reached}


def statuses(report):
    return {ex: status for ex, (status, _) in report.results.items()}


# ----------------------------------------------------------------- no way to a mark

NO_MARKS = ["victim", "injector", "printing", "deleted", "patched", "equal_to_all", "ignores_sigint", "zeroing",
            "builtins", "forbidden", "subclass03", "subclass04", "lookup07", "planter",
            "dies", "launders", "hides_calls", "bf16", "prober", "floods", "forger", "families02"]


@pytest.mark.parametrize("name", NO_MARKS)
def test_no_way_to_a_mark_gives_one(graded, name):
    r = graded["reports"][name]
    assert r.score == 0 and "correct" not in statuses(r).values(), (r.results, r.problems)


def test_a_printed_verdict_line_scores_nothing(graded):
    assert statuses(graded["reports"]["printing"])["02.1"] == "not attempted"


def test_a_fake_line_after_a_real_wrong_scores_nothing(graded):
    status, message = graded["reports"]["printing"].results["02.2"]
    assert status == "wrong" and "count the first one" in message


def test_an_edited_check_cell_scores_nothing(graded):
    status, message = graded["reports"]["printing"].results["02.3"]
    assert status == "edited" and "restore it" in message


def test_deleted_check_cells_and_exercise_list_score_nothing(graded):
    assert statuses(graded["reports"]["deleted"]) == {"02.1": "deleted", "02.2": "deleted", "02.3": "deleted"}


def test_patching_the_checks_or_what_they_use_in_the_kernel_changes_nothing(graded):
    status, message = graded["reports"]["patched"].results["02.1"]
    assert status == "wrong" and "the answer is 1; you gave 7" in message
    assert statuses(graded["reports"]["patched"]) == {"02.1": "wrong", "02.2": "not attempted",
                                                      "02.3": "not attempted"}


def test_an_answer_equal_to_everything_scores_nothing(graded):
    r = graded["reports"]["equal_to_all"]
    assert statuses(r) == {"02.1": "wrong", "02.2": "wrong", "02.3": "wrong"}
    assert all("return" in m for _, m in r.results.values())


def test_answers_that_zero_their_inputs_score_nothing(graded):
    assert statuses(graded["reports"]["zeroing"]) == {"01.1": "wrong", "01.2": "wrong", "01.3": "wrong"}


def test_calling_what_the_statement_forbids_or_a_table_of_old_cases_scores_nothing(graded):
    r = graded["reports"]["forbidden"].results
    assert "asks you not to call fcconv.formulas.conv_output_size" in r["02.1"][1]  # through an alias
    assert r["02.2"][0] == "wrong" and "KeyError" in r["02.2"][1]  # sizes the check never tried before
    assert "asks you not to call sys.setprofile" in r["02.3"][1]  # the watch turned off


def test_a_tensor_that_claims_to_be_close_scores_nothing(graded):
    assert statuses(graded["reports"]["subclass03"])["03.2"] == "wrong"
    r = statuses(graded["reports"]["subclass04"])
    assert r["04.1"] == r["04.2"] == "wrong"


def test_a_lookup_table_and_a_rank_1_matrix_score_nothing(graded):
    r = graded["reports"]["lookup07"].results
    assert r["07.1"][0] == "wrong" and "KeyError" in r["07.1"][1]
    assert r["07.2"][0] == "wrong"


def test_rewriting_the_checks_or_patching_them_in_the_kernel_scores_nothing(graded):
    r = graded["reports"]["tampers"]
    assert statuses(r)["02.2"] == statuses(r)["02.3"] == "not attempted" and r.score == 1
    if not ISOLATED:  # with namespaces the library is read-only to kernels: nothing to restore
        assert any("changed files the grader reads (restored)" in p for p in r.problems)


# ----------------------------------------------------------------- one notebook cannot reach another

def test_code_planted_for_later_kernels_or_the_grader_never_runs(graded):
    assert not graded["marker"].exists() and graded["left"] == []
    after = {p: p.read_bytes() for p in LIBRARY.rglob("*") if p.is_file()}
    assert after == graded["library"], set(after) ^ set(graded["library"])
    assert not os.path.exists(os.path.join(_site_packages(), "zz_fcconv_plant.pth"))
    assert graded["reports"]["planter"].score == 0


@pytest.mark.skipif(not ISOLATED, reason="needs a box (namespaces)")
def test_a_kernel_cannot_find_another_kernel_its_key_or_its_traffic(graded):
    """The injector ran beside the victim (two at a time) and found no connection file, no port
    and no socket of another kernel: each has its own network namespace and talks to the grader
    over Unix sockets in its own tmpfs."""
    said = [p for p in graded["reports"]["injector"].problems if "injector found" in p]
    assert len(said) == 1 and said[0].endswith("RuntimeError: injector found [] and heard 0 messages"), \
        graded["reports"]["injector"].problems
    assert graded["reports"]["victim"].score == 0


def test_no_process_outlives_the_run_and_the_csv_is_not_rewritten_after_it(graded):
    assert _processes_with(graded["token"]) == []
    new = set(sandbox.children(os.getpid())) - graded["children"]  # only multiprocessing's helpers
    assert all(b"multiprocessing" in open(f"/proc/{p}/cmdline", "rb").read() for p in new), new
    rows = {row["student"]: row for row in csv.DictReader(graded["csv"].open())}
    # SIGSTOP to itself stops an unboxed kernel (a stopped kernel counts as dead); PID 1 of a box
    # ignores it
    assert rows["survives"]["total"] == ("3" if ISOLATED else "0")


# ----------------------------------------------------------------- the box

def _probe(graded, what: str) -> str | None:
    """What the prober's cell named ``what`` said (the message of the error it ends with)."""
    for p in graded["reports"]["prober"].problems:
        if f"RuntimeError: probe {what} " in p:
            return p.split(f"probe {what} ", 1)[1]
    return None


boxed = pytest.mark.skipif(not ISOLATED, reason="needs a box (Linux namespaces)")


@boxed
def test_a_kernel_writes_nothing_outside_its_own_tmpfs(graded):
    """Not the course folder, the library, the venv, nor a root-owned folder of the machine (a
    stand-in for /usr/local/sbin, where a planted unshare once ran as root in later runs)."""
    assert graded["escaped"] == []
    assert _probe(graded, "wrote") == "[]"


@boxed
def test_an_installation_under_tmp_is_seen_read_only_in_the_box():
    """CI clones the course under /tmp: the box's own /tmp must not hide the venv there. Two
    ways to read the same file, on the machine and in a box; writing to it in the box fails."""
    folder = Path(tempfile.mkdtemp(prefix="fcconv-venv-", dir="/tmp"))
    try:
        (folder / "site.txt").write_text("from the machine")
        os.chmod(folder, 0o755)
        work = Path(sandbox.mkdtemp())
        code = ("import sys\np = sys.argv[1]\nassert open(p).read() == 'from the machine'\n"
                "try:\n    open(p, 'w')\nexcept OSError:\n    sys.exit(0)\nsys.exit(3)")
        argv = [sys.executable, "-S", "-c", code, str(folder / "site.txt")]
        plan = sandbox._plan(MODE, work, [*grade.python_paths(), folder], sys.executable, argv, {},
                             2**24, user=sandbox.user_ids(64)[-1], files={}, output=False)
        proc, _, notes = sandbox._launch(plan, timeout=60)
        assert proc is not None and proc.wait(60) == 0, notes
        sandbox.remove(work)
    finally:
        shutil.rmtree(folder)


@boxed
def test_a_kernel_sees_no_solution_no_home_and_no_other_folder(graded):
    assert _probe(graded, "read") == "[]"


@boxed
def test_a_kernel_has_no_network_not_even_the_graders_loopback(graded):
    assert _probe(graded, "reached") == "[]"


@boxed
def test_a_kernel_runs_unprivileged_and_makes_no_namespace(graded):
    user, caps, nnp = _probe(graded, "user").split()[::2]
    assert caps == "0000000000000000" and nnp == "1"
    if MODE == "root":
        assert int(user) >= sandbox.KERNEL_UID  # a user id of its own, not root
    assert _probe(graded, "unshared") == "[]"


@pytest.mark.skipif(not COUNTED, reason="the process limit needs a box with an unprivileged user")
def test_a_kernel_starts_a_bounded_number_of_processes(graded):
    assert 0 < int(_probe(graded, "forked")) < sandbox.PROCESSES


def test_the_graders_own_code_and_the_librarys_private_helpers_give_no_mark(graded):
    r = graded["reports"]["launders"].results
    assert r["02.1"][0] == "wrong" and r["02.1"][1].startswith("the statement asks you not to call fcconv.")
    assert r["02.2"][0] == "wrong"  # the checks are not in the kernel
    assert r["02.3"][0] == "wrong" and "not to call fcconv.shapes.receptive_field" in r["02.3"][1]


def test_a_forbidden_call_is_seen_through_a_magic_a_decorator_a_module_name_or_a_process(graded):
    r = graded["reports"]["hides_calls"].results
    assert "not to call fcconv.formulas.conv_output_size" in r["02.1"][1]
    assert "not to call fcconv.formulas.score_map_side" in r["02.2"][1]
    assert r["02.3"][0] == "wrong" and "another process" in r["02.3"][1]


@boxed  # /tmp/.fcconv is the box's folder
def test_a_kernel_that_relinks_its_channels_reaches_nothing_and_the_report_tells_it_true(graded):
    """Its iopub socket, then /tmp/.fcconv, made links to a socket of the machine, each followed
    by a message over the cap (the grader reconnects): no connection reaches the link's target,
    the report counts the two dropped messages, says nothing false, and the answers count."""
    r = graded["reports"]["redirects"]
    assert not graded["trap_reached"]
    assert r.passed, (r.results, r.problems)
    assert any(p.startswith("2 message(s) from the kernel were over") for p in r.problems), r.problems
    assert not any("while checking" in p for p in r.problems), r.problems


def test_a_watch_switched_off_or_a_forged_reply_is_told_as_tampering(graded):
    r = graded["reports"]["forger"].results
    for ex in ("02.1", "02.2"):  # the forger's replies: not signed with the nonce it never saw
        assert r[ex] == ("error", sandbox.TAMPERED.format("the reply was not signed by the grader's handler"))
    assert r["02.3"] == ("error", sandbox.TAMPERED.format("its test call was not seen"))  # sys.setprofile a no-op


def test_every_member_of_a_forbidden_family_counts_however_it_is_named(graded):
    r = graded["reports"]["families02"].results
    assert r["02.1"] == ("wrong", core.forbidden_call("fcconv.formulas.score_map_side"))  # seen by the watch
    assert r["02.2"] == ("wrong", core.forbidden_call("fcconv.formulas.conv_output_size"))
    r = graded["reports"]["families07"].results
    assert r["07.2"] == ("wrong", core.forbidden_call("torch.convolution"))  # a name the scan cannot read
    assert r["07.1"][0] == r["07.3"][0] == "correct"


def test_a_bfloat16_buffer_buys_no_tolerance(graded):
    r = graded["reports"]["bf16"].results
    assert r["04.1"][0] == "wrong" and r["04.2"][0] == "wrong" and "eps was not copied" in r["04.2"][1]


def test_07_2_wants_the_entries_built_without_a_convolution(graded):
    r = graded["reports"]["not_a_matrix"].results
    assert r["07.2"][0] == "wrong" and "return the matrix itself" in r["07.2"][1]
    assert r["07.1"][0] == r["07.3"][0] == "correct"
    r = graded["reports"]["impulses"].results
    assert r["07.2"][0] == "wrong" and "not to call fcconv.numpy_ops.conv2d" in r["07.2"][1]


@pytest.mark.parametrize("name", ["named_like01", "named_like02", "named_like05", "named_like08", "resets"])
def test_a_learners_own_names_never_cost_a_mark(graded, name):
    """Helpers and variables named like forbidden functions, an (n, 6) array of detections, a
    %reset -f, a global named globals: full marks."""
    r = graded["reports"][name]
    assert r.passed, (r.results, r.problems)


def test_output_dropped_for_its_size_still_counts_as_output(graded):
    assert any("printed more than 1 MB" in p for p in graded["reports"]["floods"].problems)


@pytest.fixture(scope="module")
def squeezed(tmp_path_factory):
    """Shared memory taken under --memory 0.25: an anonymous shared mapping, a /dev/shm file."""
    root = tmp_path_factory.mktemp("squeezed")
    name = f"fcconv-test-{secrets.token_hex(4)}"
    paths = [write(load(STUB02), root / kind / "02_shapes_exercises.ipynb") for kind in ("mmap", "shm")]
    for path, kind in zip(paths, ("mmap", name)):
        nb = load(path)
        shared_memory(kind)(nb)
        write(nb, path)
    reports = list(grade.grade_all(paths, jobs=2, cell_timeout=LIMITS["cell_timeout"], memory_gb=0.25,
                                   output_mb=1))
    left = Path("/dev/shm", name).exists()
    Path("/dev/shm", name).unlink(missing_ok=True)
    return {r.path.parent.name: r for r in reports}, left


@boxed
def test_shared_memory_counts_against_the_memory_cap_and_is_gone_after(squeezed):
    reports, left = squeezed
    assert any("over the cap" in p for p in reports["mmap"].problems), reports["mmap"].problems
    assert any("No space left" in p for p in reports["shm"].problems), reports["shm"].problems
    assert not left


# ----------------------------------------------------------------- never crash, never hang

@boxed  # SIGSTOP to itself: PID 1 of a box ignores it, an unboxed kernel stops
def test_a_notebook_that_survives_everything_still_scores_full_marks(graded):
    """A global named str, a comm without _model_module, a 30 MB exception, 100 MB of display
    metadata, 50 MB from a shell command, SIGSTOP to itself and its parent, processes in a new
    session: 3/3, and the report says what was dropped, in a few hundred characters."""
    r = graded["reports"]["survives"]
    assert r.passed, (r.results, r.problems)
    assert any("over the message cap" in p or "were dropped" in p for p in r.problems), r.problems
    assert len("".join(r.problems)) < 2000


def test_a_notebook_cannot_kill_its_grading_process_or_loses_only_its_own_marks(graded):
    """Boxed, the kernel is process 1 of its namespace: its parent is not there to kill (the
    solved notebook keeps its marks). Unboxed (the fallback run) it kills it and scores 0."""
    r = graded["reports"]["kills_its_grader"]
    if ISOLATED:
        assert r.passed, (r.results, r.problems)
    else:
        assert r.score == 0 and any("died" in p for p in r.problems), r.problems
    assert graded["reports"]["troubles"].passed  # graded after it, in the same run


def test_output_while_checking_is_capped_and_a_right_answer_that_prints_still_counts(graded):
    r = graded["reports"]["tampers"]
    assert r.results["02.1"] == ("correct", "well done.")
    assert any("while checking 02.1: the function printed more than 1 MB" in p for p in r.problems), r.problems


def test_a_dead_kernel_is_reported_and_the_run_goes_on(graded):
    r = graded["reports"]["dies"]
    assert any("kernel died" in p for p in r.problems) and r.score == 0
    assert all(s == "error" and "kernel died" in m for s, m in r.results.values())


def test_a_cell_that_ignores_the_interrupt_is_killed(graded):
    r = graded["reports"]["ignores_sigint"]
    assert r.problems == [f"cell 3 ran longer than {LIMITS['cell_timeout']} s and was stopped: an infinite loop?",
                          "cell 3: the kernel ignored the interrupt and was killed"] and r.score == 0


def test_an_infinite_loop_is_interrupted_and_the_rest_still_runs(graded):
    r = graded["reports"]["troubles"]
    assert any(f"ran longer than {LIMITS['cell_timeout']} s" in p for p in r.problems) and r.score == 3


def test_a_syntax_error_is_reported(graded):
    assert any("SyntaxError" in p for p in graded["reports"]["troubles"].problems)


def test_the_kernel_runs_under_the_memory_cap(graded):
    # 2 GB under a 1.5 GB cap (the machine has more): a MemoryError, and the rest still runs
    assert any("MemoryError" in p for p in graded["reports"]["troubles"].problems)


def test_output_beyond_the_cap_is_dropped_and_reported(graded):
    assert any("printed more than 1 MB" in p for p in graded["reports"]["troubles"].problems)


def test_malformed_metadata_is_reported_and_the_notebook_still_graded(graded):
    r = graded["reports"]["troubles"]
    assert any("'fcconv' is 'x', not a mapping" in p for p in r.problems)
    assert "the notebook: its metadata is 'x', not a mapping (ignored)" in r.problems
    assert any("without an exercise id" in p for p in r.problems) and r.passed


# ----------------------------------------------------------------- fair

@pytest.mark.parametrize("name", ["fair01", "fair07", "fair08", "solved04"])
def test_right_answers_in_another_type_score_full_marks(graded, name):
    """float32 filters, a scipy.sparse matrix, an exact Fraction, float32 scores, a whole float:
    across the boundary too; and 04 solved, under a 1.5 GB cap (the grader's own work is not
    charged to it)."""
    r = graded["reports"][name]
    assert r.passed, (r.results, r.problems)


# ----------------------------------------------------------------- without namespaces

@pytest.fixture(scope="module")
def fallback(tmp_path_factory):
    """The same grader where kernels get no namespaces (as where the system forbids them): the
    grading process is the kernel's subreaper and the grader watches the files it reads."""
    root = tmp_path_factory.mktemp("fallback")
    token, csv_path, marker = f"fcconv-test-{secrets.token_hex(4)}", root / "grades.csv", root / "planted-ran"
    plant = os.path.join(_site_packages(), "zz_fcconv_planted")

    def planter_in_site(nb):
        planter(marker, _site_packages())(nb)
        nb.cells[2].source += f"\nplant(pathlib.Path({plant!r}) / '__init__.py', code)"

    def sigstop(nb):
        nb.cells.insert(2, __import__("nbformat").v4.new_code_cell(
            "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)"))

    def detached(nb):  # "survives" without its SIGSTOP cell: here a stopped kernel is a dead one
        survives(token, csv_path)(nb)
        nb.cells = [c for c in nb.cells if "SIGSTOP" not in c.source]

    made = {"detached": (SOLVED02, detached), "sigstop": (SOLVED02, sigstop),
            "kills_its_grader": (SOLVED02, kills_its_grader), "planter": (STUB02, planter_in_site),
            "after": (SOLVED02, lambda nb: None)}
    paths = []
    for name, (base, edit) in made.items():
        nb = load(base)
        edit(nb)
        paths.append(write(nb, root / name / "02_shapes_exercises.ipynb"))
    try:
        reports = list(grade.grade_all(paths, jobs=1, isolate=False, **LIMITS))
        grade.write_csv(reports, csv_path)
        time.sleep(4)
    finally:
        left = _remove_plants()
    return {r.path.parent.name: r for r in reports}, token, csv_path, marker, left


def test_without_namespaces_no_process_outlives_the_run(fallback):
    reports, token, csv_path, _, _ = fallback
    assert reports["detached"].passed, (reports["detached"].results, reports["detached"].problems)
    assert _processes_with(token) == []
    rows = {row["student"]: row for row in csv.DictReader(csv_path.open())}
    assert rows["detached"]["total"] == "3"


def test_without_namespaces_a_stopped_kernel_is_dead_and_nothing_hangs(fallback):
    r = fallback[0]["sigstop"]
    assert r.score == 0 and any("stopped" in p for p in r.problems), r.problems


def test_without_namespaces_killing_the_grading_process_costs_only_that_notebook(fallback):
    r = fallback[0]["kills_its_grader"]
    assert r.score == 0 and any("grading process died" in p for p in r.problems), r.problems


def test_without_namespaces_planted_files_are_restored_and_a_changed_install_stops_the_run(fallback):
    reports, _, _, marker, left = fallback
    assert left == [os.path.join(_site_packages(), "zz_fcconv_planted")], left  # all it could not put back
    assert not marker.exists() and not os.path.exists(os.path.join(_site_packages(), "zz_fcconv_plant.pth"))
    assert not (LIBRARY / "formulas").exists()
    planted = reports["planter"].problems
    assert any("changed files the grader reads (restored)" in p for p in planted), planted
    assert any("changed the Python installation" in p for p in planted), planted
    after = reports["after"]
    assert after.score == 0 and any("reinstall it" in p for p in after.problems), after.problems


# ----------------------------------------------------------------- files and options

def test_only_regular_files_are_read(tmp_path):
    fifo = tmp_path / "fifo" / "02_shapes_exercises.ipynb"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    zero = tmp_path / "zero" / "02_shapes_exercises.ipynb"
    zero.parent.mkdir()
    zero.symlink_to("/dev/zero")
    bad = tmp_path / "bad" / "02_shapes_exercises.ipynb"
    bad.parent.mkdir()
    bad.write_text("{not json")
    for path, says in ((fifo, "not a regular file"), (zero, "not a regular file"), (bad, "cannot read")):
        r = grade.grade_notebook(path)  # never blocks, never reads /dev/zero for ever
        assert r.score == 0 and len(r.results) == 3 and any(says in p for p in r.problems), r.problems


def test_a_file_over_the_size_cap_is_not_read(tmp_path):
    big = tmp_path / "big.ipynb"
    big.write_bytes(b"x" * 100)
    assert grade.read_regular(big, cap=50) == (None, "larger than 0 MB")
    assert grade.read_regular(big, cap=100) == ("x" * 100, None)


def test_the_notebooks_cells_stop_at_its_deadline_and_its_answers_are_still_checked(tmp_path):
    nb = load(SOLVED02)
    nb.cells += [__import__("nbformat").v4.new_code_cell("import time\ntime.sleep(4)") for _ in range(6)]
    path = write(nb, tmp_path / "slow" / "02_shapes_exercises.ipynb")
    r = next(grade.grade_all([path], cell_timeout=math.ceil(scaled(5)), deadline=10))
    assert r.passed and any("past its deadline of 10 s" in p for p in r.problems), (r.results, r.problems)


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "fcconv", "grade", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("option, value", [
    ("--timeout", "0"), ("--timeout", "-1"), ("--timeout", "inf"), ("--timeout", "1.5"),
    ("--memory", "inf"), ("--memory", "1e30"), ("--memory", "nan"), ("--memory", "0.01"),
    ("--max-output", "inf"), ("--jobs", "0"), ("--deadline", "1"), ("--deadline", "x")])
def test_a_limit_that_is_not_finite_and_sensible_is_refused_when_parsed(option, value, capsys):
    from fcconv.__main__ import parser

    with pytest.raises(SystemExit) as stop:
        parser().parse_args(["grade", str(STUB02), option, value])
    assert stop.value.code == 2 and f"{option} must be a" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["missing/grades.csv", ".", "/proc/grades.csv"])
def test_a_csv_that_cannot_be_written_is_refused_when_parsed(tmp_path, target, capsys):
    from fcconv.__main__ import parser

    with pytest.raises(SystemExit) as stop:
        parser().parse_args(["grade", str(STUB02), "--csv", target if target.startswith("/") else str(tmp_path / target)])
    assert stop.value.code == 2 and "--csv" in capsys.readouterr().err


def test_the_command_refuses_a_bad_option_before_grading_and_without_a_traceback(tmp_path):
    for args in (["--memory", "inf"], ["--csv", tmp_path / "missing" / "g.csv"]):
        run = _cli(STUB02, *args, timeout=120)
        assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr, run.stderr
    with pytest.raises(ValueError, match="must be a number from"):
        grade.check_options(timeout=60, memory_gb=float("inf"), output_mb=1, jobs=1, deadline=600)


def test_the_grader_runs_no_program_it_finds_on_path(tmp_path):
    """Programs named like those a grader might start (unshare, sh, mount, python ...) first on
    PATH run nowhere: the grader starts only its own Python, by its absolute path, checked once."""
    fake, marker = tmp_path / "bin", tmp_path / "ran"
    fake.mkdir()
    for name in ("unshare", "sh", "mount", "umount", "setpriv", "python", "python3", "env", "true"):
        (fake / name).write_text(f"#!/bin/sh\necho {name} >> {marker}\nexit 1\n")
        (fake / name).chmod(0o755)
    run = subprocess.run([sys.executable, "-m", "fcconv", "grade", str(SOLVED02)], capture_output=True,
                         text=True, timeout=600, cwd=ROOT, env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
    assert not marker.exists(), marker.read_text()
    assert "score 3/3" in run.stdout, (run.stdout, run.stderr)


def test_a_program_others_could_have_replaced_is_not_trusted(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    planted = shared / "python"
    planted.write_text("#!/bin/sh\n")
    with pytest.raises(ValueError, match="writable by other users"):
        sandbox.trusted_program(str(planted))
    assert sandbox.trusted_program(sys.executable) == os.path.realpath(sys.executable)


def test_a_notebook_without_cell_ids_is_graded_without_a_warning(tmp_path):
    nb = json.loads(STUB02.read_text())
    nb["nbformat_minor"] = 4
    for cell in nb["cells"]:
        cell.pop("id", None)
    path = tmp_path / "old" / "02_shapes_exercises.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(nb))
    run = _cli(path, timeout=600)
    assert "score 0/3" in run.stdout and "Warning" not in run.stderr, run.stderr


def _with_token(token: str) -> list[int]:
    """Processes whose command line or environment holds ``token``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(token.encode() in open(f"/proc/{pid}/{part}", "rb").read() for part in ("cmdline", "environ")):
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_every_kernel_and_process_at_once_without_a_traceback(tmp_path, sig):
    """SIGTERM to the grader, or Ctrl-C (SIGINT to its whole process group), while a cell runs:
    every kernel, grading process and the fork server end at once; one line says so."""
    token = f"fcconv-test-{secrets.token_hex(4)}"
    nb = load(SOLVED02)
    nb.cells.insert(2, __import__("nbformat").v4.new_code_cell(
        f"import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', {token!r}])\ntime.sleep(300)"))
    path = write(nb, tmp_path / "slow" / "02_shapes_exercises.ipynb")
    proc = subprocess.Popen([sys.executable, "-m", "fcconv", "grade", str(path), "--timeout", "600"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "FCCONV_TEST_TOKEN": token})
    end = time.monotonic() + scaled(300)
    while not any(b"time.sleep" in open(f"/proc/{p}/cmdline", "rb").read() for p in _with_token(token)):
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()
        time.sleep(0.5)
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
    out, err = proc.communicate(timeout=scaled(60))
    assert proc.returncode == 128 + sig, (out, err)
    assert f"stopped by {signal.Signals(sig).name}" in err and "Traceback" not in out + err, err
    assert _with_token(token) == []


def test_the_csv_is_written_once_atomically_and_is_safe_in_a_spreadsheet(tmp_path):
    reports = [grade.Report(tmp_path / "=cmd()" / "02_shapes_exercises.ipynb", {"02.1": ("correct", "")}, ["-x"])]
    grade.write_csv(reports, tmp_path / "g.csv")
    row = next(csv.DictReader((tmp_path / "g.csv").open()))
    assert row["student"] == "'=cmd()" and row["problems"] == "'-x" and row["02.1"] == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["g.csv"]  # no temporary file left


def test_the_solutions_score_full_marks_and_the_stubs_nothing_even_with_a_1_s_limit(tmp_path):
    """Through the command line: full marks for solutions/ (a point for each exercise the checks
    declare), 0 for exercises/, with --timeout 1 (the grader's own work is not the learner's time),
    and the kernels' output never reaches the grader's stdout (a notebook printing 50 MB from a
    shell command is graded too)."""
    nb = load(SOLVED02)
    survives(f"fcconv-test-{secrets.token_hex(4)}", tmp_path / "elsewhere.csv")(nb)
    loud = write(nb, tmp_path / "loud" / "02_shapes_exercises.ipynb")
    solutions = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    stubs = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
    run = _cli(*solutions, *stubs, loud, "--timeout", "1", "--csv", tmp_path / "grades.csv", timeout=900)
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    totals = {(r["student"], r["notebook"]): (int(r["total"]), int(r["out_of"])) for r in rows}
    assert sum(totals[("solutions", p.name)][0] for p in solutions) == len(CHECKS) == \
        sum(totals[("solutions", p.name)][1] for p in solutions), run.stdout
    assert all(totals[("exercises", p.name)][0] == 0 for p in stubs)
    assert totals[("loud", "02_shapes_exercises.ipynb")] == ((3, 3) if ISOLATED else (0, 3))  # SIGSTOP
    assert len(run.stdout) < 20_000 and "Traceback" not in run.stderr


# ----------------------------------------------------------------- the boundary itself

def test_decoding_refuses_pickles_junk_and_oversized_values():
    obj = np.array([object()], dtype=object)
    import base64
    import io
    raw = io.BytesIO()
    np.save(raw, obj, allow_pickle=True)
    for bad in ({"array": base64.b64encode(raw.getvalue()).decode()}, {"array": "not base64!"},
                {"nope": 1}, [1, 2], {"int": "1" * 1000}, {"float": "1", "dtype": "object"},
                {"list": [{"list": []}] * (wire.MAX_ITEMS + 1)}):
        with pytest.raises(wire.Malformed):
            wire.decode(bad)
    deep = {"list": []}
    for _ in range(wire.MAX_DEPTH + 3):
        deep = {"list": [deep]}
    with pytest.raises(wire.Malformed):
        wire.decode(deep)


def test_what_is_not_plain_data_arrives_as_a_description():
    class Sneaky:
        def __eq__(self, other):
            return True

        def __repr__(self):
            return "\x1b[2J" + "x" * 500

    value = wire.decode(wire.round_trip(wire.encode((Sneaky(), np.float32(0.5), 3, [1.5]))))
    assert isinstance(value[0], wire.Opaque) and value[0] != 0 and len(str(value[0])) < 150
    assert "\x1b" not in str(value[0])
    assert value[1] == np.float32(0.5) and value[1].dtype == np.float32 and value[2:] == (3, [1.5])


def test_a_reply_the_kernel_forged_is_judged_like_any_answer():
    """Whatever the kernel sends, a verdict comes from the answers it holds: a reply that says
    "correct" is not an answer, and junk is an error, never a mark or a traceback."""
    check = CHECKS["02.1"]
    plan = check.plan(np.random.default_rng(0))
    for reply in ({"status": "correct"}, {"answers": "correct", "forbidden": []}, "correct",
                  {"answers": [{"value": {"object": "Verdict"}}] * len(plan.calls), "forbidden": []},
                  {"answers": [], "forbidden": []}):
        assert check.judge(plan, reply).status in ("error", "wrong"), reply
    right = {"answers": [{"value": wire.encode(plan.want(*c))} for c in plan.calls], "forbidden": []}
    assert check.judge(plan, wire.round_trip(right)).status == "correct"


def test_every_check_cell_of_the_exercises_names_a_known_check():
    import nbformat
    for path in sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")):
        exercises = grade.reference_exercises(nbformat.read(path, as_version=4))
        assert exercises and all(CHECKS[e.id].__name__ == e.name for e in exercises)


def test_a_forbidden_name_in_the_answers_source_is_found_through_the_cells_it_uses():
    cells = ["import fcconv\nfrom fcconv.formulas import conv_output_size as cos",
             "def helper(w, f, s, p):\n    return cos(w, f, s, p)",
             "def my_output_size(W, F, S, P):\n    return helper(W, F, S, P)",
             "assert my_output_size(7, 3, 1, 0) == fcconv.conv_output_size(7, 3)  # checking is fine"]
    forbids = CHECKS["02.1"].forbids
    assert grade.forbidden_in_source(cells, "my_output_size", forbids) == ["fcconv.formulas.conv_output_size"]
    honest = cells[:1] + ["def my_output_size(W, F, S, P):\n    return (W - F + 2 * P) // S + 1", cells[3]]
    assert grade.forbidden_in_source(honest, "my_output_size", forbids) == []


@pytest.mark.parametrize("cells, answer, exercise", [
    (["def conv_output_size(W, F, S, P):\n    return (W - F + 2 * P) // S + 1",
      "def my_output_size(W, F, S, P):\n    return conv_output_size(W, F, S, P)"], "my_output_size", "02.1"),
    (["from fcconv import conv_output_size", "def conv_output_size(W, F, S, P):\n    return (W - F) // S + 1",
      "my_output_size = conv_output_size"], "my_output_size", "02.1"),
    (["from fcconv import numpy_ops\ndef my_linear_via_conv(x, w, b):\n    linear = numpy_ops.conv2d(x, w)\n"
      "    return linear"], "my_linear_via_conv", "01.2"),
    (["def my_receptive_field(layers):\n    receptive_field = (1, 1, 0)\n    return receptive_field"],
     "my_receptive_field", "02.3"),
    (["def my_conv_matrix(weight, in_shape):\n    conv_matrix = m = [[0]]\n    return m"], "my_conv_matrix", "07.2"),
    (["def iou(a, b):\n    return 0.5", "my_iou = iou"], "my_iou", "08.1"),
    (["import fcconv.formulas\nclass Net:\n    def conv_output_size(self):\n        return 1\n"
      "def my_output_size(W, F, S, P):\n    return Net().conv_output_size()"], "my_output_size", "02.1"),
])
def test_a_name_counts_only_when_it_resolves_to_the_forbidden_function(cells, answer, exercise):
    assert grade.forbidden_in_source(cells, answer, CHECKS[exercise].forbids) == []


@pytest.mark.parametrize("cells", [
    ["import fcconv\n%time f = fcconv.conv_output_size", "def my_output_size(W, F, S, P):\n    return f(W, F, S, P)"],
    ["%%time\nfrom fcconv.formulas import conv_output_size as c", "def my_output_size(W, F, S, P):\n    return c(W, F, S, P)"],
    ["import fcconv.formulas as fm\ng = getattr(fm, 'conv_output_size')", "def my_output_size(*a):\n    return g(*a)"],
    ["from fcconv import conv_output_size", "def conv_output_size(*a):\n    return 1",
     "from fcconv import conv_output_size", "def my_output_size(*a):\n    return conv_output_size(*a)"],
])
def test_a_forbidden_function_is_found_through_magics_getattr_and_the_last_binding(cells):
    assert grade.forbidden_in_source(cells, "my_output_size", CHECKS["02.1"].forbids)[0] == \
        "fcconv.formulas.conv_output_size"


def test_float16_buys_no_tolerance_and_a_matrix_is_its_entries():
    def linear_f16(x, w, b):  # right, in float16: too few digits
        from fcconv import numpy_ops
        return numpy_ops.conv2d(x, w.reshape(len(w), *x.shape[1:]), b)[:, :, 0, 0].astype(np.float16)
    verdict = CHECKS["01.2"](linear_f16)
    assert verdict.status == "wrong" and "float16" in verdict.message
    from scipy.sparse.linalg import LinearOperator

    def operator(weight, in_shape):
        n = int(np.prod(in_shape))
        return LinearOperator((1, n), matvec=lambda x: x[:1], dtype=float)
    verdict = CHECKS["07.2"](operator)
    assert verdict.status == "wrong" and "return the matrix itself" in verdict.message


@pytest.mark.parametrize("form", ["np.array(kept)", "torch.tensor(kept)", "tuple(kept)",
                                  "[np.array(d) for d in kept]", "[list(d) for d in kept]",
                                  "np.array(kept, dtype=np.float32).reshape(-1, 6)"])
def test_nms_takes_any_sequence_of_six_numbers_per_detection(form):
    import torch

    def my_nms(detections, overlap):
        from fcconv.course.detect import iou
        kept = []
        for d in sorted(detections, key=lambda d: -d[5]):
            if all(iou(d[:4], k[:4]) <= overlap for k in kept):
                kept.append(d)
        return eval(form, {"np": np, "torch": torch, "kept": kept})
    verdict = CHECKS["08.2"](my_nms)
    assert verdict.status == "correct", verdict


# ----------------------------------------------------------------- the scan's input, the watch, the report

SCAN_MEMORY = """\
import json, resource, sys
from fcconv.course import grade
watch = grade.Watch()
limits = dict(cell_timeout=60, memory_gb=1, output_mb=10, deadline=600)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
prepared = grade.prepare(sys.argv[1], limits, None, watch)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(json.dumps([grown, prepared.report.problems]))
"""


def test_the_scan_keeps_the_graders_memory_bounded_whatever_a_cell_holds(tmp_path):
    """A 3 MB cell (1.5 million tokens: ast.parse would take some 2.5 GB) and as many tokens
    again in small cells: the grader parses neither, says so, and its peak memory grows by no
    more than the notebook's own size several times over."""
    nb = load(SOLVED02)
    after_cell = nb.cells[1]
    nb.cells.insert(nb.cells.index(after_cell) + 1, nbformat_cell("x = [" + ",".join(["a"] * 1_500_000) + "]"))
    for _ in range(12):
        nb.cells.insert(2, nbformat_cell("y = [" + ",".join(["b"] * 9_000) + "]"))
    path = write(nb, tmp_path / "big" / "02_shapes_exercises.ipynb")
    run = subprocess.run([sys.executable, "-c", SCAN_MEMORY, str(path)], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "FCCONV_CACHE_DIR": str(tmp_path / "cache")})
    grown, problems = json.loads(run.stdout.splitlines()[-1])
    assert grown < 40 * path.stat().st_size, (grown, problems)  # (ast.parse: some 700 times)
    unread = [p for p in problems if "was not read by the source scan" in p]
    assert len(unread) >= 2 and any("kB, over the scan's" in p for p in unread) and \
        any("tokens left" in p for p in unread), problems


def nbformat_cell(source):
    import nbformat
    return nbformat.v4.new_code_cell(source)


def test_a_cell_python_rejects_is_read_as_ipython_reads_it_and_one_it_cannot_is_never_dropped():
    forbids = CHECKS["02.1"].forbids
    cells = ["from fcconv.formulas import conv_output_size as cos\ncos?",
             "def my_output_size(W, F, S, P):\n    return cos(W, F, S, P)"]
    assert grade.forbidden_in_source(cells, "my_output_size", forbids) == ["fcconv.formulas.conv_output_size"]
    from fcconv.course import scan
    cells = ["def my_output_size(W, F, S, P):\n    return (W - F + 2 * P) // S + 1", "def my_output_size(:\n"]
    statements, problems = scan.read_cells(cells, [3, 4])
    assert problems and problems[0].startswith("cell 4 was not read by the source scan")
    assert grade.forbidden_in_source(statements, "my_output_size", forbids) == [scan.UNSCANNED]
    statements, _ = scan.read_cells([cells[0], "print(my_output_size(:"])  # binds nothing: no doubt
    assert grade.forbidden_in_source(statements, "my_output_size", forbids) == []


def _seen(exercise, fn, *args):
    """What the watch reports for fn called (in this process) on ``args``."""
    request = wire.round_trip(wire.request([args], forbids=CHECKS[exercise].forbids, nonce="n0nce"))
    reply = wire.evaluate(fn, request)
    assert reply["canary"] is True
    return reply["forbidden"]


def test_the_watch_knows_every_member_of_a_forbidden_family_by_its_code():
    import scipy.signal
    import torch

    import fcconv
    from fcconv import formulas
    from fcconv.course import detect
    assert _seen("02.1", lambda w, f, s, p: formulas.score_map_side(w + 2 * p, f, s), 7, 3, 1, 0)[0] == \
        "fcconv.formulas.score_map_side"
    assert _seen("06.1", lambda n, w, s: fcconv.conv_output_size(n, w, s) ** 2, 64, 28, 4)
    assert _seen("02.1", lambda w, f, s, p: (w - f + 2 * p) // s + 1, 7, 3, 1, 0) == []
    assert _seen("08.1", lambda a, b: detect.ious(a, [b])[0], (0, 0, 9, 9), (5, 5, 14, 14)) == \
        ["fcconv.course.detect.ious"]
    weight = np.ones((1, 1, 2, 2))
    for fn in (lambda w, s: np.convolve(w.ravel(), w.ravel()),
               lambda w, s: scipy.signal.correlate2d(w[0, 0], w[0, 0]),
               lambda w, s: torch.from_numpy(w).unfold(2, 1, 1).numpy(),
               lambda w, s: torch.nn.functional.conv2d(torch.from_numpy(w), torch.from_numpy(w)).numpy()):
        assert _seen("07.2", fn, weight, (1, 3, 3)), fn
    assert _seen("07.2", lambda w, s: np.zeros((4, 9)), weight, (1, 3, 3)) == []


def test_a_watch_that_cannot_see_fails_its_own_test(monkeypatch):
    monkeypatch.setattr(sys, "setprofile", lambda f: None)
    request = wire.round_trip(wire.request([(7, 3, 1, 0)], forbids=CHECKS["02.1"].forbids, nonce="n0nce"))
    assert wire.evaluate(lambda *a: 1, request)["canary"] is False


def test_a_reply_not_signed_with_the_checks_nonce_is_forged():
    import hashlib
    import hmac
    text = json.dumps({"answers": [], "forbidden": [], "canary": True})
    good = hmac.new(b"n0nce", text.encode(), hashlib.sha256).hexdigest()
    assert sandbox.forged({"nonce": "n0nce"}, text, good, json.loads(text)) is None
    assert "not signed" in sandbox.forged({"nonce": "n0nce"}, text, "0" * 64, json.loads(text))
    unseen = json.dumps({"answers": [], "forbidden": [], "canary": False})
    mac = hmac.new(b"n0nce", unseen.encode(), hashlib.sha256).hexdigest()
    assert "not seen" in sandbox.forged({"nonce": "n0nce"}, unseen, mac, json.loads(unseen))


def test_control_characters_in_a_students_folder_never_reach_the_report_or_the_csv(tmp_path):
    folder = "\x1b]0;PWNED-TITLE\x07\x1b[41mRED\x1b[0m\r"
    report = grade.Report(Path("/submissions") / folder / "02_shapes_exercises.ipynb",
                          {"02.1": ("correct", "well done.")})
    text = grade.format_report(report)
    grade.write_csv([report], tmp_path / "grades.csv")
    written = (tmp_path / "grades.csv").read_text()
    for shown in (text, written.replace("\r\n", "\n")):
        assert not any(c in shown for c in "\x1b\x07\r"), repr(shown)
    assert "PWNED-TITLE" in text and "RED" in written


def test_not_implemented_is_not_attempted_only_when_the_answer_itself_raises_it():
    def stub(W, F, S, P):
        raise NotImplementedError()

    def helper(n):
        raise NotImplementedError("a library that lacks this case")

    def uses_a_library(W, F, S, P):
        return helper(W)
    assert CHECKS["02.1"](stub).status == "not attempted"
    verdict = CHECKS["02.1"](uses_a_library)
    assert verdict.status == "wrong" and "NotImplementedError: a library that lacks this case" in verdict.message


def test_nms_scores_in_float32_as_python_floats_are_right_and_a_changed_score_is_named():
    def my_nms(detections, overlap):
        from fcconv.course.detect import iou
        kept = []
        for d in sorted(detections, key=lambda d: -d[5]):
            if all(iou(d[:4], k[:4]) <= overlap for k in kept):
                kept.append(d)
        return kept
    assert CHECKS["08.2"](lambda d, o: np.array(my_nms(d, o), np.float32).tolist()).status == "correct"
    verdict = CHECKS["08.2"](lambda d, o: [(*k[:5], round(k[5], 2)) for k in my_nms(d, o)])
    assert verdict.status == "wrong" and "right boxes" in verdict.message and "dropped" not in verdict.message


def test_01_2_must_call_conv2d_and_write_no_matrix_product():
    from fcconv import numpy_ops
    verdict = CHECKS["01.2"](lambda x, w, b: x.reshape(len(x), -1) @ w.T + b)
    assert verdict.status == "wrong" and "never called it" in verdict.message
    assert CHECKS["01.2"](lambda x, w, b: numpy_ops.conv2d(x, w.reshape(len(w), *x.shape[1:]), b)[:, :, 0, 0])
    decoy = ["from fcconv import numpy_ops",  # conv2d called, the answer from a matrix product
             "def my_linear_via_conv(x, w, b):\n    numpy_ops.conv2d(x, w.reshape(len(w), *x.shape[1:]))\n"
             "    return x.reshape(len(x), -1) @ w.T + b"]
    assert grade.forbidden_in_source(decoy, "my_linear_via_conv", CHECKS["01.2"].forbids) == [scan.MATMUL]
    einsum = ["import numpy as np", "def my_linear_via_conv(x, w, b):\n    return np.einsum('nk,mk->nm', x, w)"]
    assert grade.forbidden_in_source(einsum, "my_linear_via_conv", CHECKS["01.2"].forbids) == ["numpy.einsum"]


def test_04_1_runs_the_first_convolution_once_on_the_whole_image_not_on_crops():
    import torch
    from torch import nn

    class Crops(nn.Module):  # the given LeNet-5 on every 32x32 crop, 4 pixels apart: right numbers
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            n, c = x.shape[:2]
            p = x.unfold(2, 32, 4).unfold(3, 32, 4)
            crops = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, 32, 32)
            return self.model(crops).reshape(n, p.shape[2], p.shape[3], -1).permute(0, 3, 1, 2)
    verdict = CHECKS["04.1"](Crops)
    assert verdict.status == "wrong" and "not crops" in verdict.message, verdict

    def by_hand(model):  # the solution: each Linear becomes a convolution that slides
        layers, first = [], True
        for layer in model:
            if isinstance(layer, nn.Linear):
                shape = (16, 5, 5) if first else (layer.in_features, 1, 1)
                conv = nn.Conv2d(shape[0], layer.out_features, shape[1:])
                with torch.no_grad():
                    conv.weight.copy_(layer.weight.reshape(layer.out_features, *shape))
                    conv.bias.copy_(layer.bias)
                layer, first = conv, False
            if not isinstance(layer, nn.Flatten):
                layers.append(layer)
        return nn.Sequential(*layers)
    assert CHECKS["04.1"](by_hand)
