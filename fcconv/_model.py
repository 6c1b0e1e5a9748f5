"""What a model and its input shape must be before fcconv follows it (private).

The walk reads ``forward`` with torch.fx, which sees neither forward hooks nor pre-hooks (a
hook can change any value, and convolutionalize would drop it), and runs the model on meta
tensors, which says nothing about weights that are only partly real. Each check here raises a
ValueError that names the module and what to do, before anything is traced or copied.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.modules import module as _module

from ._ops import CONV, SPATIAL_DIMS
from .formulas import checked_int, checked_shape

Shape = tuple[int, ...]

# What a known hook is, and how to be rid of it (the hook's class name -> advice).
_KNOWN_HOOKS = {
    "WeightNorm": "torch.nn.utils.weight_norm (deprecated): use "
                  "torch.nn.utils.parametrizations.weight_norm, or torch.nn.utils."
                  "remove_weight_norm(module) to fold it into the weight",
    "SpectralNorm": "torch.nn.utils.spectral_norm (deprecated): use "
                    "torch.nn.utils.parametrizations.spectral_norm, or torch.nn.utils."
                    "remove_spectral_norm(module)",
}


def uninitialised(module: nn.Module, name: str) -> None:
    """ValueError for a lazy layer (nn.LazyLinear, nn.LazyConv2d) not yet run: its weights
    have no shape until its first input."""
    lazy = nn.parameter.UninitializedParameter
    if any(isinstance(p, lazy) for p in module.parameters(recurse=False)):
        raise ValueError(f"{name} is an uninitialised lazy layer ({type(module).__name__}): it "
                         "has no weights until its first input; run it once first "
                         "(layer(x) or model(x))")


def check_model(model: nn.Module) -> None:
    """Refuse what the walk cannot follow: a torch.compile wrapper, a forward hook or pre-hook
    anywhere (fcconv's own size checks excepted)."""
    if hasattr(model, "_orig_mod") and type(model).__name__ == "OptimizedModule":
        raise ValueError("this is a torch.compile wrapper, which torch.fx cannot follow: pass "
                         "the model it compiled (model._orig_mod)")
    for kind, hooks in (("forward pre-hook", _module._global_forward_pre_hooks),
                        ("forward hook", _module._global_forward_hooks)):
        if any(not _ours(h) for h in hooks.values()):
            raise ValueError(f"a global {kind} is registered (torch.nn.modules.module."
                             f"register_module_{kind.replace(' ', '_').replace('-', '_')}): "
                             "fcconv cannot follow what it does to each layer; remove it first")
    for name, mod in model.named_modules():
        uninitialised(mod, f"layer {name!r}" if name else "the model")
        for kind, hooks in (("forward pre-hook", mod._forward_pre_hooks),
                            ("forward hook", mod._forward_hooks)):
            for hook in hooks.values():
                if not _ours(hook):
                    raise ValueError(_hook_message(name, mod, kind, hook))


def _ours(hook) -> bool:
    """fcconv's own checks (a converted net's size guard) change no value."""
    return getattr(hook, "fcconv_checks_only", False)


def _hook_message(name: str, mod: nn.Module, kind: str, hook) -> str:
    where = f"layer {name!r} ({type(mod).__name__})" if name else \
        f"the model itself ({type(mod).__name__})"
    what = type(hook).__name__
    if what in _KNOWN_HOOKS:
        return f"{where} has a {kind} from {_KNOWN_HOOKS[what]}"
    if "prune" in type(hook).__module__:
        param = getattr(hook, "_tensor_name", "weight")
        return (f"{where} is pruned with torch.nn.utils.prune (a {kind} recomputes "
                f"{param!r} on every call): make it permanent with "
                f"torch.nn.utils.prune.remove(module, {param!r}) first")
    label = getattr(hook, "__name__", what)
    return (f"{where} has a {kind} ({label}): it can change any value, and fcconv follows "
            "forward() only, so its answers would leave the hook out; remove it "
            "(handle.remove()) or put what it does in forward()")


def has_meta(model: nn.Module) -> bool:
    """Whether the model is on the meta device (shapes, no values); a ValueError naming the
    tensors where only some of its parameters and buffers are."""
    tensors = [(n, t) for n, t in (*model.named_parameters(), *model.named_buffers())
               if t is not None]
    meta = [n for n, t in tensors if t.is_meta]
    if meta and len(meta) < len(tensors):
        real = next(f"{n!r} on {t.device}" for n, t in tensors if not t.is_meta)
        raise ValueError(f"the model is partly on the meta device ({_some(meta)} have shapes but "
                         f"no values; {real} has values): a converted net would compute with "
                         "uninitialised memory; load every weight (model.to_empty(device='cpu') "
                         "and load_state_dict) or put the whole model on the meta device")
    return bool(meta)


def _some(names: list[str]) -> str:
    listed = ", ".join(repr(n) for n in names[:3])
    return listed + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def copied(model: nn.Module, memo: dict) -> nn.Module:
    """A deep copy of the model (``memo``: tensors to share, not copy), or a ValueError saying
    which kind of attribute cannot be copied."""
    try:
        return copy.deepcopy(model, memo=memo)
    except (RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"convolutionalize works on a copy of the model, and this model cannot "
                         f"be copied ({first}): an attribute computed from the weights (a "
                         "non-leaf tensor) or an object copy.deepcopy refuses") from None


def spatial_axes(model: nn.Module, ndim: int | None = None) -> int:
    """How many spatial axes the model's input has, from every layer that says (Conv1d: 1,
    MaxPool3d: 3, and their subclasses): the most any says (a Conv1d attention inside a 2-D net
    works on pooled channels), or, for an input of ``ndim`` dims that cannot have that many,
    the most that fits it (with a batch dim or without); 2 for a net without such layers."""
    found = sorted({n for m in model.modules() for cls, n in SPATIAL_DIMS.items()
                    if isinstance(m, cls)}, reverse=True)
    fits = [n for n in found if ndim is not None and ndim - n in (1, 2)]
    return (fits or found or [2])[0]


def spatial_layers(model: nn.Module) -> str:
    """The kinds of spatial layers in a model, for a message: 'Conv1d, MaxPool1d'."""
    kinds = {type(m).__name__: None for m in model.modules()
             if any(isinstance(m, cls) for cls in SPATIAL_DIMS)}
    return ", ".join(kinds) or "none"


def input_shape(model: nn.Module, shape) -> Shape:
    """Accept 224, (224, 224), (3, 224, 224) or (N, 3, 224, 224); return (C, H, W) (or (C, L)).

    How many axes an input has comes from the layers that say (``spatial_axes``): (5, 8, 8, 8)
    is (C, D, H, W) for a Conv3d net, (N, C, H, W) for a Conv2d one.
    """
    nsp = spatial_axes(model)
    channels = next((m.in_channels for m in model.modules() if isinstance(m, CONV)), None)
    if getattr(shape, "ndim", None) == 0 or \
            not isinstance(shape, (str, bytes)) and not hasattr(shape, "__iter__"):
        shape = (checked_int("input_shape", shape, 1),) * nsp   # 224: 224x224
    shape = checked_shape("input_shape", shape, (1, 2, 3, 4, 5))
    if len(shape) == nsp and channels is not None:
        return (channels, *shape)
    if len(shape) == nsp + 2:
        return shape[1:]
    if len(shape) == 5:
        raise ValueError(f"input_shape {shape} has 5 sizes, but the model's layers "
                         f"({spatial_layers(model)}) take {nsp} spatial axes")
    return shape
