"""Checks of exercises/08_find_the_digits_exercises.ipynb (plain Python answers; the references of 08.1
and 08.2 live in fcconv.course.detect, which needs PyTorch)."""

from __future__ import annotations

import numpy as np

from .core import Wrong, check, close, compare, describe, integer, number, optional

detect = optional("fcconv.course.detect")


def _areas(a, b, one: int = 1) -> tuple[int, int, int]:
    """(width and height of the overlap, unclamped) and both areas; one=0: exclusive bounds."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + one
    h = min(a[3], b[3]) - max(a[1], b[1]) + one
    area_a, area_b = ((r[2] - r[0] + one) * (r[3] - r[1] + one) for r in (a, b))
    return w, h, area_a, area_b


def _iou(a, b, one: int = 1, clamp: bool = True, union_counts_twice: bool = False,
         smaller: bool = False, floor: bool = False):
    """IoU as a learner might compute it, right (the defaults) or with one mistake."""
    w, h, area_a, area_b = _areas(a, b, one)
    inter = max(w, 0) * max(h, 0) if clamp else w * h
    below = min(area_a, area_b) if smaller else area_a + area_b - (0 if union_counts_twice else inter)
    below = max(below, 1) if one == 0 else below  # exclusive bounds: a one-pixel box has area 0
    return inter // below if floor else inter / below


FIXED_BOXES = [((0, 0, 4, 4), (10, 10, 14, 14)), ((0, 0, 9, 9), (0, 0, 9, 9)),
               ((0, 0, 9, 9), (2, 3, 5, 6)), ((0, 0, 4, 4), (4, 0, 8, 4)),
               ((0, 0, 4, 4), (8, 1, 12, 3)), ((3, 2, 20, 9), (7, 5, 25, 30))]


# Every function of fcconv that computes an IoU (08.1 is about writing one).
IOUS = ("fcconv.course.detect.iou", "fcconv.course.detect.ious", "fcconv.course.detect.match",
        "fcconv.course.mtcnn.top_iou", "fcconv.course.mtcnn.face_iou", "fcconv.course.faces.face_iou")


@check("08.1", forbids=IOUS, needs_torch=True)
def iou(rng):
    """fn(a, b) -> intersection over union of inclusive boxes (x0, y0, x1, y1)."""
    cases = list(FIXED_BOXES)
    for _ in range(40):
        a, b = (tuple(int(v) for v in (*p, *(p + rng.integers(0, 20, 2))))
                for p in rng.integers(0, 30, (2, 2)))
        cases.append((a, b))

    def said(got, want, a, b):
        return f"iou({a}, {b}) = {want:.4f}; you gave {float(got):.4f}."

    def with_hint(text):
        return lambda got, want, a, b: f"{said(got, want, a, b)} {text}"
    mistakes = [
        (lambda a, b: _iou(a, b, one=0), with_hint(
            "Inclusive bounds: a box from x0 to x1 is x1 - x0 + 1 pixels wide.")),
        (lambda a, b: _iou(a, b, smaller=True), with_hint(
            "You divided by the smaller box's area: IoU divides the intersection by the union, "
            "area(a) + area(b) - intersection.")),
        (lambda a, b: _iou(a, b, union_counts_twice=True), with_hint(
            "The union counts the intersection once: area(a) + area(b) - intersection.")),
        (lambda a, b: _iou(a, b, clamp=False),
         "When the boxes do not overlap, the overlap's width or height is negative: clamp each "
         "at 0, max(w, 0), before multiplying."),
        (lambda a, b: _iou(a, b, floor=True), with_hint(
            "Use /, not //: IoU is a fraction between 0 and 1.")),
    ]
    return compare(cases, detect.iou, said, number, close, mistakes)


def detections(x) -> list[tuple]:
    """Detections (x0, y0, x1, y1, label, score), each as a tuple of numbers: from a list or
    tuple of 6-number sequences (tuples, lists, 1-d arrays), or an (n, 6) array or tensor."""
    if isinstance(x, np.ndarray) and (x.size == 0 or (x.ndim == 2 and x.shape[1] == 6)):
        x = list(x.reshape(-1, 6))
    if not isinstance(x, (list, tuple)):
        raise Wrong(f"return the detections you keep, a list of 6-tuples (or an (n, 6) array); "
                    f"got {describe(x)}")
    out = []
    for d in x:
        items = list(d) if hasattr(d, "ndim") and d.ndim == 1 else d
        if not isinstance(items, (tuple, list)) or len(items) != 6:
            boxes = isinstance(items, (tuple, list)) and len(items) == 4
            raise Wrong("each detection is (x0, y0, x1, y1, label, score), six values as it came "
                        f"in; you returned {describe(d)}" +
                        (": return the detections you keep, not only their boxes." if boxes else "."))
        out.append((*(integer(v) for v in items[:5]), number(items[5])))
    return out


def same_detections(got: list, want: list) -> bool:
    """The same detections, in any order (a score may come back in float32)."""
    if len(got) != len(want):
        return False
    key = lambda d: tuple(float(v) for v in d)  # noqa: E731
    return all(g[:5] == w[:5] and same_score(g[5], w[5])
               for g, w in zip(sorted(got, key=key), sorted(want, key=key)))


def same_score(got, want) -> bool:
    """Equal within got's precision: a Python float that is exactly a float32 (``tolist()`` of a
    float32 array) is judged as the float32 it came from."""
    return close(got, want) or (isinstance(got, float) and float(np.float32(got)) == got and
                                close(np.float32(got), want))


def _greedy(dets, overlap, by_score: bool = True, per_label: bool = False, ties: bool = False):
    """Greedy suppression, as a learner might write it: in the given order, label by label, or
    (``ties``) suppressing an IoU equal to ``overlap`` too."""
    kept = []
    for d in sorted(dets, key=lambda d: -d[5]) if by_score else dets:
        rivals = [k for k in kept if k[4] == d[4]] if per_label else kept
        if all(detect.iou(d[:4], k[:4]) < overlap if ties else detect.iou(d[:4], k[:4]) <= overlap
               for k in rivals):
            kept.append(d)
    return kept


@check("08.2", forbids=("fcconv.course.detect.nms",), needs_torch=True)
def nms(rng):
    """fn(detections [(x0, y0, x1, y1, label, score)], overlap) -> the kept detections."""
    # The low-scoring box comes first and the two carry different labels: the order and the
    # labels both matter here, whatever the random cases below hold.
    # And a tie: a 10x10 box inside a 10x20 one overlaps it by IoU 100/200 = 0.5 exactly, which
    # is not *above* 0.5, so both stay; suppressing IoU >= overlap drops one.
    cases = [([(0, 0, 27, 27, 1, 0.5), (3, 2, 30, 29, 2, 0.9), (60, 60, 87, 87, 1, 0.7)], 0.3),
             ([(0, 0, 9, 19, 1, 0.9), (0, 0, 9, 9, 1, 0.8)], 0.5)]
    for _ in range(20):
        dets = []
        for _ in range(int(rng.integers(1, 12))):
            x, y = (int(v) for v in rng.integers(0, 60, 2))
            dets.append((x, y, x + 27, y + 27, int(rng.integers(10)), float(rng.random())))
        cases.append((dets, float(rng.choice([0.2, 0.3, 0.5]))))

    def hint(got, want, dets, overlap):
        if len(got) > len(want):
            return "you keep boxes that overlap a better one: suppress IoU > overlap."
        if sorted(g[:5] for g in got) == sorted(w[:5] for w in want):
            return "you keep the right boxes, but a score differs from the one that came in (more " \
                   "than its precision allows): return each kept detection with its score unchanged."
        return "you dropped a box that should stay: go through the boxes from the highest score " \
               "down, and compare each only with the boxes already kept."
    mistakes = [
        (lambda dets, overlap: _greedy(dets, overlap, by_score=False),
         "you took the boxes in the order they came: go through them from the highest score "
         "down, so that the best box of a cluster is the one kept."),
        (lambda dets, overlap: _greedy(dets, overlap, ties=True),
         "you suppressed a box whose IoU with a kept one equals overlap: suppress only IoU "
         "*above* overlap (>), and keep a box whose IoU is exactly overlap."),
        (lambda dets, overlap: _greedy(dets, overlap, per_label=True),
         "you suppressed only boxes with the same label: here labels are ignored, a box "
         "suppresses every lower-scoring box it overlaps, whatever its label."),
    ]
    return compare(cases, detect.nms, hint, detections, same_detections, mistakes)


@check("08.3", forbids=("fcconv.course.detect.transposed_output_size",))
def transposed_size(rng):
    """fn(n, kernel, stride, padding) -> output length of a transposed convolution."""
    cases = [(n, *ksp) for n in range(1, 12)
             for ksp in ((8, 4, 2), (4, 2, 1), (3, 1, 0), (16, 8, 4), (5, 3, 1))
             if (n - 1) * ksp[1] - 2 * ksp[2] + ksp[0] >= 1]
    while len(cases) < 60:
        n, k, s = (int(v) for v in rng.integers([1, 1, 1], [1000, 17, 9]))
        p = int(rng.integers(0, k))
        if (n - 1) * s - 2 * p + k >= 1:
            cases.append((n, k, s, p))

    def hint(got, want, n, k, s, p):
        return f"n={n}, k={k}, s={s}, p={p}: {want}; you gave {got}."
    mistakes = [
        (lambda n, k, s, p: n * s,
         lambda got, want, n, k, s, p: f"n * stride is right only for kernel = 2*stride, padding "
                                       f"= stride/2; for n={n}, k={k}, s={s}, p={p} use "
                                       "(n - 1)*s - 2p + k."),
        (lambda n, k, s, p: n, "that is the input size: a transposed conv grows the map."),
        (lambda n, k, s, p: (n - 1) * s + k,
         "you forgot the padding: it crops p pixels from each side of the output, so subtract 2p."),
        (lambda n, k, s, p: (n - 1) * s - p + k,
         "padding crops both sides of the output: subtract 2p, not p."),
        (lambda n, k, s, p: (n + 2 * p - k) // s + 1,
         "that is a convolution's output size: a transposed conv goes the other way, "
         "(n - 1)*s - 2p + k."),
    ]
    return compare(cases, lambda n, k, s, p: (n - 1) * s - 2 * p + k, hint, mistakes=mistakes)
