"""How much slower this machine is right now than the idle 2-core machine the time goals were set
on: a test's time guard is ``scaled(seconds)``, never a fixed number of seconds.

The factor is measured, not guessed: a fixed piece of work like the course's (Python, NumPy, a
matplotlib PNG) is timed now and divided by its time
on the idle reference machine. Busy processes beside the tests raise it; an idle or faster machine
gives 1 (a guard is never tightened below the goal).
"""

from __future__ import annotations

import io
import statistics
import time

# Median of ``_reference_work`` on the idle reference machine (2 cores; numbers in
# benchmarks/RESULTS.md). Calibrated with the work's CPU time (`python tests/speed.py`), which other
# processes hardly change, so it holds even when the machine was busy while calibrating.
REFERENCE_SECONDS = 0.095


def _reference_work() -> None:
    """Work like a notebook cell's, all on one thread: Python, NumPy, a matplotlib PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    total = 0
    for i in range(200_000):
        total += i % 7
    a = np.linspace(0, 1, 200_000)
    for _ in range(20):
        a = np.sin(a) + np.cos(a)
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(a[::1000])
    fig.savefig(io.BytesIO(), format="png", dpi=60)
    plt.close(fig)


def reference_seconds(repeats: int = 5) -> float:
    """Median wall time of the reference work now (after one warm-up run)."""
    _reference_work()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _reference_work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed_factor() -> float:
    """How many times slower than the idle reference machine this one is now (at least 1)."""
    return max(1.0, reference_seconds() / REFERENCE_SECONDS)


def scaled(seconds: float, factor: float | None = None) -> float:
    """A time guard of ``seconds`` on the idle reference machine, scaled to this one now."""
    return seconds * (speed_factor() if factor is None else factor)


if __name__ == "__main__":  # calibrate: wall and CPU time of the reference work here, now
    _reference_work()
    walls, cpus = [], []
    for _ in range(15):
        t0, c0 = time.perf_counter(), time.process_time()
        _reference_work()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    print(f"wall median {statistics.median(walls):.3f} s, CPU median {statistics.median(cpus):.3f} s,"
          f" factor now {speed_factor():.2f}")
