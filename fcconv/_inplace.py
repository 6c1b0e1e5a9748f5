"""In-place ops in ``forward``: followed where they are the same op out of place, else refused
(private).

``y.add_(1)``, ``F.relu(y, inplace=True)``, ``nn.ReLU(inplace=True)``, ``torch.add(a, b, out=y)``
and ``y += b`` change ``y`` without a new name, so the graph fx records has no edge from the
change to the later reads of ``y`` (and dead-code elimination would drop it). On the whole of a
tensor that nothing else shares memory with, such an op *is* its out-of-place form followed by
"y now means the result": the walk rewrites it so, and every later read of ``y`` reads the
result. A change made through a view (``y[..., -1].zero_()``, ``y.narrow(3, 0, 1).mul_(2)``,
``y[:, :, 0] = 1``) changes part of a map by position, or a tensor under another name: the
walk cannot follow that, so the tensors it touches become unknown, with the op and its line.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from ._fx import where
from ._ops import DROPOUT, RANDOM_FUNCS

# y += b on a tensor changes y; on a number (a size) it makes a new one.
IN_PLACE_OPERATORS = {operator.iadd: operator.add, operator.isub: operator.sub,
                      operator.imul: operator.mul, operator.itruediv: operator.truediv,
                      operator.ifloordiv: operator.floordiv, operator.imod: operator.mod,
                      operator.ipow: operator.pow, operator.imatmul: operator.matmul,
                      operator.iand: operator.and_, operator.ior: operator.or_,
                      operator.ixor: operator.xor}
# Tensor methods ending in "_" that change no value.
_NO_CHANGE = {"requires_grad_", "share_memory_", "retain_grad_"}
# Ops whose result may share memory with their first argument (a view, or the tensor itself).
_VIEW_METHODS = {"view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "permute",
                 "transpose", "swapaxes", "swapdims", "movedim", "moveaxis", "t", "squeeze",
                 "unsqueeze", "expand", "expand_as", "narrow", "select", "split", "chunk",
                 "unbind", "tensor_split", "diagonal", "unfold", "as_strided", "detach",
                 "contiguous", "to", "float", "double", "half", "type", "type_as", "cpu",
                 "cuda", "real", "imag", "__getitem__"}
_VIEW_FUNCTIONS = {torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.swapaxes,
                   torch.swapdims, torch.movedim, torch.moveaxis, torch.t, torch.squeeze,
                   torch.unsqueeze, torch.narrow, torch.select, torch.split, torch.chunk,
                   torch.unbind, torch.tensor_split, torch.diagonal, torch.detach,
                   torch.as_strided, operator.getitem}
_VIEW_ATTRIBUTES = {"T", "mT", "H", "mH", "data", "real", "imag"}
_VIEW_MODULES = (nn.Identity, nn.Flatten, nn.Unflatten, *DROPOUT)


def follow(gm: fx.GraphModule, n: fx.Node, args, kwargs, order: dict[fx.Node, int]):
    """If ``n`` changes a tensor in place: rewrite it out of place and point the later reads of
    that tensor at ``n`` (returns None), or return (why, the nodes whose values it changes) where
    it cannot be followed. None for any other node."""
    found = _changed(gm, n, args, kwargs)
    if found is None:
        return None
    y, how = found
    shared = _sharing(gm, y, n, order)
    if how == "setitem":
        return (f"{where(n)} assigns to part of {_name(y)} in place, by position: a crop and "
                "the whole image would have different cells changed, so fcconv cannot slide "
                "it; build the tensor out of place (torch.cat, torch.where)"), shared
    state = next((m for m in shared if m.op == "get_attr"), None)
    if state is not None:
        return (f"{where(n)} changes the model's own {state.target!r} in place: each call "
                "would see another value, so the crops and a dense pass would not agree"), shared
    later = [m for m in shared if m is not y and _read_after(m, n, order)]
    if later:
        return (f"{where(n)} changes {_name(y)} in place, and {_name(y)} shares memory with "
                f"{_name(later[0])} (a view of it, or the same tensor under another name), "
                "which forward reads after the change: a change through a view is partial "
                "(by position) or hidden, and fcconv does not follow it; write it out of place "
                "(y = op(y))"), shared
    why = _out_of_place(n, how)
    if why:
        return why, shared
    for user in [u for u in y.users if u is not n and order[u] > order[n]]:
        user.replace_input_with(y, n)
    return None


def _changed(gm: fx.GraphModule, n: fx.Node, args, kwargs):
    """(the node n changes in place, how) or None."""
    if n.op == "call_method" and n.target.endswith("_") and not n.target.startswith("_") \
            and n.target not in _NO_CHANGE and n.target not in RANDOM_FUNCS:
        return _node(n.args[0], "method")
    if n.op == "call_module":
        mod = gm.get_submodule(n.target)
        return _node(n.args[0], "module") if getattr(mod, "inplace", False) is True else None
    if n.op != "call_function":
        return None
    t = n.target
    if t is operator.setitem:
        return _node(n.args[0], "setitem")
    if t in IN_PLACE_OPERATORS:
        return _node(n.args[0], "operator") if args and isinstance(args[0], torch.Tensor) else None
    if isinstance(n.kwargs.get("out"), fx.Node):
        return _node(n.kwargs["out"], "out")
    name = getattr(t, "__name__", "")
    if name.endswith("_") and not name.startswith("_") and t not in RANDOM_FUNCS:
        return _node(n.args[0] if n.args else None, "function")
    at = _inplace_position(t)
    if kwargs.get("inplace") is True or (at is not None and len(args) > at and args[at] is True):
        return _node(n.args[0], "argument")
    return None


def _node(y, how: str):
    return (y, how) if isinstance(y, fx.Node) else None


def _inplace_position(target) -> int | None:
    """Where ``inplace`` sits among a function's positional parameters (F.relu: 1), or None."""
    code = getattr(target, "__code__", None)
    if code is None:
        return None
    names = code.co_varnames[:code.co_argcount]
    return names.index("inplace") if "inplace" in names else None


def _out_of_place(n: fx.Node, how: str) -> str:
    """Rewrite ``n`` as its out-of-place form; '' if done, else why not."""
    if how == "method":
        if not hasattr(torch.Tensor, n.target[:-1]):
            return (f"{where(n)} overwrites a tensor in place ({n.target}), and has no "
                    "out-of-place form fcconv knows: it cannot say which input pixels reach an "
                    "output cell after it; write it out of place")
        n.target = n.target[:-1]
    elif how == "function":
        base = n.target.__name__[:-1]
        new = getattr(F, base, None) or getattr(torch, base, None)
        if new is None:
            return (f"{where(n)} changes a tensor in place ({n.target.__name__}), and has no "
                    "out-of-place form fcconv knows; write it out of place")
        n.target = new
    elif how == "operator":
        n.target = IN_PLACE_OPERATORS[n.target]
    elif how == "out":
        n.kwargs = {k: v for k, v in n.kwargs.items() if k != "out"}
    elif how == "argument":
        at = _inplace_position(n.target)
        if "inplace" in n.kwargs:
            n.update_kwarg("inplace", False)
        else:
            n.update_arg(at, False)
    return ""  # a module with inplace=True stays as it is: it returns the tensor it changed


def _sharing(gm: fx.GraphModule, y: fx.Node, n: fx.Node, order) -> list[fx.Node]:
    """``y`` and every node that may share its memory when ``n`` runs: what it is a view of,
    and views of those made before ``n``."""
    found, todo = [y], [y]
    while todo:
        m = todo.pop()
        near = [m.args[0]] if _views(gm, m) and m.args and isinstance(m.args[0], fx.Node) else []
        near += [u for u in m.users if order[u] < order[n] and _views(gm, u) and u.args
                 and u.args[0] is m]
        for v in near:
            if v not in found:
                found.append(v)
                todo.append(v)
    return found


def _views(gm: fx.GraphModule, m: fx.Node) -> bool:
    """Whether node m's value may share memory with its first argument."""
    if m.op == "call_method":
        return m.target in _VIEW_METHODS or (m.target.endswith("_") and
                                             m.target not in _NO_CHANGE)
    if m.op == "call_module":
        mod = gm.get_submodule(m.target)
        return isinstance(mod, _VIEW_MODULES) or getattr(mod, "inplace", False) is True
    if m.op != "call_function":
        return False
    t = m.target
    return t in _VIEW_FUNCTIONS or t in IN_PLACE_OPERATORS or m.kwargs.get("inplace") is True \
        or getattr(t, "__name__", "").endswith("_") or \
        (t is getattr and len(m.args) > 1 and m.args[1] in _VIEW_ATTRIBUTES)


def _read_after(m: fx.Node, n: fx.Node, order) -> bool:
    return any(order[u] > order[n] for u in m.users)


def _name(y: fx.Node) -> str:
    return f"the input {y.name!r}" if y.op == "placeholder" else repr(y.name)
