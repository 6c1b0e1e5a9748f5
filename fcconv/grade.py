"""Grade exercise notebooks, trusting nothing a notebook prints.

    python -m fcconv grade DIR/*/02_shapes.ipynb [--timeout 60] [--memory 4] [--csv grades.csv]
                           [--jobs 2] [--max-output 10]

How one notebook is graded:

1. Its reference is the generated exercise of the same name in exercises/: that (not the
   submission's metadata) says which exercises there are and what each check cell holds. A check
   cell deleted or edited in the submission scores 0 with a message, as nbgrader's locked cells do.
2. The submission runs in a fresh kernel, cell by cell, under a time limit per cell, a memory cap
   and a cap on the output kept. Its check cells are not run: the grader runs the checks itself.
3. Before the learner's first cell, the grader loads its own copy of ``fcconv.checks`` from its
   file, under a random name; the copy binds its references to the library then, so a learner's
   patch of ``fcconv.checks``, of a helper of it or of ``fcconv.numpy_ops`` does not reach it.
   After the last cell it calls that copy's check on the learner's answer, for each exercise; the
   verdict comes back as the value of that cell, tagged with a random token the learner's code
   never saw: printed text is never read.
4. A cell over the limit is interrupted; a kernel that ignores the interrupt is killed, and one
   that dies is reported; the notebook's remaining exercises score 0 and the next notebook gets a
   new kernel. Nothing here raises: every failure becomes a line of the report.

A learner who sets out to cheat can still patch NumPy or PyTorch themselves, or dig the grader's
copy out of ``sys.modules``: one process cannot be made tamper-proof (nbgrader has the same limit).
"""

from __future__ import annotations

import ast
import csv
import functools
import json
import multiprocessing
import re
import resource
import secrets
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
CHECKS_FILE = Path(__file__).with_name("checks.py")
_CHECK_CALL = re.compile(r"verdict = checks\.(\w+)\((\w+)\)")
SETUP_TIMEOUT = 300  # the grader's own first cell (imports torch): not the learner's time


@dataclass
class Report:
    path: Path
    results: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (status, message)
    problems: list[str] = field(default_factory=list)

    @property
    def score(self) -> int:
        return sum(status == "correct" for status, _ in self.results.values())

    @property
    def passed(self) -> bool:
        return bool(self.results) and self.score == len(self.results)


@dataclass(frozen=True)
class Exercise:
    id: str
    answer: str  # the name the learner's answer is bound to, e.g. my_output_size
    check_source: str  # the check cell, as generated


def reference_exercises(nb) -> list[Exercise]:
    """The exercises of a generated exercise notebook, read from its check cells."""
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("fcconv", {})
        if meta.get("role") == "check":
            m = _CHECK_CALL.match(cell.source)
            if not m:
                raise ValueError(f"check cell of {meta.get('exercise')} does not start with "
                                 f"'verdict = checks.NAME(ANSWER)': {cell.source!r}")
            out.append(Exercise(meta["exercise"], m.group(2), cell.source))
    return out


def _same(a: str, b: str) -> bool:
    return a.strip().replace("\r\n", "\n") == b.strip().replace("\r\n", "\n")


def _meta_problems(nb) -> list[str]:
    """Cell metadata that is not what the generator writes: reported, then ignored."""
    out = []
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {})
        for key in ("fcconv", "nbgrader"):
            if key in meta and not isinstance(meta[key], dict):
                out.append(f"cell {i + 1}: its metadata '{key}' is {meta[key]!r}, not a mapping "
                           "(ignored)")
        fc = meta.get("fcconv")
        if isinstance(fc, dict) and fc.get("role") in ("answer", "check") and "exercise" not in fc:
            out.append(f"cell {i + 1}: {fc['role']} cell without an exercise id (ignored)")
    return out


def _check_cell_status(nb, ex: Exercise) -> str:
    """'present', 'edited' (a cell still says it is this check) or 'deleted'."""
    if any(c.cell_type == "code" and _same(c.source, ex.check_source) for c in nb.cells):
        return "present"
    for c in nb.cells:
        fc, ng = c.get("metadata", {}).get("fcconv"), c.get("metadata", {}).get("nbgrader")
        if (isinstance(fc, dict) and fc.get("exercise") == ex.id and fc.get("role") == "check") or \
                (isinstance(ng, dict) and ng.get("grade_id") == f"ex{ex.id.replace('.', '_')}_check"):
            return "edited"
    return "deleted"


def _setup_code(module: str) -> str:
    """The grader's first cell, before any of the learner's: load a private copy of
    fcconv.checks under a random name. Its references to the library are bound now, so a later
    patch of fcconv.checks, of a helper of it or of fcconv.numpy_ops does not reach it."""
    return f"""\
def _fcconv_setup():
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location({module!r}, {str(CHECKS_FILE)!r})
    sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[spec.name])
_fcconv_setup()
del _fcconv_setup"""


def _check_code(ex: Exercise, module: str, token: str) -> str:
    """Code the grader runs after the learner's cells: its copy of the check judges the answer;
    the cell's value is the verdict, tagged with a token the learner's code never saw."""
    return f"""\
def _fcconv_grade():
    import json, sys
    v = sys.modules[{module!r}].CHECKS[{ex.id!r}](globals().get({ex.answer!r}))
    return json.dumps([{token!r}, v.status, v.message])
_fcconv_grade()"""


def _read_verdict(cell, token: str) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "execute_result":
            try:
                tag, status, message = json.loads(ast.literal_eval(out["data"]["text/plain"]))
            except (KeyError, ValueError, SyntaxError, TypeError):
                continue
            if tag == token:
                return status, message
    return None


def _error_text(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}".strip()
    return None


class _Runner:
    """One kernel, run one cell at a time: a time limit per cell, a hard kill when an interrupt
    is ignored, a cap on the output kept. ``dead`` says why the kernel is gone, once it is."""

    def __init__(self, folder: Path, timeout: int, memory_bytes: int, output_bytes: int):
        from nbclient import NotebookClient

        class Client(NotebookClient):
            kept, cap, capped, over = 0, output_bytes, True, False

            def output(self, outs, msg, display_id, cell_index):
                if self.capped and msg["msg_type"] != "error":  # errors are kept: they are reported
                    content = msg.get("content", {})
                    self.kept += len(str(content.get("text", ""))) + sum(
                        len(str(v)) for v in content.get("data", {}).values())
                    if self.kept > self.cap:
                        self.over = True
                        return None
                return super().output(outs, msg, display_id, cell_index)

        self.nb = nbformat.v4.new_notebook()
        # On a timeout nbclient interrupts the kernel and answers with this error reply; waiting
        # again (its default) would hang on a kernel that ignores the interrupt.
        self.client = Client(self.nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                             interrupt_on_timeout=True, record_timing=False,
                             error_on_timeout={"ename": "Timeout", "evalue": "", "traceback": []},
                             on_cell_executed=self._record,
                             resources={"metadata": {"path": str(folder)}})
        self.timeout, self.memory_bytes, self.dead, self.reply = timeout, memory_bytes, None, {}

    def _record(self, cell, cell_index, execute_reply):
        self.reply = execute_reply.get("content", {})

    def limit_memory(self) -> None:  # runs in the kernel's process, before it starts
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))

    def _execute(self, source: str, timeout: int):
        """Run code; the cell, and whether it ran out of time (the kernel was interrupted)."""
        from nbclient.exceptions import DeadKernelError

        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.timeout, self.reply = timeout, {}
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        except DeadKernelError:
            self.dead = "the kernel died (os._exit, a crash, or out of memory)"
            return None, False
        return cell, self.reply.get("ename") == "Timeout"

    def run(self, source: str, timeout: int | None = None, capped: bool = True):
        """Run code in the kernel; the executed cell, or None when the kernel is gone. A cell
        over the limit gets a Timeout error; if the kernel then does not run a trivial cell in
        time, it ignored the interrupt: kill it."""
        from nbclient.util import run_sync

        if self.dead:
            return None
        self.client.capped = capped
        cell, timed_out = self._execute(source, timeout or self.timeout)
        if timed_out:
            cell.outputs.insert(0, nbformat.v4.new_output(
                "error", ename="Timeout", evalue=f"ran longer than {self.timeout} s", traceback=[]))
            probe, stuck = self._execute("None", min(self.timeout, 10))
            if probe is not None and stuck:
                run_sync(self.client.km.shutdown_kernel)(now=True)
                self.dead = "the kernel ignored the interrupt and was killed"
        return cell


def grade_notebook(path: str | Path, cell_timeout: int = 60, memory_gb: float = 4.0,
                   output_mb: float = 10.0, reference: Path | None = None) -> Report:
    """Run one notebook in a fresh kernel and judge every exercise of its reference; never raises."""
    if cell_timeout <= 0:
        raise ValueError(f"the time limit per cell must be positive; got {cell_timeout}")
    report = Report(Path(path))
    try:
        _grade(report, cell_timeout, int(memory_gb * 2**30), int(output_mb * 2**20),
               reference or EXERCISES / report.path.name)
    except Exception as err:  # the last line of defence: this notebook is reported, the run goes on
        report.problems.append(f"the grader could not finish this notebook: "
                               f"{type(err).__name__}: {err}")
    return report


def _grade(report: Report, timeout: int, memory: int, output: int, reference: Path) -> None:
    if not reference.exists():
        report.problems.append(f"no exercise notebook {reference.name} in {reference.parent}: "
                               "cannot tell which exercises to grade")
        return
    exercises = reference_exercises(nbformat.read(reference, as_version=4))
    for ex in exercises:  # 0 until a check says otherwise
        report.results[ex.id] = ("error", "not checked")
    try:
        nb = nbformat.read(report.path, as_version=4)
        cells = [(i, c) for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]
        sources = [(i, c.source) for i, c in cells]
    except Exception as err:  # not a notebook at all
        report.problems.append(f"cannot read the notebook: {err}")
        return
    report.problems += _meta_problems(nb)
    present = []
    for ex in exercises:
        status = _check_cell_status(nb, ex)
        if status == "present":
            present.append(ex)
        else:
            report.results[ex.id] = (status, f"its check cell was {status}: restore it (copy it "
                                             "from a fresh exercises/ notebook)")
    learner = [(i, s) for i, s in sources if not any(_same(s, ex.check_source) for ex in exercises)]
    _execute(report, Path(report.path).parent.resolve(), learner, present, timeout, memory, output)


def _execute(report, folder, learner, present, timeout, memory, output) -> None:
    runner = _Runner(folder, timeout, memory, output)
    try:
        with runner.client.setup_kernel(preexec_fn=runner.limit_memory):
            module = f"fcconv._grader_checks_{secrets.token_hex(8)}"
            setup = runner.run(_setup_code(module), timeout=max(SETUP_TIMEOUT, timeout))
            if setup is not None and _error_text(setup):
                report.problems.append(f"the grader's setup failed: {_error_text(setup)} "
                                       "(is --memory too small?)")
            for index, source in learner:
                error = _error_text(runner.run(source) or {})
                if error and error.startswith("Timeout"):
                    report.problems.append(f"cell {index + 1} ran longer than {timeout} s and was "
                                           "stopped: an infinite loop?")
                elif error:
                    report.problems.append(f"cell {index + 1} failed: {error}")
                if runner.dead:
                    report.problems.append(f"cell {index + 1}: {runner.dead}")
                    break
            if runner.client.over:
                report.problems.append(f"the notebook printed more than {output / 2**20:g} MB: "
                                       "the rest of its output was dropped")
            for ex in present:
                if runner.dead:
                    report.results[ex.id] = ("error", f"not checked: {runner.dead}")
                    continue
                token = secrets.token_hex(16)
                cell = runner.run(_check_code(ex, module, token), capped=False)
                verdict = cell and _read_verdict(cell, token)
                report.results[ex.id] = verdict or ("error", "the check did not finish: " + (
                    _error_text(cell or {}) or runner.dead or "no verdict"))
                if runner.dead:
                    report.problems.append(f"while checking {ex.id}: {runner.dead}")
    except RuntimeError as err:  # the kernel could not start at all
        report.problems.append(f"the kernel failed: {err} (is --memory too small?)")


def format_report(r: Report) -> str:
    lines = [f"{r.path}"]
    for ex, (status, message) in sorted(r.results.items()):
        lines.append(f"  {ex}  {1 if status == 'correct' else 0}/1  {status}: {message}")
    for p in r.problems:
        lines.append(f"  ! {p}")
    total = len(r.results)
    lines.append(f"  score {r.score}/{total} ({100 * r.score / total if total else 0:.0f}%)")
    return "\n".join(lines)


def write_csv(reports: list[Report], path: str | Path) -> None:
    """One row per notebook: student (its folder), notebook, a column per exercise (1 or 0),
    total, out of, problems — ready to paste into a gradebook."""
    ids = sorted({ex for r in reports for ex in r.results})
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "notebook", *ids, "total", "out_of", "problems"])
        for r in reports:
            notes = [f"{ex} {s}: {m}" for ex, (s, m) in sorted(r.results.items())
                     if s not in ("correct", "wrong", "not attempted")] + r.problems
            w.writerow([r.path.parent.name, r.path.name,
                        *[int(r.results[ex][0] == "correct") if ex in r.results else "" for ex in ids],
                        r.score, len(r.results), "; ".join(notes)])


def grade_all(paths: list[str | Path], cell_timeout: int = 60, memory_gb: float = 4.0,
              output_mb: float = 10.0, jobs: int = 1):
    """Reports for every notebook, in the order given (a generator), ``jobs`` graded at once."""
    grade = functools.partial(grade_notebook, cell_timeout=cell_timeout, memory_gb=memory_gb,
                              output_mb=output_mb)
    if jobs == 1:
        yield from map(grade, paths)
        return
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(grade, paths)


def main(paths: list[str], cell_timeout: int = 60, memory_gb: float = 4.0, output_mb: float = 10.0,
         csv_path: str | None = None, jobs: int = 1) -> int:
    """Grade every notebook (one fresh kernel each, ``jobs`` at a time); print reports and the
    total; write the CSV. 0 only when every exercise of every notebook is correct."""
    limits = (("--timeout", cell_timeout), ("--memory", memory_gb), ("--max-output", output_mb),
              ("--jobs", jobs))
    for name, value in limits:
        if not value > 0:
            raise ValueError(f"{name} must be positive; got {value}")
    reports = []
    for report in grade_all(paths, cell_timeout, memory_gb, output_mb, jobs):
        reports.append(report)
        print(format_report(report), flush=True)
    score = sum(r.score for r in reports)
    total = sum(len(r.results) for r in reports)
    print(f"total {score}/{total} ({100 * score / total if total else 0:.0f}%)")
    if csv_path:
        write_csv(reports, csv_path)
        print(f"wrote {csv_path}")
    return 0 if reports and all(r.passed for r in reports) else 1

