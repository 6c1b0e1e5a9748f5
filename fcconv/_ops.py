"""The PyTorch ops the graph walk knows, by what they do to pixels (private).

Modules by class, functions by identity (``F.max_pool2d``), tensor methods by name (``"view"``).
Anything not listed here is unknown to the walk: never taken for the identity.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
        nn.LPPool1d, nn.LPPool2d)
ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
            nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
ZERO_PAD = (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d,
            nn.ConstantPad3d)
DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
           nn.FeatureAlphaDropout)
BATCH_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
# Modules that act on each position (and each channel, or all channels) on their own.
POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
             nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
             nn.Softplus, nn.Softsign, nn.LogSigmoid, nn.Tanhshrink, nn.Threshold, nn.Identity,
             nn.LocalResponseNorm, *DROPOUT, *BATCH_NORM)
SOFTMAX = (nn.Softmax, nn.LogSoftmax)
# Modules with their input's number of spatial axes in the name: Conv1d -> 1, MaxPool2d -> 2.
SPATIAL_DIMS = {cls: int(cls.__name__[-2]) for cls in (*CONV, *CONV_T, *POOL, *ADAPTIVE, *ZERO_PAD)}

# Functions: name -> the order of their positional parameters (PyTorch's signatures).
_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_MAXPOOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
                 "return_indices")
_AVGPOOL_ARGS = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                 "divisor_override")
_LPPOOL_ARGS = ("input", "norm_type", "kernel_size", "stride", "ceil_mode")
WINDOW_FUNCS = {
    F.conv1d: _CONV_ARGS, F.conv2d: _CONV_ARGS, F.conv3d: _CONV_ARGS,
    F.max_pool1d: _MAXPOOL_ARGS, F.max_pool2d: _MAXPOOL_ARGS, F.max_pool3d: _MAXPOOL_ARGS,
    torch.max_pool1d: _MAXPOOL_ARGS, torch.max_pool2d: _MAXPOOL_ARGS,
    torch.max_pool3d: _MAXPOOL_ARGS, F.max_pool2d_with_indices: _MAXPOOL_ARGS,
    F.avg_pool1d: _AVGPOOL_ARGS, F.avg_pool2d: _AVGPOOL_ARGS, F.avg_pool3d: _AVGPOOL_ARGS,
    F.lp_pool1d: _LPPOOL_ARGS, F.lp_pool2d: _LPPOOL_ARGS,
}
ADAPTIVE_FUNCS = {F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
                  F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d}
RESHAPES = {torch.flatten, torch.reshape, "flatten", "view", "reshape"}
SQUEEZES = {torch.squeeze, "squeeze"}
PERMUTES = {torch.permute, torch.transpose, torch.swapaxes, torch.swapdims, torch.movedim,
            torch.moveaxis, "permute", "transpose", "swapaxes", "swapdims", "movedim",
            "moveaxis"}
REDUCTIONS = {torch.mean, torch.sum, torch.amax, torch.amin, "mean", "sum", "amax", "amin"}
# Ops that cut a tensor into a tuple of pieces along ``dim``, by their parameters' order (and
# torch.max / torch.min with a dim: (values, indices)); the defaults of dim are 0, the batch.
PIECES = {torch.split: ("tensor", "split_size_or_sections", "dim"),
          torch.chunk: ("input", "chunks", "dim"), torch.unbind: ("input", "dim"),
          "split": ("self", "split_size", "dim"), "chunk": ("self", "chunks", "dim"),
          "unbind": ("self", "dim"), torch.max: ("input", "dim"), torch.min: ("input", "dim"),
          "max": ("self", "dim"), "min": ("self", "dim")}
MAXMIN = {torch.max, torch.min, "max", "min"}  # with a second tensor: elementwise
SELECTS = {torch.select, "select"}   # (input, dim, index): one index along dim
STACKS = {torch.stack}               # (tensors, dim)
# Dropout functions -> whether they drop by default (F.dropout's training=True: even in eval).
DROPOUT_FUNCS = {F.dropout: True, F.dropout1d: True, F.dropout2d: True, F.dropout3d: True,
                 F.alpha_dropout: False, F.feature_alpha_dropout: False, torch.dropout: None}
POINTWISE_FUNCS = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish,
    torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.hardtanh, F.hardswish, F.softplus,
    torch.exp, torch.abs, torch.clamp, *DROPOUT_FUNCS,
    "relu", "relu_", "sigmoid", "tanh", "exp", "abs", "clamp", "neg", "contiguous", "float",
    "double", "clone", "detach"}
BINARY = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd,
          operator.isub, operator.imul, operator.itruediv, torch.add, torch.sub, torch.mul,
          torch.div, torch.maximum, torch.minimum, "add", "sub", "mul", "div", "add_", "mul_"}
SOFTMAX_FUNCS = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, "softmax",
                 "log_softmax"}
CATS = {torch.cat, torch.concat}
# Random numbers drawn in forward (a stochastic-depth mask, noise): no two passes agree.
RANDOM_FUNCS = {torch.rand, torch.randn, torch.rand_like, torch.randn_like, torch.randint,
                torch.randint_like, torch.bernoulli, torch.normal, torch.multinomial,
                torch.randperm, torch.poisson, "bernoulli", "bernoulli_", "uniform_", "normal_",
                "random_", "exponential_", "geometric_", "cauchy_", "log_normal_"}
LINEAR_FUNCS = {F.linear}
LAYER_FUNCS = {*WINDOW_FUNCS, *ADAPTIVE_FUNCS, *LINEAR_FUNCS}  # rows of ``trace``
# Tensor methods and functions whose result is a size read off a tensor, not its values.
SIZES = {"size", "numel", "dim", torch.numel}


def bind(names, args, kwargs) -> dict:
    """A call's arguments by parameter name: ``names`` in order for the positional ones."""
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound
