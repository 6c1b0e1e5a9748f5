"""How long `fcconv.trace` takes on VGG16 (meta tensors: no real compute).

    .venv/bin/python benchmarks/trace_speed.py      # goal: under 0.5 s at 1024x1024 on 2 cores
"""

from __future__ import annotations

import statistics
import sys
import time

from results import git_rev, machine, write_section

import fcconv


def time_trace(model, size: int, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fcconv.trace(model, (3, size, size))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    rows = []
    for device in ("meta", "cpu"):  # a model with real weights is traced on meta stand-ins too
        model = fcconv.vgg16(device=device)
        for size in (224, 384, 1024):
            rows.append((device, size, time_trace(model, size)))
    lines = ["## trace(vgg16) speed", "",
             f"Machine: {machine()}. Commit {git_rev()}. Command: "
             "`.venv/bin/python benchmarks/trace_speed.py` (median of 7). Goal: < 0.5 s at 1024.",
             "", "| weights | input | trace time (s) | goal met |", "|---|---|---|---|"]
    lines += [f"| {d} | {s}x{s} | {t:.4f} | {'yes' if t < 0.5 else 'NO'} |" for d, s, t in rows]
    write_section("trace_speed", "\n".join(lines))
    print("\n".join(lines))
    sys.exit(0 if all(t < 0.5 for *_, t in rows) else 1)


if __name__ == "__main__":
    main()
