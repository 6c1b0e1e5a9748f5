"""Grade exercise notebooks, trusting nothing a notebook prints.

    python -m fcconv grade DIR/*/02_shapes.ipynb [--timeout 60] [--memory 4] [--csv grades.csv]
                           [--jobs 2] [--max-output 10]

How one notebook is graded:

1. Before any kernel starts, every submission, its reference (the generated exercise of the same
   name in the course folder's exercises/) and the source of ``fcconv/course/checks.py`` are read
   into memory: a notebook that rewrites files cannot change what it or anyone after it is judged
   by. The reference, not the submission's metadata, says which exercises there are and what each
   check cell holds. A check cell deleted or edited in the submission scores 0 with a message, as
   nbgrader's locked cells do.
2. Each notebook is graded in a process of its own, in a fresh kernel whose working folder is a
   temporary one, cell by cell, under a time limit per cell, a memory cap and a cap on the output
   kept. Its check cells are not run: the grader runs the checks itself.
3. Before the learner's first cell, the grader builds a private copy of the checks in the kernel
   from their source text and binds, in a closure, everything a verdict needs (the checks, the
   library functions they use, json.dumps, hmac): a learner's later patch of ``fcconv.course.checks``,
   of ``fcconv.numpy_ops``, of ``sys.modules['json']`` does not reach it. After the last cell
   that closure judges the learner's answer for each exercise; the verdict comes back as the
   cell's value, signed (HMAC) with a key read from a file the setup deleted: printed text is
   never read, and no cell's source holds the key.
4. A cell over the limit is interrupted; a kernel that ignores the interrupt is killed, and one
   that dies is reported, as is a grading process that dies; that notebook's remaining exercises
   score 0 and the run goes on. Nothing here raises: every failure becomes a line of the report.

What remains: the learner's code and the checks share one process, so a learner who sets out to
cheat can still dig the closure and its key out of the kernel's memory, or patch NumPy or PyTorch;
and the kernel runs with the grading user's rights (run untrusted classes as an unprivileged user
or in a container). nbgrader has the same limits.
"""

from __future__ import annotations

import ast
import csv
import hmac
import json
import multiprocessing
import os
import re
import resource
import secrets
import tempfile
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

import nbformat

from . import kernels
from .folders import course_dir

CHECKS_FILE = Path(__file__).with_name("checks.py")
LIBRARY = Path(__file__).resolve().parent.parent  # the installed fcconv package (its own files)
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


def _setup_code(source: str, name: str, keyfile: str) -> str:
    """The grader's first cell, before any of the learner's. It builds a private copy of the
    checks from their source text (held in memory: nothing on disk a notebook could rewrite),
    drops it from sys.modules, reads the signing key from a file and deletes it, and binds in a
    closure everything the verdict needs (the checks, json.dumps, hmac.digest): nothing is looked
    up at check time where a learner's cell could have replaced it."""
    return f"""\
def _fcconv_setup(source, keyfile):
    import hmac, json, os, sys, types
    module = types.ModuleType('_fcconv_checks_' + os.urandom(8).hex())
    module.__package__ = 'fcconv.course'  # its relative imports reach the library
    sys.modules[module.__name__] = module  # (dataclasses looks it up while it loads)
    try:
        exec(compile(source, '<fcconv grader checks>', 'exec'), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    with open(keyfile, 'rb') as f:
        key = f.read()
    os.remove(keyfile)
    checks, dumps, digest, namespace = module.CHECKS, json.dumps, hmac.digest, globals()

    def grade(exercise, answer):
        verdict = checks[exercise](namespace.get(answer))
        text = dumps([exercise, str(verdict.status), str(verdict.message)])
        return text + '\\n' + digest(key, text.encode(), 'sha256').hex()
    return grade
{name} = _fcconv_setup({source!r}, {keyfile!r})
del _fcconv_setup"""


def _check_code(ex: Exercise, name: str) -> str:
    """Code the grader runs after the learner's cells: its closure judges the answer; the cell's
    value is the verdict, signed with a key the learner's code never saw (not in any cell)."""
    return f"{name}({ex.id!r}, {ex.answer!r})"


def _read_verdict(cell, ex: Exercise, key: bytes) -> tuple[str, str] | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "execute_result":
            try:
                text, signature = ast.literal_eval(out["data"]["text/plain"]).rsplit("\n", 1)
                exercise, status, message = json.loads(text)
            except (KeyError, ValueError, SyntaxError, TypeError, AttributeError):
                continue
            good = hmac.new(key, text.encode(), "sha256").hexdigest()
            if hmac.compare_digest(good, signature) and exercise == ex.id:
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
                             on_cell_executed=self._record, config=kernels.local_sockets(),
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


@dataclass(frozen=True)
class Submission:
    """Everything one notebook's grading reads, read before any kernel runs: a notebook that
    rewrites files on disk cannot change what it, or anyone graded after it, is judged by."""
    path: Path
    text: str | None  # the submission, or None when it could not be read (see error)
    error: str | None
    reference: str | None  # the generated exercise notebook of the same name, or None
    checks: str  # the source of fcconv/course/checks.py
    looked_in: str = ""  # where the reference was looked for (said when it is missing)


def load(path: str | Path, reference: Path | None = None, checks: str | None = None) -> Submission:
    """Read a submission, its reference exercise and the checks into memory; never raises."""
    path = Path(path)
    if reference is None:
        try:
            reference = course_dir() / "exercises" / path.name
        except FileNotFoundError as err:  # no course folder: said in the report
            return Submission(path, None, None, None, checks or CHECKS_FILE.read_text("utf-8"),
                              f"({err})")
    try:
        text, error = path.read_text(encoding="utf-8"), None
    except (OSError, UnicodeError) as err:
        text, error = None, str(err)
    ref = reference.read_text(encoding="utf-8") if reference.exists() else None
    return Submission(path, text, error, ref, checks or CHECKS_FILE.read_text(encoding="utf-8"),
                      f"in {reference.parent}")


def grade_notebook(path: str | Path, cell_timeout: int = 60, memory_gb: float = 4.0,
                   output_mb: float = 10.0, reference: Path | None = None) -> Report:
    """Run one notebook in a fresh kernel (its parent: this process) and judge every exercise of
    its reference; never raises. ``grade_all`` runs each in a process of its own."""
    return grade_submission(load(path, reference), cell_timeout, memory_gb, output_mb)


def grade_submission(sub: Submission, cell_timeout: int = 60, memory_gb: float = 4.0,
                     output_mb: float = 10.0) -> Report:
    if cell_timeout <= 0:
        raise ValueError(f"the time limit per cell must be positive; got {cell_timeout}")
    report = Report(sub.path)
    try:
        _grade(report, sub, cell_timeout, int(memory_gb * 2**30), int(output_mb * 2**20))
    except Exception as err:  # the last line of defence: this notebook is reported, the run goes on
        report.problems.append(f"the grader could not finish this notebook: "
                               f"{type(err).__name__}: {err}")
    return report


def _parse(text: str, problems: list[str]):
    """The notebook; metadata that is not a mapping (the notebook's or a cell's) is reported,
    then treated as missing."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    for where, owner in [("the notebook", raw)] + [
            (f"cell {i + 1}", c) for i, c in enumerate(raw.get("cells") or []) if isinstance(c, dict)]:
        if "metadata" in owner and not isinstance(owner["metadata"], dict):
            problems.append(f"{where}: its metadata is {owner['metadata']!r:.60}, not a mapping "
                            "(ignored)")
            owner["metadata"] = {}
    return nbformat.reads(json.dumps(raw), as_version=4)


def _grade(report: Report, sub: Submission, timeout: int, memory: int, output: int) -> None:
    if sub.reference is None:
        report.problems.append(f"no exercise notebook {sub.path.name} {sub.looked_in}: "
                               "cannot tell which exercises to grade")
        return
    exercises = reference_exercises(nbformat.reads(sub.reference, as_version=4))
    for ex in exercises:  # 0 until a check says otherwise
        report.results[ex.id] = ("error", "not checked")
    try:
        if sub.error:
            raise OSError(sub.error)
        nb = _parse(sub.text, report.problems)
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
    with tempfile.TemporaryDirectory(prefix="fcconv-grade-") as folder:  # the kernel's cwd
        _execute(report, Path(folder), sub.checks, learner, present, timeout, memory, output)


def _execute(report, folder, checks, learner, present, timeout, memory, output) -> None:
    runner = _Runner(folder, timeout, memory, output)
    key, name = secrets.token_bytes(32), f"_{secrets.token_hex(8)}"
    keyfile = folder / f"{secrets.token_hex(8)}.key"
    with open(os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(key)
    try:
        with runner.client.setup_kernel(preexec_fn=runner.limit_memory):
            setup = runner.run(_setup_code(checks, name, str(keyfile)),
                               timeout=max(SETUP_TIMEOUT, timeout))
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
                was_dead = runner.dead
                report.results[ex.id] = _run_check(runner, ex, name, key, output)
                if runner.dead and not was_dead:
                    report.problems.append(f"while checking {ex.id}: {runner.dead}")
    except RuntimeError as err:  # the kernel could not start at all
        report.problems.append(f"the kernel failed: {err} (is --memory too small?)")


def _run_check(runner: _Runner, ex: Exercise, name: str, key: bytes, output: int):
    """One check, under the output cap too (a thread of the learner's may still be printing)."""
    if runner.dead:
        return "error", f"not checked: {runner.dead}"
    runner.client.kept, runner.client.over = 0, False
    cell = runner.run(_check_code(ex, name))
    verdict = cell and _read_verdict(cell, ex, key)
    if verdict:
        return verdict
    if runner.client.over:
        why = f"output cap exceeded (more than {output / 2**20:g} MB printed while checking)"
    else:
        why = _error_text(cell or {}) or runner.dead or "no verdict"
    return "error", f"the check did not finish: {why}"


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


def _unchecked(sub: Submission, why: str) -> Report:
    """The report of a notebook whose grading process is gone: every exercise 0, and why."""
    report = Report(sub.path, problems=[why])
    try:
        for ex in reference_exercises(nbformat.reads(sub.reference, as_version=4)):
            report.results[ex.id] = ("error", f"not checked: {why}")
    except Exception:  # no reference: the problem line says enough
        pass
    return report


def _grade_in_child(conn, sub: Submission, limits: tuple) -> None:
    conn.send(grade_submission(sub, *limits))
    conn.close()


def _library_snapshot() -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(LIBRARY.rglob("*.py"))}


def _restore(snapshot: dict[Path, bytes]) -> list[str]:
    """Put back any library file a notebook changed on disk; their names."""
    changed = [p for p, text in snapshot.items() if not p.exists() or p.read_bytes() != text]
    for p in changed:
        p.write_bytes(snapshot[p])
    return [str(p.relative_to(LIBRARY.parent)) for p in changed]


def grade_all(paths: list[str | Path], cell_timeout: int = 60, memory_gb: float = 4.0,
              output_mb: float = 10.0, jobs: int = 1):
    """Reports for every notebook, in the order given (a generator), ``jobs`` graded at once.

    Every file is read before the first kernel starts. Each notebook is graded in a process of
    its own (the parent of its kernel), so a kernel that kills its parent loses that notebook's
    marks only: "grading process died", and the run goes on."""
    if cell_timeout <= 0:
        raise ValueError(f"the time limit per cell must be positive; got {cell_timeout}")
    checks = CHECKS_FILE.read_text(encoding="utf-8")
    subs = [load(p, checks=checks) for p in paths]
    snapshot = _library_snapshot()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["fcconv.course.grade"])  # each child forks with the imports done
    running, done, started, given = {}, {}, 0, 0
    suspects: dict[int, str] = {}  # notebooks running when a grader file was found changed
    try:
        while given < len(subs):
            while started < len(subs) and len(running) < jobs:
                running.update(_start(ctx, started, subs[started],
                                      (cell_timeout, memory_gb, output_mb), done))
                started += 1
            for conn in wait(list(running)) if running else []:
                i, proc = running.pop(conn)
                try:
                    done[i] = conn.recv()
                except Exception:  # EOF: the process died before it could answer
                    done[i] = _unchecked(subs[i], "the grading process died (did the notebook "
                                                  "kill its kernel's parent?)")
                conn.close()
                proc.join()
                changed = _restore(snapshot)
                if changed:  # done by this notebook or by one graded beside it: name them all
                    note = ("a notebook graded now changed the grader's files on disk "
                            f"(restored): {', '.join(changed)}")
                    for j in [i, *(k for k, _ in running.values())]:
                        suspects.setdefault(j, note)
                if i in suspects:
                    done[i].problems.append(suspects.pop(i))
            while given in done:
                yield done.pop(given)
                given += 1
    finally:
        for _, proc in running.values():  # the consumer stopped early: stop what is left
            proc.kill()
            proc.join()


def _start(ctx, i: int, sub: Submission, limits: tuple, done: dict) -> dict:
    """Start grading one notebook in a child process; {reader: (i, process)}, or {} with its
    report in ``done`` when no process could be started."""
    reader, writer = ctx.Pipe(duplex=False)
    try:
        proc = ctx.Process(target=_grade_in_child, args=(writer, sub, limits))
        proc.start()
    except Exception as err:
        reader.close()
        done[i] = _unchecked(sub, f"could not start a grading process: {err}")
        return {}
    finally:
        writer.close()  # the child holds its own end: its death is an EOF here
    return {reader: (i, proc)}


def main(paths: list[str], cell_timeout: int = 60, memory_gb: float = 4.0, output_mb: float = 10.0,
         csv_path: str | None = None, jobs: int = 1) -> int:
    """Grade every notebook (one fresh kernel each, ``jobs`` at a time); print reports and the
    total; write the CSV as reports arrive. 0 only when every exercise of every notebook is
    correct."""
    limits = (("--timeout", cell_timeout), ("--memory", memory_gb), ("--max-output", output_mb),
              ("--jobs", jobs))
    for name, value in limits:
        if not value > 0:
            raise ValueError(f"{name} must be positive; got {value}")
    reports = []
    for report in grade_all(paths, cell_timeout, memory_gb, output_mb, jobs):
        reports.append(report)
        print(format_report(report), flush=True)
        if csv_path:  # rewritten after each notebook: a run cut short keeps what was graded
            write_csv(reports, csv_path)
    score = sum(r.score for r in reports)
    total = sum(len(r.results) for r in reports)
    print(f"total {score}/{total} ({100 * score / total if total else 0:.0f}%)")
    if csv_path:
        write_csv(reports, csv_path)
        print(f"wrote {csv_path}")
    return 0 if reports and all(r.passed for r in reports) else 1
