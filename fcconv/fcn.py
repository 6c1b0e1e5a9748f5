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
import warnings

from torch import nn

from . import _head, _rewrite, _walk
from ._model import check_model, copied, has_meta
from ._model import input_shape as input_shape_of
from .conversions import expect
from .formulas import checked_bool


class ApproximateWarning(UserWarning):
    """convolutionalize(..., exact=False) made a net whose dense map differs from the crops."""


def convolutionalize(model: nn.Module, input_shape, exact: bool = True,
                     share_weights: bool = False) -> nn.Module:
    """The classifier as a fully convolutional network (the original is left untouched).

    input_shape: the (C, H, W) (or (C, L)) it was trained on; as for ``trace``, (H, W) or 224
    take C from the first conv. Result: x (N, C, H, W) ->
    (N, K, 1, 1) at that size; (N, K, rows, cols) on larger inputs, rows = (H - window) // jump + 1,
    exactly the windows sliding_windows scores. The result's ``.window`` is the (H, W) it slides
    and ``.jump`` its stride. Works on nn.Sequential and on custom forwards (torch.fx) that
    flatten with nn.Flatten, torch.flatten, view or reshape (after any permute of the map's axes:
    channels last, or W,H,C). A forward that returns a tuple of heads gives a tuple of maps; a
    head that picks a class, ``scores[:, 1]``, gives an (N, rows, cols) map. A net with no
    flatten whose heads give one cell at input_shape (MTCNN's P-Net) is already convolutional:
    it comes back with ``.window`` and ``.jump``, its ceil-mode pools set to floor where every
    window fits, so that it scores exactly the windows that fit in the image. ``.changes`` says
    what changed in the trunk, and why (one sentence each). BatchNorm on batch statistics and
    dropout or other random numbers are refused on a model with weights (call model.eval()); a
    model on the meta device converts for its shapes, and the result refuses a real image (one
    only partly on the meta device is refused). So are forward hooks (fx does not see them), a
    view that keeps a map's shape only at input_shape (x.view(-1, 1, 28, 28)) and constants per
    position; constants per channel or per class, F.linear and splits of the scores convert.

    exact: a pool with ceil_mode=True whose last window hangs over the edge of the map at
    input_shape pools a partial window in each crop but a whole one in the dense pass, so the
    two differ: refused (ValueError naming the pool). exact=False converts anyway, warns, and
    sets the result's ``.approximate`` to the reason ('' on an exact net). Zero padding is not
    refused either way: the conversion is exact, but a padded net's crops see padding at their
    borders where the larger image has pixels (the course measures that difference).

    share_weights: the result's weights are the original's (its convs the same tensors, each
    former Linear's a view of the Linear's weight): no copy, so no memory; a change to one shows
    in the other. By default every weight is a copy.
    """
    expect(model, nn.Module, "model")
    check_model(model)
    shape = input_shape_of(model, input_shape)
    checked_bool("exact", exact)
    checked_bool("share_weights", share_weights)
    meta = has_meta(model)
    # The Linears' weights are not copied: the head's are read once into new conv weights (in
    # VGG16 they are 494 MB of its 553 MB; copying them first made the peak 1 GB higher).
    linears = {id(p): p for m in model.modules() if isinstance(m, nn.Linear)
               for p in m.parameters(recurse=False)}
    # Shared: the copy of the model's structure keeps every tensor of the original itself.
    kept = {id(t): t for t in (*model.parameters(), *model.buffers())} if share_weights else {}
    memo = {**linears, **kept}
    failure = None
    try:
        net, changes, approximate = _convert(copied(model, dict(memo)), shape, exact, meta,
                                             isinstance(model, nn.Sequential), False,
                                             share_weights)
    except ValueError as err:
        failure = err
    if failure is not None:  # said again with the line of forward() (recording lines costs time)
        _convert(copied(model, dict(memo)), shape, exact, meta, False, True, share_weights)
        raise failure
    for module in ([] if share_weights else net.modules()):  # a Linear left as it was: copy it
        for name, p in module.named_parameters(recurse=False):
            if id(p) in linears:
                setattr(module, name, copy.deepcopy(p))
    net.changes = tuple(changes)
    net.approximate = "; ".join(approximate)
    if approximate:
        warnings.warn(f"convolutionalize(exact=False): the dense net is approximate: "
                      f"{net.approximate}", ApproximateWarning, stacklevel=2)
    return net


def _convert(model: nn.Module, shape, exact: bool, meta: bool, sequential: bool, lines: bool,
             share_weights: bool = False):
    """The steps of convolutionalize on a copy of the model: (net, changes, approximate)."""
    graph = _walk.analyse(model, shape, lines=lines)
    flats, approximate = _rewrite.refuse_what_cannot_slide(graph, exact, meta)
    changes = _rewrite.simplify_trunk(graph)
    _head.convert_head(graph, flats, share_weights)
    return _rewrite.finish(graph, flats, sequential), changes, approximate
