"""Trained weights that ship with the course: small files in ``fcconv/course/trained/``, each with
its sha256 and how it was made recorded in ``fcconv/course/trained/weights.json``.

``load`` refuses a file whose checksum does not match (a half-written file, a Git LFS pointer,
a stale copy) and reads it with ``torch.load(weights_only=True)``: no pickled code runs.
Training lives elsewhere (``faces``, ``detect``; ``python -m fcconv.course.retrain`` is what
``make weights`` runs): this module only stores and loads, so the detectors can import it and it
imports none of them.

MTCNN's three nets are not trained here: ``python -m fcconv.course.fetch`` (run by ``make lab`` /
``make test``) takes them from the facenet-pytorch wheel into the course cache, and
``load_pretrained`` reads them from there, checked against ``trained/pretrained.json``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

# torch is imported where a file is read or written, not here: `python -m fcconv.course.fetch`
# (every `make lab`) checks the cache in a fraction of a second, torch or not.

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
    import torch

    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def machine() -> str:
    """CPU model, cores, how busy the machine was (load average), torch version; training runs
    on one thread (see ``faces.train``, ``detect.train_fresh``)."""
    import os

    import torch

    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in
                   Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {os.cpu_count()} cores{load}, one torch thread, torch {torch.__version__}"


def made_on(entry: dict) -> str:
    """The machine a committed file was made on (``entry["machine"]``), for a learner to read:
    the load average becomes words. Above the core count it means other work shared the cores,
    so the recorded training time is an upper bound, not what an idle machine takes."""
    words = entry["machine"]
    load = re.search(r", load average ([0-9.]+)", words)
    cores = re.search(r"(\d+) cores", words)
    if not load:
        return words
    words = words.replace(load[0], "")
    if cores and float(load[1]) > int(cores[1]):
        return f"{words} (busy with other work at the time: the time is an upper bound)"
    return words


def save(model: nn.Module, name: str, **facts) -> dict:
    """Write ``model``'s weights to ``fcconv/course/trained/<name>.pt`` and record its sha256 and
    ``facts`` (seed, accuracy, seconds, ...) with the machine it was made on."""
    import torch

    FOLDER.mkdir(exist_ok=True)
    path = FOLDER / f"{name}.pt"
    torch.save(model.state_dict(), path)
    entry = {"sha256": sha256(path), "bytes": path.stat().st_size, **facts, "machine": machine()}
    everything = record()
    everything[name] = entry
    RECORD.write_text(json.dumps(everything, indent=1, sort_keys=True) + "\n")
    return entry


# --------------------------------------------------------------------------- pretrained (MTCNN)

PRETRAINED = FOLDER / "pretrained.json"
FETCH_COMMAND = "python -m fcconv.course.fetch"


def pretrained_record() -> dict:
    """What ``trained/pretrained.json`` commits about MTCNN's nets: the package to fetch, the
    wheel's sha256, and each file's path in the wheel, size and sha256."""
    return json.loads(PRETRAINED.read_text())


def pretrained_path(name: str) -> Path:
    """Where ``name`` ("pnet", "rnet", "onet") lies once fetched: ``<course cache>/mtcnn/``."""
    from .folders import cache_dir

    rec = pretrained_record()
    if name not in rec["files"]:
        raise ValueError(f"no pretrained net {name!r}: expected one of {', '.join(rec['files'])}")
    return cache_dir() / rec["folder"] / f"{name}.pt"


def pretrained_problem(name: str) -> str | None:
    """Why ``name``'s file cannot be used (missing, or not the committed bytes), or None."""
    path, entry = pretrained_path(name), pretrained_record()["files"][name]
    if not path.is_file():
        return f"{path} is missing"
    got = sha256(path)
    if got != entry["sha256"]:
        return (f"{path} has sha256 {got[:12]}…, not the committed {entry['sha256'][:12]}… "
                "(a damaged or partial file)")
    return None


def load_pretrained(model: nn.Module, name: str) -> nn.Module:
    """Load MTCNN's ``name`` ("pnet", "rnet", "onet") from the course cache into ``model`` after
    checking its sha256 (``torch.load(weights_only=True)``: no pickled code runs); eval mode.
    Nothing is downloaded here: a missing or damaged file raises FileNotFoundError saying how to
    fetch it (``make lab`` / ``make test`` do it once, at set-up)."""
    problem = pretrained_problem(name)
    if problem:
        raise FileNotFoundError(
            f"MTCNN's trained {name} cannot be loaded: {problem}. Fetch the three nets once with "
            f"`make lab` or `make venv` in the course folder (or `{FETCH_COMMAND}` in the course's "
            f"environment): it takes them from the {pretrained_record()['requirement']} wheel on "
            "the package index and checks them.")
    import torch

    model.load_state_dict(torch.load(pretrained_path(name), weights_only=True))
    return model.eval()
