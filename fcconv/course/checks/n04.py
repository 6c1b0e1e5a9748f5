"""Checks of exercises/04_convolutionalize_exercises.ipynb (all need PyTorch)."""

from __future__ import annotations

import functools

import numpy as np

from . import wire
from .core import (
    BATCHNORM2D,
    CONV2D,
    LINEAR,
    Plan,
    check,
    close,
    compare,
    describe,
    layers,
    optional,
    output_close,
    probed,
    random_state,
)

torch = optional("torch")
dense = optional("fcconv.dense")
fcn = optional("fcconv.fcn")
models = optional("fcconv.models")
shapes = optional("fcconv.shapes")

LENET_RELUS = (8, 10)  # the ReLUs after LeNet-5's first two Linears (indices in the Sequential)


@functools.cache
def lenet_jump() -> int:
    """How far apart LeNet-5's windows are, from its features' receptive field (autograd)."""
    return shapes.receptive_field(models.lenet5(device="meta")[:6], (1, 32, 32)).jump


def _run(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@check("04.1", forbids=("fcconv.fcn.convolutionalize", "fcconv.dense.sliding_windows"), needs_torch=True)
def convolutionalize_by_hand(rng):
    """fn(model: the lenet5 Sequential, random weights) -> a fully convolutional version of it:
    LeNet-5's scores at 32x32, and LeNet-5 itself on every 32x32 crop of a bigger input."""
    lenet = wire.Module("fcconv.models.lenet5", (), random_state(models.lenet5(device="meta"), rng))
    bigger = [(48, 48), tuple(32 + 4 * int(v) for v in rng.integers(1, 7, 2))]
    inputs = [rng.standard_normal((2, 1, 32, 32))] + [rng.standard_normal((1, 1, *s)) for s in bigger]

    def judge(answers: list) -> str | None:
        got, model = answers[0], lenet.make()
        out = got.outputs[0]
        if isinstance(out, wire.Raised):
            return f"your network raised {out.type} on a (2, 1, 32, 32) input: {out.message}"
        if not isinstance(out, np.ndarray):
            return f"the network should return a tensor; got {describe(out)}."
        if out.ndim == 2:
            return f"the output has shape {out.shape}: a fully convolutional net returns (N, K, " \
                   "1, 1) — did you keep the Flatten?"
        want = _run(model, inputs[0])[:, :, None, None]
        if out.shape != want.shape:
            return f"at 32x32 the output should be {want.shape}; yours is {out.shape}."
        if not output_close(got, 0, want, 400):
            return _lenet_difference(got, model, inputs[0])
        for i, x in enumerate(inputs[1:], 1):
            crops = dense.sliding_windows(model, torch.from_numpy(x), 32, lenet_jump()).numpy()
            big, side = got.outputs[i], "x".join(map(str, x.shape[2:]))
            if not isinstance(big, np.ndarray) or big.shape != crops.shape:
                return f"on {side} the score map should be {crops.shape}; yours is " \
                       f"{getattr(big, 'shape', describe(big))}."
            if not output_close(got, i, crops, 400):
                return f"at 32x32 your scores match, but at {side} your map is not LeNet-5 run on " \
                       f"every 32x32 crop {lenet_jump()} pixels apart: each Linear must become a " \
                       "convolution that slides."
            problem = _crops(got.facts.get("convs"), i, tuple(model[0].weight.shape), x.shape)
            if problem:
                return problem
        return None
    return Plan([(lenet,)], judge, probed, probe=[inputs])


def _crops(convs, i: int, first: tuple, shape: tuple) -> str | None:
    """The statement's "no crops": on a bigger input, LeNet-5's first convolution (its weight's
    shape: ``first``) must run once, on the whole image (``convs``: what the probe measured)."""
    ran = [tuple(inp) for inp, w in (convs[i] if isinstance(convs, list) and len(convs) > i else [])
           if tuple(w) == first]
    if ran == [tuple(shape)]:
        return None
    side = "x".join(map(str, shape[2:]))
    seen = f"ran {len(ran)} time(s), on inputs of shape {sorted(set(ran))[:3]}" if ran else \
        "never ran as a convolution"
    return f"the statement asks for one pass, not crops: on {side}, LeNet-5's first convolution " \
           f"{seen}; it must run once, on the whole {tuple(shape)} input."


def _lenet_difference(got: wire.Probed, model, x: np.ndarray) -> str:
    """Why the scores at 32x32 differ: the ReLUs dropped, or the first converted layer whose
    weight is not the Linear's in C,H,W order, or whose bias was not copied."""
    for dropped in (LENET_RELUS, *((i,) for i in LENET_RELUS)):
        without = torch.nn.Sequential(*[m for i, m in enumerate(model) if i not in dropped])
        if output_close(got, 0, _run(without, x)[:, :, None, None], 400):
            return "you dropped the ReLU between the converted layers: keep every ReLU of the " \
                   "classifier (a conv, like a Linear, is linear; the ReLUs are what make the " \
                   "head more than one layer)."
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    theirs = [layer for layer in got.facts.get("layers", [])
              if {CONV2D, LINEAR} & set(layer.get("bases", []))][-len(linears):]
    for i, (lin, layer) in enumerate(zip(linears, theirs)):
        name = f"Linear number {i + 1} ({lin.in_features} -> {lin.out_features})"
        weight, bias = layer["params"].get("weight"), layer["params"].get("bias")
        w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
        if not isinstance(weight, np.ndarray) or weight.size != w.size:
            break
        if not close(weight.reshape(w.shape), w):
            return f"at 32x32 your scores differ from LeNet-5's: the conv replacing {name} " \
                   "should hold its weight reshaped in C,H,W order."
        if not isinstance(bias, np.ndarray) or not close(bias, b):
            return f"the weights are right but the bias of {name} was not copied: copy " \
                   "linear.bias into conv.bias."
    return "at 32x32 your network's scores differ from LeNet-5's: check that each conv's " \
           "weight is the Linear's weight reshaped in C,H,W order, and its bias copied."


@check("04.2", needs_torch=True)
def bn1d_to_bn2d(rng):
    """fn(bn: nn.BatchNorm1d, in eval mode) -> a module doing, per channel of a map, what bn does
    per feature of a vector (an nn.BatchNorm2d with the same statistics, affine and eps)."""
    c = int(rng.integers(3, 9))
    eps = float(rng.choice([0.05, 0.1, 0.2, 0.3]))  # never the default: copying it must matter
    state = {"weight": rng.standard_normal(c), "bias": rng.standard_normal(c),
             "running_mean": rng.standard_normal(c), "running_var": rng.uniform(0.05, 0.5, c),
             "num_batches_tracked": np.array(0)}
    bn = wire.Module("torch.nn.BatchNorm1d", (c, eps), state)
    inputs = [rng.standard_normal((4, c, 3, 3)), rng.standard_normal((2, c, 1, 5))]

    def want(x: np.ndarray) -> np.ndarray:
        per = [s[None, :, None, None] for s in (state["running_mean"], state["running_var"],
                                                state["weight"], state["bias"])]
        return (x - per[0]) / np.sqrt(per[1] + eps) * per[2] + per[3]

    def judge(answers: list) -> str | None:
        got = answers[0]
        if all(output_close(got, i, want(x), 8) for i, x in enumerate(inputs)):
            return None
        return _bn_hint(got, state, eps)
    return Plan([(bn,)], judge, probed, probe=[inputs])


def _bn_hint(got: wire.Probed, state: dict, eps: float) -> str:
    bns = layers(got, BATCHNORM2D) or [layer for layer in got.facts.get("layers", [])
                                       if "running_mean" in layer.get("params", {})]
    if not bns:
        return f"return an nn.BatchNorm2d; got {got.facts.get('type')}."
    params, theirs = bns[0]["params"], bns[0].get("attrs", {}).get("eps")
    mean, var = params.get("running_mean"), params.get("running_var")
    if isinstance(mean, np.ndarray) and isinstance(var, np.ndarray) and \
            close(mean, np.zeros_like(state["running_mean"])) and \
            close(var, np.ones_like(state["running_var"])):
        return "the running statistics were not copied: copy the state_dict."
    if theirs != eps:
        return f"eps was not copied: this BatchNorm1d has eps={eps}, yours {theirs}; pass " \
               "eps=bn.eps to BatchNorm2d (the state_dict does not hold it)."
    if not all(isinstance(params.get(n), np.ndarray) and close(params[n], state[n])
               for n in ("weight", "bias")):
        return "the affine weight and bias (gamma and beta) were not copied: copy the state_dict."
    return "the outputs differ: copy weight, bias, running_mean, running_var and eps."


@functools.cache
def tiny_vgg_fcn():
    return fcn.convolutionalize(models.tiny_vgg(device="meta"), (3, 64, 64))


@check("04.3", needs_torch=True)
def tiny_vgg_map_side(rng):
    """fn(size) -> the score-map side of the convolutionalized Tiny VGG (window 64, jump 4)."""
    sizes = [*range(64, 200, 3), *(int(s) for s in rng.integers(200, 2000, 8))]

    def hint(got, want, size):
        return f"at {size} the map side is {want}; you gave {got}."
    mistakes = [
        (lambda s: (s - 64) // 32 + 1, "Tiny VGG has two 2x2 pools: its jump is 2*2 = 4 pixels."),
        (lambda s: (s - 64) // 2 + 1, "Tiny VGG has two 2x2 pools: its jump is 2*2 = 4 pixels."),
        (lambda s: (s - 64) // 4, "count the first window too: (size - 64) // 4 + 1."),
    ]
    return compare([(s,) for s in sizes], lambda size: shapes.trace(tiny_vgg_fcn(), size)
                   .output_shape[1], hint, mistakes=mistakes)
