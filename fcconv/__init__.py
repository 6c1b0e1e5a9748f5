"""fcconv: a fully connected layer is a convolution. The course's helper library."""

__version__ = "0.1.0"
