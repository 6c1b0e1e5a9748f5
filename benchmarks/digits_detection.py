"""Notebook 08's detector: training time, test accuracy, and precision/recall on 100 canvases.

    .venv/bin/python benchmarks/digits_detection.py --write
Trains from scratch (no cache) so that the training time is measured; goal: >= 97% test
accuracy in under 60 s on 2 CPU cores.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fcconv  # noqa: E402
from fcconv import data  # noqa: E402
from fcconv.course import detect  # noqa: E402


def main() -> str:
    t0 = time.perf_counter()
    trained = detect.train_fresh(progress=False)
    seconds = time.perf_counter() - t0
    digits, labels, _ = data.load_digits()
    _, (test_x, test_y) = detect.split(digits, labels)
    fcn = fcconv.convolutionalize(trained.model, (1, 28, 28))
    lines = [f"Training: {seconds:.1f} s (train + test accuracy), test accuracy "
             f"{trained.test_accuracy:.1%} on 1,000 held-out digits of {trained.source}.", "",
             "| threshold | canvases | digits | precision | recall | true pos. | false pos. | missed |",
             "|---|---|---|---|---|---|---|---|"]
    for threshold in (0.5, 0.9, 0.97):
        q = detect.evaluate(fcn, test_x, test_y, n_canvases=100, threshold=threshold, n_digits=6)
        lines.append(f"| {threshold} | {q['canvases']} | {q['tp'] + q['fn']} | {q['precision']:.1%} "
                     f"| {q['recall']:.1%} | {q['tp']} | {q['fp']} | {q['fn']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    body = main()
    print(body)
    if "--write" in sys.argv:
        from results import git_rev, machine, write_section

        write_section("digits_detection", "\n".join([
            "## Digit detector (notebook 08): 256x256 canvases, 6 held-out digits each, IoU >= 0.5",
            "", f"Machine: {machine()}. Commit {git_rev()}. Command: "
            "`.venv/bin/python benchmarks/digits_detection.py --write` (seeds 10000-10099).", "",
            body]))
