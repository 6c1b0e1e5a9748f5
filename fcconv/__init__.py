"""fcconv: a fully connected layer is a convolution. The course's helper library.

Top level: the shape tools (``conv_output_size``, ``trace``, ``receptive_field``), the course's
model builders, and the conversions (``linear_to_conv`` ... ``shift_and_stitch``).
"""

from .models import MODELS, alexnet, lenet5, question234, tiny_vgg, vgg16
from .shapes import ReceptiveField, Trace, conv_output_size, format_shape, receptive_field, trace
from .torch_ops import (
                        conv_to_linear,
                        convolutionalize,
                        linear_to_conv,
                        shift_and_stitch,
                        sliding_windows,
)

__version__ = "0.1.0"

__all__ = [
    "MODELS", "ReceptiveField", "Trace", "alexnet", "conv_output_size", "conv_to_linear",
    "convolutionalize", "format_shape", "lenet5", "linear_to_conv", "question234",
    "receptive_field", "shift_and_stitch", "sliding_windows", "tiny_vgg", "trace", "vgg16",
]
