"""Run one learner's notebook in a fresh kernel that reaches nothing of the grader's, and bring
back only plain data: for each cell, whether it failed and why; for each check request, the reply
of ``wire.evaluate`` (see fcconv.course.checks.wire). Nothing here judges anything.

``run(job, conn)`` is the body of one grading process (the grader forks one per notebook):

- Where the system allows it, the kernel runs in a box (``fcconv.course.isolate``): its own
  mount, network, IPC and PID namespaces, a root of its own where the system folders, the Python
  installation and a copy of the library are read-only and nothing else of the machine exists (no
  course folder, no home, no other kernel's folder), no network, one size-capped tmpfs for all it
  may write (/tmp, HOME, its working folder, /dev/shm), an unprivileged user that may create no
  namespace, and a limit on its processes. The grader reaches it over Unix sockets in that tmpfs.
- Elsewhere (``isolate`` is None) the kernel runs as the grading user, in a fresh temporary
  folder with its own HOME and library copy, and the grader watches what it could change.
- Everywhere, this process is a child subreaper and ends every descendant before it returns,
  detached or in a new session; the kernel starts without Python's site set-up (site-packages
  and their .pth files are those the grader read before any kernel ran); the grader's side of the
  checks is a message handler of the kernel, not a name in the learner's namespace, installed
  only after the learner's cells ran; its replies are signed with a nonce no request carries.
- The grader opens the kernel's sockets once, before any learner code runs, without following a
  link, and connects through those handles only (``_open_socket``).
- Limits: a time limit per cell (an interrupt, then a kill), a deadline for all of the learner's
  cells, a memory cap set after the grader's own imports (its own work is not charged to the
  learner) and a watch on the memory of all the kernel's processes (shared memory and files in
  its tmpfs included), a cap on each message from the kernel (zmq drops a bigger one) and on the
  output counted; a kernel that dies or is stopped (SIGSTOP) is dead.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import json
import os
import resource
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from jupyter_client.session import Session

from . import isolate

MESSAGE_CAP = 32 * 2**20  # bytes of one message from the kernel, at least (zmq drops bigger ones)
TEXT = 300  # characters kept of an error message from the kernel
PROCESSES = 128  # processes and threads a boxed kernel may have at once (it has about 20 idle)
FILES = 1024  # open files of a kernel process
MEMORY_LOOK = 0.25  # seconds between two looks at a kernel's memory
CHECK_REQUEST = "fcconv_check_request"  # the message the grader's handler in the kernel answers
TAMPERED = "the grader's call watch was tampered with ({}): not checked"
ISOLATE_SOURCE = Path(isolate.__file__).read_text(encoding="utf-8")  # run as python -c, as read now
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")
KERNEL_UID = 1_800_000_000  # root mode: kernels run as users from here on (``user_ids``)
_PR_SET_CHILD_SUBREAPER, _PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 36, 1, 4
_KEEP_ENV = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT")
_INSIDE = {"home": "/tmp/home", "work": "/tmp/work", "run": "/tmp/.fcconv", "lib": "/fcconv/lib"}


@dataclass(frozen=True)
class Job:
    """One notebook to run: its cells, the check requests, and the limits. All plain data."""

    cells: list  # [(cell number, source)], the learner's code cells in order
    checks: list  # [(exercise, answer name, request)]
    setup: str  # the grader's first cell (the imports its checks need, the hooks for threads)
    library: dict  # the fcconv package the kernel imports: {relative path: (bytes, mtime_ns)}
    timeout: float  # seconds per learner cell
    check_timeout: float  # seconds per check (the learner's function and the grader's share)
    deadline: float  # seconds for all of the learner's cells
    memory: int  # bytes the learner's code may allocate (and write in its tmpfs)
    output: int  # bytes of output counted before the rest is dropped
    isolate: str | None  # "root", "user" (see ``isolation``) or None: not boxed
    folder: str  # an empty folder of its own (the grader made it, and removes it after)
    site: dict  # {"prefix", "exec_prefix", "folders": [(site-packages, [.pth texts])]}, read first
    python: str = sys.executable  # the Python the kernel runs (checked by ``trusted_program``)
    expose: tuple = ()  # folders of the machine a boxed kernel sees, read-only (the installation)
    user: int = KERNEL_UID  # root mode: the kernel's user id (one per kernel running at once)
    install: str = ""  # the grader's cell after the learner's: the check handler (wire.serve)


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


def not_traceable(yes: bool = True) -> None:
    """No process of the same (unprivileged) user may trace this one or read its memory."""
    _prctl(_PR_SET_DUMPABLE, 0 if yes else 1)


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


# --------------------------------------------------------------------------- the box

def trusted_program(path: str) -> str:
    """``path`` resolved to the file it names, if no other user could have put it there: a
    regular file, owned by root or by this user, that neither it nor any folder above it is
    writable by anyone else (a sticky folder excepted). ValueError naming what is wrong."""
    real = os.path.realpath(path)
    me = os.getuid()
    for p in dict.fromkeys([real, *Path(real).parents, *Path(os.path.abspath(path)).parents]):
        info = os.stat(p)
        if info.st_uid not in (0, me):
            raise ValueError(f"{real}: {p} belongs to user {info.st_uid}, not root or this user")
        if info.st_mode & 0o022 and not (stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX):
            raise ValueError(f"{real}: {p} is writable by other users")
    if not stat.S_ISREG(os.stat(real).st_mode):
        raise ValueError(f"{real}: not a regular file")
    return real


def isolation(expose=(), python: str = sys.executable) -> tuple[str | None, str]:
    """How kernels are boxed here: "root" (this process runs as root), "user" (unprivileged user
    namespaces), or None where neither works (not Linux, namespaces forbidden); and a note on
    what could not be had ("" when the box is complete). Found by starting a box for real."""
    why = "not Linux" if not sys.platform.startswith("linux") else ""
    if why:
        return None, why
    try:
        trusted_program(python)
    except (OSError, ValueError) as err:
        return None, f"the Python to run kernels with is not trusted ({err})"
    for mode in (["root"] if os.geteuid() == 0 else []) + ["user"]:
        folder = Path(mkdtemp())
        try:
            plan = _plan(mode, folder, expose, python, [python, "-S", "-c", "pass"], {}, 2**24,
                         user=user_ids(64)[-1], files={}, output=False)
            proc, pid, notes = _launch(plan, timeout=60)
            if proc is not None:
                code = proc.wait(60)
                if code == 0:
                    if mode == "user" and os.geteuid() == 0:
                        notes.append("as root without privileged namespaces, the kernels' "
                                     "process limit does not apply")
                    return mode, "; ".join(notes)
                why = f"a boxed Python exited with {code}"
            else:
                why = notes[0] if notes else "the box did not start"
        except (OSError, ValueError, subprocess.SubprocessError) as err:
            why = f"{type(err).__name__}: {err}"
        finally:
            remove(folder)
    return None, f"kernels cannot be boxed here: {why}"


def user_ids(count: int) -> list[int]:
    """Root mode: a user id for each of ``count`` kernels at once, chosen for this run (two runs
    at once do not share the process limit of a user)."""
    base = KERNEL_UID + (os.getpid() % 100_000) * 64
    return [base + i for i in range(min(count, 64))]


def mkdtemp() -> str:
    import tempfile
    return tempfile.mkdtemp(prefix="fcconv-grade-")


def _plan(mode: str, folder: Path, expose, python: str, argv: list, env: dict, size: int,
          user: int, files: dict, output: bool) -> dict:
    """What the launcher builds (see fcconv.course.isolate)."""
    (folder / "stage").mkdir(exist_ok=True)
    (folder / "lib").mkdir(exist_ok=True)
    os.chmod(folder / "lib", 0o755)
    if mode == "root":
        uid = gid = user
        owner = [uid, gid]
    else:
        uid, gid, owner = os.getuid() or 1000, os.getgid() or 1000, None
    return {"parent": os.getpid(), "mode": mode, "uid": uid, "gid": gid, "owner": owner,
            "stage": str(folder / "stage"), "size": int(size),
            "expose": sorted({*SYSTEM, *map(str, expose)}, key=len),
            "folders": ["/home", "/work", "/.fcconv", "/.shm"], "shm": "/.shm", "files": files,
            "binds": {_INSIDE["lib"]: str(folder / "lib")},
            "rlimits": {"RLIMIT_NPROC": PROCESSES, "RLIMIT_NOFILE": FILES, "RLIMIT_FSIZE": int(size),
                        "RLIMIT_CORE": 0, "RLIMIT_MSGQUEUE": 0},
            "cwd": _INSIDE["work"], "argv": argv, "env": env, "output": output}


def _launch(plan: dict, timeout: float):
    """Start the launcher on ``plan``: (its process, the kernel's pid, notes) once the box is
    built, or (None, None, [why]) when it could not be."""
    proc = subprocess.Popen([plan["argv"][0], "-I", "-S", "-c", ISOLATE_SOURCE],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    proc.stdin.write(json.dumps(plan).encode())
    proc.stdin.close()
    pid, end, buffer = None, time.monotonic() + timeout, b""
    while time.monotonic() < end:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        chunk = os.read(proc.stdout.fileno(), 4096) if ready else b""
        if ready and not chunk:
            break
        buffer += chunk
        for line in buffer.decode(errors="replace").splitlines():
            if line.startswith("pid "):
                pid = int(line.split()[1])
            elif line.startswith("ok") and pid:
                proc.stdout.close()
                proc.stderr.close()
                return proc, pid, json.loads(line[2:] or "[]")
            elif line.startswith("failed"):
                break
    proc.kill()
    proc.wait()
    err = proc.stderr.read().decode(errors="replace").strip().splitlines()
    said = [line for line in buffer.decode(errors="replace").splitlines() if line.startswith("failed")]
    proc.stdout.close()
    proc.stderr.close()
    return None, None, [(said or err or ["the box did not start in time"])[-1][:300]]


def clean(text) -> str:
    """Text from the kernel, safe to print: capped, control characters replaced."""
    text = str(text)[:TEXT]
    return "".join(c if c.isprintable() else " " for c in text)


# --------------------------------------------------------------------------- one kernel

class Kernel:
    """A kernel started for ``job`` in ``folder``, and the two channels the grader uses (shell,
    iopub), with a cap on every message. ``dead`` says why it is gone, once it is."""

    def __init__(self, job: Job, folder: Path):
        self.dead: str | None = None
        self.limit = max(MESSAGE_CAP, 2 * job.output)
        self.boxed, self.kernel_pid, self.cap, self.next_look = job.isolate is not None, None, None, 0.0
        lib = folder / "lib" / "fcconv"
        for rel, (data, mtime) in job.library.items():  # as read before any kernel ran
            path = lib / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.chmod(path, 0o644)
            os.utime(path, ns=(mtime, mtime))  # so that the cached bytecode stays valid
        for d in [folder / "lib", *(p for p in lib.rglob("*") if p.is_dir()), lib]:
            os.chmod(d, 0o755)
        key = secrets.token_hex(32)
        if self.boxed:
            inside = dict(_INSIDE)
        else:
            inside = {k: str(folder / k) for k in ("home", "work", "run")} | {"lib": str(folder / "lib")}
            for k in ("home", "work", "run"):
                Path(inside[k]).mkdir()
        connection = {"transport": "ipc", "ip": inside["run"] + "/k", "key": key,
                      "signature_scheme": "hmac-sha256", "kernel_name": "",
                      **{f"{c}_port": i for i, c in enumerate(("shell", "iopub", "stdin", "control",
                                                                 "hb"), 1)}}
        env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV}
        home = inside["home"]
        env.update(PATH=os.environ.get("PATH", os.defpath), HOME=home, USER="learner",
                   LOGNAME="learner", IPYTHONDIR=f"{home}/.ipython", TMPDIR=inside["work"] if not
                   self.boxed else "/tmp", JUPYTER_RUNTIME_DIR=inside["run"],
                   JUPYTER_CONFIG_DIR=f"{home}/.jupyter", JUPYTER_DATA_DIR=f"{home}/.jupyter-data",
                   MPLCONFIGDIR=f"{home}/.mpl", XDG_CACHE_HOME=f"{home}/.cache",
                   XDG_CONFIG_HOME=f"{home}/.config", FCCONV_CACHE_DIR=f"{home}/.cache/fcconv",
                   PYTHONPATH=inside["lib"], PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1",
                   MPLBACKEND="Agg")
        self.lib = inside["lib"]  # where the kernel imports the library from (the watch's files)
        boot, conn_file = inside["run"] + "/boot.py", inside["run"] + "/kernel.json"
        argv = [job.python, "-S", boot, "-f", conn_file, "--HistoryManager.enabled=False"]
        files = {"/.fcconv/boot.py": (_BOOT.format(site=job.site), 0o644),
                 "/.fcconv/kernel.json": (json.dumps(connection), 0o600)}
        if self.boxed:
            plan = _plan(job.isolate, folder, job.expose, job.python, argv, env, job.memory,
                         job.user, files, output=False)
            self.proc, self.kernel_pid, notes = _launch(plan, timeout=60)
            if self.proc is None:
                self.dead = f"the kernel's box could not be built: {notes[0]}"
                self.proc = _Gone()
            root, where = f"/proc/{self.kernel_pid}/root", inside["run"].strip("/").split("/")
        else:
            Path(boot).write_text(files["/.fcconv/boot.py"][0])
            fd = os.open(conn_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(files["/.fcconv/kernel.json"][0])
            self.proc = subprocess.Popen(argv, cwd=inside["work"], env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=_kernel_limits)
            self.kernel_pid = self.proc.pid
            root, where = str(folder), ["run"]
        self.connection = None if self.boxed else Path(conn_file)
        self.context = zmq.Context()
        self.context.setsockopt(zmq.MAXMSGSIZE, self.limit)  # a bigger message ends the connection
        self.context.setsockopt(zmq.LINGER, 0)
        self.session = Session(key=key.encode(), signature_scheme="hmac-sha256")
        self.poller, self.sockets, self.dropped, self.fds, self.urls = zmq.Poller(), {}, 0, [], {}
        names = {kind: f"k-{connection[kind + '_port']}" for kind in ("shell", "iopub")}
        end = time.monotonic() + 120
        while not self.dead and len(self.urls) < len(names) and time.monotonic() < end:
            for kind, name in names.items():  # each socket, once the kernel has made it
                fd = kind not in self.urls and _open_socket(root, [*where, name])
                if fd:
                    self.fds.append(fd)
                    self.urls[kind] = f"ipc:///proc/self/fd/{fd}"
                    self._open(kind)
            if len(self.urls) < len(names):
                if self.proc.poll() is not None:
                    self.dead = "the kernel died before it opened its channels"
                time.sleep(0.05)
        if not self.dead and len(self.urls) < len(names):
            self.dead = "the kernel did not open its channels in 120 s"

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

    def alive(self) -> bool:
        """False once the kernel has died, was stopped (a stopped kernel is a dead one), or its
        processes hold more memory than the cap."""
        if self.dead:
            return False
        if self.proc.poll() is not None:
            self.dead = "the kernel died (os._exit, a crash, or out of memory)"
        elif process_table().get(self.kernel_pid, (0, "?"))[1] in ("T", "t"):
            self.dead = "the kernel was stopped (SIGSTOP) and counts as dead"
            self.kill()
        elif self.cap is not None and time.monotonic() > self.next_look:
            self.next_look = time.monotonic() + MEMORY_LOOK
            used = self.memory()
            if used > self.cap:
                self.dead = f"the kernel's processes held {used / 2**30:.2f} GB (shared memory " \
                            f"and files in its /tmp included), over the cap: it was stopped"
                self.kill()
        return not self.dead

    def memory(self) -> int:
        """Bytes the kernel holds: the private and shared memory of all its processes
        (proportional: a page two processes share counts half to each), memfd files they hold
        open, and, boxed, what is written in its tmpfs."""
        table = process_table()
        total = 0
        for pid in [self.kernel_pid, *descendants(self.kernel_pid, table=table)]:
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
                            total += int(line.split()[1]) * 1024
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:"):
                        total += os.stat(f"/proc/{pid}/fd/{fd}").st_blocks * 512
            except (OSError, ValueError):  # it ended while we looked
                pass
        if self.boxed:
            try:
                fs = os.statvfs(f"/proc/{self.kernel_pid}/root/tmp")
                total += (fs.f_blocks - fs.f_bfree) * fs.f_frsize
            except OSError:
                pass
        return total

    def kill(self) -> None:
        for pid in (self.kernel_pid, self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)  # (boxed: process 1 of its namespace takes all with it)
            except (OSError, TypeError):
                pass
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
        if self.kernel_pid:
            try:
                os.kill(self.kernel_pid, signal.SIGINT)
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
        for fd in self.fds:
            os.close(fd)


def _open_socket(root: str, parts: list[str]) -> int | None:
    """A handle on the kernel's socket ``root/parts...``, or None while it is not there yet.

    Opened once, before any of the learner's code runs, one name at a time without following a
    link (a link there is refused); from then on the grader connects through the handle
    (``/proc/self/fd/N`` names the socket itself), so that nothing the kernel renames, replaces
    or links afterwards (its socket, /tmp/.fcconv) is ever resolved on the grader's side."""
    try:
        fds = [os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]  # (the kernel's root, boxed)
    except OSError:  # (the kernel is gone)
        return None
    try:
        for i, name in enumerate(parts):
            try:
                fds.append(os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fds[-1]))
            except FileNotFoundError:
                return None
            kind = os.fstat(fds[-1]).st_mode
            if not (stat.S_ISSOCK(kind) if i == len(parts) - 1 else stat.S_ISDIR(kind)):
                return None
        return fds.pop()
    finally:
        for fd in fds:
            os.close(fd)


class _Gone:
    """The launcher of a box that could not be built: a process that has already ended."""

    pid = None

    def poll(self):
        return 1

    kill = wait = poll


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
    """In an unboxed kernel's process, before it starts: no core files, no file over 1 GB, and
    killed with the grading process that started it."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**30, 2**30))
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Ran:
    """What one request gave: its error (name: message) if any, whether it ran out of time,
    and its reply's content (None without one)."""

    error: str | None = None
    timed_out: bool = False
    reply: dict | None = None


def request(kernel: Kernel, msg_type: str, content: dict, timeout: float, counted: list) -> Ran:
    """Send ``msg_type`` on the shell channel and wait, at most ``timeout`` s, for its reply; over
    it, interrupt; if the kernel then does not answer within 10 s, kill it. A reply over the
    message cap is dropped on the way: when the kernel is idle but no reply came, a kernel_info
    request tells a lost reply from a busy kernel. ``counted``: [bytes so far]: the size of every
    output message (stream, display, error, comm) is added, and a message dropped for its size
    counts as the whole cap; output itself is never kept."""
    ran = Ran()
    if not kernel.alive():
        return ran
    msg_id = kernel.send(msg_type, content)
    reply_type = msg_type.replace("_request", "_reply")
    end, replied, idle, probe = time.monotonic() + timeout, None, None, None
    dropped = kernel.dropped
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
            probe = kernel.send("kernel_info_request", {})  # answered only once the request is done
        if not kernel.alive():
            break
        for channel, msg, size in kernel.receive(0.2):
            parent = msg.get("parent_header", {}).get("msg_id")
            mine = parent == msg_id
            body = msg.get("content", {})
            kind = msg.get("msg_type")
            if channel == "iopub" and kind not in ("status", "execute_input"):
                counted[0] += size
            if channel == "shell" and mine and kind == reply_type:
                replied = time.monotonic()
                ran.reply = body if isinstance(body, dict) else {}
                if ran.reply.get("status") == "error" and ran.error is None:
                    ran.error = f"{clean(ran.reply.get('ename'))}: {clean(ran.reply.get('evalue'))}"
            elif channel == "shell" and probe and parent == probe and not replied:
                ran.error = ran.error or "its reply was over the message cap and was dropped"
                replied = idle = time.monotonic()
            elif mine and kind == "status" and body.get("execution_state") == "idle":
                idle = time.monotonic()
            elif mine and kind == "error":
                ran.error = f"{clean(body.get('ename'))}: {clean(body.get('evalue'))}"
    counted[0] += (kernel.dropped - dropped) * kernel.limit  # what zmq dropped was output too
    return ran


def execute(kernel: Kernel, code: str, timeout: float, counted: list, silent: bool = False) -> Ran:
    """Run ``code`` in the kernel (see ``request``); silent: without echoing it on iopub."""
    return request(kernel, "execute_request", {"code": code, "silent": silent, "store_history": False,
                                                "user_expressions": {}, "allow_stdin": False,
                                                "stop_on_error": False}, timeout, counted)


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
        if kernel.connection:
            kernel.connection.unlink(missing_ok=True)  # read at start only: its key is no one's now
        counted = [0]
        setup = execute(kernel, job.setup, 600, counted)
        if setup.error or setup.timed_out or kernel.dead:
            problems.append(f"the grader's setup failed in the kernel: "
                            f"{setup.error or kernel.dead or 'out of time'}")
        kernel.cap = kernel.memory() + job.memory + job.memory // 16 + 2**25  # the grader's share first
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
        if job.checks and not kernel.dead:
            ran = execute(kernel, job.install, 600, [0], silent=True)
            if ran.error or ran.timed_out:
                problems.append(f"the grader's check handler could not be installed after the "
                                f"notebook's cells: {ran.error or 'out of time'}")
        for exercise, answer, check in job.checks:
            was_dead, dropped = kernel.dead, kernel.dropped
            replies[exercise], printed = _check(kernel, exercise, answer, check, job)
            if printed > job.output or kernel.dropped > dropped:
                problems.append(f"while checking {exercise}: the function printed more than "
                                f"{job.output / 2**20:g} MB; the output was dropped")
            if kernel.dead and not was_dead:
                problems.append(f"while checking {exercise}: {kernel.dead}")
    finally:
        kernel.close()
    return {"problems": problems, "replies": replies}


def _check(kernel: Kernel, exercise: str, answer: str, check: dict, job: Job) -> tuple[dict, int]:
    """One check's request, answered in the kernel by the grader's handler (wire.serve) on the
    learner's function ``answer``: the reply (or why there is none), and the bytes the function
    printed meanwhile (dropped: the reply comes back on the shell channel, which printing cannot
    flood)."""
    if kernel.dead:
        return {"error": f"not checked: {kernel.dead}"}, 0
    counted = [0]
    sent = {k: v for k, v in check.items() if k != "nonce"}  # (the handler has it already)
    ran = request(kernel, CHECK_REQUEST, {"answer": answer, "exercise": exercise,
                                          "request": {**sent, "lib": kernel.lib}},
                  job.check_timeout, counted)
    if ran.timed_out:
        return {"error": f"the check did not finish in {job.check_timeout:g} s: does your "
                         "function loop forever?"}, counted[0]
    try:
        text = ran.reply["reply"]
        reply = json.loads(text)
    except (ValueError, TypeError, KeyError, RecursionError, MemoryError):
        why = kernel.dead or ran.error or "no reply"
        return {"error": f"the check did not finish: {why}"}, counted[0]
    why = forged(check, text, ran.reply.get("mac"), reply)
    return ({"error": TAMPERED.format(why)} if why else {"reply": reply}), counted[0]


def forged(check: dict, text: str, mac, reply) -> str | None:
    """Why a reply is not the grader's handler's (None: it is): not signed with the check's
    nonce, or its watch did not see the test call (a stub, which scores nothing, has none)."""
    nonce = check.get("nonce")
    if nonce is None:
        return None
    want = hmac.new(str(nonce).encode(), str(text).encode(), hashlib.sha256).hexdigest()
    if not isinstance(mac, str) or not hmac.compare_digest(mac, want):
        return "the reply was not signed by the grader's handler"
    if not isinstance(reply, dict) or not (reply.get("canary") is True or reply.get("stub") is True):
        return "its test call was not seen"
    return None


def run(job: Job, conn) -> None:
    """The body of one grading process: grade the job in its folder, end every process the
    kernel left, empty the folder, and send the result as JSON bytes."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # ended with the grader (through its forkserver)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grader's to handle
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
