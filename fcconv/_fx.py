"""Following ``forward`` with torch.fx, and running a model on meta tensors (private).

``symbolic_trace`` turns a model into a graph of calls (module calls, functions, tensor
methods), with tensors passed by keyword moved to their place among the positional arguments,
so that the walk reads every call the same way. ``run_on_meta`` runs a model for its shapes
only: no data, no compute. ``where`` names a call and its line in ``forward`` for a message.
"""

from __future__ import annotations

import builtins
import copy
import inspect
import operator
import re
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import fx, nn
from torch.fx.operator_schemas import get_signature_for_torch_op

from ._crop import CropToWindows

Shape = tuple[int, ...]

BATCH = 2  # the meta batch: 2, not 1, so BatchNorm in training mode accepts a 1x1 map

_TORCH_DIR = str(Path(torch.__file__).parent)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Meta stand-ins for every parameter and buffer: the model runs for shapes, not values.
    One name per layer object and attribute: a layer called twice is listed once (swapping it
    twice would put a stand-in back instead of the weight), a weight tied to two layers twice."""
    state = {}
    for prefix, module in model.named_modules():
        for name, t in [*module.named_parameters(recurse=False),
                        *module.named_buffers(recurse=False)]:
            if t is not None:
                state[f"{prefix}.{name}" if prefix else name] = torch.empty_like(t, device="meta")
    return state


def meta_twin(module: nn.Module) -> nn.Module:
    """A shallow copy of a layer with meta stand-ins for its own weights: calling it costs no
    swapping (functional_call takes milliseconds per call; a walk makes one call per node).
    Only for a layer without sublayers; others go through ``call_on_meta``."""
    twin = copy.copy(module)
    twin._parameters = {k: None if v is None else torch.empty_like(v, device="meta")
                        for k, v in module._parameters.items()}
    twin._buffers = {k: None if v is None else torch.empty_like(v, device="meta")
                     for k, v in module._buffers.items()}
    return twin


def call_on_meta(model: nn.Module, args, kwargs=None):
    """model(*args) with its weights swapped for meta stand-ins, and put back after. Tying is
    off: each layer's stand-in is given by name (PyTorch would refuse two values for one tied
    weight)."""
    return torch.func.functional_call(model, meta_state(model), tuple(args), kwargs or {},
                                      tie_weights=False, strict=False)


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 for none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def run_on_meta(model: nn.Module, input_shape: Shape, batch: int = BATCH):
    """Run ``model`` on a meta tensor of ``(batch, *input_shape)``; returns the meta output.

    Batch 2, not 1, so that BatchNorm in training mode accepts a 1x1 map.
    """
    x = torch.empty((batch, *input_shape), device="meta", dtype=model_dtype(model))
    return call_on_meta(model, (x,))


def symbolic_trace(model: nn.Module, lines: bool = False) -> fx.GraphModule:
    """The model as an fx graph (``lines``: with each node's source line, for messages); a clear
    error if fx cannot follow ``forward`` (data-dependent control flow, for instance).

    Arguments of forward after the input that have defaults are taken as those constants.
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError("this is a torch.jit module (scripted or traced), which torch.fx cannot "
                         "follow: pass the un-scripted nn.Module it was made from")
    tracer = _Tracer()
    tracer.record_stack_traces = lines
    draws: list[str] = []
    constants = _constant_arguments(model)
    try:
        with _len_reads_the_size(model), _random_draws_seen(draws), _in_place_operators():
            graph = tracer.trace(model, concrete_args=constants)
    except Exception as err:  # fx raises many kinds; say what it means for the learner
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"fcconv follows forward() with torch.fx, which cannot trace this model "
                         f"({first}); rewrite the data-dependent part of forward()") from None
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    gm.meta["random_draws"] = draws
    if any([_keywords_to_positions(gm, node) for node in gm.graph.nodes]):
        gm.recompile()
    return gm


@contextmanager
def _len_reads_the_size(model: nn.Module):
    """While fx traces: len(x) on a traced tensor is x.size(0), as it is for a tensor (fx
    refuses len of a traced value); len(x.shape) is x.dim(). Everything else gets the builtin.
    Set in the globals of each forward the model has, and put back after."""
    spaces = {id(g): g for g in (getattr(type(m).forward, "__globals__", None)
                                 for m in model.modules()) if g is not None}
    saved = {key: g.get("len", _MISSING) for key, g in spaces.items()}
    for g in spaces.values():
        g["len"] = _traced_len
    try:
        yield
    finally:
        for key, g in spaces.items():
            if saved[key] is _MISSING:
                g.pop("len", None)
            else:
                g["len"] = saved[key]


_MISSING = object()


@contextmanager
def _in_place_operators():
    """While fx traces: y += b is recorded as operator.iadd (fx's Proxy has no __iadd__, so
    Python would record y + b and rebind the name, losing the change every other name for y
    sees), and y[i] = v as operator.setitem (fx refuses it): the walk follows the one and
    refuses the other with its line (``_inplace``). Put back after."""
    names = [f"__i{op}__" for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow",
                                     "matmul", "and", "or", "xor")] + ["__setitem__"]
    saved = {name: fx.Proxy.__dict__.get(name, _MISSING) for name in names}
    for name in names:
        setattr(fx.Proxy, name, _recorded_in_place(getattr(operator, name.strip("_"))))
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is _MISSING:
                delattr(fx.Proxy, name)
            else:
                setattr(fx.Proxy, name, old)


def _recorded_in_place(op):
    def record(self, *other):
        return self.tracer.create_proxy("call_function", op, (self, *other), {})
    return record

# Random draws that fx runs once while tracing (torch.randn(2, 1, 1): no traced value in its
# arguments) and keeps as a constant: the model draws other numbers on every call.
_RANDOM_TORCH = ("rand", "randn", "randint", "rand_like", "randn_like", "randint_like",
                 "bernoulli", "normal", "multinomial", "randperm", "poisson")
_RANDOM_METHODS = ("bernoulli", "bernoulli_", "uniform_", "normal_", "random_", "exponential_",
                   "geometric_", "cauchy_", "log_normal_")


@contextmanager
def _random_draws_seen(draws: list[str]):
    """While fx traces: each random draw made outright is written into ``draws`` (with the
    line of the model's code that made it); the functions are put back after."""
    saved = [(owner, name, getattr(owner, name)) for owner, names in
             ((torch, _RANDOM_TORCH), (torch.Tensor, _RANDOM_METHODS)) for name in names]
    for owner, name, real in saved:
        setattr(owner, name, _recorded(real, name, draws))
    try:
        yield
    finally:
        for owner, name, real in saved:
            setattr(owner, name, real)


def _recorded(real, name: str, draws: list[str]):
    tracing = threading.get_ident()   # another thread's draws are not the model's

    def draw(*args, **kwargs):
        if threading.get_ident() == tracing and \
                not any(isinstance(a, fx.Proxy) for a in (*args, *kwargs.values())):
            own = [f for f in traceback.extract_stack()[:-1] if _TORCH_DIR not in f.filename]
            line = f" (line {own[-1].lineno} of {own[-1].name}: {own[-1].line})" \
                if own and own[-1].line else ""
            draws.append(f"torch.{name}{line}")
        return real(*args, **kwargs)
    return draw


def _traced_len(obj):
    if not isinstance(obj, fx.Proxy):
        return builtins.len(obj)
    node = obj.node
    if node.op == "call_function" and node.target is getattr and node.args[1] == "shape":
        return obj.tracer.create_proxy("call_method", "dim", (node.args[0],), {})
    return obj.size(0)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        """PyTorch's layers are leaves, and so are subclasses that keep their forward
        (class MyLinear(nn.Linear): pass is a Linear); containers are followed inside."""
        inherited = type(m).forward.__module__.startswith("torch.nn.modules.") and \
            not isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict))
        return isinstance(m, CropToWindows) or inherited or super().is_leaf_module(m, qualname)


def _constant_arguments(model: nn.Module) -> dict | None:
    """forward(self, x, k=2): k is the constant 2, not a second input (fx would make it one)."""
    params = list(inspect.signature(model.forward).parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        raise ValueError("forward takes *args (any number of inputs): fcconv follows a model "
                         "with one input tensor, forward(self, x); wrap it in one that passes x")
    extra = [p for p in params[1:] if p.kind in _POSITIONAL or p.kind == p.KEYWORD_ONLY]
    needed = [p.name for p in extra if p.default is p.empty]
    if needed:
        raise ValueError(f"forward takes {', '.join(needed)} besides its input, with no default: "
                         "fcconv follows a model with one input (give the others defaults)")
    return {p.name: p.default for p in extra} or None


def _keywords_to_positions(gm: fx.GraphModule, node: fx.Node) -> bool:
    """torch.flatten(input=x, start_dim=1) -> torch.flatten(x, start_dim=1): a tensor passed by
    keyword goes to its position, so that the walk finds every call's input in args[0].
    Returns whether the node changed."""
    if not node.kwargs:
        return False
    names = _parameter_names(gm, node)
    args, kwargs = list(node.args), dict(node.kwargs)
    while len(args) < len(names) and names[len(args)] in kwargs:
        args.append(kwargs.pop(names[len(args)]))
    if len(args) == len(node.args):
        return False
    node.args, node.kwargs = tuple(args), kwargs
    return True


def _parameter_names(gm: fx.GraphModule, node: fx.Node) -> list[str]:
    """The names of the positional parameters of a called module or function ([] if unknown)."""
    if node.op == "call_module":
        target = gm.get_submodule(node.target).forward
    elif node.op == "call_function":
        target = node.target
    else:
        return []  # a tensor method: its tensor is always args[0]
    try:
        return [p.name for p in inspect.signature(target).parameters.values()
                if p.kind in _POSITIONAL]
    except (TypeError, ValueError):  # a builtin: PyTorch's schemas (overloads share a prefix)
        lists = [[n for n, p in s.parameters.items() if p.kind in _POSITIONAL]
                 for s in get_signature_for_torch_op(target) or []]  # (not approximate=, value=)
        names = []
        for column in zip(*lists):
            if len(set(column)) > 1:
                break
            names.append(column[0])
        return names


def where(node: fx.Node, name: str | None = None) -> str:
    """'max_pool2d' (line 12 of forward: x = F.max_pool2d(x, 2))': the op and its source line.

    The line is the innermost frame of the model's own code (in a helper that forward calls,
    the helper's line); a layer of an nn.Sequential has none (its call is inside PyTorch), so
    it is named by its path and type: '3' (MaxPool2d).
    """
    label = repr(name or node.name)
    if node.op == "call_module":
        label += f" ({type(node.graph.owning_module.get_submodule(node.target)).__name__})"
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n\s+(.*)', node.stack_trace or "")
    own = [f for f in frames if _TORCH_DIR not in f[0]]
    if not own:
        return label
    return f"{label} (line {own[-1][1]} of {own[-1][2]}: {own[-1][3].strip()})"
