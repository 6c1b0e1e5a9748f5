"""A whole classifier as a fully convolutional network: ``convolutionalize``.

The flatten disappears, the first Linear becomes a conv whose kernel is the whole feature map,
later Linears become 1x1 convs. At the training size the result gives (N, K, 1, 1); on a larger
image, a (N, K, rows, cols) score map, one cell per window the classifier would have seen, at
stride = the trunk's jump. Anything that would make that map differ from the crops (global
pooling, ceil-mode windows that hang off the map, ops whose geometry is unknown, branches that
disagree on the jump) is refused with the reason. The graph surgery lives in ``_rewrite``.
"""

from __future__ import annotations

import copy

from torch import nn

from . import _graph, _rewrite
from .conversions import expect
from .formulas import checked_shape


def convolutionalize(model: nn.Module, input_shape, share_weights: bool = False) -> nn.Module:
    """The classifier as a fully convolutional network (the original is left untouched).

    input_shape: the (C, H, W) (or (C, L)) it was trained on. Result: x (N, C, H, W) ->
    (N, K, 1, 1) at that size; (N, K, rows, cols) on larger inputs, rows = (H - window) // jump + 1,
    exactly the windows sliding_windows scores. The result's ``.window`` is the (H, W) it slides
    and ``.jump`` its stride. Works on nn.Sequential and on custom forwards (torch.fx) that
    flatten with nn.Flatten, torch.flatten, view or reshape (channels-last flattens included).
    ``share_weights``: the result's weights are the original's (its convs the same tensors, each
    former Linear's a view of the Linear's weight): no copy, so no memory; a change to one shows
    in the other. By default every weight is a copy.
    """
    expect(model, nn.Module, "model")
    shape = checked_shape("input_shape", input_shape, (2, 3))
    # The Linears' weights are not copied: the head's are read once into new conv weights (in
    # VGG16 they are 494 MB of its 553 MB; copying them first made the peak 1 GB higher).
    linears = {id(p): p for m in model.modules() if isinstance(m, nn.Linear)
               for p in m.parameters(recurse=False)}
    # Shared: the copy of the model's structure keeps every tensor of the original itself.
    kept = {id(t): t for t in (*model.parameters(), *model.buffers())} if share_weights else {}
    graph = _graph.analyse(copy.deepcopy(model, memo={**linears, **kept}), shape)
    flats = _rewrite.refuse_what_cannot_slide(graph)
    _rewrite.simplify_trunk(graph)
    _rewrite.convert_head(graph, flats, share_weights)
    net = _rewrite.finish(graph, flats, isinstance(model, nn.Sequential))
    for module in ([] if share_weights else net.modules()):  # a Linear left as it was: copy it
        for name, p in module.named_parameters(recurse=False):
            if id(p) in linears:
                setattr(module, name, copy.deepcopy(p))
    return net
