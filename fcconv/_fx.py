"""Following ``forward`` with torch.fx, and running a model on meta tensors (private).

``symbolic_trace`` turns a model into a graph of calls (module calls, functions, tensor
methods), with tensors passed by keyword moved to their place among the positional arguments,
so that the walk reads every call the same way. ``run_on_meta`` runs a model for its shapes
only: no data, no compute; ``OnShapes`` runs a graph that way, call by call. ``where`` names a
call and its line in ``forward`` for a message.
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
import torch.nn.functional as F
import torch.utils.deterministic
from torch import fx, nn
from torch.fx.operator_schemas import get_signature_for_torch_op

from ._crop import CropToWindows
from ._ops import (
    ADAPTIVE,
    ADAPTIVE_FUNCS,
    BATCH_NORM,
    BINARY,
    CATS,
    CONV,
    CONV_T,
    LINEAR_FUNCS,
    POINTWISE,
    POINTWISE_FUNCS,
    POOL,
    REDUCTIONS,
    SOFTMAX,
    SOFTMAX_FUNCS,
    STACKS,
    WINDOW_FUNCS,
    ZERO_PAD,
    bind,
)

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
                state[f"{prefix}.{name}" if prefix else name] = _stand_in(t, "meta")
    return state


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

    Batch 2, not 1, so that BatchNorm in training mode accepts a 1x1 map. A graph (an
    fx.GraphModule, as ``convolutionalize`` makes) runs call by call through ``OnShapes``.
    """
    x = torch.empty((batch, *input_shape), device="meta", dtype=model_dtype(model))
    out = graph_on_shapes(model, x)
    return call_on_meta(model, (x,)) if out is None else out


def graph_on_shapes(model: nn.Module, x: torch.Tensor):
    """model(x) for a meta ``x``, through ``OnShapes`` after the model's own checks, where the
    model is a graph of one input whose only hooks are fcconv's checks (a converted net's size
    guard): the shapes PyTorch's meta kernels give, without their import of sympy and
    torch._dynamo. None for any other model (or input)."""
    hooks = list(model._forward_pre_hooks.values())
    if not isinstance(model, fx.GraphModule) or not x.is_meta or model._forward_hooks or \
            _global_hooks() or not all(getattr(h, "fcconv_checks_only", False) for h in hooks) \
            or sum(n.op == "placeholder" for n in model.graph.nodes) != 1:
        return None
    for hook in hooks:
        hook(model, (x,))
    return OnShapes(model).run(x)


def _global_hooks() -> bool:
    """Whether hooks are registered for every module (torch.nn.modules.module.register_module_
    forward_hook and the like): they would see a twin's CPU tensors."""
    from torch.nn.modules import module

    return bool(module._global_forward_hooks or module._global_forward_pre_hooks)


# PyTorch works out most shapes on the meta device with meta kernels written in Python (conv,
# pool, relu, add, cat, mean, ...). The first one imports sympy and torch._dynamo: about 1.3 s
# and 70 MB in every kernel that runs a walk. The same call on CPU tensors with a batch of zero
# examples computes nothing and gives the same shape, for a call that keeps the batch axis as it
# is: these calls, and no others (a reshape or a cat along the batch would not). BatchNorm and
# LocalResponseNorm are left out: on an empty batch PyTorch skips their checks of the channels.
ZERO_BATCH_MODULES = tuple(m for m in (*CONV, *CONV_T, *POOL, *ADAPTIVE, *ZERO_PAD, *POINTWISE,
                                       *SOFTMAX, nn.Linear, nn.LayerNorm)
                           if m not in (*BATCH_NORM, nn.LocalResponseNorm))
ZERO_BATCH_CALLS = {t for t in (*WINDOW_FUNCS, *ADAPTIVE_FUNCS, *POINTWISE_FUNCS, *BINARY,
                                *SOFTMAX_FUNCS, *LINEAR_FUNCS, *REDUCTIONS, *CATS, *STACKS,
                                F.layer_norm, F.pad)
                    if not (isinstance(t, str) and t.endswith("_")) and  # in place: x itself
                    t not in (operator.iadd, operator.isub, operator.imul, operator.itruediv,
                              "contiguous", "float", "double", "clone", "detach")}  # (views)


class OnShapes(fx.Interpreter):
    """Runs a graph for its shapes only: every value is a meta tensor. A call of
    ``ZERO_BATCH_CALLS`` (or a layer of ``ZERO_BATCH_MODULES``) runs on CPU tensors with a
    batch of zero (``zero_batch_call``); anything else, or a call that refuses that, runs on
    meta tensors."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm)
        self.extra_traceback = False  # our messages name the layer; fx's would add its internals
        self.twins: dict[int, tuple] = {}  # layer -> (cpu twin or None, meta twin)
        # the values computed from the input, by id (kept alive: an id is never reused)
        self.from_input: dict[int, torch.Tensor] = {}

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if n.op == "placeholder" or any(id(t) in self.from_input for m in n.all_input_nodes
                                        for t in _tensors(self.env.get(m))):  # (a tuple's too)
            self.from_input.update((id(t), t) for t in _tensors(out))
        return out

    def call_module(self, target, args, kwargs):
        mod = self.module.get_submodule(target)
        if next(mod.children(), None) is not None or hasattr(mod, "parametrizations") or \
                not isinstance(mod, (*TWINNED, *ZERO_BATCH_MODULES)):  # (an LSTM keeps its
            return call_on_meta(mod, args, kwargs)                     # weights elsewhere too)
        if id(mod) not in self.twins:
            self.twins[id(mod)] = _cpu_twin(mod), twin(mod, "meta")
        cpu, meta = self.twins[id(mod)]
        out = None if cpu is None else \
            zero_batch_call(cpu, args, kwargs, self.from_input, layout_of(mod))
        return meta(*args, **kwargs) if out is None else out

    def call_function(self, target, args, kwargs):
        out = None
        if _hashable(target) and target in ZERO_BATCH_CALLS and _keeps_batch(target, args, kwargs):
            out = zero_batch_call(target, args, kwargs, self.from_input, layout_of(target))
        return super().call_function(target, args, kwargs) if out is None else out

    def call_method(self, target, args, kwargs):
        out = None
        if target in ZERO_BATCH_CALLS and args and isinstance(args[0], torch.Tensor):
            out = zero_batch_call(getattr(torch.Tensor, target), args, kwargs, self.from_input,
                                  layout_of(target))
        return super().call_method(target, args, kwargs) if out is None else out

    def fetch_attr(self, target: str):
        attr = super().fetch_attr(target)
        return _stand_in(attr, "meta") if isinstance(attr, torch.Tensor) else attr


# Layers that read their weights from their own attributes only: they run as a twin.
TWINNED = (*CONV, *POOL, *ADAPTIVE, *ZERO_PAD, *POINTWISE, *SOFTMAX, nn.Linear, nn.LayerNorm,
           nn.Flatten, CropToWindows)


def zero_batch_call(fn, args, kwargs, from_input: dict[int, torch.Tensor],
                    layout: str = "other"):
    """fn(*args, **kwargs) for shapes. The meta tensors computed from the input (``from_input``:
    their ids) that have the input's batch n first go in as CPU tensors of batch 0, laid out
    alike; other tensors (weights, constants) as CPU stand-ins. The result, if every tensor in
    it comes out with batch 0 and no other empty dim, comes back as meta tensors of batch n,
    laid out as PyTorch lays out that call's result on a real batch (``layout``: see
    ``_order_after``). None where the call refuses that (or cannot be read so, or the layout
    cannot be told), for a run on the meta device."""
    flat = [a for a in (*args, *kwargs.values())
            for a in (a if isinstance(a, (tuple, list)) else (a,))]   # torch.cat([x, y], 1)
    tensors = [a for a in flat if isinstance(a, torch.Tensor)]
    batch = [t for t in tensors if id(t) in from_input and t.dim() > 0]
    if not batch or any(not t.is_meta for t in tensors) or batch[0].shape[0] == 0:
        return None
    n = batch[0].shape[0]
    zeroed = [t for t in batch if t.shape[0] == n]
    order = _order_after(zeroed, layout)
    if order is None:
        return None

    def cpu(a):
        if isinstance(a, (tuple, list)):
            return type(a)(cpu(b) for b in a)
        if not isinstance(a, torch.Tensor):
            return a
        if id(a) in from_input and a.dim() > 0 and a.shape[0] == n:
            return torch.empty((0, *a.shape[1:]), dtype=a.dtype)
        return _stand_in(a, "cpu")

    try:
        out = fn(*[cpu(a) for a in args], **{k: cpu(v) for k, v in kwargs.items()})
    except Exception:  # noqa: BLE001 (the meta run raises its own error, which the walk reads)
        return None    # (or a stand-in too big to map)
    parts = list(out) if type(out) in (tuple, list) else [out]
    if not parts or any(not isinstance(p, torch.Tensor) or p.dim() == 0 or p.shape[0] != 0 or
                        0 in p.shape[1:] for p in parts):   # (n, 1) - (n,): n went to dim 1
        return None
    metas = [_laid_out((n, *p.shape[1:]), order if len(order) == p.dim() else
                       list(range(p.dim())), p.dtype) for p in parts]
    return type(out)(metas) if type(out) in (tuple, list) else metas[0]


def _keeps_batch(target, args, kwargs) -> bool:
    """A cat along dim 0 joins batches: its batch is not its inputs' (every other call in
    ZERO_BATCH_CALLS that moves the batch leaves it out of dim 0, where the check sees it)."""
    if target not in CATS:
        return True
    a = bind(("tensors", "dim"), args, kwargs)
    tensors, dim = a.get("tensors"), a.get("dim", 0)
    if not isinstance(tensors, (tuple, list)) or not isinstance(dim, int):
        return False
    rank = max((t.dim() for t in tensors if isinstance(t, torch.Tensor)), default=0)
    return rank > 0 and dim % rank != 0


def twin(module: nn.Module, device: str) -> nn.Module:
    """A shallow copy of a layer with stand-ins for its own weights on ``device``: "meta"
    (shapes, no values) or "cpu" (for ``zero_batch_call``). The layer's own weights are never
    touched. Only for a layer without sublayers."""
    double = copy.copy(module)
    double._parameters = {k: None if v is None else _stand_in(v, device)
                          for k, v in module._parameters.items()}
    double._buffers = {k: None if v is None else _stand_in(v, device)
                       for k, v in module._buffers.items()}
    return double


def _cpu_twin(module: nn.Module) -> nn.Module | None:
    """The CPU twin of a layer of ZERO_BATCH_MODULES; None for another layer, a layer with hooks
    other than fcconv's own (which switch oneDNN off and on: yours would see CPU tensors, not
    the meta ones the walk shows them) or weights that cannot be had (not yet initialised, or
    more memory than the machine will map)."""
    hooks = [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]
    if not isinstance(module, ZERO_BATCH_MODULES) or _global_hooks() or \
            any(not getattr(h, "__module__", "").startswith("fcconv.") for h in hooks):
        return None
    try:
        return twin(module, "cpu")
    except (RuntimeError, ValueError):
        return None


def _stand_in(t: torch.Tensor, device: str) -> torch.Tensor:
    """A tensor of t's shape and dtype whose values mean nothing. On the CPU it is memory that
    is asked for and never written or read (a batch of zero reads no weight), so it takes no
    room (a 0 expanded to the shape would: a conv copies such a weight whole; and PyTorch's
    deterministic mode, which fills new memory, is held off for it)."""
    det = torch.utils.deterministic
    fill, det.fill_uninitialized_memory = det.fill_uninitialized_memory, False
    try:
        return torch.empty(t.shape, dtype=t.dtype, device=device)
    finally:
        det.fill_uninitialized_memory = fill


def _order(t: torch.Tensor) -> list[int]:
    """t's dims from the outermost in memory to the innermost: [0, 1, 2, 3] for a contiguous
    map, [0, 2, 3, 1] for channels-last (ties keep their order)."""
    return sorted(range(t.dim()), key=lambda d: -t.stride(d))


def _order_after(inputs: list[torch.Tensor], layout: str) -> list[int] | None:
    """The order in memory of a call's result, as PyTorch lays it out on a real batch (an empty
    one comes out contiguous whatever went in), so that a later .view fails or works as it
    would on real data. ``layout``: "pointwise" (relu, x + c: the inputs' order, if they share
    one and are dense), "window" (conv, pool: channels-last in, channels-last out; else
    contiguous) or "other" (contiguous, for contiguous inputs). None where it cannot be told:
    the call then runs on the meta device."""
    x = inputs[0]
    if all(t.is_contiguous() for t in inputs):
        return list(range(x.dim()))
    if layout == "window":
        cl = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        return [0, 2, 3, 1] if cl else list(range(x.dim()))
    dense = all(t.shape == x.shape and _order(t) == _order(x) and
                all(st > 0 or size == 1 for st, size in zip(t.stride(), t.shape))
                for t in inputs)
    return _order(x) if layout == "pointwise" and dense else None


def _laid_out(sizes, order: list[int], dtype: torch.dtype) -> torch.Tensor:
    """An empty meta tensor of ``sizes`` whose dims lie in memory in ``order``."""
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return torch.empty([sizes[d] for d in order], dtype=dtype, device="meta").permute(inverse)


def layout_of(call) -> str:
    """How PyTorch lays out the result of ``call`` (a layer or a function or method name):
    "pointwise", "window" or "other" (``_order_after``)."""
    if isinstance(call, nn.Module):
        return "window" if isinstance(call, (*CONV, *CONV_T, *POOL, *ADAPTIVE)) else \
            "pointwise" if isinstance(call, POINTWISE) else "other"
    if call in WINDOW_FUNCS or call in ADAPTIVE_FUNCS:
        return "window"
    return "pointwise" if call in POINTWISE_FUNCS or call in BINARY else "other"


def _tensors(out) -> list[torch.Tensor]:
    parts = out if isinstance(out, (tuple, list)) else (out,)
    return [p for p in parts if isinstance(p, torch.Tensor)]


def _hashable(target) -> bool:
    try:
        hash(target)
    except TypeError:
        return False
    return True


def symbolic_trace(model: nn.Module, lines: bool = False) -> fx.GraphModule:
    """The model as an fx graph (``lines``: with each node's source line, for messages); a clear
    error if fx cannot follow ``forward`` (data-dependent control flow, for instance).

    Arguments of forward after the input that have defaults are taken as those constants.
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError("this is a torch.jit module (scripted or traced), which torch.fx cannot "
                         "follow: pass the un-scripted nn.Module it was made from")
    tracer = _Tracer()
    tracer.lines = lines
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
    lines = False  # record each node's lines of forward (for messages)

    def create_node(self, *args, **kwargs):
        """fx's node, with the stack from the first ``forward`` down if ``lines``. (fx's own
        record_stack_traces reads the stack through torch._inductor, whose import brings in
        torch._dynamo and sympy: a second and 70 MB for a message.)"""
        node = super().create_node(*args, **kwargs)
        if self.lines and not node.stack_trace:
            frames = traceback.extract_stack()[:-1]
            first = next((i for i, f in enumerate(frames) if f.name == "forward"), None)
            if first is not None:
                node.stack_trace = "".join(traceback.format_list(frames[first:])).strip()
        return node

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
