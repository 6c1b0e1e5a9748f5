"""MTCNN (notebook 09) with facenet-pytorch's trained weights on every bundled photo: per photo
with a face, the top detection's IoU with the marked face and the detections; per face-free photo,
the false positives (beside notebook 05's own face net); the time of each stage (median of 5, one
torch thread, as ``mtcnn.detect`` runs); and R-Net / O-Net as one dense pass per pyramid level
(``convolutionalize(..., exact=False)``) against the cascade's crops of the boxes they get.

    .venv/bin/python benchmarks/mtcnn_faces.py --write
"""

from __future__ import annotations

import os
import statistics
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fcconv  # noqa: E402
from fcconv.course import faces, mtcnn  # noqa: E402
from fcconv.data import grey_photo, rgb_photo  # noqa: E402

REPEATS = 5
FACE_FREE = faces.FACE_FREE_TRAIN + faces.FACE_FREE_HELD_OUT


def timed(image) -> tuple[mtcnn.Cascade, dict]:
    """The cascade on ``image`` ``REPEATS`` times: the last result and the median ms per stage."""
    runs = [mtcnn.detect(image) for _ in range(REPEATS)]
    stages = runs[0].seconds
    return runs[-1], {k: statistics.median(r.seconds[k] for r in runs) * 1e3 for k in stages}


def with_faces() -> list[str]:
    rows = ["| photo | size | pyramid levels | P-Net proposals | R-Net keeps | faces | top box "
            "| top P | top IoU | P-Net ms | R-Net ms | O-Net ms |", "|---" * 12 + "|"]
    for name, box in faces.FACE_BOXES.items():
        image = rgb_photo(name)
        c, ms = timed(image)
        top = c.faces[0] if c.faces else None
        rows.append(f"| {name} | {image.shape[1]}x{image.shape[0]} | {len(c.levels)} | "
                    f"{len(c.proposals)} | {len(c.refined)} | {len(c.faces)} | "
                    f"{top[:4] if top else '-'} | {top[5] if top else 0:.4f} | "
                    f"{mtcnn.top_iou(c.faces, box):.2f} | {ms['P-Net']:.0f} | {ms['R-Net']:.0f} | "
                    f"{ms['O-Net']:.0f} |")
    hits = sum(mtcnn.face_iou(n, mtcnn.detect(rgb_photo(n)).faces) >= 0.5 for n in faces.FACE_BOXES)
    return [f"Top detection on the marked face (IoU >= 0.5, faces marked by eye in "
            f"`faces.FACE_BOXES`): **{hits} of {len(faces.FACE_BOXES)}** (goal: all).", ""] + rows


def face_free() -> list[str]:
    ours = fcconv.convolutionalize(faces.trained(), (1, faces.WINDOW, faces.WINDOW))
    course = faces.false_positives(ours, FACE_FREE)
    rows = ["| photo | size | in the course net's training | MTCNN false positives | P-Net "
            "proposals | R-Net keeps | course net's false positives | P-Net ms | R-Net ms "
            "| O-Net ms |", "|---" * 10 + "|"]
    clean = 0
    for name in FACE_FREE:
        image = rgb_photo(name)
        c, ms = timed(image)
        clean += not c.faces
        rows.append(f"| {name} | {image.shape[1]}x{image.shape[0]} | "
                    f"{'mined' if name in faces.FACE_FREE_TRAIN else 'never seen'} | "
                    f"{len(c.faces)} | {len(c.proposals)} | {len(c.refined)} | {course[name]} | "
                    f"{ms['P-Net']:.0f} | {ms['R-Net']:.0f} | {ms['O-Net']:.0f} |")
    ours_clean = sum(v == 0 for v in course.values())
    return [f"Face-free photos with no detection: **MTCNN {clean} of {len(FACE_FREE)}** (goal: at "
            f"least 16), the course's own net (notebook 05) {ours_clean} of {len(FACE_FREE)}.", ""
            ] + rows


def course_net_on_faces() -> str:
    """The course's own face net's top window on the same three photos (its IoU)."""
    ours = fcconv.convolutionalize(faces.trained(), (1, faces.WINDOW, faces.WINDOW))
    cells = []
    for name, box in faces.FACE_BOXES.items():
        top, _ = faces.best_window(faces.pyramid(ours, grey_photo(name)))
        cells.append(f"{name} {faces.iou(top[:4], box):.2f}")
    return "The course's own face net (notebook 05), top window's IoU on the same photos: " + \
        ", ".join(cells) + "."


def dense_vs_crops() -> list[str]:
    """Per photo with a face: R-Net and O-Net densely over the pyramid vs on their boxes as crops
    (MACs; median ms of REPEATS)."""
    from fcconv.fcn import ApproximateWarning

    _, rnet, onet = mtcnn.nets()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ApproximateWarning)   # ceil_mode pools: said in the table
        fcns = {"R-Net": fcconv.convolutionalize(rnet, (3, 24, 24), exact=False),
                "O-Net": fcconv.convolutionalize(onet, (3, 48, 48), exact=False)}
    rows = ["| photo | net | dense: levels | windows | MMACs | ms | crops: boxes | MMACs | ms "
            "| of which cutting out, ms | dense wins from (boxes) |", "|---" * 11 + "|"]
    for name in faces.FACE_BOXES:
        image = rgb_photo(name)
        pixels = mtcnn.as_tensor(image)
        c = mtcnn.detect(image)
        for net_name, net, window, boxes in (("R-Net", rnet, 24, c.proposals),
                                             ("O-Net", onet, 48, c.refined)):
            d = mtcnn.dense_cost(fcns[net_name], pixels, c.levels, repeats=REPEATS)
            k = mtcnn.crop_cost(net, pixels, boxes, window, repeats=REPEATS)
            rows.append(f"| {name} | {net_name} | {d['levels']} | {d['windows']:,} | "
                        f"{d['macs'] / 1e6:,.0f} | {d['seconds'] * 1e3:.0f} | {k['boxes']} | "
                        f"{k['macs'] / 1e6:,.0f} | {k['seconds'] * 1e3:.0f} | "
                        f"{k['cutting'] * 1e3:.0f} | "
                        f"{d['macs'] / k['per_crop']:,.0f} |")
    return ["R-Net and O-Net converted with `convolutionalize(..., exact=False)` (their "
            "ceil_mode pools make the dense scores differ slightly from the crops: notebook 09 "
            "measures it), one dense pass per pyramid level where the window fits, against the "
            "cascade's way: each box it gets cut out, resized and scored (`mtcnn.score`).", ""] + rows


def main() -> str:
    return "\n".join(with_faces() + ["", course_net_on_faces(), ""] + face_free() + [""]
                     + dense_vs_crops())


if __name__ == "__main__":
    body = main()
    print(body)
    if "--write" in sys.argv:
        from results import git_rev, machine, write_section

        load = os.getloadavg()[0]
        busy = (" **Measured on a busy machine (other work on the cores): the times are upper "
                "bounds; rerun on an idle machine before quoting them.**" if load > 1 else "")
        write_section("mtcnn_faces", "\n".join([
            "## MTCNN (notebook 09): facenet-pytorch's trained nets on every bundled photo", "",
            f"Machine: {machine()}, load average {load:.1f}.{busy} Commit {git_rev()}. Command: "
            "`.venv/bin/python benchmarks/mtcnn_faces.py --write`. Times: median of "
            f"{REPEATS} runs (one torch thread), ms.", "", body]))
