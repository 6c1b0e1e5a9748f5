"""What every check is made of: its declaration, its plan (the calls to make, how to judge the
answers), the verdict, and the readers and comparisons the checks share.

A check is a function of a random generator that returns a ``Plan``; ``@check("NN.k")`` turns it
into a ``Check``. Calling the check on the learner's function runs the whole thing in this
process; the grader (``fcconv.course.grade``) runs the same three steps across a process
boundary: ``plan`` and ``judge`` in its own process, ``wire.evaluate`` in the learner's kernel.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from . import wire

HAVE_TORCH = importlib.util.find_spec("torch") is not None
CHECKS: dict[str, Check] = {}  # exercise id -> its check, filled by @check
NO_TORCH = "this check needs PyTorch, which is not installed here (checks of NumPy-only " \
           "answers work without it): install the course with `make lab`."


def optional(name: str):
    """Import a module the PyTorch exercises' checks need; None where PyTorch is not installed
    (the checks of NumPy-only answers then work, the others say that they need it)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != "torch":
            raise
        return None


@dataclass(frozen=True)
class Verdict:
    exercise: str
    status: str  # "correct", "wrong", "not attempted", "not checked" (no PyTorch), "error"
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        return f"{self.exercise} {self.status} — {self.message}"

    __repr__ = __str__  # what a check cell shows, and the assertion's message


class Stub(Exception):
    """The learner has not written an answer yet."""


class Wrong(Exception):
    """The answer is wrong in a way found while reading it (its type, its length): the message
    is the hint."""


@dataclass
class Plan:
    """One run of a check: the calls to make (their arguments: the only thing the learner's side
    sees), how to read each answer, and ``judge(answers) -> None`` when right, else the hint.

    probe: for an answer that is a module, the inputs of each call: the learner's side runs the
    module on them and sends back its outputs (``wire.Probed``).
    want, mistakes, same: what ``compare`` was given (tests check that the fixed cases tell
    every named mistake apart from the right answer)."""

    calls: list[tuple]
    judge: Callable[[list], str | None]
    read: Callable = None
    probe: tuple | None = None
    want: Callable | None = None
    mistakes: tuple = ()
    same: Callable | None = None
    on_raise: Callable | None = None  # answers before a raise -> the hint of a mistake, or None


class Check:
    """One exercise's check: ``check(fn) -> Verdict`` (a self-check cell), or, for the grader,
    ``plan(rng)``, ``request(plan)`` (what the learner's side gets) and ``judge(plan, reply)``."""

    def __init__(self, exercise: str, body: Callable, forbids: tuple, needs_torch: bool,
                 requires: tuple = (), required: str = ""):
        self.exercise, self.body, self.forbids, self.needs_torch = \
            exercise, body, tuple(forbids), needs_torch
        self.requires, self.required = tuple(requires), required
        functools.update_wrapper(self, body)

    def plan(self, rng: np.random.Generator | None = None) -> Plan:
        plan = self.body(np.random.default_rng() if rng is None else rng)
        plan.read = plan.read or integer
        return plan

    def request(self, plan: Plan, nonce: str | None = None) -> dict:
        return wire.request(plan.calls, plan.probe, self.forbids, nonce, self.requires)

    def judge(self, plan: Plan, reply) -> Verdict:
        """The verdict on a reply (plain data, from ``wire.evaluate``); never raises."""
        try:
            problem = plan.judge(_answers(plan, reply))
            if problem is None and self.requires and not reply.get("needed"):  # right numbers
                problem = f"the statement asks you to use {self.required}: your function never " \
                          "called it."
        except Stub:
            return Verdict(self.exercise, "not attempted",
                           "replace the stub with your answer, then run this cell again.")
        except Wrong as err:
            return Verdict(self.exercise, "wrong", str(err))
        except wire.Malformed as err:
            return Verdict(self.exercise, "error", f"its reply could not be read ({err})")
        except Exception as err:  # a case the check did not foresee: said, never a traceback
            return Verdict(self.exercise, "error", f"the check could not judge this answer "
                           f"({type(err).__name__}: {str(err)[:200]})")
        if problem is None:
            return Verdict(self.exercise, "correct", "well done.")
        return Verdict(self.exercise, "wrong", problem)

    def __call__(self, fn) -> Verdict:
        """Check ``fn`` here, now, on fresh random cases: both sides in this process."""
        if self.needs_torch and not HAVE_TORCH:
            return Verdict(self.exercise, "not checked", NO_TORCH)
        plan = self.plan()
        request = wire.round_trip(self.request(plan))
        return self.judge(plan, wire.round_trip(wire.evaluate(fn, request)))

    def __repr__(self) -> str:
        return f"<check of {self.exercise}: {self.__name__}>"


# Every function of fcconv that computes a size, a score-map side or a receptive field: 02.x and
# 06.1 are about writing those formulas, so any call into these families is one the statement
# forbids (a call through another name or another formula of the same family too).
SIZE_FORMULAS = ("fcconv.formulas.*", "fcconv.shapes.*", "fcconv._field.*", "fcconv._graph.*",
                 "fcconv.numpy_ops._out_size")


def check(exercise: str, forbids: tuple = (), needs_torch: bool = False, requires: tuple = (),
          required: str = ""):
    """Declare the check of exercise ``exercise``: the decorated ``body(rng) -> Plan``.

    forbids: what the statement says not to call (a call to one, from the learner's code, is
    wrong whatever it returns): dotted names of functions, ``module.*`` for every function of a
    module (a package: of its folder), ``@convolution`` for every convolution or correlation op
    of PyTorch, NumPy and SciPy (``wire.where``), ``@matmul`` for a matrix product in the
    answer's own code (the source scan only); requires: what it asks the answer to call (one of
    them, named ``required`` in the hint; seen by the call watch); needs_torch: the check needs
    PyTorch."""
    def declare(body: Callable) -> Check:
        if exercise in CHECKS:
            raise ValueError(f"exercise {exercise} has two checks: {CHECKS[exercise].__name__} "
                             f"and {body.__name__}")
        CHECKS[exercise] = Check(exercise, body, forbids, needs_torch, requires, required)
        return CHECKS[exercise]
    return declare


def forbidden_call(name: str) -> str:
    """The hint for an answer that calls (or names) what its statement forbids, or that started
    another process while it was checked (where the check cannot see what it calls)."""
    if name.startswith(wire.PROCESS):
        return f"your function started another process while it was checked ({name}): the " \
               "check cannot see what runs there. Compute the answer in your function itself."
    return f"{FORBIDDEN} {name}: this exercise is about writing it yourself."


FORBIDDEN = "the statement asks you not to call"  # how every hint of forbidden_call starts


def _answers(plan: Plan, reply) -> list:
    """The answers of a reply, read as the plan asks; raises Stub, Wrong or wire.Malformed."""
    if not isinstance(reply, dict):
        raise wire.Malformed("not a reply")
    if reply.get("stub") is True:
        raise Stub
    if "not_callable" in reply:
        raise Wrong(f"expected a function, got {describe(wire.decode(reply['not_callable']))}")
    forbidden = reply.get("forbidden")
    if not isinstance(forbidden, list) or not isinstance(reply.get("answers"), list):
        raise wire.Malformed("a reply without its answers")
    if forbidden:
        raise Wrong(forbidden_call(wire.clean(forbidden[0])))
    answers = []
    for raw, call in zip(reply["answers"], plan.calls):
        raised = wire.decode_raised(raw)
        if raised:  # a known mistake that fails there too (and fit every answer before) says more
            hint = plan.on_raise(answers) if plan.on_raise else None
            raise Wrong(f"{hint + ' ' if hint else ''}Your code raised {raised.type}: "
                        f"{raised.message} (for {describe_call(call)}).")
        if not isinstance(raw, dict) or len(raw) != 1 or not ({"value", "probed"} & set(raw)):
            raise wire.Malformed("an answer of no known form")
        value = wire.decode(raw["value"]) if "value" in raw else wire.decode_probed(raw["probed"])
        answers.append(plan.read(value))
    if len(answers) != len(plan.calls):
        raise wire.Malformed(f"{len(answers)} answers to {len(plan.calls)} calls")
    return answers


# --------------------------------------------------------------------------- reading answers

def describe_call(args: tuple) -> str:
    """The arguments of one call, short: numbers and tuples as they are, arrays by shape."""
    def one(a):
        if isinstance(a, np.ndarray):
            return f"an array of shape {a.shape}"
        if isinstance(a, wire.Module):
            return f"a {a.build.rsplit('.', 1)[1]}{a.args}"
        text = repr(a)
        return text if len(text) <= 80 else text[:77] + "..."
    return "the input " + ", ".join(one(a) for a in args)


def describe(x) -> str:
    """A short description of what came back, for a hint: its type and the start of its repr."""
    if isinstance(x, wire.Opaque):
        return str(x)
    text = repr(x) if isinstance(x, (numbers.Number, str, tuple, list, np.generic)) else ""
    return f"{type(x).__name__} {text[:60]}".strip()


HALF = "float16 keeps only about 3 significant digits, too few for these numbers: return float32 " \
       "or float64 (or plain Python numbers)."


def number(x):
    """Any real number: an int, a Fraction, a float (a NumPy float keeps its dtype: the
    tolerance fits it; float16 is refused, with a hint); a one-number array counts as its
    number."""
    if isinstance(x, np.ndarray) and x.size == 1 and x.dtype.kind in "iuf":
        x = x.reshape(())[()]
    if isinstance(x, np.floating) and np.finfo(x.dtype).eps > EPS32:
        raise Wrong(f"you returned {describe(x)}: {HALF}")
    if isinstance(x, (bool, np.bool_)):
        raise Wrong(f"return a number; got {describe(x)}")
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (Fraction, float, np.floating)):
        return x
    raise Wrong(f"return a number; got {describe(x)}")


def integer(x):
    """A count or a size: an int, or any number with a whole value (9.0, Fraction(9, 1)) as that
    int; a number that is not whole stays as it is (so it is never equal to the answer, and the
    hint can show it)."""
    value = number(x)
    if isinstance(value, Fraction) and value.denominator == 1:
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return value


def ints(n: int) -> Callable:
    """A reader of ``n`` whole numbers (a tuple, a list or a 1-d array), as a tuple."""
    def read(x):
        items = list(x) if isinstance(x, np.ndarray) and x.ndim == 1 else x
        try:
            if isinstance(items, (tuple, list)) and len(items) == n:
                return tuple(integer(v) for v in items)
        except Wrong:
            pass
        raise Wrong(f"return a tuple of {n} ints; got {describe(x)}")
    return read


def array(x) -> np.ndarray:
    """A NumPy array of numbers (any int or float dtype), or nested lists of numbers; a tensor
    arrives as its array."""
    if isinstance(x, (list, tuple)) and all(isinstance(v, (int, float, list, tuple)) for v in x):
        try:
            x = np.array(x)
        except ValueError:  # ragged
            pass
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "iuf":
        raise Wrong(f"return a NumPy array of numbers; got {describe(x)}")
    if x.dtype.kind == "f" and np.finfo(x.dtype).eps > EPS32:
        raise Wrong(f"your array is {x.dtype}: {HALF}")
    return x


def matrix(x) -> np.ndarray:
    """A matrix given by its entries: a 2-d NumPy array (a tensor arrives as one) or a
    ``scipy.sparse`` matrix (it arrives as the dense array it stands for); never an object that
    only multiplies (a LinearOperator: the statement asks for the entries)."""
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return array(x)
    raise Wrong(f"return the matrix itself, as its entries: a NumPy array or a scipy.sparse "
                f"matrix; got {describe(x)}")


def probed(x) -> wire.Probed:
    """A module's outputs on the check's inputs (see ``Plan.probe``)."""
    if not isinstance(x, wire.Probed):
        raise wire.Malformed("expected a probed answer")
    return x


# --------------------------------------------------------------------------- comparing

def equal(got, want) -> bool:
    return type(got) is not np.ndarray and got == want


EPS32 = float(np.finfo(np.float32).eps)


def tolerance(got, terms: int = 1) -> float:
    """How far a right answer in ``got``'s dtype may be from float64's: 8 * terms * eps (terms:
    the rounding steps behind one number), and never below 1e-9. eps is that of the numbers
    that came back (what the grader sees, never what the learner's side says about them), and
    never coarser than float32's: float16 buys no tolerance."""
    dtype = np.asarray(got).dtype
    eps = min(float(np.finfo(dtype).eps), EPS32) if dtype.kind == "f" else 0.0
    return max(1e-9, 8 * terms * eps)


def close(got, want, terms: int = 1) -> bool:
    """Same shape, and equal to within the tolerance of got's dtype (``tolerance``)."""
    try:
        g = np.asarray(float(got) if isinstance(got, Fraction) else got)
        w = np.asarray(want, dtype=np.float64)
        return g.shape == w.shape and g.dtype.kind in "iuf" and bool(
            np.allclose(g.astype(np.float64), w, rtol=tolerance(g, terms), atol=tolerance(g, terms)))
    except (OverflowError, TypeError, ValueError):
        return False


def closeness(terms: int) -> Callable:
    """``close`` for numbers that each come from ``terms`` rounding steps (a sum of products)."""
    return lambda got, want: close(got, want, terms)


def float32_only(got: np.ndarray, want, terms: int = 1) -> bool:
    """A float64 answer right only to float32's precision: computed in float32 somewhere."""
    return got.dtype == np.float64 and not close(got, want, terms) and \
        close(got.astype(np.float32), want, terms)


FLOAT32 = "your numbers agree only to float32 precision (about 1e-6) although your array is " \
          "float64: somewhere you computed in float32 (torch.tensor(..., dtype=torch.float32)?). " \
          "Compute in float64 (torch.from_numpy keeps it), or return the float32 result as it is."


def compare(calls, want: Callable, hint: Callable, read: Callable = integer,
            same: Callable = equal, mistakes=()) -> Plan:
    """The plan of most checks: call the learner's function on every case, then compare each
    answer with ``want(*case)``. Wrong: if every answer is what a known mistake gives, that
    mistake's hint; else ``hint(got, want, *case)`` for the first case that differs.

    mistakes: (mistake(*case) -> what that mistake returns, its hint: a string, or a function
    (got, want, *case) -> str)."""
    calls = [tuple(c) for c in calls]

    def judge(answers: list) -> str | None:
        wants = [want(*c) for c in calls]
        wrong = [i for i, (g, w) in enumerate(zip(answers, wants)) if not same(g, w)]
        if not wrong:
            return None
        first = wrong[0]
        for mistake, says in mistakes:
            if all(_gives(same, g, mistake, c) for g, c in zip(answers, calls)):
                return says(answers[first], wants[first], *calls[first]) if callable(says) else says
        return hint(answers[first], wants[first], *calls[first])
    def on_raise(answers: list) -> str | None:
        """The learner's code raised on case len(answers): a mistake (with a plain hint) that
        gives every answer before it and fails on that case too is the likely one."""
        k = len(answers)
        for mistake, says in mistakes:
            if k and isinstance(says, str) and _fails(mistake, calls[k]) and \
                    all(_gives(same, g, mistake, c) for g, c in zip(answers, calls)):
                return says
        return None
    return Plan(calls, judge, read, want=want, mistakes=tuple(mistakes), same=same,
                on_raise=on_raise)


def _fails(mistake, case) -> bool:
    try:
        mistake(*case)
    except Exception:
        return True
    return False


def _gives(same, got, mistake, case) -> bool:
    try:
        return same(got, mistake(*case))
    except Exception:  # the mistake has no value on this case: not the one made
        return False


# --------------------------------------------------------------------------- modules and matrices

CONV2D, LINEAR = "torch.nn.modules.conv.Conv2d", "torch.nn.modules.linear.Linear"
BATCHNORM2D = "torch.nn.modules.batchnorm.BatchNorm2d"


def layers(answer: wire.Probed, kind: str) -> list[dict]:
    """The layers of a probed module that are a ``kind`` (a class's qualified name, such as
    ``CONV2D``: subclasses count), in the order the module lists them."""
    return [layer for layer in answer.facts.get("layers", []) if kind in layer.get("bases", [])]


def output_close(answer: wire.Probed, i: int, want, terms: int = 1) -> bool:
    """Output ``i`` of a probed module equals ``want`` within float32's tolerance: the module
    ran in float64 on the grader's inputs, and a float32 copy of the weights is fine. Only the
    numbers that came back count (nothing the module says about its own dtypes)."""
    got = answer.outputs[i]
    if not isinstance(got, np.ndarray) or got.dtype.kind not in "iuf" or got.shape != np.shape(want):
        return False
    tol = 8 * terms * EPS32
    return bool(np.allclose(got.astype(np.float64), want, rtol=tol, atol=tol))


def random_state(module, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A fresh float64 state for ``module``'s weights and biases, drawn from ``rng`` the way
    PyTorch initialises them (uniform within 1/sqrt(fan_in)): each run judges another network."""
    state, bound = {}, 1.0
    for name, tensor in module.state_dict().items():
        shape = tuple(tensor.shape)
        if name.endswith("weight") and len(shape) > 1:
            bound = 1 / np.sqrt(np.prod(shape[1:]))
        state[name] = rng.uniform(-bound, bound, shape)
    return state
