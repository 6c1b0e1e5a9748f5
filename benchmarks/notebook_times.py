"""How long each walkthrough takes top to bottom in a fresh kernel, and its kernel's peak memory.

    .venv/bin/python benchmarks/notebook_times.py            # every walkthrough, table to stdout
    .venv/bin/python benchmarks/notebook_times.py --write    # ...and into RESULTS.md
    .venv/bin/python benchmarks/notebook_times.py 02 05      # only these
    .venv/bin/python benchmarks/notebook_times.py 05 --cells # ...and each one's slowest cells
    .venv/bin/python benchmarks/notebook_times.py 05 --worktree --cells  # uncommitted edits too
    .venv/bin/python benchmarks/notebook_times.py 05 --rev main          # another commit's tree

Each notebook runs in a fresh kernel started as make lab's server starts one (local sockets, the
course's IPython extensions: ``fcconv.course.kernels.course_kernel``), from a fresh checkout of
the committed tree (``git archive HEAD`` into a temporary folder: no file an earlier run left
behind can help) with a course cache of its own, set up as `make venv` and `make pretrained`
set it up (VGG16's weights built by ``python -m fcconv.course.weight_cache``, not timed), one
after another, as `make test` runs them. Time:
from starting the kernel to the last cell's output (what a learner waits for after Run All).
Peak memory: the kernel's VmHWM (memory-mapped weights included), read by one extra cell at the
end, with the kernel's CPU time (all its threads; on a busy machine closer to the idle time than
wall). Goals: no notebook over 10 s, all together at most 60 s, and no kernel over 1 GB, on 2
cores.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import nbformat
from nbclient import NotebookClient
from results import git_rev, machine, write_section

from fcconv.course import kernels

ROOT = pathlib.Path(__file__).resolve().parents[1]
GOAL_EACH, GOAL_TOTAL, GOAL_MB = 10.0, 60.0, 1024.0
PEAK = ("import resource as _r\n"
        "_u = _r.getrusage(_r.RUSAGE_SELF)\n"
        "for _line in open('/proc/self/status'):\n"
        "    if _line.startswith('VmHWM'):\n"
        "        print('PEAK_MB', int(_line.split()[1]) / 1024, 'CPU_S', _u.ru_utime + _u.ru_stime)\n")


def fresh_tree(worktree: bool = False, rev: str = "HEAD") -> pathlib.Path:
    """The committed tree (``rev``, HEAD by default), unpacked into a new temporary folder;
    with ``worktree``, the tracked files as they are now (edits not yet committed: for trying a
    change, not for RESULTS.md)."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="fcconv-clone-"))
    tree = rev
    if worktree:  # a tree object of the index plus the edits, made without touching the index
        index = tmp / "index"
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        subprocess.run(["git", "read-tree", "HEAD"], cwd=ROOT, env=env, check=True)
        subprocess.run(["git", "add", "-u"], cwd=ROOT, env=env, check=True)
        tree = subprocess.run(["git", "write-tree"], cwd=ROOT, env=env, capture_output=True,
                              text=True, check=True).stdout.strip()
        index.unlink()
    archive = subprocess.run(["git", "archive", tree], cwd=ROOT, capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
    return tmp


def set_up_cache(folder: pathlib.Path) -> None:
    """A course cache as set-up leaves it (make venv, make pretrained), for the kernels to
    inherit: VGG16's weights built, MTCNN's nets copied from this user's cache (fetched only if
    they are not there: set-up, not notebook time, and offline when they are)."""
    from fcconv.course.folders import cache_dir

    mine = cache_dir() / "mtcnn"
    os.environ["FCCONV_CACHE_DIR"] = str(folder)
    if mine.is_dir():
        shutil.copytree(mine, folder / "mtcnn")
    else:
        subprocess.run([sys.executable, "-m", "fcconv.course.fetch"], check=True)
    subprocess.run([sys.executable, "-m", "fcconv.course.weight_cache"], check=True,
                   stdout=subprocess.DEVNULL)


# With --cells: a first cell that notes, after every cell, the kernel's CPU seconds so far and its
# VmHWM (peak memory so far); the last cell prints them. CPU time is steadier than wall time on a
# busy machine, and the VmHWM steps show which cell sets the peak.
PER_CELL = ("import resource as _r\n"
            "_per_cell = []\n"
            "def _note_cell(result):\n"
            "    _u = _r.getrusage(_r.RUSAGE_SELF)\n"
            "    _hwm = next(int(line.split()[1]) for line in open('/proc/self/status')\n"
            "                if line.startswith('VmHWM'))\n"
            "    _per_cell.append((_u.ru_utime + _u.ru_stime, _hwm / 1024))\n"
            "get_ipython().events.register('post_run_cell', _note_cell)\n")
PRINT_CELLS = "print('PER_CELL', __import__('json').dumps(_per_cell))\n"


def slowest_cells(nb, n: int) -> list[str]:
    """Lines naming the ``n`` code cells that used the most kernel CPU, with their wall time
    (nbclient's record) and the peak memory after them; for a notebook run with PER_CELL first
    and PRINT_CELLS last."""
    from datetime import datetime

    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    noted = json.loads(text.split("PER_CELL", 1)[1].split("\n", 1)[0])
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    rows, cpu_before = [], noted[0][0]  # the PER_CELL cell itself: the baseline
    for (i, cell), (cpu, hwm) in zip(code[1:-1], noted[1:]):
        times = cell.metadata.get("execution", {})
        start, end = (datetime.fromisoformat(times[k].replace("Z", "+00:00"))
                      for k in ("iopub.execute_input", "shell.execute_reply"))
        first = next((line for line in cell.source.splitlines() if line.strip()), "")
        rows.append((cpu - cpu_before, (end - start).total_seconds(), hwm, i - 1, first[:64]))
        cpu_before = cpu
    return [f"  cell {i:2d}: {c:5.2f} CPU s {w:5.2f} s, peak so far {m:5.0f} MB  {first}"
            for c, w, m, i, first in sorted(rows, reverse=True)[:n]]


def run(path: pathlib.Path, cells: int = 0) -> tuple[float, float, float]:
    """(seconds, peak MB, kernel CPU seconds) of one notebook in a fresh kernel; with ``cells``,
    its ``cells`` costliest cells printed to stderr (cell numbers as in the notebook)."""
    nb = nbformat.read(path, as_version=4)
    if cells:
        nb.cells.insert(0, nbformat.v4.new_code_cell(PER_CELL))
    nb.cells.append(nbformat.v4.new_code_cell(PEAK + (PRINT_CELLS if cells else "")))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", config=kernels.course_kernel(),
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        raise RuntimeError(f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}")
    if cells:
        print(f"{path.name}: its {cells} costliest cells", *slowest_cells(nb, cells), sep="\n",
              file=sys.stderr)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    words = text.split()
    return seconds, float(words[words.index("PEAK_MB") + 1]), float(words[words.index("CPU_S") + 1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", help="two-digit prefixes (default: every walkthrough)")
    p.add_argument("--write", action="store_true", help="write the table into RESULTS.md")
    p.add_argument("--cells", type=int, nargs="?", const=8, default=0, metavar="N",
                   help="print each notebook's N slowest cells (default 8)")
    p.add_argument("--worktree", action="store_true",
                   help="run the tracked files as they are now, edits included (not with --write)")
    p.add_argument("--rev", default="HEAD",
                   help="run this commit's tree (e.g. main, for a before/after; not with --write)")
    args = p.parse_args(argv)
    if args.write and (args.worktree or args.rev != "HEAD"):
        p.error("--write measures the committed tree: leave out --worktree and --rev")
    if args.worktree and args.rev != "HEAD":
        p.error("--worktree runs HEAD's tracked files with their edits: leave out --rev")
    tree = fresh_tree(args.worktree, args.rev)
    set_up_cache(tree / ".cache")
    paths = sorted((tree / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        paths = [q for q in paths if q.name[:2] in args.notebooks]
    load = os.getloadavg()[0]
    rows = []
    try:
        for path in paths:
            seconds, peak, cpu = run(path, args.cells)
            rows.append((path.name, seconds, peak, cpu))
            print(f"{path.name}: {seconds:.1f} s, {peak:.0f} MB, {cpu:.1f} CPU s",
                  file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tree, ignore_errors=True)  # the copy and its cache (VGG16's weights: 1 GB)
    total = sum(r[1] for r in rows)
    lines = ["| notebook | time (s) | kernel CPU (s) | kernel peak memory (MB) | goal <= 10 s | "
             "goal <= 1 GB |", "|---|---|---|---|---|---|"]
    lines += [f"| {n} | {s:.1f} | {c:.1f} | {m:.0f} | {'yes' if s <= GOAL_EACH else 'NO'} | "
              f"{'yes' if m <= GOAL_MB else 'NO'} |" for n, s, m, c in rows]
    lines.append(f"| **all {len(rows)}** | **{total:.1f}** | {sum(r[3] for r in rows):.1f} | "
                 f"max {max(r[2] for r in rows):.0f} | "
                 f"{'yes' if total <= GOAL_TOTAL else 'NO'} (goal <= {GOAL_TOTAL:.0f} s in all) | |")
    commit = (f"{git_rev()} with uncommitted edits" if args.worktree else
              git_rev() if args.rev == "HEAD" else args.rev)
    body = ["## Notebook run time and peak memory", "",
            f"Machine: {machine()}; load average {load:.1f} when it started. Commit {commit}. "
            "Command: `.venv/bin/python benchmarks/notebook_times.py --write` (each walkthrough in "
            "a fresh kernel started as make lab's are, from a fresh copy of the committed tree "
            "with a course cache of its own set up as make venv does, one after another; peak "
            "memory is the kernel's VmHWM, memory-mapped weights included).", "",
            *lines]
    print("\n".join(body))
    if args.write:
        write_section("notebook_times", "\n".join(body))
    print(json.dumps({"total_s": total}), file=sys.stderr)
    ok = total <= GOAL_TOTAL and all(r[1] <= GOAL_EACH and r[2] <= GOAL_MB for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
