"""Trained weights that ship with the course: small files in ``fcconv/course/trained/``, each with
its sha256 and how it was made recorded in ``fcconv/course/trained/weights.json``.

``load`` refuses a file whose checksum does not match (a half-written file, a Git LFS pointer,
a stale copy) and reads it with ``torch.load(weights_only=True)``: no pickled code runs.
``python -m fcconv.course.weights`` (what ``make weights`` runs) retrains every model from its fixed
seed and rewrites the files and the record.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

FOLDER = Path(__file__).resolve().parent / "trained"
RECORD = FOLDER / "weights.json"


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record() -> dict:
    """What ``weights.json`` says about every committed file: sha256, seed, accuracy, time."""
    return json.loads(RECORD.read_text()) if RECORD.exists() else {}


def load(model: nn.Module, name: str) -> nn.Module:
    """Load ``fcconv/course/trained/<name>.pt`` into ``model`` after checking its sha256; eval mode."""
    path = FOLDER / f"{name}.pt"
    entry = record().get(name)
    if entry is None or not path.exists():
        raise FileNotFoundError(f"no trained weights {path.name} in {FOLDER}: run `make weights` "
                                "(or pass retrain=True)")
    got = sha256(path)
    if got != entry["sha256"]:
        raise ValueError(f"{path.name}: sha256 {got[:12]}… does not match the recorded "
                         f"{entry['sha256'][:12]}… (a damaged or stale file): run `make weights`")
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def machine() -> str:
    """CPU model, cores, how busy the machine was (load average), torch version; training runs
    on one thread (see ``faces.train``, ``detect.train_fresh``)."""
    import os

    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores{load}, one torch thread, torch {torch.__version__}"


def save(model: nn.Module, name: str, **facts) -> dict:
    """Write ``model``'s weights to ``fcconv/course/trained/<name>.pt`` and record its sha256 and
    ``facts`` (seed, accuracy, seconds, ...) with the machine it was made on."""
    FOLDER.mkdir(exist_ok=True)
    path = FOLDER / f"{name}.pt"
    torch.save(model.state_dict(), path)
    entry = {"sha256": sha256(path), "bytes": path.stat().st_size, **facts, "machine": machine()}
    everything = record()
    everything[name] = entry
    RECORD.write_text(json.dumps(everything, indent=1, sort_keys=True) + "\n")
    return entry


def main(argv: list[str] | None = None) -> int:
    """Retrain the shipped models (all, or those named) from their fixed seeds; print the records."""
    import argparse

    from . import detect, faces

    makers = {"face_net": faces.train_and_save, "digit_net": detect.train_and_save}
    p = argparse.ArgumentParser(prog="python -m fcconv.course.weights",
                                description="Retrain the course's shipped models from their fixed "
                                            "seeds and rewrite trained/*.pt and weights.json.")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help=f"which models: {', '.join(makers)} (default: all)")
    names = p.parse_args(argv).models or list(makers)
    unknown = sorted(set(names) - set(makers))
    if unknown:
        p.error(f"unknown model {', '.join(unknown)}: expected one of {', '.join(makers)}")
    for name in names:
        make = makers[name]
        start = time.perf_counter()
        entry = make()
        print(f"{name}: {entry} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
