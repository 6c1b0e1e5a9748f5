"""Start one grading kernel in a box of its own, and nothing else. The grading process runs this
file's text as ``python -I -S -c SOURCE`` (standard library only, no file of the course read at
run time) and writes a plan (JSON) on its stdin; it answers ``pid N`` (the kernel's process, as
the grading process sees it), then ``ok`` or ``failed: why``, and the kernel starts.

The box (Linux namespaces; see docs/instructor.md for what each gives):

- its own mount, network, IPC and PID namespaces: the kernel is process 1 of its PID namespace
  (it sees no other process, and every process it starts dies with it), it has no network at all
  (not even loopback: the grader talks to it over Unix sockets in its folder), and its SysV
  shared memory is capped;
- a root of its own (``pivot_root``): the system folders (/usr, /etc, /lib...), the Python
  installation and the kernel's copy of the library, every one read-only; /proc of its own PID
  namespace; a few device nodes; and one writable tmpfs of ``size`` bytes at /tmp, which holds
  its HOME, its working folder, /dev/shm and its sockets. Nothing else of the machine exists in
  it: not the course folder, not any home, not the other kernels' folders;
- an unprivileged user: as root, the grader gives each kernel a user id of its own (``uid``),
  with no capability, no way to regain one (no_new_privs) and a process limit that counts; as
  another user, the kernel is that user inside two user namespaces, with no capability either.
  It may create no namespace of its own (so no mount, no tmpfs of its own).

Two modes: ``root`` (the grader runs as root: the namespaces are created with real privileges,
then the kernel's user is changed; no user namespace is needed, though one is used where the
system allows it) and ``user`` (anyone, where unprivileged user namespaces are allowed).
"""

import ctypes
import json
import os
import platform
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_MOVE, MS_REC = 32, 1024, 2048, 4096, 8192, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203,
                  "s390x": 217}
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
NAMESPACE_LIMITS = ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time")
LIMITS = {"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_MSGQUEUE"}

libc = ctypes.CDLL(None, use_errno=True)


def _call(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(text):
    return None if text is None else os.fsencode(text)


def mount(source, target, fstype, flags, data=None) -> None:
    _call(libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
          f"mount {target}")


def unshare(flags: int) -> None:
    _call(libc.unshare(ctypes.c_int(flags)), "unshare")


def prctl(option: int, value: int) -> None:
    _call(libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl {option}")


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def mount_points(under: str) -> list[str]:
    """The mount points at or under ``under`` (this mount namespace), in mount order."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")  # \040 for a space
            if point == under or point.startswith(under.rstrip("/") + "/"):
                out.append(point)
    return out


def read_only(under: str) -> None:
    """Every mount at or under ``under`` read-only, keeping the flags a less privileged mount
    namespace may not drop (nosuid, nodev, noexec, atime)."""
    flag_of = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
               os.ST_NOATIME: MS_NOATIME, os.ST_NODIRATIME: MS_NODIRATIME,
               os.ST_RELATIME: MS_RELATIME}
    for point in mount_points(under):
        try:
            have = os.statvfs(point).f_flag
        except OSError:  # a mount point hidden under another: nothing to reach there
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        for st, ms in flag_of.items():
            if have & st:
                flags |= ms
        mount(None, point, None, flags)


def expose(root: str, path: str) -> None:
    """``path`` of the machine at the same place under ``root``, read-only (a symlink stays a
    symlink, so /bin -> usr/bin works as on the machine)."""
    inside = root + path
    if os.path.islink(path):
        os.makedirs(os.path.dirname(inside), exist_ok=True)
        if not os.path.lexists(inside):
            os.symlink(os.readlink(path), inside)
        return
    if not os.path.isdir(path):
        return
    os.makedirs(inside, exist_ok=True)
    mount(path, inside, None, MS_BIND | MS_REC)
    read_only(inside)


def build_root(plan: dict) -> None:
    """The kernel's whole file system, under plan["stage"], then made its root."""
    root, size, owner = plan["stage"], int(plan["size"]), plan["owner"]
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    # A folder before what is inside it; what lies under /tmp (an installation cloned there, as
    # CI does) after the box's own /tmp is mounted, which would hide it.
    outermost = [path for path in sorted(plan["expose"], key=len)
                 if not any(path.startswith(p.rstrip("/") + "/") for p in plan["expose"] if p != path)]
    in_tmp = [path for path in outermost if path.startswith("/tmp/")]
    for path in outermost:
        if path not in in_tmp and path != "/tmp":  # never the machine's whole /tmp
            expose(root, path)
    dev = root + "/dev"
    os.makedirs(dev, exist_ok=True)
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            open(f"{dev}/{name}", "w").close()
            mount("/dev/" + name, f"{dev}/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    os.makedirs(root + "/proc")
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    tmp = root + "/tmp"
    os.makedirs(tmp)
    mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    for sub in plan["folders"]:  # HOME, the working folder, the sockets' folder, /dev/shm
        os.makedirs(tmp + sub, mode=0o700)
        if owner:
            os.chown(tmp + sub, *owner)
    for path in in_tmp:  # root's folders, read-only: the kernel can neither write nor move them
        expose(root, path)
    os.makedirs(dev + "/shm")
    mount(tmp + plan["shm"], dev + "/shm", None, MS_BIND)
    os.chmod(tmp + plan["shm"], 0o1777)
    for name, (text, mode) in plan["files"].items():
        fd = os.open(tmp + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if owner:
            os.chown(tmp + name, *owner)
    for inside, outside in plan["binds"].items():  # the library copy, read-only
        os.makedirs(root + inside)
        mount(outside, root + inside, None, MS_BIND | MS_REC)
        read_only(root + inside)
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is not None:
        _call(libc.syscall(number, b".", b"."), "pivot_root")
        _call(libc.umount2(b".", MNT_DETACH), "umount the old root")
    else:  # no pivot_root number known here: move the new root over the old one
        mount(".", "/", None, MS_MOVE)
        os.chroot(".")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def cap_shared_memory(size: int) -> list[str]:
    """SysV shared memory of this IPC namespace capped at ``size`` bytes in all."""
    notes = []
    for name, value in (("shmmax", size), ("shmall", max(1, size // 4096)), ("shmmni", 64)):
        try:
            write(f"/proc/sys/kernel/{name}", str(value))
        except OSError as err:
            notes.append(f"kernel.{name} not set ({err.strerror})")
    return notes


def no_new_namespaces() -> list[str]:
    """This user namespace (the kernel's own) may create no namespace at all."""
    notes = []
    for kind in NAMESPACE_LIMITS:
        path = f"/proc/sys/user/max_{kind}_namespaces"
        if os.path.exists(path):
            try:
                write(path, "0")
            except OSError as err:
                notes.append(f"{kind} namespaces not limited ({err.strerror})")
    return notes


def become_kernel_user(plan: dict, to_parent, from_parent) -> list[str]:
    """Enter a user namespace of the kernel's own, and become its unprivileged user."""
    uid, gid, notes = plan["uid"], plan["gid"], []
    try:
        unshare(CLONE_NEWUSER)
    except OSError as err:  # root where user namespaces are off: the user change alone
        notes.append(f"no user namespace for the kernel ({err.strerror})")
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        return notes
    if plan["mode"] == "root":  # the parent, root outside, maps the kernel's own user id
        os.write(to_parent, b"m")
        if os.read(from_parent, 1) != b"m":
            raise OSError("the launcher did not map the kernel's user")
    else:  # unprivileged: map the one id we have, to the same number inside
        write("/proc/self/setgroups", "deny")
        write("/proc/self/uid_map", f"{uid} 0 1")
        write("/proc/self/gid_map", f"{gid} 0 1")
    notes += no_new_namespaces()
    if plan["mode"] == "root":
        os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    return notes


def kernel(plan: dict, to_parent, from_parent) -> None:
    """Process 1 of the new PID namespace: build the box, become the kernel's user, start it."""
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.setsid()
        unshare(CLONE_NEWNS)  # a mount namespace of its own: the launcher keeps the machine's view
        build_root(plan)
        notes = cap_shared_memory(int(plan["size"]))
        for name, value in plan["rlimits"].items():
            if name in LIMITS:
                resource.setrlimit(getattr(resource, name), (value, value))
        notes += become_kernel_user(plan, to_parent, from_parent)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # (a change of user clears it)
        os.chdir(plan["cwd"])
        os.umask(0o077)
    except Exception as err:
        os.write(1, f"failed: {type(err).__name__}: {err}\n".encode())
        os._exit(70)
    os.write(1, ("ok " + json.dumps(notes) + "\n").encode())
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2) if not plan.get("output") else (0,):  # (the probe keeps its output)
        os.dup2(null, fd)
    os.closerange(3, 1 << 16)
    os.execve(plan["argv"][0], plan["argv"], plan["env"])


def main() -> None:
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the grading process
    plan = json.loads(sys.stdin.read())
    if os.getppid() != plan["parent"]:
        os._exit(1)
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID
    if plan["mode"] == "user":
        flags |= CLONE_NEWUSER
    uid, gid = os.getuid(), os.getgid()  # (unmapped once the user namespace is made)
    try:
        unshare(flags)
        if plan["mode"] == "user":
            write("/proc/self/setgroups", "deny")
            write("/proc/self/uid_map", f"0 {uid} 1")
            write("/proc/self/gid_map", f"0 {gid} 1")
        mount(None, "/", None, MS_REC | MS_PRIVATE)
    except OSError as err:
        print(f"failed: {err}", flush=True)
        os._exit(70)
    from_child, to_parent = os.pipe()  # (read, write)
    from_parent, to_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(from_child)
        os.close(to_child)
        kernel(plan, to_parent, from_parent)
    os.close(to_parent)
    os.close(from_parent)
    print(f"pid {pid}", flush=True)
    if plan["mode"] == "root" and os.read(from_child, 1) == b"m":
        try:  # root here: map the kernel's user namespace to its own, unprivileged, user id
            write(f"/proc/{pid}/uid_map", f"{plan['uid']} {plan['uid']} 1")
            write(f"/proc/{pid}/gid_map", f"{plan['gid']} {plan['gid']} 1")
            os.write(to_child, b"m")
        except OSError as err:
            print(f"could not map the kernel's user: {err}", file=sys.stderr, flush=True)
            os.write(to_child, b"x")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grader interrupts the kernel, not this
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main()
