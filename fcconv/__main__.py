"""Command line: ``python -m fcconv trace vgg16 --input 384 [--convolutionalized]``,
``python -m fcconv faces PHOTO [--json] [--out annotated.png]``,
``python -m fcconv grade NOTEBOOK...``."""

from __future__ import annotations

import argparse
import importlib.util
import sys

if importlib.util.find_spec("torch") is None:  # say so, not a traceback from the imports below
    raise SystemExit("python -m fcconv (trace, faces, grade) needs PyTorch, which is not installed "
                     "here: install the course with `make venv` (the NumPy half works without it).")

from .models import MODELS, build  # noqa: E402  (after the check above)
from .shapes import trace


def _trace(args) -> int:
    model, train_shape = build(args.model, device="meta")  # shapes only: no weights, no compute
    size = train_shape[-1] if args.input is None else args.input  # 0 is a size (refused), not "none"
    if args.convolutionalized:
        from .torch_ops import convolutionalize

        model = convolutionalize(model, train_shape)
    try:
        table = trace(model, (train_shape[0], size, size))  # raises on a size that cannot work
    except ValueError as err:
        if args.convolutionalized or not _slides_at(model, train_shape, size):
            raise
        side = train_shape[-1]
        raise ValueError(f"{err}\n{args.model} as trained takes {side}x{side} only: add "
                         f"--convolutionalized for its score map at {size}x{size}") from None
    print(f"{args.model}{' (convolutionalized)' if args.convolutionalized else ''} "
          f"at {size}x{size}x{train_shape[0]}")
    print(table)
    return 0


def _slides_at(model, train_shape, size: int) -> bool:
    """Whether --convolutionalized would help: the converted net traces at ``size`` (larger
    than the training size, and not too large to trace)."""
    from .torch_ops import convolutionalize

    if size <= train_shape[-1]:
        return False
    try:
        trace(convolutionalize(model, train_shape), (train_shape[0], size, size))
    except ValueError:
        return False
    return True


def _faces(args) -> int:
    import json

    from .course import mtcnn

    try:
        _check_out(args.out, args.photo)
        image = mtcnn.read_photo(args.photo)
        found = mtcnn.detect(image, min_face=args.min_face).faces
        if args.out:
            mtcnn.save_png(mtcnn.annotated(image, found), args.out)
    except (ValueError, OSError) as err:  # a bad photo, missing weights, an unwritable --out
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(mtcnn.as_records(found), indent=1))
    else:
        for x0, y0, x1, y1, _label, p in found:
            print(f"{x0} {y0} {x1} {y1} {p:.4f}")
    h, w = image.shape[:2]
    print(f"{len(found)} face{'s' * (len(found) != 1)} in {args.photo} ({w}x{h}; MTCNN, faces of "
          f"{args.min_face:g} px and up){f', drawn in {args.out}' if args.out else ''}",
          file=sys.stderr)
    return 0


def _grade(args) -> int:
    from .course.grade import main as grade_main

    return grade_main(args.notebooks, cell_timeout=args.timeout, memory_gb=args.memory,
                      output_mb=args.max_output, csv_path=args.csv, jobs=args.jobs,
                      deadline=args.deadline)


def _limit(kind, option: str):
    """An argparse type for a grading limit: a finite number in its range (checked as the grader
    checks it), so that a bad value stops the run before any notebook is graded."""
    def parse(text: str):
        from .course.grade import check_limit

        try:
            value = float(text)
            if kind is int and value.is_integer():
                value = int(value)
            check_limit(option, value)
            if not isinstance(value, kind):
                raise ValueError(f"{option} must be a whole number; got {text}")
        except ValueError as err:
            message = str(err).split("; got")[0] if option in str(err) else \
                f"{option} must be a number"
            raise argparse.ArgumentTypeError(f"{message}; got {text}") from None
        return value
    parse.__name__ = kind.__name__
    return parse


def _side(text: str) -> int:
    """An argparse type for trace's --input: a whole number of pixels > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of pixels, got {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _min_face(text: str) -> float:
    """An argparse type for faces' --min-face: a finite number of pixels > 0 (mtcnn says why one
    under P-Net's 12 px window cannot work)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of pixels, got {text}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of pixels, got {text}")
    return value


def _csv(text: str) -> str:
    from .course.grade import check_csv

    try:
        check_csv(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _check_out(out: str | None, photo: str) -> None:
    """--out names a new .png file, not the photo itself (which it would overwrite)."""
    from pathlib import Path

    if out is None:
        return
    if Path(out).suffix.lower() != ".png":
        raise ValueError(f"--out {out}: the drawing is written as PNG, so its name must end in "
                         ".png")
    if Path(out).resolve() == Path(photo).resolve() or \
            Path(out).exists() and Path(photo).exists() and Path(out).samefile(photo):
        raise ValueError(f"--out {out} is the photo itself: it would be overwritten; name "
                         "another file")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fcconv", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("trace", help="print shapes, parameters, MACs and receptive fields")
    t.add_argument("model", choices=sorted(MODELS))
    t.add_argument("--input", type=_side,
                   help="input height = width (default: the training size)")
    t.add_argument("--convolutionalized", action="store_true",
                   help="trace the fully convolutional version (a score map on larger inputs)")
    t.set_defaults(run=_trace)
    f = sub.add_parser("faces", help="find faces in a photo with MTCNN: one line per face, "
                                     "x0 y0 x1 y1 probability (pixels, inclusive)")
    f.add_argument("photo", help="a JPEG or PNG file")
    f.add_argument("--json", action="store_true",
                   help="print a JSON list of {x0, y0, x1, y1, probability} instead")
    f.add_argument("--out", help="also write the photo with the boxes drawn on it (PNG)")
    f.add_argument("--min-face", type=_min_face, default=20.0,
                   help="smallest face looked for, in pixels (default 20; larger is faster)")
    f.set_defaults(run=_faces)
    g = sub.add_parser("grade", help="run exercise notebooks and print a score per exercise")
    g.add_argument("notebooks", nargs="+")
    g.add_argument("--timeout", type=_limit(int, "--timeout"), default=60,
                   help="seconds allowed per cell, 1 to 3600 (default 60)")
    g.add_argument("--memory", type=_limit(float, "--memory"), default=4.0,
                   help="GB of memory each notebook's code may allocate (default 4)")
    g.add_argument("--max-output", type=_limit(float, "--max-output"), default=10.0,
                   help="MB of output counted per notebook; the rest is dropped (default 10)")
    g.add_argument("--deadline", type=_limit(int, "--deadline"), default=600,
                   help="seconds for all of a notebook's cells together (default 600)")
    g.add_argument("--csv", type=_csv, help="also write a gradebook: one row per notebook")
    g.add_argument("--jobs", type=_limit(int, "--jobs"), default=2,
                   help="notebooks graded at once, each in its own kernel (default 2)")
    g.set_defaults(run=_grade)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:  # a bad size: say why, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
