"""The fx graph surgery behind ``convolutionalize`` (private): refuse, simplify, convert, finish.

Works on the ``_graph.Graph`` of a deep copy of the model, so the original is never touched.
"""

from __future__ import annotations

import copy
import operator
from collections import OrderedDict

import torch
from torch import fx, nn

from . import _graph
from ._crop import CropToWindows
from ._fx import run_on_meta, where
from ._ops import WINDOW_FUNCS
from .conversions import expect_input, spelled
from .formulas import format_shape

Shape = tuple[int, ...]

_REFUSED_NOTES = tuple(n for n in _graph.REFUSALS if n != "adaptive")  # adaptive: own message
# Notes about values, not shapes: a model on the meta device has none (its converted net gives
# shapes only, and refuses a real input), so they cannot make its answers differ.
_VALUE_NOTES = ("random", "batch_stats")


# --------------------------------------------------------------------------- refuse

def refuse_what_cannot_slide(graph: _graph.Graph, exact: bool = True, meta: bool = False
                             ) -> tuple[dict[fx.Node, _graph.Geo], list[str]]:
    """Raise ValueError for anything whose dense pass would differ from the crops; return the
    flatten nodes (each with the map shape and order it flattens) and, where ``exact`` is False,
    why the dense pass is approximate (ceil-mode pools whose partial window lies in the crop).
    ``meta``: the model has no values (device="meta"), so dropout and batch statistics cannot
    change its answers."""
    if graph.returns():
        raise ValueError(f"the model's forward returns {graph.returns()}; convolutionalize "
                         "converts a classifier whose forward returns a tensor, or a tuple of "
                         "tensors (several heads on one trunk): wrap the heads you want in a "
                         "model that returns just them")
    approximate = []
    for step in graph.steps.values():
        if "ceil_partial" in step.notes:
            if exact:
                raise ValueError(step.notes["ceil_partial"] + "; use ceil_mode=False, an input "
                                 "size where the windows fit, or convolutionalize(..., "
                                 "exact=False) for the approximate dense net")
            approximate.append(step.notes["ceil_partial"])
        for note in _REFUSED_NOTES:
            if note in step.notes and note != "ceil_partial" and not \
                    (meta and note in _VALUE_NOTES):
                raise ValueError(step.notes[note])
        if "adaptive" in step.notes:
            raise ValueError(_adaptive_message(graph, step))
    for out in graph.outputs():
        geo = graph.steps[out].geo
        if geo.kind == "unknown":
            raise ValueError(f"convolutionalize cannot slide this model: {geo.why}")
        if geo.field is None:
            raise ValueError(f"the model returns {where(out)}, which is not computed "
                             "from the input's pixels: there is nothing to slide")
        axes = _graph.tensor_field(geo).axes
        if axes != tuple(sorted(axes)):
            raise ValueError(f"the model returns {where(out)}, whose spatial axes are in "
                             f"another order than the input's (axes {axes}: H and W "
                             "swapped): its score map would not line up with the windows; "
                             "return it in the input's order")
        if not graph.steps[out].tensor:
            raise ValueError(f"the model returns {where(out)}, which is itself a tuple "
                             "(values and pooling indices?), not a tensor of scores")
    flats = {n: s.geo for n, s in graph.steps.items() if s.geo.kind == "flat"
             and graph.steps[n.args[0]].geo.kind in ("map", "permuted")}
    for geo in flats.values():
        if len(geo.map_shape) not in (2, 3):
            raise ValueError(f"the flattened map is {format_shape(geo.map_shape)}: "
                             "convolutionalize handles 1-D (C, L) and 2-D (C, H, W) maps")
    if not flats:
        _already_convolutional(graph)
    return flats, approximate


def _already_convolutional(graph: _graph.Graph) -> None:
    """A net without a flatten converts as it is if each head gives one cell at the training
    size (P-Net: a 12x12 classifier whose 1x1 convs are its FC layers); else say why not."""
    for out in graph.outputs():
        step = graph.steps[out]
        nsp = len(graph.input_shape) - 1
        cells = step.out[-nsp:]
        if step.geo.kind not in ("map", "plane") or any(c != 1 for c in cells):
            got = "x".join(map(str, cells)) if step.geo.kind in ("map", "plane") else \
                _graph.kind_text(step.geo.kind)
            raise ValueError(f"found no flatten (nn.Flatten, torch.flatten, view or reshape to "
                             f"(N, features)) in the model, and at input "
                             f"{format_shape(graph.input_shape)} it returns {got}, not one "
                             "cell: it is already convolutional, or its head does not start "
                             "from a feature map")


def _adaptive_message(graph: _graph.Graph, step: _graph.Step) -> str:
    before = "x".join(map(str, graph.steps[step.node.args[0]].out[2:]))
    after = "x".join(map(str, step.out[2:]))
    return (f"{where(step.node, step.name)} pools the {before} feature map at input "
            f"{format_shape(graph.input_shape)} to {after}: it is not an identity here, and on a "
            f"larger input it would {_pools(step)} the whole map down to {after} instead of "
            f"sliding the "
            f"classifier over it. Convolutionalize at the size where the feature map already is "
            f"{after} (e.g. 224x224 for VGG16).")


def _pools(step: _graph.Step) -> str:
    """'average' or 'max-pool': what an adaptive pool does to a whole map."""
    return "max-pool" if "max" in f"{step.kind} {step.node.target}".lower() else "average"


# --------------------------------------------------------------------------- simplify the trunk

def simplify_trunk(graph: _graph.Graph) -> list[str]:
    """Drop adaptive pools that are identities at the training size; turn ceil_mode off where
    every window fits (then floor and ceil agree on the crop, and a larger image gets no
    partial window hanging off its edge). Returns what it changed, one sentence each."""
    gm, changes = graph.gm, []
    size = format_shape(graph.input_shape)
    for node, step in list(graph.steps.items()):
        if "adaptive_identity" in step.notes:
            changes.append(f"{where(step.node, step.name)} is an identity at {size}: "
                           "dropped (on a larger image it would pool the map to its fixed "
                           "size instead of sliding)")
            _drop(gm, node, "indices" in step.notes)
        elif "ceil_fits" in step.notes:
            changes.append(f"{where(step.node, step.name)}: ceil_mode=True set to False. "
                           f"At {size} every window fits, so each crop pools whole windows "
                           "either way; on a larger image whose side leaves a partial window "
                           "at the border (e.g. an odd number of cells for a 2/2 pool), ceil "
                           "mode would add a last cell whose window hangs off the image, which "
                           "no crop has")
            _ceil_off(step)
    return changes


def _drop(gm: fx.GraphModule, node: fx.Node, indices: bool) -> None:
    """Take an identity out of the graph. One that returns (values, indices): its values
    (``out[0]``) are its input; the indices of an identity pool are refused before this."""
    if indices:
        for user in list(node.users):
            if user.op == "call_function" and user.target is operator.getitem and \
                    user.args[1] == 0:
                user.replace_all_uses_with(node.args[0])
                gm.graph.erase_node(user)
        if node.users:
            return
    node.replace_all_uses_with(node.args[0])
    gm.graph.erase_node(node)


def _ceil_off(step: _graph.Step) -> None:
    if step.module is not None:
        step.module.ceil_mode = False
        return
    node = step.node
    names = WINDOW_FUNCS[node.target]
    i = names.index("ceil_mode")
    if len(node.args) > i:
        node.update_arg(i, False)
    else:
        node.update_kwarg("ceil_mode", False)


# --------------------------------------------------------------------------- finish

class SizeGuard:
    """Checks an input is at least the training size, with the arithmetic in the message."""

    fcconv_checks_only = True  # it changes no value: a converted net may be converted again

    def __init__(self, input_shape: Shape, flat_shape: Shape | None):
        self.input_shape, self.flat_shape = input_shape, flat_shape

    def __call__(self, module, args):
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor):
            hint = " (torch.from_numpy(array) makes one)" if type(x).__module__ == "numpy" else ""
            raise TypeError(f"the converted net takes a torch.Tensor (N, "
                            f"{', '.join(map(str, self.input_shape))}) or larger; got "
                            f"{type(x).__name__}{hint}")
        expect_input(module, x, "net")
        need = self.input_shape[1:]
        got = tuple(x.shape[2:])
        if x.dim() != len(self.input_shape) + 1 or x.shape[1] != self.input_shape[0]:
            raise ValueError(f"expected input (N, {', '.join(map(str, self.input_shape))}) or "
                             f"larger; got {tuple(x.shape)}")
        if any(g < n for g, n in zip(got, need)):
            # The converted net has no Linear left: name the window the first head conv covers.
            head = f"the first head conv (once a Linear over {spelled(self.flat_shape)}) " \
                if self.flat_shape else "each head "
            raise ValueError(f"the input {'x'.join(map(str, got))} is smaller than the "
                             f"{'x'.join(map(str, need))} window the classifier was built for: "
                             f"{head}needs at least one whole window")


def finish(graph: _graph.Graph, flats, sequential: bool) -> nn.Module:
    """Clean the graph; add a crop where floor pooling would leave cells hanging off the image;
    record ``window`` and ``jump``; check one cell per head at the training size."""
    gm, shape = graph.gm, graph.input_shape
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    _delete_unused_attributes(gm)
    gm.recompile()
    window, nsp = shape[1:], len(shape) - 1
    jumps = {graph.steps[n].geo.field.jump for n in graph.outputs()}
    if len(jumps) > 1:
        raise ValueError(f"the heads slide with different jumps ({' vs '.join(map(_side, jumps))}):"
                         " their score maps would not line up cell for cell; convert each head "
                         "on its own")
    jump = jumps.pop()
    for out in _heads(run_on_meta(gm, shape)):   # before any crop: each head is one window
        if out.dim() <= nsp or any(s != 1 for s in out.shape[-nsp:]):
            raise ValueError(f"the converted model gives {tuple(out.shape)} at the training size, "
                             f"not one cell ({'x'.join('1' * nsp)}) per head: a head that returns "
                             "a feature map is not a classifier of the whole window")
    # One probe settles it: the dense count is floor((H + A) / jump) for some A, equal to the
    # crops' (H - window) // jump + 1 for every H iff it is 1 at H = window + jump - 1.
    probe = _heads(run_on_meta(gm, (shape[0], *(w + j - 1 for w, j in zip(window, jump)))))
    crop = any(s > 1 for out in probe for s in out.shape[-nsp:])
    if crop:
        _append_crop(gm, window, jump)
    chain = sequential and not crop and not graph.several()
    net = _as_sequential(gm) if chain else ConvolutionalNet(gm, gm.graph, type(gm).__name__)
    net.window = window[0] if len(set(window)) == 1 else tuple(window)
    net.jump = jump[0] if len(set(jump)) == 1 else tuple(jump)
    flat_shape = next(iter(flats.values())).map_shape if flats else None
    net.register_forward_pre_hook(SizeGuard(shape, flat_shape))
    return net


PRESERVED = ("window", "jump", "changes", "approximate")   # what a converted net says of itself


class ConvolutionalNet(fx.GraphModule):
    """A converted net that is a graph (not a chain of layers): copy.deepcopy and pickling
    (torch.save) keep its size guard and its ``window``, ``jump``, ``changes`` and
    ``approximate``. fx rebuilds a GraphModule from its code on both, which drops hooks and
    attributes of its own; a plain nn.Sequential keeps them anyway."""

    def __deepcopy__(self, memo):
        twin = super().__deepcopy__(memo)
        _keep(self.__dict__, twin, memo)
        return twin

    def __reduce__(self):
        rebuild, args = super().__reduce__()
        return _rebuilt, (rebuild, args)


def _keep(state: dict, net: fx.GraphModule, memo=None) -> None:
    """Give ``net`` the size guard and the attributes in ``state`` (another net's __dict__)."""
    for hook in state["_forward_pre_hooks"].values():
        if isinstance(hook, SizeGuard):
            net.register_forward_pre_hook(copy.deepcopy(hook, memo))
    for name in PRESERVED:
        if name in state:
            setattr(net, name, copy.deepcopy(state[name], memo))


def _rebuilt(rebuild, args) -> ConvolutionalNet:
    """Unpickling: fx's rebuild, then a ConvolutionalNet again with its guard and attributes."""
    gm = rebuild(*args)
    net = ConvolutionalNet(gm, gm.graph, type(gm).__name__)
    _keep(args[0], net)
    return net


def _delete_unused_attributes(gm: fx.GraphModule) -> None:
    """The model's own parameters and buffers that no node reads any more (the weight of an
    F.linear that became a conv) go, so that the net holds only what it computes with."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name, _ in [*gm.named_parameters(recurse=False), *gm.named_buffers(recurse=False)]:
        if name not in used:
            delattr(gm, name)


def _heads(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _side(v) -> str:
    return "x".join(map(str, v))


def _append_crop(gm: fx.GraphModule, window, jump) -> None:
    """Each head's map goes through CropToWindows (one module, called once per head)."""
    out = next(n for n in gm.graph.nodes if n.op == "output")
    image = next(n for n in gm.graph.nodes if n.op == "placeholder")
    gm.add_submodule("crop", CropToWindows(window, jump))
    returned = out.args[0]
    with gm.graph.inserting_before(out):
        if isinstance(returned, (tuple, list)):
            cropped = type(returned)(gm.graph.call_module("crop", (r, image)) for r in returned)
        else:
            cropped = gm.graph.call_module("crop", (returned, image))
    out.args = (cropped,)
    gm.recompile()


def _as_sequential(gm: fx.GraphModule) -> nn.Module:
    """A chain of layers reads better as nn.Sequential (same layer names); else keep the graph.
    A module called twice (one ReLU object reused) appears twice: once per call."""
    nodes = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output")]
    chain = all(n.op == "call_module" and "." not in n.target and len(n.users) == 1
                for n in nodes)
    if not chain:
        return gm
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for n in nodes:
        name, k = n.target, 1
        while name in layers:
            name, k = f"{n.target}_call{k + 1}", k + 1
        layers[name] = gm.get_submodule(n.target)
    return nn.Sequential(layers)
