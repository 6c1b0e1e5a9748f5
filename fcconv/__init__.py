"""fcconv: a fully connected layer is a convolution. The course's helper library.

Top level: the shape tools (``conv_output_size``, ``trace``, ``receptive_field``), the course's
model builders, and the conversions (``linear_to_conv`` ... ``shift_and_stitch``). The modules,
in the order the course teaches them: ``formulas`` and ``numpy_ops`` (no torch), ``shapes``,
``conversions``, ``fcn``, ``dense``, ``models``, ``data``, ``plots``, ``widgets``.

``import fcconv`` does not import torch: the NumPy half (``fcconv.formulas``,
``fcconv.numpy_ops``, ``fcconv.plots``) works without it, and a torch-backed name is loaded the
first time it is used (PEP 562).
"""

from __future__ import annotations

import importlib

from .formulas import conv_output_size, format_shape

__version__ = "0.1.0"

# name -> the module that defines it; each is imported on first use (they all need torch)
_LAZY = {
    "ReceptiveField": "shapes", "Trace": "shapes", "receptive_field": "shapes", "trace": "shapes",
    "MODELS": "models", "alexnet": "models", "lenet5": "models", "question234": "models",
    "tiny_vgg": "models", "vgg16": "models",
    "linear_to_conv": "conversions", "conv_to_linear": "conversions",
    "convolutionalize": "fcn", "sliding_windows": "dense", "shift_and_stitch": "dense",
}
# submodules reachable as attributes after a plain ``import fcconv`` (``fcconv.numpy_ops``)
_MODULES = {"formulas", "numpy_ops", "shapes", "conversions", "fcn", "dense", "models", "data",
            "plots", "widgets", "torch_ops", "course"}

__all__ = ["conv_output_size", "format_shape", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fcconv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_MODULES})
