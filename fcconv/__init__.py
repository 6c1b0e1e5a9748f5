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
import importlib.util

from .formulas import conv_output_size, format_shape

__version__ = "0.1.0"
_HIDDEN = {"annotations", "importlib"}  # imports of this file, not the course's names

# name -> the module that defines it; each is imported on first use (they all need torch)
_LAZY = {
    "ReceptiveField": "shapes", "Trace": "shapes", "receptive_field": "shapes", "trace": "shapes",
    "MODELS": "models", "alexnet": "models", "lenet5": "models", "question234": "models",
    "tiny_vgg": "models", "vgg16": "models", "dress_detector": "models",
    "linear_to_conv": "conversions", "conv_to_linear": "conversions",
    "convolutionalize": "fcn", "sliding_windows": "dense", "shift_and_stitch": "dense",
}
# submodules reachable as attributes after a plain ``import fcconv`` (``fcconv.numpy_ops``)
_MODULES = {"formulas", "numpy_ops", "shapes", "conversions", "fcn", "dense", "models", "data",
            "plots", "widgets", "torch_ops", "course"}

# ``from fcconv import *`` takes what this environment can load (no torch: the NumPy half only)
__all__ = ["conv_output_size", "format_shape",
           *(_LAZY if importlib.util.find_spec("torch") is not None else ())]


def __getattr__(name: str):
    if name not in _LAZY and name not in _MODULES:
        raise AttributeError(f"module 'fcconv' has no attribute {name!r}")
    try:
        module = importlib.import_module(f".{_LAZY.get(name, name)}", __name__)
    except ModuleNotFoundError as err:
        if err.name != "torch":
            raise
        # an AttributeError, so hasattr(), help(fcconv) and tab completion carry on without torch
        raise AttributeError(f"fcconv.{name} needs PyTorch, which is not installed here "
                             "(the NumPy half: fcconv.numpy_ops, fcconv.formulas, "
                             "fcconv.plots)") from err
    if name in _MODULES:
        return module
    value = globals()[name] = getattr(module, name)  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*(n for n in globals() if not n.startswith("_") and n not in _HIDDEN),
                   *_LAZY, *_MODULES})
