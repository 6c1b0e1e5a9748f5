"""Notebook 05's face detector with the committed weights: held-out accuracy, the detections on
the astronaut photo (IoU with the marked face), false positives on face-free photos, and the
dense pass against sliding windows (float64, equal; median time of 5). Then the same training
recipe from other seeds (``faces.train(seed)``, a few minutes each): is the outcome the seed's luck?

    .venv/bin/python benchmarks/face_detection.py --write
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402
from results import median_ms  # noqa: E402

import fcconv  # noqa: E402
from fcconv.course import faces, weights  # noqa: E402
from fcconv.data import grey_photo  # noqa: E402


def main() -> str:
    net = faces.trained()
    made = weights.record()["face_net"]
    _, _, vx, vy = faces.lfw_split(seed=made["seed"])
    fcn = fcconv.convolutionalize(net, (1, 25, 25))
    levels = faces.pyramid(fcn, grey_photo(faces.TEST_PHOTO))
    dets = faces.detections(levels)
    near = max(dets, key=faces.face_iou) if dets else None
    lines = [f"Weights `fcconv/course/trained/face_net.pt` (sha256 {made['sha256'][:12]}…, seed "
             f"{made['seed']}, trained in {made['train_seconds']} s on {made['machine']}).", "",
             f"- held-out accuracy: {faces.accuracy(net, vx, vy):.1%} on {len(vy)} lfw_subset patches",
             f"- astronaut, window sides {list(faces.SIDES)} px, threshold {faces.THRESHOLD}: "
             f"{len(dets)} windows after NMS; top window {dets[0][:4] if dets else None} "
             f"IoU with the face {faces.face_iou(dets[0]) if dets else 0:.2f}; best window on the "
             f"face IoU {faces.face_iou(near) if near else 0:.2f}, P {near[5] if near else 0:.4f}, "
             f"rank {dets.index(near) + 1 if near else '-'}"]
    for group, names in (("mined in training", faces.FACE_FREE_TRAIN),
                         ("never seen in training", faces.FACE_FREE_HELD_OUT)):
        fp = faces.false_positives(fcn, names)
        lines.append(f"- false positives, {group}: {sum(fp.values())} on {len(fp)} photos {fp}")
    lines += ["", "| window side | shrunk photo | windows | max difference (float64) | dense ms "
              "| sliding ms | speed-up |", "|---|---|---|---|---|---|---|"]
    net64 = copy.deepcopy(net).double()
    fcn64 = fcconv.convolutionalize(net64, (1, 25, 25))
    with torch.no_grad():
        for lv in levels[::3]:
            img = lv.image.double()
            dense = fcn64(img)
            crops = fcconv.sliding_windows(net64, img, 25, faces.JUMP, batch_size=4096)
            td = median_ms(lambda img=img: fcn64(img), repeats=5) / 1e3
            tc = median_ms(lambda img=img: fcconv.sliding_windows(net64, img, 25, faces.JUMP,
                                                             batch_size=4096), repeats=5) / 1e3
            lines.append(f"| {lv.side} | {img.shape[-2]}x{img.shape[-1]} | "
                         f"{crops.shape[2] * crops.shape[3]} | {(dense - crops).abs().max().item():.1e} "
                         f"| {1e3 * td:.2f} | {1e3 * tc:.1f} | {tc / td:.0f}x |")
    return "\n".join(lines + ["", seed_table(net, made["seed"], OTHER_SEEDS)])


OTHER_SEEDS = (1, 2)


def outcome(net) -> list:
    """A trained face net's outcome, as table cells: windows on the astronaut after NMS, the top
    window's IoU with the face, the best face window's IoU and rank, and the false positives
    on the held-out and on the mined face-free photos."""
    fcn = fcconv.convolutionalize(net, (1, 25, 25))
    dets = faces.detections(faces.pyramid(fcn, grey_photo(faces.TEST_PHOTO)))
    near = max(dets, key=faces.face_iou) if dets else None
    held = sum(faces.false_positives(fcn, faces.FACE_FREE_HELD_OUT).values())
    mined = sum(faces.false_positives(fcn, faces.FACE_FREE_TRAIN).values())
    return [len(dets), f"{faces.face_iou(dets[0]) if dets else 0:.2f}",
            f"{faces.face_iou(near) if near else 0:.2f}", dets.index(near) + 1 if near else "-",
            held, mined]


def seed_table(committed, seed: int, others) -> str:
    """The committed weights and the same recipe retrained from each of ``others``."""
    rows = ["| seed | weights | held-out accuracy | windows | top IoU | face IoU | face rank "
            "| FP held-out photos | FP mined photos |", "|---" * 9 + "|"]
    for s, net in [(seed, committed)] + [(s, None) for s in others]:
        how = "committed" if net is not None else "retrained here"
        if net is None:
            net = faces.train(seed=s)[0]
        _, _, vx, vy = faces.lfw_split(seed=s)
        cells = [s, how, f"{faces.accuracy(net, vx, vy):.1%}", *outcome(net)]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(["Goals: top IoU >= 0.5, 0 false positives on the held-out photos.", ""]
                     + rows)


if __name__ == "__main__":
    body = main()
    print(body)
    if "--write" in sys.argv:
        from results import git_rev, machine, write_section

        write_section("face_detection", "\n".join([
            "## Face detector (notebook 05): lfw_subset classifier over the astronaut photo", "",
            f"Machine: {machine()}, load average {os.getloadavg()[0]:.1f} (other work on the "
            f"cores: the times are upper bounds). Commit {git_rev()}. Command: "
            "`.venv/bin/python benchmarks/face_detection.py --write`.", "", body]))
