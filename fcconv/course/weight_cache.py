"""VGG16's seeded random weights, built once into the course cache and memory-mapped from there.

``vgg16(seed=0)`` holds the same numbers as ``torch.manual_seed(0); fcconv.vgg16()``, but its
553 MB of weights are a read-only file (``folders.cache_dir()/weights``) mapped into the kernel,
not memory of its own: every kernel on the machine (a class on one server) shares one copy in
the page cache, and the second notebook that needs VGG16 starts it at once. The mapping is
copy-on-write: a kernel that changes a weight gets its own copy of that page; the file stays.

    python -m fcconv.course.weight_cache        # build the files now (e.g. a hub's shared cache)
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from ..models import vgg16 as build_vgg16
from .folders import cache_dir

INITS = {
    "torchvision": "torchvision's init: Kaiming-normal convs, N(0, 0.01) linears, zero biases",
    "pytorch": "PyTorch's default init: every conv's and linear's reset_parameters()",
}


def _built(seed: int, init: str) -> nn.Module:
    """VGG16 in memory: ``torch.manual_seed(seed); vgg16()``, then for ``init="pytorch"`` every
    Conv2d's and Linear's ``reset_parameters()`` (PyTorch's default init), in module order."""
    with torch.random.fork_rng(devices=[]):  # the caller's random numbers are left as they were
        torch.manual_seed(seed)
        model = build_vgg16()
        if init == "pytorch":
            for m in model.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    m.reset_parameters()
    return model


def path_of(seed: int = 0, init: str = "torchvision") -> Path:
    """The cache file of VGG16 built from ``seed`` with ``init`` (random numbers can change
    between torch versions, so the version is in the name)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}; got {init!r}")
    return cache_dir() / "weights" / f"vgg16-seed{seed}-{init}-torch{torch.__version__}.pt"


def build(seed: int = 0, init: str = "torchvision") -> Path:
    """Write the cache file if it is missing (one writer at a time; others wait for it, then
    read it); returns its path. The file appears whole or not at all (written, then renamed)."""
    path = path_of(seed, init)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a class starting at once: one builds, the rest wait
        if not path.exists():
            state = _built(seed, init).state_dict()
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    torch.save(state, f)
                os.chmod(tmp, 0o444)  # read-only: kernels map it, nobody writes it
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
    return path


def vgg16(seed: int = 0, init: str = "torchvision") -> nn.Module:
    """VGG16 with the weights ``torch.manual_seed(seed); fcconv.vgg16()`` gives (``init=
    "pytorch"``: then re-initialised by every layer's ``reset_parameters()``), memory-mapped
    read-only from the course cache. x: (N, 3, 224, 224) -> (N, 1000), like ``fcconv.vgg16()``.

    Where the cache cannot be written (a shared folder someone else owns, not built yet), the
    model is built in this kernel's own memory instead: the same numbers, not shared.
    """
    path_of(seed, init)  # an unknown init: refused here, before anything is built
    # A model converted from an earlier one (its fx graph is a reference cycle) keeps that one's
    # weights until Python's cycle collector runs: collect now, so the two are not both resident.
    gc.collect()
    try:
        path = build(seed, init)
    except OSError as err:
        print(f"fcconv: VGG16's weights could not be cached ({err}); built in this kernel's "
              "memory instead (the same numbers, not shared with other kernels)", file=sys.stderr)
        return _built(seed, init)
    state = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    model = build_vgg16(device="meta")  # the structure only: no memory until the file fills it
    model.load_state_dict(state, assign=True)
    return model


def main(argv: list[str]) -> int:
    if argv:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 0 if argv[0] in ("-h", "--help") else 2
    for init in INITS:
        print(f"{build(0, init)}  ({INITS[init]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
