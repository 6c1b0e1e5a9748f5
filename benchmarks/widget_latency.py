"""How long every control of every explorer takes, kernel side, from a change to the new output.

    .venv/bin/python benchmarks/widget_latency.py             # all walkthroughs, table to stdout
    .venv/bin/python benchmarks/widget_latency.py --write     # ...and into RESULTS.md
    .venv/bin/python benchmarks/widget_latency.py 02 05       # only these notebooks

Each walkthrough runs top to bottom in a fresh kernel, as a learner runs it. Then, in that same
kernel, ``probe`` finds every explorer (every ``fcconv.widgets.base.Explorer`` alive there) and
every control in its box (sliders, typed numbers, drop-downs, toggles: found by type, not by
name, so a changed or new explorer is measured without editing this file). Each control is moved
to a few new settings and back again; ipywidgets calls the observers before ``value = ...``
returns, so the time of that assignment (plus any worker thread the change started) is the time
until the new picture is in the Output. Goal: median <= 100 ms per control on 2 cores.

"new" moves reach settings not shown before; "revisit" moves go back to ones already shown (what
a cache helps). The goal is judged on all moves (wall time); a control over it is listed with its
revisit time. The kernel's CPU time per move is listed too: on a machine shared with other work
it is close to what the same move takes on the idle machine (wall time is not).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import pathlib
import sys

import nbformat
from nbclient import NotebookClient
from results import git_rev, machine, write_section

from fcconv.course import kernels

ROOT = pathlib.Path(__file__).resolve().parents[1]
GOAL_MS = 100.0


def probe(moves: int = 4) -> list[dict]:
    """Kernel side: move every control of every live explorer; times in ms per move."""
    import gc
    import threading
    import time

    import ipywidgets as widgets

    from fcconv.widgets.base import Explorer

    passive = (widgets.Output, widgets.HTML, widgets.HTMLMath, widgets.Label, widgets.Valid,
               widgets.IntProgress, widgets.FloatProgress, widgets.Image)

    def controls(box):
        """Every enabled widget with a settable value inside ``box``, in the order shown."""
        found, stack = [], [box]
        while stack:
            w = stack.pop(0)
            if isinstance(w, widgets.Box):
                stack[:0] = list(w.children)
            elif (isinstance(w, widgets.ValueWidget) and not isinstance(w, passive)
                  and not getattr(w, "disabled", False)):
                found.append(w)
        return found

    def tour(w):
        """Settings to move ``w`` through, one step at a time, as a learner drags or clicks:
        a slider or number goes ``moves`` steps out and back; a toggle or a list cycles."""
        v = w.value
        if isinstance(v, bool) or hasattr(w, "options"):
            values = [v, not v] if isinstance(v, bool) else [
                o[1] if isinstance(o, tuple) else o for o in w.options]
            if len(values) < 2:
                return []
            i = values.index(v) if v in values else 0
            return [values[(i + k) % len(values)] for k in range(1, 2 * moves + 1)]
        if hasattr(w, "min") and hasattr(w, "max"):
            step = getattr(w, "step", None) or 1
            ahead = [v + k * step for k in range(1, moves + 1) if v + k * step <= w.max]
            back = [v - k * step for k in range(1, moves + 1) if v - k * step >= w.min]
            out = (ahead + back)[:moves]
            return out + out[-2::-1] + [v] if out else []
        return []

    def timed_set(w, value) -> tuple[float, float]:
        """(wall ms, CPU ms of the kernel process) of one change."""
        before = set(threading.enumerate())
        t0, c0 = time.perf_counter(), time.process_time()
        w.value = value
        for t in set(threading.enumerate()) - before:  # an explorer that computes in a thread
            # only the course's own: the kernel starts threads of its own now and then (one
            # lived 60 s), which are not the explorer's work
            run = getattr(t, "_target", None) or type(t).run
            if getattr(run, "__module__", "").startswith("fcconv"):
                t.join(timeout=60)
        return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3

    rows = []
    explorers = [o for o in gc.get_objects() if isinstance(o, Explorer)]
    for ex in sorted(explorers, key=id):
        names = {id(v): k for k, v in vars(ex).items()}
        for w in controls(ex.box):
            start, path = w.value, tour(w)
            if not path:
                continue
            seen, new, revisit, cpu = {repr(start)}, [], [], []
            for value in path:
                ms, cpu_ms = timed_set(w, value)
                (revisit if repr(value) in seen else new).append(ms)
                cpu.append(cpu_ms)
                seen.add(repr(value))
            w.value = start
            rows.append({"explorer": type(ex).__name__,
                         "control": (w.description or names.get(id(w), type(w).__name__)),
                         "kind": type(w).__name__, "new": new, "revisit": revisit, "cpu": cpu})
    return rows


MARK = "fcconv-latency-rows: "


def measure(path: pathlib.Path, moves: int) -> list[dict]:
    """Run notebook ``path`` in a fresh kernel, then ``probe`` in it."""
    nb = nbformat.read(path, as_version=4)
    # A marked line: an explorer may print while it is moved (00 does), so the last line is not ours.
    code = (inspect.getsource(probe)
            + f"\nimport json\nprint({MARK!r} + json.dumps(probe({moves})))\n")
    nb.cells.append(nbformat.v4.new_code_cell(code))
    NotebookClient(nb, timeout=600, kernel_name="python3", config=kernels.local_sockets(),
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    out = nb.cells[-1].outputs
    text = "".join(o.get("text", "") for o in out if o.get("output_type") == "stream")
    errors = [o for o in out if o.get("output_type") == "error"]
    if errors or not text.strip():
        raise RuntimeError(f"{path.name}: the probe failed: {errors or out}")
    marked = [line for line in text.splitlines() if line.startswith(MARK)]
    if not marked:
        raise RuntimeError(f"{path.name}: the probe printed no result: {text[-500:]!r}")
    rows = json.loads(marked[-1][len(MARK):])
    for r in rows:
        r["notebook"] = path.name[:2]
    return rows


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2) if xs else float("nan")


def table(rows: list[dict]) -> list[str]:
    lines = ["| notebook | explorer | control | moves | median ms | max ms | new settings: median "
             "| revisits: median | kernel CPU ms: median | goal <= 100 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        every = r["new"] + r["revisit"]
        met = median(every) <= GOAL_MS
        verdict = "yes" if met else ("cached: revisit " + f"{median(r['revisit']):.0f} ms"
                                     if median(r["revisit"]) <= GOAL_MS else "NO")
        lines.append(f"| {r['notebook']} | {r['explorer']} | {r['control']} | {len(every)} | "
                     f"{median(every):.0f} | {max(every):.0f} | {median(r['new']):.0f} | "
                     f"{median(r['revisit']):.0f} | {median(r['cpu']):.0f} | {verdict} |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", help="two-digit prefixes (default: every walkthrough)")
    p.add_argument("--moves", type=int, default=4, help="steps out per control (then back)")
    p.add_argument("--write", action="store_true", help="write the table into RESULTS.md")
    args = p.parse_args(argv)
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        paths = [q for q in paths if q.name[:2] in args.notebooks]
    rows, load, failed = [], os.getloadavg()[0], []
    for path in paths:
        print(f"{path.name} ...", file=sys.stderr, flush=True)
        try:
            rows += measure(path, args.moves)
        except Exception as err:  # one notebook that cannot run must not lose the others' rows
            failed.append(f"{path.name}: {type(err).__name__}: {str(err).splitlines()[0]}")
    lines = table(rows)
    met = sum(line.endswith("| yes |") for line in lines[2:])
    body = ["## Widget latency: every control of every explorer", "",
            f"Machine: {machine()}; load average {load:.1f} when it started. Commit "
            f"{git_rev()}. Command: "
            f"`.venv/bin/python benchmarks/widget_latency.py --write` (each control moved to "
            f"{args.moves} new settings and back, kernel side, in the notebook's own kernel "
            "after it ran top to bottom).", "", *lines, "",
            f"{met} of {len(rows)} controls at or under {GOAL_MS:.0f} ms median.",
            *(f"Not measured: {f}" for f in failed)]
    print("\n".join(body))
    if args.write:
        write_section("widget_latency", "\n".join(body))
    return 0 if met == len(rows) and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
