"""Timing that a busy machine cannot fool easily: one warm-up call first (the first call pays for
allocation and lazy set-up), then the median of several calls, the two sides of a comparison in
alternation so that a burst of load hits both alike."""

from __future__ import annotations

import statistics
import time


def median_ms(fn, repeats: int = 3, warm_up: bool = True) -> float:
    """Median ms of ``fn()`` over ``repeats`` calls, after one warm-up call (``warm_up=False``
    when the caller has just run it once already)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1; got {repeats}")
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def paired_median_ms(fa, fb, min_pairs: int = 3, max_pairs: int = 25,
                     budget_s: float = 1.0, warm_up: bool = True) -> tuple[float, float]:
    """Median ms of ``fa()`` and of ``fb()``, timed in alternation after one warm-up call each.

    Alternating means a burst of load on a shared machine slows both sides alike, so their
    ratio stays honest. At least ``min_pairs`` pairs, then more (up to ``max_pairs``) while the
    total stays under ``budget_s``: cheap calls, where noise is largest, get many repeats.
    ``warm_up=False`` when the caller has just run both once already (their results in hand).
    """
    if warm_up:
        fa(), fb()
    ta, tb = [], []
    start = time.perf_counter()
    while len(ta) < max_pairs and (len(ta) < min_pairs or time.perf_counter() - start < budget_s):
        for fn, times in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ta), statistics.median(tb)
