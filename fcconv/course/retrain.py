"""``python -m fcconv.course.retrain [MODEL...]`` (what ``make weights`` runs): retrain the course's
own models from their fixed seeds and rewrite ``trained/*.pt`` and ``weights.json``.

It sits above the detectors it retrains (``faces``, ``detect``), which sit above ``weights``:
loading never needs training.
"""

from __future__ import annotations

import argparse
import time

from . import detect, faces

MAKERS = {"face_net": faces.train_and_save, "digit_net": detect.train_and_save}


def main(argv: list[str] | None = None) -> int:
    """Retrain the shipped models (all, or those named) from their fixed seeds; print the records."""
    p = argparse.ArgumentParser(prog="python -m fcconv.course.retrain",
                                description="Retrain the course's shipped models from their fixed "
                                            "seeds and rewrite trained/*.pt and weights.json.")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help=f"which models: {', '.join(MAKERS)} (default: all)")
    names = p.parse_args(argv).models or list(MAKERS)
    unknown = sorted(set(names) - set(MAKERS))
    if unknown:
        p.error(f"unknown model {', '.join(unknown)}: expected one of {', '.join(MAKERS)}")
    for name in names:
        start = time.perf_counter()
        entry = MAKERS[name]()
        print(f"{name}: {entry} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
