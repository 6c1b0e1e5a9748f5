"""FC <-> conv in PyTorch: convert layers, convolutionalize whole classifiers, slide and stitch.

``convolutionalize`` rewrites a model's graph (torch.fx): the flatten disappears, the first Linear
becomes a conv whose kernel is the whole feature map, later Linears become 1x1 convs. On the
training size the result gives (N, K, 1, 1); on a larger image, a (N, K, rows, cols) score map,
one cell per window the classifier would have seen at stride = the trunk's jump.
"""

from __future__ import annotations

import copy
import math
import operator
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils import skip_init

from . import numpy_ops
from .shapes import format_shape, model_dtype, receptive_field, run_on_meta

Shape = tuple[int, ...]


# --------------------------------------------------------------------------- argument checks

def _expect(obj, cls, name: str) -> None:
    if not isinstance(obj, cls):
        raise TypeError(f"{name} must be an {cls.__name__}; got {type(obj).__name__}")


def _shape(in_shape, lengths=(1, 2, 3), name="in_shape") -> Shape:
    try:
        shape = tuple(int(s) for s in in_shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple like (512, 7, 7); got {in_shape!r}") from None
    if len(shape) not in lengths or any(s < 1 for s in shape):
        forms = {1: "(C,)", 2: "(C, L)", 3: "(C, H, W)"}
        raise ValueError(f"{name} must be {' or '.join(forms[n] for n in lengths)} with positive "
                         f"sizes; got {in_shape!r}")
    return shape


def _spelled(shape: Shape) -> str:
    """(512, 7, 7) -> '25088 = 512x7x7' (C x H x W, PyTorch's flatten order)."""
    return f"{math.prod(shape)} = " + "x".join(map(str, shape))


# --------------------------------------------------------------------------- single layers

def linear_to_conv(linear: nn.Linear, in_shape, order: str = "chw") -> nn.Module:
    """A Linear on a flattened (C, H, W) volume as the conv that computes the same numbers.

    in_shape (C, H, W) -> Conv2d(C, K, kernel=(H, W)): x (N, C, H, W) -> (N, K, 1, 1).
    in_shape (C, L) -> Conv1d(C, K, kernel=L); (C,) -> Conv2d(C, K, 1), a 1x1 conv.
    order: "chw" if the Linear saw torch.flatten's C,H,W order, "hwc" for Keras/TensorFlow.
    """
    _expect(linear, nn.Linear, "linear")
    shape = _shape(in_shape)
    numpy_ops._order(order)
    if linear.in_features != math.prod(shape):
        raise ValueError(f"Linear expects {linear.in_features} inputs but in_shape "
                         f"{'x'.join(map(str, shape))} gives {_spelled(shape)}")
    k, w = linear.out_features, linear.weight.detach()
    if len(shape) == 2:
        c, length = shape
        conv = skip_init(nn.Conv1d, c, k, length, bias=linear.bias is not None,
                         device=w.device, dtype=w.dtype)
        weight = w.reshape(k, c, length) if order == "chw" else \
            w.reshape(k, length, c).permute(0, 2, 1)
    else:
        c, h, wd = shape if len(shape) == 3 else (shape[0], 1, 1)
        conv = skip_init(nn.Conv2d, c, k, (h, wd), bias=linear.bias is not None,
                         device=w.device, dtype=w.dtype)
        weight = w.reshape(k, c, h, wd) if order == "chw" else \
            w.reshape(k, h, wd, c).permute(0, 3, 1, 2)
    with torch.no_grad():  # every parameter is overwritten: skip_init spared a random init
        conv.weight.copy_(weight)
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    conv.train(linear.training)
    return conv


def conv_to_linear(conv: nn.Conv2d, in_shape) -> nn.Linear:
    """Any Conv2d on a fixed (C, H, W) input as one Linear: its dense, weight-shared matrix.

    x.flatten(1) (N, C*H*W) -> (N, K*H'*W'), equal to conv(x).flatten(1).
    """
    _expect(conv, nn.Conv2d, "conv")
    c, h, w = _shape(in_shape, (3,))
    if conv.in_channels != c:
        raise ValueError(f"conv expects {conv.in_channels} input channels but in_shape has {c}")
    if conv.groups != 1 or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise ValueError("conv_to_linear handles groups=1 with numeric zero padding; got "
                         f"groups={conv.groups}, padding={conv.padding!r}, "
                         f"padding_mode={conv.padding_mode!r}")
    weight = conv.weight.detach().cpu().double().numpy()
    m = numpy_ops.conv_matrix(weight, (c, h, w), conv.stride, conv.padding, conv.dilation)
    positions = m.shape[0] // conv.out_channels
    fc = nn.Linear(m.shape[1], m.shape[0], bias=conv.bias is not None,
                   device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(m))
        if conv.bias is not None:  # one bias per channel, repeated at every position
            fc.bias.copy_(conv.bias.repeat_interleave(positions))
    return fc


# --------------------------------------------------------------------------- whole classifiers

_FLATTEN_FUNCS = {torch.flatten, torch.reshape}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}
_ADAPTIVE_FUNCS = {F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
# What may run on the classifier head once it holds (N, K, rows, cols) maps instead of vectors.
_ELEMENTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid,
                        nn.Tanh, nn.Identity, nn.Dropout, nn.AlphaDropout)
_ELEMENTWISE_FUNCS = {F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.gelu, F.silu,
                      torch.sigmoid, torch.tanh, F.dropout, operator.mul, operator.add,
                      operator.truediv, operator.sub, torch.mul, torch.add}
_ELEMENTWISE_METHODS = {"relu", "sigmoid", "tanh", "mul", "add", "div", "sub"}
_SOFTMAX_FUNCS = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax}
_SOFTMAX_METHODS = {"softmax", "log_softmax"}


class _MetaShapes(fx.Interpreter):
    """Runs a GraphModule on meta tensors and records each node's output shape."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm)
        self.shapes: dict[fx.Node, Shape] = {}

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.shapes[n] = tuple(out.shape)
        return out

    def call_module(self, target, args, kwargs):
        from .shapes import _meta_state

        mod = self.fetch_attr(target)
        return torch.func.functional_call(mod, _meta_state(mod), args, kwargs)

    def fetch_attr(self, target: str):
        attr = super().fetch_attr(target)
        return torch.empty_like(attr, device="meta") if isinstance(attr, torch.Tensor) else attr


def _node_shapes(gm: fx.GraphModule, input_shape: Shape) -> dict[fx.Node, Shape]:
    interp = _MetaShapes(gm)
    try:
        interp.run(torch.empty((2, *input_shape), device="meta", dtype=model_dtype(gm)))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"the model cannot run on input {input_shape}: {first}") from None
    return interp.shapes


def _is_flatten(node: fx.Node, gm: fx.GraphModule, shapes) -> bool:
    """A node that folds a (N, C, H, W) map into (N, C*H*W) vectors."""
    src = node.args[0] if node.args else None
    if not isinstance(src, fx.Node) or len(shapes.get(src, ())) < 3 or len(shapes.get(node, ())) != 2:
        return False
    if node.op == "call_module":
        return isinstance(gm.get_submodule(node.target), nn.Flatten)
    if node.op == "call_function":
        return node.target in _FLATTEN_FUNCS
    return node.op == "call_method" and node.target in _FLATTEN_METHODS


def _replace_module(gm: fx.GraphModule, target: str, new: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, new)


def _drop_identity_adaptive_pools(gm, shapes, input_shape) -> None:
    """AdaptiveAvgPool2d that is an identity at the training size goes; any other is an error."""
    for node in list(gm.graph.nodes):
        is_mod = node.op == "call_module" and isinstance(
            gm.get_submodule(node.target), (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
        is_fn = node.op == "call_function" and node.target in _ADAPTIVE_FUNCS
        if not (is_mod or is_fn):
            continue
        src = node.args[0]
        before, after = shapes[src][2:], shapes[node][2:]
        name = node.target if is_mod else node.name
        if before != after:
            raise ValueError(
                f"{name!r} pools the {'x'.join(map(str, before))} feature map at input "
                f"{format_shape(input_shape)} to {'x'.join(map(str, after))}: it is not an "
                "identity here, and on a larger input it would average the whole map down to "
                f"{'x'.join(map(str, after))} instead of sliding the classifier over it. "
                "Convolutionalize at the size where the feature map already is "
                f"{'x'.join(map(str, after))} (e.g. 224x224 for VGG16).")
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)


def _convert_head(gm: fx.GraphModule, flat_nodes: dict[fx.Node, Shape]) -> None:
    """Walk forward from each flatten and rewrite every op on the head so that it works on maps.

    ``pending`` holds nodes whose value is still a flattened map (the flatten, and dropout or
    activations on it): the Linear that consumes one takes the whole map as its kernel.
    """
    pending = dict(flat_nodes)
    on_head = set(flat_nodes)
    for node in list(gm.graph.nodes):
        inputs = [a for a in node.all_input_nodes if a in on_head]
        if node in on_head or not inputs or node.op == "output":
            continue
        on_head.add(node)
        map_shape = pending.get(inputs[0])
        consumes_map = False
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            if not isinstance(mod, nn.Linear) and map_shape is not None and \
                    not isinstance(mod, _ELEMENTWISE_MODULES):
                raise ValueError(f"{type(mod).__name__} ({node.target!r}) acts on the flattened "
                                 f"{format_shape(map_shape)} features before the first Linear; "
                                 "convolutionalize supports only dropout and activations there")
            _convert_head_module(gm, node, mod, map_shape)
            consumes_map = isinstance(mod, nn.Linear)
        elif _is_call(node, _SOFTMAX_FUNCS, _SOFTMAX_METHODS):
            _softmax_over_channels(node)
        elif not _is_call(node, _ELEMENTWISE_FUNCS, _ELEMENTWISE_METHODS):
            raise ValueError(f"convolutionalize cannot carry {node.format_node()!r} over the "
                             "classifier head: only Linear, BatchNorm1d, dropout, elementwise "
                             "activations and softmax over the classes are supported there")
        if map_shape is not None and not consumes_map:
            pending[node] = map_shape
    for node in flat_nodes:  # the flatten itself goes: the map stays a map
        node.replace_all_uses_with(node.args[0])
        gm.graph.erase_node(node)


def _is_call(node: fx.Node, funcs, methods) -> bool:
    return (node.op == "call_function" and node.target in funcs) or \
        (node.op == "call_method" and node.target in methods)


def _convert_head_module(gm, node: fx.Node, mod: nn.Module, map_shape: Shape | None) -> None:
    """Replace one head module by its map version (in place in ``gm``)."""
    if isinstance(mod, nn.Linear):
        # Right after the flatten: the kernel is the whole map. Anywhere later: 1x1.
        shape = map_shape or (mod.in_features,)
        if mod.in_features != math.prod(shape):
            raise ValueError(f"Linear {node.target!r} expects {mod.in_features} inputs but the "
                             f"feature map is {'x'.join(map(str, shape))} = {math.prod(shape)}")
        _replace_module(gm, node.target, linear_to_conv(mod, shape))
    elif isinstance(mod, nn.BatchNorm1d):  # per-feature on (N, K) = per-channel on (N, K, r, c)
        bn = nn.BatchNorm2d(mod.num_features, mod.eps, mod.momentum, mod.affine,
                            mod.track_running_stats, device=_device_of(mod), dtype=_dtype_of(mod))
        bn.load_state_dict(mod.state_dict())
        bn.train(mod.training)
        _replace_module(gm, node.target, bn)
    elif isinstance(mod, (nn.Softmax, nn.LogSoftmax)):
        if mod.dim not in (1, -1):
            raise ValueError(f"{node.target!r}: softmax over dim {mod.dim} is not over the classes")
        _replace_module(gm, node.target, type(mod)(dim=1))
    elif not isinstance(mod, _ELEMENTWISE_MODULES):
        raise ValueError(f"convolutionalize cannot carry {type(mod).__name__} ({node.target!r}) "
                         "over the classifier head")


def _softmax_over_channels(node: fx.Node) -> None:
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    if dim not in (1, -1):
        raise ValueError(f"{node.format_node()!r}: softmax over dim {dim} is not over the classes")
    if "dim" in node.kwargs:
        node.update_kwarg("dim", 1)
    else:
        node.update_arg(1, 1)


def _device_of(mod: nn.Module):
    return next((t.device for t in mod.state_dict().values()), None)


def _dtype_of(mod: nn.Module):
    return next((t.dtype for t in mod.parameters()), None)


class _SizeGuard:
    """Checks an input is at least the training size, with the arithmetic in the message."""

    def __init__(self, input_shape: Shape, flat_shape: Shape):
        self.input_shape, self.flat_shape = input_shape, flat_shape

    def __call__(self, module, args):
        x = args[0]
        need = self.input_shape[1:]
        got = tuple(x.shape[2:])
        if x.dim() != len(self.input_shape) + 1 or x.shape[1] != self.input_shape[0]:
            raise ValueError(f"expected input (N, {', '.join(map(str, self.input_shape))}) or "
                             f"larger; got {tuple(x.shape)}")
        if any(g < n for g, n in zip(got, need)):
            raise ValueError(f"Linear expects {_spelled(self.flat_shape)} inputs but the input "
                             f"{'x'.join(map(str, got))} is smaller than the "
                             f"{'x'.join(map(str, need))} window the classifier was built for")


def _as_sequential(gm: fx.GraphModule) -> nn.Module:
    """A chain of layers reads better as nn.Sequential (same layer names); else keep the graph."""
    nodes = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output")]
    chain = all(n.op == "call_module" and "." not in n.target and len(n.users) == 1
                for n in nodes)
    if not chain:
        return gm
    return nn.Sequential(OrderedDict((n.target, gm.get_submodule(n.target)) for n in nodes))


def convolutionalize(model: nn.Module, input_shape) -> nn.Module:
    """The classifier as a fully convolutional network (the original is left untouched).

    input_shape: the (C, H, W) it was trained on. Result: x (N, C, H, W) -> (N, K, 1, 1) at that
    size; (N, K, rows, cols) on larger inputs, rows = (H - window) // jump + 1 for an unpadded or
    floor-pooled trunk. Works on nn.Sequential and on custom forwards (torch.fx) that flatten with
    nn.Flatten, torch.flatten, view or reshape.
    """
    _expect(model, nn.Module, "model")
    input_shape = _shape(input_shape, (2, 3), "input_shape")
    try:
        gm = fx.symbolic_trace(copy.deepcopy(model))
    except Exception as err:  # fx raises many kinds; say what it means for the learner
        raise ValueError(f"convolutionalize needs a model torch.fx can trace: {err}") from None
    shapes = _node_shapes(gm, input_shape)
    _drop_identity_adaptive_pools(gm, shapes, input_shape)
    flat_nodes = {n: shapes[n.args[0]][1:] for n in gm.graph.nodes if _is_flatten(n, gm, shapes)}
    if not flat_nodes:
        raise ValueError("found no flatten (nn.Flatten, torch.flatten, view or reshape to "
                         "(N, features)) in the model: it is already convolutional, or its "
                         "head does not start from a feature map")
    _convert_head(gm, flat_nodes)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    flat_shape = next(iter(flat_nodes.values()))
    gm = _as_sequential(gm) if isinstance(model, nn.Sequential) else gm
    gm.register_forward_pre_hook(_SizeGuard(input_shape, flat_shape))
    out = run_on_meta(gm, input_shape)
    if any(s != 1 for s in out.shape[2:]):
        raise ValueError(f"the converted model gives {out} at the training size, not (N, K, 1, 1)")
    return gm


# --------------------------------------------------------------------------- sliding and stitching

def _image(image) -> torch.Tensor:
    _expect(image, torch.Tensor, "image")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4:
        raise ValueError(f"image must be (C, H, W) or (N, C, H, W); got shape {tuple(image.shape)}")
    return image


def _pair(name, v) -> tuple[int, int]:
    pair = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(pair) != 2 or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them; got {v!r}")
    return pair


@torch.no_grad()
def sliding_windows(model: nn.Module, image: torch.Tensor, window, stride,
                    batch_size: int = 32) -> torch.Tensor:
    """The reference: run ``model`` on every window-sized crop at ``stride``.

    image (N, C, H, W) or (C, H, W) -> scores (N, K, rows, cols), rows = (H - window) // stride + 1.
    Crops go through in batches of ``batch_size`` to bound memory.
    """
    image = _image(image)
    (wh, ww), (sh, sw) = _pair("window", window), _pair("stride", stride)
    n, c, h, w = image.shape
    if wh > h or ww > w:
        raise ValueError(f"window {wh}x{ww} does not fit in the {h}x{w} image")
    crops = image.unfold(2, wh, sh).unfold(3, ww, sw)          # (N, C, rows, cols, wh, ww)
    rows, cols = crops.shape[2:4]
    crops = crops.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, wh, ww)
    scores = torch.cat([model(crops[i:i + batch_size]).reshape(len(crops[i:i + batch_size]), -1)
                        for i in range(0, len(crops), batch_size)])
    return scores.reshape(n, rows, cols, -1).permute(0, 3, 1, 2)


def stitch_passes(jump: int, step: int) -> int:
    """How many shifted passes shift-and-stitch needs: f^2 with f = jump / step."""
    if step < 1 or jump % step:
        raise ValueError(f"step must divide the network's jump {jump}; got {step} "
                         f"(try one of {[d for d in range(1, jump + 1) if jump % d == 0]})")
    return (jump // step) ** 2


@torch.no_grad()
def shift_and_stitch(fcn: nn.Module, image: torch.Tensor, step: int) -> torch.Tensor:
    """A score map at stride ``step`` < jump, from (jump/step)^2 passes over shifted inputs.

    image (N, C, H, W) -> (N, K, rows, cols) with rows = (H - window) // step + 1: equal to
    ``sliding_windows(model, image, window, step)`` for a net without zero padding.
    Pass (dy, dx) drops the first dy*step rows and dx*step columns; its cell (i, j) is the window
    at (i*jump + dy*step, j*jump + dx*step), which goes to row i*f + dy, column j*f + dx.
    """
    image = _image(image)
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int; got {step!r}")
    jump = receptive_field(fcn, tuple(image.shape[1:])).jump
    if not isinstance(jump, int):
        raise ValueError(f"the network's jump differs between height and width: {jump}")
    f = math.isqrt(stitch_passes(jump, step))
    passes = {(dy, dx): fcn(image[:, :, dy * step:, dx * step:])
              for dy in range(f) for dx in range(f)
              if image.shape[2] - dy * step > 0 and image.shape[3] - dx * step > 0
              and _fits(fcn, image, dy * step, dx * step)}
    base = passes[(0, 0)]
    rows = max((p.shape[2] - 1) * f + dy + 1 for (dy, _), p in passes.items())
    cols = max((p.shape[3] - 1) * f + dx + 1 for (_, dx), p in passes.items())
    out = base.new_empty(base.shape[0], base.shape[1], rows, cols)
    for (dy, dx), p in passes.items():
        out[:, :, dy::f, dx::f] = p
    return out


def _fits(fcn, image, dy, dx) -> bool:
    """Whether the shifted image is still at least one window in size."""
    guard = next((h for h in fcn._forward_pre_hooks.values() if isinstance(h, _SizeGuard)), None)
    if guard is None:
        return True
    need = guard.input_shape[1:]
    return image.shape[2] - dy >= need[0] and image.shape[3] - dx >= need[1]
