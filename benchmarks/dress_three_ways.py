"""The dress detector three ways, on one 1024x512 camera frame (VGG16 trunk, random weights).

    .venv/bin/python benchmarks/dress_three_ways.py            # print the table
    .venv/bin/python benchmarks/dress_three_ways.py --write    # and put it into RESULTS.md

The classifier was trained on 64x128 (W x H) images: trunk -> 2x4x512 units -> an FC with 4 units
-> one binary unit (fcconv.dress_detector, the seed's head).
On the frame the trunk gives a 32x16 map and 31 x 13 = 403 windows. Three ways to score them all:

1. image crops: the whole network on each of the 403 64x128 crops of the frame (stride 32);
2. trunk once + feature-map crops: the trunk on the frame once, then the FC head on each of
   the 403 2x4x512 crops of the map (the seed's method);
3. dense: the trunk once, then the head as a 4x2 conv over the map (convolutionalized).

2 and 3 give identical scores (the head conversion is exact; tested in tests/test_torch_ops.py);
1 differs from them because of VGG's zero padding (notebook 05). Times: medians after a warm-up
call, the three ways timed in rotation so that load on a shared machine hits them alike. MACs
come from fcconv.trace (notebook 06 recomputes them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fcconv  # noqa: E402

TRAIN = (3, 128, 64)      # (C, H, W): 64 wide, 128 tall
FRAME = (3, 512, 1024)    # a 1024x512 camera frame
JUMP = 32


def rotation_ms(fns, repeats: int, extra: int = 0) -> list[float]:
    """Median ms of each ``fn``, timed in rotation (one call of each per round) after a warm-up.

    Rotating spreads a burst of load on a shared machine over every way alike. ``extra`` more
    rounds time all but the first (slowest) function, whose ratio to each other needs more.
    """
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeats + extra):
        for i, fn in enumerate(fns):
            if r >= repeats and i == 0:
                continue
            t0 = time.perf_counter()
            fn()
            times[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def map_crops(fmap: torch.Tensor, units: tuple[int, int]) -> torch.Tensor:
    """fmap (1, C, H, W) -> every units-sized crop, flattened: (windows, C * uh * uw)."""
    uh, uw = units
    crops = fmap.unfold(2, uh, 1).unfold(3, uw, 1)              # (1, C, rows, cols, uh, uw)
    return crops.permute(0, 2, 3, 1, 4, 5).reshape(-1, fmap.shape[1] * uh * uw)


@torch.inference_mode()
def measure(repeats: int, extra: int, batch: int) -> list[tuple[str, int, float, float]]:
    """Rows (way, windows, GMACs, median ms) for the three ways."""
    torch.manual_seed(0)
    dress = fcconv.dress_detector().eval()
    trunk, head = dress[:31], dress[32:]                       # conv trunk; FC 4 -> ReLU -> FC 1
    fcn = fcconv.convolutionalize(dress, TRAIN).eval()
    units = fcconv.trace(trunk, TRAIN).output_shape[1:]
    frame = torch.randn(1, *FRAME)
    fmap = trunk(frame)
    windows = map_crops(fmap, units).shape[0]
    t_crop = fcconv.trace(dress, TRAIN)
    trunk_frame = fcconv.trace(trunk, FRAME).total_macs
    head_macs = t_crop.total_macs - fcconv.trace(trunk, TRAIN).total_macs
    crops_scores = fcconv.sliding_windows(dress, frame, TRAIN[1:], JUMP, batch)
    seed_scores = head(map_crops(fmap, units))
    dense_scores = fcn(frame)
    assert torch.allclose(seed_scores, dense_scores.permute(0, 2, 3, 1).reshape(-1, 1),
                          atol=1e-4), "trunk once + map crops and dense pass disagree"
    assert crops_scores.shape == dense_scores.shape
    ms = rotation_ms([lambda: fcconv.sliding_windows(dress, frame, TRAIN[1:], JUMP, batch),
                      lambda: head(map_crops(trunk(frame), units)),
                      lambda: fcn(frame)], repeats, extra)
    macs = [windows * t_crop.total_macs, trunk_frame + windows * head_macs,
            fcconv.trace(fcn, FRAME).total_macs]
    names = ["image crops, whole network each",
             "trunk once + feature-map crops through the Linear head",
             "dense: trunk once + head as a conv"]
    return [(n, windows, g / 1e9, t) for n, g, t in zip(names, macs, ms)]


def table(rows) -> str:
    lines = ["| way | windows | GMACs | median ms |", "|---|---|---|---|"]
    lines += [f"| {w} | {n} | {g:.2f} | {ms:.0f} |" for w, n, g, ms in rows]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="rounds timing all three ways")
    p.add_argument("--extra", type=int, default=6, help="more rounds for ways 2 and 3 only")
    p.add_argument("--batch", type=int, default=32, help="image crops per forward pass")
    p.add_argument("--write", action="store_true", help="put the table into RESULTS.md")
    args = p.parse_args(argv)
    load = os.getloadavg()[0]
    rows = measure(args.repeats, args.extra, args.batch)
    print(table(rows))
    if args.write:
        from results import git_rev, machine, write_section

        write_section("dress_three_ways", "\n".join([
            "## The dress detector three ways: one 1024x512 frame, VGG16 trunk, random weights", "",
            f"Machine: {machine()}. Commit {git_rev()}. Command: "
            f"`.venv/bin/python benchmarks/dress_three_ways.py {' '.join(argv or sys.argv[1:])}` "
            f"(timed in rotation after a warm-up call: median of {args.repeats} rounds for way 1, "
            f"{args.repeats + args.extra} for ways 2 and 3; load average {load:.1f} at the start: "
            f"the machine was shared).", "", table(rows)]))
    return rows


if __name__ == "__main__":
    main()
