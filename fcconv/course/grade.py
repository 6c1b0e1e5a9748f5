"""Grade exercise notebooks across a process boundary: the learner's kernel computes answers, this
process judges them.

    python -m fcconv grade DIR/*/02_shapes_exercises.ipynb [--timeout 60] [--memory 4] [--max-output 10]
                           [--deadline 600] [--jobs 2] [--csv grades.csv]

How a run goes:

1. Every option is checked before anything runs (``check_options``, ``check_csv``). Every
   submission and its reference (the generated exercise of the same name in the course folder's
   exercises/) is read into memory first: regular files only, under a size cap. The reference
   says which exercises there are and what each check cell holds; a check cell deleted or edited
   in the submission scores 0, as nbgrader's locked cells do.
2. For each exercise still in place, this process makes the check's plan: fixed cases and fresh
   random ones from a seed drawn here (``secrets``), never sent anywhere. Only the inputs go to the
   kernel (``wire.request``).
3. Each notebook runs in a process of its own (``sandbox.run``): a fresh kernel in a fresh folder,
   the learner's cells one by one under their limits; only then the grader's check handler is
   installed (with each check's nonce), and for each exercise the learner's function is called on
   the inputs under a call watch tested first, its answers sent back as plain data, signed
   (``wire.evaluate``, ``wire.serve``).
4. This process, which imported everything it needs before the first kernel started and never
   loads what a kernel wrote, reads those answers (``wire.decode``: no pickle, size caps) and
   judges them: every comparison, type check, verdict and hint is computed here. Nothing a kernel
   sends can say "correct": it can only send answers, judged on cases it never saw in advance.
5. After each notebook, the fcconv package, the exercises/ folder and Python's startup hooks
   (``*.pth``, sitecustomize) are checked whole (new files too) and put back if changed, and
   every process left behind is ended. The CSV is written once, atomically, at the end.

Nothing here raises for a notebook: every failure becomes a line of the report. What the grader
cannot prevent is in docs/instructor.md.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import multiprocessing
import os
import secrets
import signal
import site
import stat
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from multiprocessing import forkserver
from multiprocessing.connection import wait
from pathlib import Path

import nbformat
import numpy as np

from . import sandbox
from .checks import CHECKS, core, wire
from .folders import course_dir
from .scan import UNSCANNED, forbidden_in_source, read_cells

LIBRARY = Path(__file__).resolve().parent.parent  # the installed fcconv package (its own files)
WIRE_SOURCE = Path(wire.__file__).read_text(encoding="utf-8")  # sent to each kernel as text
NOTEBOOK_CAP = 64 * 2**20  # bytes of one submission or reference notebook
RESULT_CAP = 256 * 2**20  # bytes of what one grading process sends back
SETUP_TIMEOUT, CHECK_ALLOWANCE = 300, 30  # the grader's own time, never the learner's
_CHECK_CALL = "verdict = checks.{name}({answer})"


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
    name: str  # the check's name, e.g. output_size
    answer: str  # the name the learner's answer is bound to, e.g. my_output_size
    check_source: str  # the check cell, as generated


# --------------------------------------------------------------------------- options

def _memory_gb() -> float:
    """This machine's memory, in GB."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 1024.0


# option -> (lowest, highest, what it counts): the sensible range of each limit
LIMITS = {"--timeout": (1, 3600, "seconds per cell"),
          "--memory": (0.25, _memory_gb(), "GB per kernel"),
          "--max-output": (0.01, 1024, "MB of output per notebook"),
          "--jobs": (1, 64, "notebooks at once"),
          "--deadline": (10, 86400, "seconds for all of a notebook's cells")}


def check_limit(option: str, value) -> None:
    """ValueError unless ``value`` is a finite number in the option's range (``LIMITS``)."""
    low, high, unit = LIMITS[option]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{option} must be a number from {low:g} to {high:g} ({unit}); "
                         f"got {value!r}")


def check_options(timeout, memory_gb, output_mb, jobs, deadline) -> None:
    """ValueError unless every limit is a finite number in its sensible range."""
    for option, value in zip(LIMITS, (timeout, memory_gb, output_mb, jobs, deadline)):
        check_limit(option, value)


def check_csv(path: str | Path) -> Path:
    """The CSV target, if it can be written: a regular file or a new name in an existing folder
    where this user can create files; ValueError (saying why) otherwise. Checked before any
    grading, so that a run never ends in a traceback after the work is done."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValueError(f"--csv {path}: not a regular file")
    if not path.parent.is_dir():
        raise ValueError(f"--csv {path}: the folder {path.parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=".fcconv-csv-")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"--csv {path}: cannot write in {path.parent} ({err.strerror})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"--csv {path}: not writable")
    return path


# --------------------------------------------------------------------------- reading

def read_regular(path: Path, cap: int = NOTEBOOK_CAP) -> tuple[str | None, str | None]:
    """(text, None), or (None, why): only a regular file under ``cap`` bytes, in UTF-8 (a FIFO,
    a device or a link to one is refused without blocking or reading it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        return None, err.strerror or str(err)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file (a folder, a FIFO, a device?)"
        if info.st_size > cap:
            return None, f"larger than {cap // 2**20} MB"
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(cap + 1)
        if len(data) > cap:
            return None, f"larger than {cap // 2**20} MB"
        return data.decode("utf-8"), None
    except (OSError, UnicodeError) as err:
        return None, str(err)
    finally:
        os.close(fd)


def reference_exercises(nb) -> list[Exercise]:
    """The exercises of a generated exercise notebook, read from its check cells."""
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("fcconv", {})
        if meta.get("role") == "check":
            first = cell.source.split("\n", 1)[0]
            ex = meta["exercise"]
            check = CHECKS.get(ex)
            answer = first.removeprefix(f"verdict = checks.{check.__name__}(").removesuffix(")") \
                if check else ""
            if not check or first != _CHECK_CALL.format(name=check.__name__, answer=answer) or \
                    not answer.isidentifier():
                raise ValueError(f"check cell of {ex} does not start with 'verdict = "
                                 f"checks.NAME(ANSWER)' for a known check: {cell.source!r}")
            out.append(Exercise(ex, check.__name__, answer, cell.source))
    return out


def _same(a: str, b: str) -> bool:
    return a.strip().replace("\r\n", "\n") == b.strip().replace("\r\n", "\n")


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
    return _reads(json.dumps(raw))


def _reads(text: str):
    """A notebook from its JSON text, without nbformat's warnings (a notebook without cell ids
    is fine to grade: nothing is written back)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nbformat.reads(text, as_version=4)


def _meta_problems(nb) -> list[str]:
    """Cell metadata that is not what the generator writes: reported, then ignored."""
    out = []
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {})
        for key in ("fcconv", "nbgrader"):
            if key in meta and not isinstance(meta[key], dict):
                out.append(f"cell {i + 1}: its metadata '{key}' is {meta[key]!r:.60}, not a "
                           "mapping (ignored)")
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


# --------------------------------------------------------------------------- one notebook, prepared

@dataclass
class Prepared:
    """A notebook read and planned, before any kernel: its report so far, the job for its
    grading process (None when nothing is to run), and what judging needs."""

    report: Report
    job: sandbox.Job | None = None
    plans: dict = field(default_factory=dict)  # exercise id -> (check, plan, forbidden in source)


def prepare(path: str | Path, limits: dict, isolate, watch: Watch) -> Prepared:
    """Read a submission and its reference, plan each check present; never raises. watch:
    what the kernel gets as it was before any ran (the library, site-packages' .pth files)."""
    path = Path(path)
    report = Report(path)
    prepared = Prepared(report)
    try:
        _prepare(prepared, limits, isolate, watch)
    except Exception as err:  # the last line of defence: this notebook is reported, the run goes on
        report.problems.append(f"the grader could not prepare this notebook: "
                               f"{type(err).__name__}: {sandbox.clean(err)}")
        prepared.job = None
    return prepared


def _prepare(prepared: Prepared, limits: dict, isolate, watch: Watch) -> None:
    report, path = prepared.report, prepared.report.path
    try:
        reference_path = course_dir() / "exercises" / path.name
    except FileNotFoundError as err:  # no course folder: said in the report
        report.problems.append(f"no exercise notebook {path.name} ({err}): cannot tell which "
                               "exercises to grade")
        return
    reference, why = read_regular(reference_path)
    if reference is None:
        report.problems.append(f"no exercise notebook {path.name} in {reference_path.parent} "
                               f"({why}): cannot tell which exercises to grade")
        return
    exercises = reference_exercises(_reads(reference))
    for ex in exercises:  # 0 until a check says otherwise
        report.results[ex.id] = ("error", "not checked")
    text, why = read_regular(path)
    try:
        if text is None:
            raise OSError(why)
        nb = _parse(text, report.problems)
        sources = [(i, c.source) for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]
    except Exception as err:  # not a notebook at all
        report.problems.append(f"cannot read the notebook: {sandbox.clean(err)}")
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
    cells = [(i + 1, s) for i, s in sources if not any(_same(s, ex.check_source) for ex in exercises)]
    statements, unread = read_cells([s for _, s in cells], [i for i, _ in cells])  # once, capped
    report.problems += unread
    rng = np.random.default_rng(secrets.randbits(128))  # this process's secret: never sent
    requests, modules = [], {"numpy", "fcconv"}  # what check cells import
    for ex in present:
        check = CHECKS[ex.id]
        plan = check.plan(rng)
        forbidden = forbidden_in_source(statements, ex.answer, check.forbids)
        prepared.plans[ex.id] = (check, plan, forbidden)
        requests.append((ex.id, ex.answer, check.request(plan, secrets.token_hex(16))))
        if check.needs_torch:
            modules.add("torch")
        modules |= {a.build.rsplit(".", 1)[0] for call in plan.calls for a in call
                    if isinstance(a, wire.Module)}
    memory = int(limits["memory_gb"] * 2**30)
    prepared.job = sandbox.Job(
        cells=cells, checks=requests, setup=_setup_code(sorted(modules), memory),
        install=_install_code({ex: request["nonce"] for ex, _, request in requests}),
        library=watch.library, timeout=limits["cell_timeout"],
        check_timeout=limits["cell_timeout"] + CHECK_ALLOWANCE, deadline=limits["deadline"],
        memory=memory, output=int(limits["output_mb"] * 2**20), isolate=isolate, site=watch.site,
        folder="", expose=tuple(map(str, python_paths())))


def _setup_code(modules: list[str], memory: int) -> str:
    """The grader's first cell in a kernel, before any of the learner's: the imports its checks
    need; a profile hook for every thread the learner's code starts and an audit hook (which
    cannot be removed) that hand those threads the running check's watch and note a new process;
    then the memory cap: ``memory`` bytes on top of what the grader's own imports took. Nothing
    of the checks is here yet (``INSTALL`` comes after the learner's cells)."""
    return f"""\
def _fcconv_setup(modules, memory, event, processes):
    import importlib, resource, sys, threading
    for name in modules:
        importlib.import_module(name)
    active = []

    def thread_profile(frame, what, arg):
        if active:
            active[-1](frame, what, arg)

    def audit(what, args):
        if what == event:
            if active and active[-1] is not args[0]:
                active[-1](None, "replaced", None)
            active[:] = [] if args[0] is None else [args[0]]
        elif active and what in processes:
            active[-1](None, "process", what)
    threading.setprofile(thread_profile)
    sys.addaudithook(audit)
    try:
        with open("/proc/self/status") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))
    except (OSError, StopIteration, ValueError):
        used = 0
    resource.setrlimit(resource.RLIMIT_DATA, (used + memory, used + memory))
_fcconv_setup({modules!r}, {memory}, {wire.WATCH_EVENT!r}, {wire.PROCESS_EVENTS!r})
del _fcconv_setup"""


def _install_code(nonces: dict) -> str:
    """The grader's cell after the learner's, run silently (no echo of its code): the learner's
    side of the checks (wire.py, from the text this process read) installed as the kernel's
    handler of check requests (``wire.serve``), with each check's nonce, which no request
    carries: code that ran before cannot know them. No name is left in the learner's
    namespace."""
    return f"""\
def _fcconv_install(source, nonces):
    import sys, types
    wire = types.ModuleType("fcconv_grader_wire")
    sys.modules[wire.__name__] = wire  # (dataclasses looks its module up while it loads)
    exec(compile(source, "<fcconv grader: wire.py>", "exec"), wire.__dict__)
    del sys.modules[wire.__name__]
    wire.serve(get_ipython(), nonces)
_fcconv_install({WIRE_SOURCE!r}, {nonces!r})
del _fcconv_install"""


def judge(prepared: Prepared, result: dict) -> Report:
    """The report of a notebook, from what its grading process sent back: every verdict is
    computed here, from the plans this process kept."""
    report = prepared.report
    problems = result.get("problems") if isinstance(result, dict) else None
    replies = result.get("replies") if isinstance(result, dict) else None
    if not isinstance(problems, list) or not isinstance(replies, dict):
        report.problems.append("the grading process sent back no result")
        problems, replies = [], {}
    report.problems += [sandbox.clean(p) for p in problems[:200]]
    for ex, (check, plan, forbidden) in prepared.plans.items():
        entry = replies.get(ex)
        if not isinstance(entry, dict) or not ("reply" in entry or "error" in entry):
            report.results[ex] = ("error", "not checked: no reply from the kernel")
        elif "error" in entry:
            report.results[ex] = ("error", sandbox.clean(entry["error"]))
        else:
            verdict = check.judge(plan, entry["reply"])
            if UNSCANNED in forbidden and verdict.status in ("correct", "wrong"):
                verdict = core.Verdict(ex, "error", "the answer uses a name bound in a cell the "
                                       "source scan could not read (see below): not checked")
            elif forbidden and (verdict.status == "correct" or (  # (the watch's own hint says more)
                    verdict.status == "wrong" and not verdict.message.startswith(core.FORBIDDEN))):
                verdict = core.Verdict(ex, "wrong", core.forbidden_call(forbidden[0]))
            report.results[ex] = (verdict.status, verdict.message)
    return report


# --------------------------------------------------------------------------- what the grader reads

class Watch:
    """Files this grader reads, whole trees with new files too: the fcconv package, exercises/,
    and Python's startup hooks (*.pth, sitecustomize, usercustomize). ``restore`` puts back
    whatever changed since the start, and names it."""

    def __init__(self, install: bool = False):
        self.trees = [LIBRARY]
        try:
            self.trees.append(course_dir() / "exercises")
        except FileNotFoundError:
            pass
        self.hook_dirs = [Path(d) for d in {*site.getsitepackages(), site.getusersitepackages(),
                                            *site.getsitepackages([sys.base_prefix])}
                          if Path(d).is_dir()]
        self.before = self._scan()
        self.library = self._library()
        self.site = self._site()
        self.install = _install_signature() if install else None

    def install_changed(self) -> list[str]:
        """Files of the Python installation (venv and base) changed since the start, found by
        their status-change times, which no user can set back; [] when not watched."""
        if self.install is None:
            return []
        now = _install_signature()
        return sorted(p for p in {*now, *self.install} if now.get(p) != self.install.get(p))

    def _entries(self):
        for root in self.trees:
            for folder, dirs, files in os.walk(root, followlinks=False):
                for name in dirs + files:
                    yield Path(folder) / name
        for d in self.hook_dirs:
            for p in d.iterdir():
                if p.suffix == ".pth" or p.stem in ("sitecustomize", "usercustomize"):
                    yield p

    def _scan(self) -> dict[Path, tuple]:
        """path -> (kind, content, mode); the modification times on the side (``self.mtimes``)."""
        out, self.mtimes = {}, {}
        for p in self._entries():
            try:
                info = os.lstat(p)
                if stat.S_ISLNK(info.st_mode):
                    out[p] = ("link", os.readlink(p), 0)
                elif stat.S_ISDIR(info.st_mode):
                    out[p] = ("dir", None, stat.S_IMODE(info.st_mode))
                elif stat.S_ISREG(info.st_mode):
                    out[p] = ("file", p.read_bytes(), stat.S_IMODE(info.st_mode))
                    self.mtimes[p] = info.st_mtime_ns
                else:
                    out[p] = ("other", None, 0)
            except OSError:
                pass
        return out

    def _site(self) -> dict:
        """What a kernel's start-up uses instead of Python's site set-up: this Python's prefixes
        and each site-packages folder on its path, with its .pth files' text as they were
        before any kernel ran."""
        folders = [str(p) for p in sys.path if p and Path(p).is_dir() and
                   Path(p).resolve() in {d.resolve() for d in self.hook_dirs}]
        return {"prefix": sys.prefix, "exec_prefix": sys.exec_prefix, "folders": [
            (f, [content.decode("utf-8", "replace") for p, (kind, content, _) in
                 sorted(self.before.items()) if kind == "file" and p.suffix == ".pth" and
                 p.parent == Path(f)]) for f in dict.fromkeys(folders)]}

    def _library(self) -> dict[str, tuple[bytes, int]]:
        """The fcconv package as it was before any kernel ran, without the grader: {relative
        path: (bytes, mtime)}. The checks (what they compare with, how they plan) and the
        grading machinery stay out of the kernel; ``fcconv.course.checks`` is there only as
        ``KERNEL_CHECKS``, so that a notebook's ``from fcconv.course import checks`` works."""
        out = {str(p.relative_to(LIBRARY)): (content, self.mtimes[p])
               for p, (kind, content, _) in self.before.items()
               if kind == "file" and p.is_relative_to(LIBRARY) and not _grader_file(p)}
        out["course/checks/__init__.py"] = (KERNEL_CHECKS.encode(), 0)
        return out

    def restore(self) -> list[str]:
        now = self._scan()
        changed = sorted(p for p in {*now, *self.before} if now.get(p) != self.before.get(p))
        for p in sorted(changed, key=lambda p: len(p.parts), reverse=True):  # new files first
            if p not in self.before:
                try:
                    sandbox.remove(p) if now[p][0] == "dir" else p.unlink()
                except OSError:
                    pass
        for p in sorted(changed, key=lambda p: len(p.parts)):  # then folders, then their files
            kind, content, mode = self.before.get(p, (None, None, 0))
            try:
                if kind == "dir":
                    p.mkdir(exist_ok=True)
                    os.chmod(p, mode)
                elif kind == "file":
                    if p.is_symlink() or p.is_dir():
                        sandbox.remove(p) if p.is_dir() else p.unlink()
                    p.write_bytes(content)
                    os.chmod(p, mode)
                elif kind == "link":
                    if p.exists() or p.is_symlink():
                        p.unlink()
                    os.symlink(content, p)
            except OSError:
                pass
        return [str(p) for p in changed]


def _install_signature() -> dict[str, tuple]:
    """(inode, size, mtime, ctime) of every file of the Python installation this runs on."""
    out = {}
    for root in dict.fromkeys([sys.prefix, sys.base_prefix]):
        for folder, _, files in os.walk(root):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                out[path] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return out


def _grader_file(path: Path) -> bool:
    """A file of the grader itself (the checks, the grading machinery), bytecode included."""
    rel = path.relative_to(LIBRARY).parts
    return rel[:2] == ("course", "checks") or (rel[0] == "course" and path.name.split(".")[0] in
                                              ("grade", "sandbox", "scan", "isolate"))


# What a grading kernel imports as fcconv.course.checks: nothing of the checks.
KERNEL_CHECKS = \
    '''"""Not here: while a notebook is graded, the grader plans and judges every exercise in its own
process (fcconv.course.grade), and the checks stay there. A check cell is not run while grading;
a check called anyway says so."""


class _NotHere:
    def __init__(self, name):
        self.name = name

    def __bool__(self):
        return True

    def __repr__(self):
        return f"{self.name}: checked by the grader, not in this kernel"

    __str__ = __repr__


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return lambda *args, **kwargs: _NotHere(name)
'''


# --------------------------------------------------------------------------- the run

def python_paths() -> list[Path]:
    """The folders of the Python installation a boxed kernel sees, read-only (with the system
    folders): this Python's prefixes and folder, and the site-packages it reads; never the
    course folder or the folder the library comes from (an editable install puts it on the
    path), which the kernel does not need."""
    paths = {Path(p) for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix)}
    paths.add(Path(os.path.realpath(sys.executable)).parent.parent)
    paths |= {Path(p) for p in {*site.getsitepackages(), site.getusersitepackages()} if p in sys.path}
    away = [LIBRARY.parent]
    try:
        away.append(course_dir())
    except FileNotFoundError:
        pass
    found = {p.resolve() for p in paths if p.is_dir()}
    found = {p for p in found if p != Path("/") and not any(p == a.resolve() for a in away)}
    return sorted(p for p in found if not any(p != q and p.is_relative_to(q) for q in found))


def grade_notebook(path: str | Path, cell_timeout: int = 60, memory_gb: float = 4.0,
                   output_mb: float = 10.0, deadline: float = 600) -> Report:
    """Grade one notebook (see ``grade_all``)."""
    return next(grade_all([path], cell_timeout, memory_gb, output_mb, 1, deadline))


def grade_all(paths: list, cell_timeout: int = 60, memory_gb: float = 4.0,
              output_mb: float = 10.0, jobs: int = 1, deadline: float = 600, isolate=None):
    """Reports for every notebook, in the order given (a generator), ``jobs`` graded at once.

    isolate: None (a box for each kernel where the system allows one; see sandbox), True (a box,
    or RuntimeError), False (no box), or a mode ``sandbox.isolation`` found. Where kernels cannot
    be boxed, one notebook is graded at a time whatever ``jobs`` says: a kernel running as this
    user beside another could reach it."""
    check_options(cell_timeout, memory_gb, output_mb, jobs, deadline)
    sandbox.trusted_program(sys.executable)  # ValueError, before anything runs, if not
    limits = dict(cell_timeout=cell_timeout, memory_gb=memory_gb, output_mb=output_mb,
                  deadline=deadline)
    mode, why = (isolate, "") if isinstance(isolate, str) else \
        sandbox.isolation(python_paths()) if isolate in (None, True) else (None, "")
    if isolate is True and mode is None:
        raise RuntimeError(why)
    jobs = jobs if mode is not None else 1
    watch = Watch(install=mode is None)  # boxed, a kernel cannot write the installation
    preps = [prepare(p, limits, mode, watch) for p in paths]  # all read before any kernel
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["fcconv.course.sandbox"])
    forkserver.ensure_running()
    keep = set(sandbox.children(os.getpid()))  # this process's own children: never ended here
    sandbox.become_subreaper()
    sandbox.not_traceable()  # (a kernel without namespaces runs as this user)
    running, done, started, given, stop = {}, {}, 0, 0, None
    users = sandbox.user_ids(jobs)  # root mode: each kernel running at once has a user of its own
    suspects: dict[int, list] = {}  # notebooks running when a watched file was found changed
    try:
        while given < len(preps):
            while started < len(preps) and len(running) < jobs:
                if stop:
                    preps[started].report.problems.append(stop)
                    done[started] = _unchecked(preps[started])
                else:
                    user = min(set(users) - {u for *_, u in running.values()})
                    running.update(_start(ctx, started, preps[started], done, user))
                started += 1
            ready = wait(list(running), timeout=1) if running else []
            now, table = time.monotonic(), sandbox.process_table()
            for conn, (i, proc, end, _) in list(running.items()):
                stopped = table.get(proc.pid, (0, "?"))[1] in ("T", "t")
                if conn not in ready and now < end and not stopped:
                    continue
                del running[conn]
                done[i] = _finish(conn, proc, preps[i], conn not in ready, stopped)
                sandbox.end_descendants(skip=keep | {p.pid for _, p, _, _ in running.values()})
                _remove_folder(preps[i])
                changed = watch.restore()
                if changed:  # done by this notebook or by one graded beside it: name them all
                    note = ("a notebook graded now changed files the grader reads (restored): "
                            + ", ".join(changed[:10]) + (" ..." if len(changed) > 10 else ""))
                    for j in [i, *(k for k, *_ in running.values())]:
                        suspects.setdefault(j, []).append(note)
                installed = watch.install_changed()
                if installed and not stop:  # kernels started from now on would run that code
                    stop = ("not graded: a notebook graded before it changed the Python "
                            f"installation ({', '.join(installed[:3])}): reinstall it (make venv) "
                            "and grade the rest again")
                    for j in [i, *(k for k, *_ in running.values())]:
                        suspects.setdefault(j, []).append(
                            f"a notebook graded now changed the Python installation: "
                            f"{', '.join(installed[:3])}")
                done[i].problems += suspects.pop(i, [])
            while given in done:
                yield done.pop(given)
                given += 1
    finally:
        for _, proc, _, _ in running.values():  # stopped early (the consumer, a signal): end the rest
            proc.kill()
            proc.join()
        sandbox.end_descendants(skip=keep)
        for prep in preps:
            _remove_folder(prep)
        sandbox.stop_being_subreaper()
        sandbox.not_traceable(False)


def _start(ctx, i: int, prep: Prepared, done: dict, user: int) -> dict:
    """Start grading one notebook in a process of its own; {reader: (i, process, hard end,
    the kernel's user)}, or {} with its report in ``done`` when there is nothing to run or no
    process could start."""
    job = prep.job
    if job is None:
        done[i] = prep.report
        return {}
    hard_end = time.monotonic() + SETUP_TIMEOUT + 180 + job.deadline + \
        len(job.checks) * (job.check_timeout + 15) + 60
    reader, writer = ctx.Pipe(duplex=False)
    try:
        prep.job = job = dataclasses.replace(job, folder=sandbox.mkdtemp(), user=user)
        proc = ctx.Process(target=sandbox.run, args=(job, writer), daemon=True)
        proc.start()
    except Exception as err:
        reader.close()
        prep.report.problems.append(f"could not start a grading process: {sandbox.clean(err)}")
        done[i] = _unchecked(prep)
        return {}
    finally:
        writer.close()  # the child holds its own end: its death is an EOF here
    return {reader: (i, proc, hard_end, user)}


def _finish(conn, proc, prep: Prepared, timed_out: bool, stopped: bool) -> Report:
    """The report of a notebook whose grading process answered, died, was stopped, or ran out
    of time."""
    result = None
    if stopped:
        prep.report.problems.append("the grading process was stopped (SIGSTOP from the "
                                    "notebook?) and was ended")
    elif timed_out:
        prep.report.problems.append("the grading process ran past its time and was ended (a "
                                    "stuck kernel?)")
    else:
        try:
            result = json.loads(conn.recv_bytes(RESULT_CAP))
        except EOFError:  # the process died before it could answer
            prep.report.problems.append("the grading process died (did the notebook kill its "
                                        "kernel's parent?)")
        except Exception as err:  # too long, or not JSON
            prep.report.problems.append(f"the grading process's answer could not be read "
                                        f"({type(err).__name__})")
    conn.close()
    if proc.is_alive():
        proc.kill()
    proc.join()
    return judge(prep, result) if result is not None else _unchecked(prep)


def _remove_folder(prep: Prepared) -> None:
    """The notebook's folder, once every process that could write in it is gone."""
    if prep.job is not None and prep.job.folder:
        sandbox.remove(Path(prep.job.folder))


def _unchecked(prep: Prepared) -> Report:
    """Every exercise of a notebook whose grading process is gone scores 0, and says why."""
    why = prep.report.problems[-1] if prep.report.problems else "not checked"
    for ex in prep.plans:
        prep.report.results[ex] = ("error", f"not checked: {why}")
    return prep.report


# --------------------------------------------------------------------------- reports

def shown_path(path) -> str:
    """A submission's path as the report and the CSV show it: a student's folder name may hold
    terminal escapes or control characters, which are replaced (never printed as they are)."""
    return "".join(c if c.isprintable() else "?" for c in str(path))


def format_report(r: Report) -> str:
    lines = [shown_path(r.path)]
    for ex, (status, message) in sorted(r.results.items()):
        lines.append(f"  {ex}  {1 if status == 'correct' else 0}/1  {status}: {message}")
    for p in r.problems:
        lines.append(f"  ! {p}")
    total = len(r.results)
    lines.append(f"  score {r.score}/{total} ({100 * r.score / total if total else 0:.0f}%)")
    return "\n".join(lines)


def _cell(value) -> str:
    """A CSV field that a spreadsheet will not read as a formula."""
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_csv(reports: list[Report], path: str | Path) -> None:
    """One row per notebook: student (its folder), notebook, a column per exercise (1 or 0),
    total, out of, problems — ready to paste into a gradebook. Written to a temporary file in
    the same folder, then moved over the target in one step."""
    ids = sorted({ex for r in reports for ex in r.results})
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["student", "notebook", *ids, "total", "out_of", "problems"])
    for r in reports:
        notes = [f"{ex} {s}: {m}" for ex, (s, m) in sorted(r.results.items())
                 if s not in ("correct", "wrong", "not attempted")] + r.problems
        w.writerow([_cell(shown_path(r.path.parent.name)), _cell(shown_path(r.path.name)),
                    *[int(r.results[ex][0] == "correct") if ex in r.results else "" for ex in ids],
                    r.score, len(r.results), _cell("; ".join(notes))])
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fcconv-csv-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(out.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Stopped(Exception):
    """The grader was told to stop (SIGTERM, SIGHUP, Ctrl-C)."""


def _stop(signum, _frame):
    for sig in _STOP_SIGNALS:  # once: the clean-up itself is not interrupted
        signal.signal(sig, signal.SIG_IGN)
    raise Stopped(signal.Signals(signum).name)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def main(paths: list[str], cell_timeout: int = 60, memory_gb: float = 4.0, output_mb: float = 10.0,
         csv_path: str | None = None, jobs: int = 1, deadline: float = 600) -> int:
    """Grade every notebook (one fresh kernel each, ``jobs`` at a time); print reports and the
    total; write the CSV once, at the end. 0 only when every exercise of every notebook is
    correct. SIGTERM, SIGHUP or Ctrl-C end every kernel and grading process at once, say how
    far it got (no CSV), and exit 128 + the signal's number."""
    check_options(cell_timeout, memory_gb, output_mb, jobs, deadline)
    if csv_path:
        check_csv(csv_path)
    mode, why = sandbox.isolation(python_paths())
    if mode is None:
        print(f"note: kernels run without a box of their own here ({why}): one notebook at a "
              "time, as this user (a notebook could still signal the grader itself, or write "
              "what this user may write); see docs/instructor.md", file=sys.stderr)
    elif why:
        print(f"note: {why}; see docs/instructor.md", file=sys.stderr)
    reports = []
    old = {sig: signal.signal(sig, _stop) for sig in _STOP_SIGNALS}
    graded = grade_all(paths, cell_timeout, memory_gb, output_mb, jobs, deadline,
                       isolate=mode or False)
    try:
        for report in graded:
            reports.append(report)
            print(format_report(report), flush=True)
    except Stopped as why:
        graded.close()  # every kernel and grading process ended, their folders removed
        print(f"stopped by {why}: {len(reports)} of {len(paths)} notebooks graded; no CSV "
              "written", file=sys.stderr, flush=True)
        return 128 + int(getattr(signal, str(why)))
    finally:
        _stop_forkserver()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    score = sum(r.score for r in reports)
    total = sum(len(r.results) for r in reports)
    print(f"total {score}/{total} ({100 * score / total if total else 0:.0f}%)")
    if csv_path:
        write_csv(reports, csv_path)
        print(f"wrote {csv_path}")
    return 0 if reports and all(r.passed for r in reports) else 1


def _stop_forkserver() -> None:
    """multiprocessing's fork server, which started the grading processes: ended with the run."""
    try:
        forkserver._forkserver._stop()
    except (AttributeError, OSError):  # another Python's multiprocessing: it ends with us
        pass
