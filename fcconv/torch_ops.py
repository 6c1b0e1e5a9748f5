"""FC <-> conv in PyTorch, under one name (the modules hold one idea each):

- ``conversions``: ``linear_to_conv``, ``conv_to_linear`` (one layer at a time);
- ``fcn``: ``convolutionalize`` (a whole classifier);
- ``dense``: ``sliding_windows``, ``stitch_passes``, ``shift_and_stitch`` (dense score maps).
"""

from .conversions import conv_to_linear, linear_to_conv
from .dense import CropToWindows, shift_and_stitch, sliding_windows, stitch_passes
from .fcn import convolutionalize

__all__ = ["CropToWindows", "conv_to_linear", "convolutionalize", "linear_to_conv",
           "shift_and_stitch", "sliding_windows", "stitch_passes"]
