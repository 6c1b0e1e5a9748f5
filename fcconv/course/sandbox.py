"""Run one learner's notebook in a fresh kernel that reaches nothing of the grader's, and bring
back only plain data: for each cell, whether it failed and why; for each check request, the reply
of ``wire.evaluate`` (see fcconv.course.checks.wire). Nothing here judges anything.

``run(job, conn)`` is the body of one grading process (the grader forks one per notebook):

- A fresh temporary folder holds all the kernel may write: ``work/`` (its working folder),
  ``home/`` (its HOME, IPython and Jupyter folders, caches) and ``lib/fcconv`` (a copy of the
  library, first on its path): no startup file, shadow package or cache of one notebook is seen
  by the next.
- Where the system allows it (``unshare``), the kernel runs in its own user, PID and mount
  namespaces: it sees only its own processes (it cannot signal, stop or trace the grader), cannot
  raise its limits, the paths the grader names (the Python installation, the course) are
  read-only to it, and every process it starts dies with it. Everywhere, this process is a child
  subreaper and ends every descendant before it returns, detached or in a new session.
- The kernel starts without Python's site set-up: site-packages and their .pth files are those
  the grader read before any kernel ran.
- Limits: a time limit per cell (an interrupt, then a kill), a deadline for all of the learner's
  cells, a memory cap set after the grader's own imports (its own work is not charged to the
  learner), a cap on each message from the kernel (zmq drops a bigger one) and on the output
  counted; a kernel that dies or is stopped (SIGSTOP) is dead.
"""

from __future__ import annotations

import ast
import ctypes
import json
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from jupyter_client.connect import write_connection_file
from jupyter_client.session import Session

MESSAGE_CAP = 32 * 2**20  # bytes of one message from the kernel, at least (zmq drops bigger ones)
TEXT = 300  # characters kept of an error message from the kernel
_PR_SET_CHILD_SUBREAPER, _PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 36, 1, 4
_KEEP_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")


@dataclass(frozen=True)
class Job:
    """One notebook to run: its cells, the check requests, and the limits. All plain data."""

    cells: list  # [(cell number, source)], the learner's code cells in order
    checks: list  # [(exercise, answer name, request)]
    setup: str  # the grader's first cell (wire's source, the imports its checks need)
    library: dict  # the fcconv package the kernel imports: {relative path: (bytes, mtime_ns)}
    timeout: float  # seconds per learner cell
    check_timeout: float  # seconds per check (the learner's function and the grader's share)
    deadline: float  # seconds for all of the learner's cells
    memory: int  # bytes the learner's code may allocate
    output: int  # bytes of output counted before the rest is dropped
    isolate: tuple | None  # how the kernel is isolated (``isolation``), or None
    folder: str  # an empty folder of its own (the grader made it, and removes it after)
    site: dict  # {"prefix", "exec_prefix", "folders": [(site-packages, [.pth texts])]}, read first


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: nothing to set
        pass


def become_subreaper() -> None:
    """Orphans among this process's descendants become its children (not init's), so that
    ``end_descendants`` finds a process that double-forked or started a new session."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def stop_being_subreaper() -> None:
    _prctl(_PR_SET_CHILD_SUBREAPER, 0)


def process_table() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, state letter), from /proc (empty without one: then no
    process is tracked, as the guide says)."""
    out = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    text = f.read().decode(errors="replace")
                state, ppid = text.rsplit(")", 1)[1].split()[:2]
                out[int(entry)] = (int(ppid), state)
            except (OSError, ValueError, IndexError):  # it ended while we looked
                pass
    return out


def children(pid: int, table: dict | None = None) -> list[int]:
    table = process_table() if table is None else table
    return [p for p, (ppid, _) in table.items() if ppid == pid]


def descendants(pid: int, skip=(), table: dict | None = None) -> list[int]:
    """Every process below ``pid``, except those in ``skip`` and theirs."""
    table = process_table() if table is None else table
    found, todo = [], [c for c in children(pid, table) if c not in skip]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += [c for c in children(p, table) if c not in skip]
    return found


def end_descendants(skip=()) -> int:
    """Stop, then kill, every descendant of this process (except ``skip`` and theirs), until
    none is left; reap the children. How many there were."""
    ended = set()
    for _ in range(100):
        table = process_table()
        found = descendants(os.getpid(), skip, table)
        if not found:
            break
        for sig in (signal.SIGSTOP, signal.SIGKILL):  # frozen first: a stopped process cannot fork
            for p in found:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
        ended.update(found)
        for p in children(os.getpid(), table):
            if p in found:
                try:
                    os.waitpid(p, 0)
                except OSError:
                    pass
        time.sleep(0.02)
    return len(ended)


# The outer namespace makes each path read-only and hides every other notebook's folder (a fresh
# tmpfs over the temporary folder, with only this notebook's folder put back); then the inner
# one, a new user namespace, locks those mounts: the kernel inside can neither write there, nor
# remount them writable, nor uncover another kernel's folder (and its connection key).
_OUTER = r"""
tmp=$1 own=$2; shift 2
while [ "$1" != "--" ]; do mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 1; shift; done
shift
for hold in /mnt /media /srv /opt /var; do [ -d "$hold" ] && break; done
mount --bind "$own" "$hold" && mount -t tmpfs -o mode=1777,size=1g tmpfs "$tmp" && mkdir -p "$own" &&
  mount --bind "$hold" "$own" && umount "$hold" || exit 1
exec "$@"
"""


def command(isolate: tuple | None, folder: Path) -> list[str]:
    """The command line a kernel whose folder is ``folder`` starts under (see ``isolation``)."""
    if isolate is None:
        return []
    user, readonly = isolate
    inner = ["unshare", "--user", user, "--pid", "--fork", "--kill-child", "--mount-proc"]
    if readonly is None:
        return inner
    return ["unshare", "--user", user, "--mount", "sh", "-c", _OUTER, "sh",
            str(folder.parent), str(folder), *map(str, readonly), "--", *inner]


def isolation(readonly=()) -> tuple[tuple | None, str]:
    """How kernels are isolated here: (the user-namespace mapping, the read-only paths), where
    the system allows user, PID and mount namespaces with read-only paths and hidden folders;
    (mapping, None) where it allows the namespaces only; None where it allows neither. And a
    note on what could not be had ("" when all could)."""
    why = "unshare is not installed"
    probe = Path(tempfile.mkdtemp(prefix="fcconv-grade-probe-"))
    try:
        for user in ("--map-current-user", "--map-root-user"):
            for level in ((user, tuple(map(str, readonly))), (user, None)):
                try:
                    run = subprocess.run([*command(level, probe), sys.executable, "-c", "pass"],
                                         capture_output=True, text=True, timeout=30)
                except (OSError, subprocess.SubprocessError) as err:
                    why = f"unshare failed: {err}"
                    continue
                if run.returncode == 0:
                    return level, "" if level[1] is not None else \
                        "the kernels' namespaces work, but read-only views of the course do not"
                why = f"unshare failed: {run.stderr.strip()[-200:]}"
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return None, why


def clean(text) -> str:
    """Text from the kernel, safe to print: capped, control characters replaced."""
    text = str(text)[:TEXT]
    return "".join(c if c.isprintable() else " " for c in text)


# --------------------------------------------------------------------------- one kernel

class Kernel:
    """A kernel started in ``folder``, and the two channels the grader uses (shell, iopub),
    with a cap on every message. ``dead`` says why it is gone, once it is."""

    def __init__(self, job: Job, folder: Path):
        self.dead: str | None = None
        self.limit = max(MESSAGE_CAP, 2 * job.output)
        dirs = {name: folder / name for name in ("work", "home", "lib", "runtime")}
        for d in dirs.values():
            d.mkdir()
        for rel, (data, mtime) in job.library.items():  # as read before any kernel ran
            path = dirs["lib"] / "fcconv" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, ns=(mtime, mtime))  # so that the cached bytecode stays valid
        key = secrets.token_hex(32)
        connection, info = write_connection_file(str(dirs["runtime"] / "kernel.json"),
                                                 ip="127.0.0.1", key=key.encode())
        home = dirs["home"]
        env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV}
        env.update(HOME=str(home), IPYTHONDIR=str(home / ".ipython"),
                   JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
                   JUPYTER_DATA_DIR=str(home / ".jupyter-data"), MPLCONFIGDIR=str(home / ".mpl"),
                   XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"),
                   FCCONV_CACHE_DIR=str(home / ".cache" / "fcconv"), PYTHONPATH=str(dirs["lib"]),
                   PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
        boot = dirs["runtime"] / "boot.py"
        boot.write_text(_BOOT.format(site=job.site))
        argv = [*command(job.isolate, folder), sys.executable, "-S", str(boot), "-f", connection,
                "--HistoryManager.enabled=False"]
        self.connection = Path(connection)
        self.proc = subprocess.Popen(argv, cwd=dirs["work"], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=_kernel_limits)
        self.isolated = job.isolate is not None
        self.context = zmq.Context()
        self.context.setsockopt(zmq.MAXMSGSIZE, self.limit)  # a bigger message ends the connection
        self.context.setsockopt(zmq.LINGER, 0)
        self.session = Session(key=key.encode(), signature_scheme="hmac-sha256")
        self.urls = {kind: f"tcp://127.0.0.1:{info[kind + '_port']}" for kind in ("shell", "iopub")}
        self.poller, self.sockets, self.dropped = zmq.Poller(), {}, 0
        for kind in self.urls:
            self._open(kind)

    def _open(self, kind: str) -> None:
        """Connect to the kernel's shell or iopub channel, watching for the connection's end."""
        sock = self.context.socket(zmq.DEALER if kind == "shell" else zmq.SUB)
        if kind == "iopub":
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.setsockopt(zmq.SNDTIMEO, 5000)  # never wait for ever on a lost connection
        sock.connect(self.urls[kind])
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        for s in (sock, monitor):
            self.poller.register(s, zmq.POLLIN)
        self.sockets[kind] = (sock, monitor)

    def _reopen(self, kind: str) -> None:
        """zmq ends a connection that brought a message over the cap, for good: open another."""
        sock, monitor = self.sockets.pop(kind)
        for s in (sock, monitor):
            self.poller.unregister(s)
        sock.disable_monitor()
        monitor.close()
        sock.close()
        self.dropped += 1
        self._open(kind)

    def pid(self) -> int | None:
        """The kernel's own process (inside the namespaces, unshare's child), if it runs."""
        if not self.isolated:
            return self.proc.pid
        kids = children(self.proc.pid)
        return kids[0] if kids else None

    def alive(self) -> bool:
        """False once the kernel has died, or was stopped (a stopped kernel is a dead one)."""
        if self.dead:
            return False
        if self.proc.poll() is not None:
            self.dead = "the kernel died (os._exit, a crash, or out of memory)"
        else:
            state = process_table().get(self.pid() or -1, (0, "?"))[1]
            if state in ("T", "t"):
                self.dead = "the kernel was stopped (SIGSTOP) and counts as dead"
                self.kill()
        return not self.dead

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.kill()
            self.proc.wait(5)
        except (OSError, subprocess.SubprocessError):
            pass

    def interrupt(self) -> None:
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass

    def send(self, msg_type: str, content: dict) -> str:
        msg = self.session.msg(msg_type, content)
        for _ in range(2):
            try:
                self.session.send(self.sockets["shell"][0], msg)
                break
            except zmq.Again:  # the connection is gone: once more on a new one
                self._reopen("shell")
        else:
            self.dead = "the kernel could not be reached"
        return msg["header"]["msg_id"]

    def receive(self, timeout: float) -> list[tuple[str, dict, int]]:
        """Messages that arrive within ``timeout`` s: (channel, message, bytes). A message whose
        signature is wrong is dropped (no process but the kernel holds the key)."""
        out = []
        ready = dict(self.poller.poll(max(0, int(timeout * 1000))))
        for kind, (sock, monitor) in list(self.sockets.items()):
            if monitor in ready:
                self._reopen(kind)
                continue
            while sock in ready:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                size = sum(len(f) for f in frames)
                try:
                    _, parts = self.session.feed_identities(frames)
                    msg = self.session.deserialize(parts)
                except Exception:  # bad signature or not a Jupyter message
                    continue
                out.append((kind, msg, size))
        return out

    def close(self) -> None:
        self.kill()
        for sock, monitor in self.sockets.values():
            sock.disable_monitor()
            monitor.close()
            sock.close()
        self.context.destroy(linger=0)


# The kernel starts without Python's own site set-up (-S): site-packages and their .pth files
# come from what the grader read before any kernel ran, so that a .pth file or sitecustomize a
# notebook wrote runs nowhere.
_BOOT = """\
import os, sys
site = {site!r}
sys.prefix, sys.exec_prefix = site["prefix"], site["exec_prefix"]  # as site.venv() sets them
for folder, pths in site["folders"]:
    sys.path.append(folder)
    for text in pths:  # what site.addpackage does with each line
        for line in text.splitlines():
            if line.startswith(("import ", "import\\t")):
                exec(line)
            elif line.strip() and not line.startswith("#"):
                path = os.path.join(folder, line.rstrip())
                if os.path.exists(path) and path not in sys.path:
                    sys.path.append(path)
sys.path[0:1] = []  # not this file's folder
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""


def _kernel_limits() -> None:
    """In the kernel's process, before it starts: no core files, no file over 1 GB, and killed
    with the grading process that started it."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**30, 2**30))
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Ran:
    """What one execution gave: its error (name: message) if any, whether it ran out of time,
    and the value of its ``reply`` expression (the text/plain repr), if it was asked for one."""

    error: str | None = None
    timed_out: bool = False
    reply: str | None = None


def execute(kernel: Kernel, code: str, timeout: float, counted: list, reply: str = "") -> Ran:
    """Run ``code`` in the kernel, at most ``timeout`` s; over it, interrupt; if the kernel then
    does not answer within 10 s, kill it. A reply over the message cap is dropped on the way:
    when the kernel is idle but no reply came, a kernel_info request tells a lost reply from a
    busy kernel. ``counted``: [bytes so far]: the size of every output message (stream,
    display, error, comm) is added; output itself is never kept. ``reply``: an expression whose
    value comes back in the shell reply (not among the output, which a notebook can flood)."""
    ran = Ran()
    if not kernel.alive():
        return ran
    msg_id = kernel.send("execute_request", {"code": code, "silent": False, "store_history": False,
                                             "user_expressions": {"reply": reply} if reply else {},
                                             "allow_stdin": False, "stop_on_error": False})
    end, replied, idle, probe = time.monotonic() + timeout, None, None, None
    while not (replied and (idle or time.monotonic() > replied + 2)):
        now = time.monotonic()
        if now > end:
            if ran.timed_out:
                kernel.dead = "the kernel ignored the interrupt and was killed"
                kernel.kill()
                break
            ran.timed_out, end = True, now + 10
            kernel.interrupt()
        if probe is None and (ran.timed_out or (idle and now > idle + 2)):
            probe = kernel.send("kernel_info_request", {})  # answered only once the cell is done
        if not kernel.alive():
            break
        for channel, msg, size in kernel.receive(0.2):
            parent = msg.get("parent_header", {}).get("msg_id")
            mine = parent == msg_id
            content = msg.get("content", {})
            kind = msg.get("msg_type")
            if channel == "iopub" and kind not in ("status", "execute_input"):
                counted[0] += size
            if channel == "shell" and mine and kind == "execute_reply":
                replied = time.monotonic()
                if content.get("status") == "error" and ran.error is None:
                    ran.error = f"{clean(content.get('ename'))}: {clean(content.get('evalue'))}"
                value = (content.get("user_expressions") or {}).get("reply") or {}
                ran.reply = (value.get("data") or {}).get("text/plain") if value.get(
                    "status") == "ok" else None
            elif channel == "shell" and probe and parent == probe and not replied:
                ran.error = ran.error or "its reply was over the message cap and was dropped"
                replied = idle = time.monotonic()
            elif mine and kind == "status" and content.get("execution_state") == "idle":
                idle = time.monotonic()
            elif mine and kind == "error":
                ran.error = f"{clean(content.get('ename'))}: {clean(content.get('evalue'))}"
    return ran


def _wait_ready(kernel: Kernel, timeout: float) -> bool:
    """Until the kernel answers on its shell channel and its iopub messages reach us."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and kernel.alive():
        msg_id = kernel.send("kernel_info_request", {})
        shell = iopub = False
        step = time.monotonic() + 2
        while time.monotonic() < min(step, end) and not (shell and iopub) and kernel.alive():
            for channel, msg, _ in kernel.receive(0.1):
                if msg.get("parent_header", {}).get("msg_id") == msg_id:
                    shell |= channel == "shell"
                    iopub |= channel == "iopub"
        if shell and iopub:
            return True
    return False


# --------------------------------------------------------------------------- one notebook

def grade(job: Job, folder: Path) -> dict:
    """Run the job's cells and check requests in a fresh kernel in ``folder``: {"problems":
    [lines for the report], "replies": {exercise: {"reply": data} or {"error": why}}}."""
    problems: list[str] = []
    replies = {ex: {"error": "not checked"} for ex, _, _ in job.checks}
    kernel = Kernel(job, folder)
    try:
        if not _wait_ready(kernel, 120):
            problems.append(f"the kernel did not start: {kernel.dead or 'no answer in 120 s'}")
            return {"problems": problems, "replies": replies}
        kernel.connection.unlink(missing_ok=True)  # read at start only: its key is no one's now
        counted = [0]
        setup = execute(kernel, job.setup, 600, counted)
        if setup.error or setup.timed_out or kernel.dead:
            problems.append(f"the grader's setup failed in the kernel: "
                            f"{setup.error or kernel.dead or 'out of time'}")
        counted[0], start = 0, time.monotonic()
        for index, source in job.cells:
            left = job.deadline - (time.monotonic() - start)
            if left <= 0:
                problems.append(f"cells from {index} on were not run: the notebook's cells ran "
                                f"past its deadline of {job.deadline:g} s")
                break
            ran = execute(kernel, source, min(job.timeout, left), counted)
            if ran.timed_out:
                problems.append(f"cell {index} ran longer than {min(job.timeout, left):g} s and "
                                "was stopped: an infinite loop?")
            elif ran.error:
                problems.append(f"cell {index} failed: {ran.error}")
            if kernel.dead:
                problems.append(f"cell {index}: {kernel.dead}")
                break
        if counted[0] > job.output:
            problems.append(f"the notebook printed more than {job.output / 2**20:g} MB: the rest "
                            "of its output was dropped")
        if kernel.dropped:
            problems.append(f"{kernel.dropped} message(s) from the kernel were over "
                            f"{kernel.limit / 2**20:g} MB and were dropped")
        for exercise, answer, request in job.checks:
            was_dead, dropped = kernel.dead, kernel.dropped
            replies[exercise], printed = _check(kernel, answer, request, job)
            if printed > job.output or kernel.dropped > dropped:
                problems.append(f"while checking {exercise}: the function printed more than "
                                f"{job.output / 2**20:g} MB; the output was dropped")
            if kernel.dead and not was_dead:
                problems.append(f"while checking {exercise}: {kernel.dead}")
    finally:
        kernel.close()
    return {"problems": problems, "replies": replies}


def _check(kernel: Kernel, answer: str, request: dict, job: Job) -> tuple[dict, int]:
    """One check's request, evaluated in the kernel on the learner's function ``answer``: the
    reply (or why there is none), and the bytes the function printed meanwhile (dropped: the
    reply comes back on the shell channel, which printing cannot flood)."""
    if kernel.dead:
        return {"error": f"not checked: {kernel.dead}"}, 0
    code = f"_fcconv_reply = _fcconv_grader.reply_text({answer!r}, globals(), {request!r})"
    counted = [0]
    ran = execute(kernel, code, job.check_timeout, counted, reply="_fcconv_reply")
    if ran.timed_out:
        return {"error": f"the check did not finish in {job.check_timeout:g} s: does your "
                         "function loop forever?"}, counted[0]
    try:
        return {"reply": json.loads(ast.literal_eval(ran.reply))}, counted[0]
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        why = kernel.dead or ran.error or "no reply"
        return {"error": f"the check did not finish: {why}"}, counted[0]


def run(job: Job, conn) -> None:
    """The body of one grading process: grade the job in its folder, end every process the
    kernel left, empty the folder, and send the result as JSON bytes."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    become_subreaper()
    not_traceable()
    folder = Path(job.folder)
    try:
        result = grade(job, folder)
    except Exception as err:  # the last line of defence: this notebook is reported, the run goes on
        result = {"problems": [f"the grader could not finish this notebook: "
                               f"{type(err).__name__}: {clean(err)}"], "replies": {}}
    finally:
        end_descendants()
        remove(folder)  # the grader removes it too, should this process not get this far
    conn.send_bytes(json.dumps(result).encode())
    conn.close()


def not_traceable(yes: bool = True) -> None:
    """No process of the same (unprivileged) user may trace this one or read its memory."""
    _prctl(_PR_SET_DUMPABLE, 0 if yes else 1)


def remove(folder: Path) -> None:
    """Remove a folder a kernel wrote in, whatever it made read-only; never follows a link."""
    def writable(func, path, _):
        try:
            os.chmod(os.path.dirname(path), stat.S_IRWXU)
            if not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)
            func(path)
        except OSError:
            pass
    shutil.rmtree(folder, onerror=writable)
