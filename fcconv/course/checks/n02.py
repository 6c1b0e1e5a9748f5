"""Checks of exercises/02_shapes_exercises.ipynb (02.3's reference, the receptive field,
needs PyTorch)."""

from __future__ import annotations

from ...formulas import conv_output_size
from ...formulas import score_map_side as _side
from .core import SIZE_FORMULAS, check, compare, ints, optional

nn = optional("torch.nn")
shapes = optional("fcconv.shapes")


@check("02.1", forbids=SIZE_FORMULAS)
def output_size(rng):
    """fn(W, F, S, P) -> the number of outputs, as PyTorch computes it (floor)."""
    grid = [(w, f, s, p) for w in range(1, 14) for f in range(1, 6) for s in range(1, 4)
            for p in range(0, 3) if f <= w + 2 * p]
    random = []
    while len(random) < 30:
        w, f, s, p = (int(rng.integers(1, 10_000)), int(rng.integers(1, 12)),
                      int(rng.integers(1, 7)), int(rng.integers(0, 6)))
        if f <= w + 2 * p:
            random.append((w, f, s, p))

    def hint(got, want, w, f, s, p):
        return f"for W={w}, F={f}, S={s}, P={p} the answer is {want}; you gave {got}."
    mistakes = [
        (lambda w, f, s, p: (w - f + 2 * p) / s + 1,
         lambda got, want, w, f, s, p: f"for W={w}, F={f}, S={s}, P={p} you return {got}: "
                                       f"PyTorch rounds the division down, giving {want}."),
        (lambda w, f, s, p: (w - f + p) // s + 1, "padding goes on both sides: use 2*P."),
        (lambda w, f, s, p: -((w - f + 2 * p) // -s) + 1,
         "you rounded the division up: PyTorch rounds it down (floor), so a last window that "
         "does not fit is dropped."),
        (lambda w, f, s, p: round((w - f + 2 * p) / s) + 1,
         "round() goes to the nearest whole number: PyTorch rounds the division down (floor)."),
        (lambda w, f, s, p: (w - f + 2 * p) // s,
         "count the first position too: (W - F + 2P) // S + 1."),
    ]
    return compare(grid + random, conv_output_size, hint, mistakes=mistakes)


@check("02.2", forbids=SIZE_FORMULAS)
def score_map_side(rng):
    """fn(size) -> the side of VGG16's score map for a size x size input (224 window, jump 32)."""
    sizes = [*range(224, 1025, 8), *(int(s) for s in rng.integers(224, 1025, 10)),
             *(int(s) for s in rng.integers(1025, 100_000, 10))]

    def hint(got, want, size):
        return f"at {size} the map is {want}x{want}; you gave {got}."
    mistakes = [
        (lambda size: (size - 224) // 32,
         lambda got, want, size: f"at {size} there are {want} windows per side: count the first "
                                 "one (+1)."),
        (lambda size: size // 32, "that is the pool5 side; the 7x7 fc6 kernel then slides over "
                                  "it: subtract the window first."),
        (lambda size: (size - 224) / 32 + 1,
         lambda got, want, size: f"at {size} you gave {got}: a map has a whole number of cells "
                                 "(a window that does not fit is not one), so round "
                                 "(size - 224) / 32 down before adding 1."),
    ]
    return compare([(s,) for s in sizes], lambda size: _side(size, 224, 32), hint,
                   mistakes=mistakes)


def field_of(layers) -> tuple[int, int, int] | None:
    """(size, jump, start) of a stack of 1-channel convs, computed by autograd (``fcconv.
    receptive_field``), or None where strides leave gaps."""
    try:
        rf = shapes.receptive_field(
            nn.Sequential(*[nn.Conv2d(1, 1, k, s, p) for k, s, p in layers]), (1, 64, 64))
    except ValueError:  # a stride larger than the field leaves gaps: no window to compare
        return None
    return rf.size, rf.jump, rf.start


def _recurrence(layers, start_sign=-1, size_after_stride=False, padding_after_stride=False):
    """The receptive-field recurrence, right or with one of the mistakes learners make."""
    size, jump, start = 1, 1, 0
    for k, s, p in layers:
        before = jump
        jump *= s
        size += (k - 1) * (jump if size_after_stride else before)
        start += start_sign * p * (jump if padding_after_stride else before)
    return size, jump, start


# Fixed stacks that tell every mistake below from the right answer (a stride and a padding in
# the same layer, a stride before a wider kernel), then random ones.
FIXED_STACKS = [[(3, 2, 1)], [(3, 1, 1), (2, 2, 0), (3, 1, 1)], [(4, 2, 1), (3, 2, 1)]]


@check("02.3", forbids=SIZE_FORMULAS, needs_torch=True)
def receptive_field_recurrence(rng):
    """fn(layers [(kernel, stride, padding), ...]) -> (size, jump, start) of the last layer."""
    cases = [(layers,) for layers in FIXED_STACKS]
    while len(cases) < len(FIXED_STACKS) + 8:
        layers = [(int(rng.integers(1, 6)), int(rng.integers(1, 3)), int(rng.integers(0, 3)))
                  for _ in range(int(rng.integers(1, 5)))]
        if field_of(layers) is not None:  # only whether it has one: no value kept
            cases.append((layers,))

    def hint(got, want, layers):
        return f"for layers {layers} expected (size, jump, start) = {want}; got {got}."
    mistakes = [
        (lambda layers: _recurrence(layers, start_sign=+1),
         "padding moves the first window *before* the image: start goes down by padding * jump."),
        (lambda layers: _recurrence(layers, start_sign=0),
         "you ignored padding: each layer's padding moves the first window before the image, "
         "start -= padding * jump."),
        (lambda layers: _recurrence(layers, padding_after_stride=True),
         "padding is counted in pixels of that layer's input: start goes down by padding times "
         "the jump *before* that layer's stride."),
        (lambda layers: _recurrence(layers, size_after_stride=True),
         "each layer widens the field by (kernel - 1) * jump, using the jump *before* that "
         "layer's stride."),
    ]
    return compare(cases, field_of, hint, ints(3), mistakes=mistakes)
