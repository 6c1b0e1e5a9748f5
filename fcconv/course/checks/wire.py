"""The boundary between a learner's code and the checks: only plain data crosses it.

A check's inputs go to the learner's function as JSON: numbers, strings, tuples, lists, NumPy
arrays as ``.npy`` bytes, a PyTorch module as the name of its constructor and a state of arrays
(``Module``). The answer comes back the same way: a number, a sequence, an array (``.npy``, loaded
with ``allow_pickle=False``; a ``scipy.sparse`` matrix as its entries), or, where the answer is a
module, its outputs on inputs the check chose (``probe``) and a description of its layers.
Anything else arrives as a description (``Opaque``: its type's name and a short repr), never as
itself.

``evaluate`` runs on the learner's side (in the grader: inside the learner's kernel, sent there as
source text, answering the grader's requests as a message handler of the kernel: ``serve``);
``decode`` on the judge's side (in the grader: its own process). A self-check cell runs both in
one process: the same code, the same round trip through JSON.

Nothing decoded here is trusted: every value is rebuilt from plain types, under caps on depth,
length and bytes. Exceeding one, or a value of no known form, is ``Malformed``.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import io
import json
import numbers
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

MAX_DEPTH = 6  # tuples in lists in tuples...: deeper is not an answer any exercise asks for
MAX_ITEMS = 100_000  # values in one answer, all sequences together
MAX_ARRAY_BYTES = 64 * 2**20  # one array's .npy bytes
MAX_TEXT = 200  # characters kept of a repr, a type name or an error message
MAX_DENSE = 2**24  # entries of the dense matrix a sparse one stands for
WATCH_OFF = "sys.setprofile"  # reported as forbidden when the learner's code ends the watch


class Malformed(ValueError):
    """A reply that is not what ``evaluate`` writes: too big, too deep, or of no known form."""


@dataclass(frozen=True)
class Opaque:
    """What came back was not plain data: its type's name and a short repr (for the hint)."""

    type: str
    text: str = ""

    def __str__(self) -> str:
        return f"{self.type} {self.text}".strip()


@dataclass(frozen=True)
class Raised:
    """The learner's code raised this exception (its type's name and message)."""

    type: str
    message: str


@dataclass(frozen=True)
class Module:
    """A PyTorch module sent to the learner's function: ``build`` (a dotted constructor name, such
    as ``torch.nn.Linear``) called with ``args``, then given ``state`` (float64 arrays)."""

    build: str
    args: tuple = ()
    state: dict = field(default_factory=dict)
    train: bool = False

    def make(self):
        """The module itself, float64, with its state: what the learner's function receives
        (and what a check computes the expected answer with)."""
        import torch

        where, name = self.build.rsplit(".", 1)
        module = getattr(importlib.import_module(where), name)(*self.args).double()
        module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()})
        return module.train(self.train)


@dataclass(frozen=True)
class Probed:
    """A module's answer: its outputs on the check's inputs (an array, or Raised, for each) and
    what its layers hold (``facts``: type names, attributes, parameters; for hints only)."""

    outputs: list
    facts: dict


# --------------------------------------------------------------------------- both sides

def _npy(a: np.ndarray) -> str:
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(a), allow_pickle=False)
    return base64.b64encode(out.getvalue()).decode("ascii")


def _from_npy(text) -> np.ndarray:
    if not isinstance(text, str) or len(text) > MAX_ARRAY_BYTES * 4 // 3 + 4:
        raise Malformed("an array's bytes are missing or over the size cap")
    try:
        a = np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False)
    except Exception as err:  # bad base64, a bad header, object arrays (pickle refused)
        raise Malformed(f"not an .npy array: {type(err).__name__}") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "biufc":
        raise Malformed("an array of no numeric type")
    return a


def encode(x, depth: int = 0, budget: list | None = None):
    """A value as JSON-ready plain data. Never raises: what cannot be encoded becomes an
    'object' description. Runs on the learner's side, where every method of ``x`` is theirs."""
    budget = [MAX_ITEMS] if budget is None else budget
    budget[0] -= 1
    try:
        if budget[0] < 0 or depth > MAX_DEPTH:
            return {"object": "value", "text": "too large or too deeply nested"}
        if x is None or isinstance(x, (bool, np.bool_)):
            return None if x is None else {"bool": bool(x)}
        if isinstance(x, str):
            return {"str": x[:MAX_TEXT]}
        if isinstance(x, Module):
            return {"module": {"build": x.build, "args": encode(tuple(x.args), depth + 1, budget),
                               "state": {k: _npy(np.asarray(v)) for k, v in x.state.items()},
                               "train": bool(x.train)}}
        if isinstance(x, numbers.Integral):
            return {"int": str(int(x))}
        if isinstance(x, numbers.Rational):
            return {"frac": [str(int(x.numerator)), str(int(x.denominator))]}
        if isinstance(x, np.floating):
            return {"float": repr(float(x)), "dtype": x.dtype.name}
        if isinstance(x, numbers.Real):
            return {"float": repr(float(x)), "dtype": "float64"}
        if isinstance(x, (tuple, list)):
            if len(x) > budget[0]:
                return {"object": type(x).__name__, "text": f"of {len(x)} items: too many"}
            items = [encode(v, depth + 1, budget) for v in x]
            return {"tuple": items} if isinstance(x, tuple) else {"list": items}
        if all(hasattr(x, a) for a in ("tocoo", "nnz", "shape")):  # a scipy.sparse matrix
            coo = x.tocoo()
            return {"sparse": {"shape": [int(n) for n in coo.shape],
                               **{k: encode(np.asarray(getattr(coo, k)), depth + 1, budget)
                                  for k in ("row", "col", "data")}}}
        array = _as_array(x)
        if array is not None:
            if array.dtype.kind not in "biufc":
                return {"object": f"array of {array.dtype}", "text": ""}
            if array.nbytes > MAX_ARRAY_BYTES:
                return {"object": "array", "text": f"of {array.nbytes:,} bytes: too large"}
            return {"array": _npy(array)}
    except Exception as err:  # the learner's __int__, __array__ ... raised
        return {"object": _type_name(x), "text": f"(reading it raised {type(err).__name__})"}
    return {"object": _type_name(x), "text": _short_repr(x)}


def decode(v, depth: int = 0, budget: list | None = None):
    """Plain data back to a value: int, float (a NumPy float keeps its dtype), Fraction, bool,
    str, None, tuple, list, NumPy array, Opaque (or Module, on the learner's side). Raises
    ``Malformed`` for anything ``encode`` does not write."""
    budget = [MAX_ITEMS] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH + 1:
        raise Malformed("too many values, or nested too deeply")
    if v is None:
        return None
    if not isinstance(v, dict) or len(v) > 4:
        raise Malformed(f"a value of no known form ({type(v).__name__})")
    (tag, body), *rest = v.items() if v else [(None, None)]
    try:
        if tag == "int" and isinstance(body, str) and len(body) <= 400:
            return int(body)
        if tag == "float" and isinstance(body, str) and len(body) <= 40:
            dtype = v.get("dtype")
            if dtype not in ("float16", "float32", "float64", "longdouble", "float128"):
                raise Malformed(f"a float of dtype {dtype!r}")
            value = float(body)
            return value if dtype == "float64" else np.dtype(dtype).type(value)
        if tag == "frac" and isinstance(body, list) and len(body) == 2:
            num, den = (int(s) for s in body if isinstance(s, str) and len(s) <= 400)
            return Fraction(num, den)
        if tag == "bool" and isinstance(body, bool):
            return body
        if tag == "str" and isinstance(body, str):
            return body[:MAX_TEXT]
        if tag in ("tuple", "list") and isinstance(body, list):
            if len(body) > budget[0]:
                raise Malformed("too many values")
            items = [decode(item, depth + 1, budget) for item in body]
            return tuple(items) if tag == "tuple" else items
        if tag == "array":
            return _from_npy(body)
        if tag == "sparse" and isinstance(body, dict):
            return _dense(body, depth, budget)
        if tag == "object" and isinstance(body, str):
            return Opaque(clean(body)[:80], clean(v.get("text", ""))[:60])
        if tag == "module" and isinstance(body, dict):
            return Module(str(body["build"]), decode(body["args"], depth + 1, budget),
                          {str(k): _from_npy(a) for k, a in body["state"].items()},
                          bool(body.get("train", False)))
    except (ValueError, TypeError, KeyError, ZeroDivisionError, AttributeError) as err:
        if isinstance(err, Malformed):
            raise
        raise Malformed(f"a {tag} value that cannot be read") from None
    raise Malformed(f"a value of no known form ({str(tag)[:20]!r})")


def _dense(body: dict, depth: int, budget: list) -> np.ndarray:
    """A sparse matrix's entries (shape, row, col, data) as the dense array they stand for
    (entries at the same place add up, as in scipy)."""
    shape = tuple(int(n) for n in body["shape"])
    row, col, data = (decode(body[k], depth + 1, budget) for k in ("row", "col", "data"))
    if len(shape) != 2 or min(shape) < 0 or shape[0] * shape[1] > MAX_DENSE or \
            not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in (row, col, data)) or \
            not len(row) == len(col) == len(data) or row.dtype.kind not in "iu" or \
            col.dtype.kind not in "iu" or data.dtype.kind not in "biuf":
        raise Malformed("a sparse matrix that cannot be read")
    if len(row) and (row.min() < 0 or col.min() < 0 or row.max() >= shape[0] or col.max() >= shape[1]):
        raise Malformed("a sparse matrix with entries outside its shape")
    out = np.zeros(shape, dtype=data.dtype if data.dtype.kind == "f" else np.float64)
    np.add.at(out, (row, col), data)
    return out


def decode_probed(v) -> Probed:
    """A probed answer (see ``evaluate``) back to ``Probed``."""
    if not isinstance(v, dict) or not isinstance(v.get("outputs"), list) or \
            not isinstance(v.get("facts"), dict) or len(v["outputs"]) > 1000:
        raise Malformed("a probed answer without its outputs and facts")
    outputs = [decode_raised(o) or decode(o) for o in v["outputs"]]
    return Probed(outputs, _decode_facts(v["facts"]))


def decode_raised(v) -> Raised | None:
    """``{"raised": [type, message]}`` as Raised; None for anything else."""
    if isinstance(v, dict) and set(v) == {"raised"}:
        kind, message = v["raised"] if isinstance(v["raised"], list) and len(v["raised"]) == 2 \
            else ("?", "?")
        return Raised(clean(kind), clean(message))
    return None


def _decode_facts(facts: dict) -> dict:
    """Facts of a module: plain strings, values through ``decode``, layers nested."""
    out = {}
    budget = [MAX_ITEMS]
    for key, value in list(facts.items())[:20]:
        if key == "layers" and isinstance(value, list):
            out[key] = [_decode_facts(layer) for layer in value[:300] if isinstance(layer, dict)]
        elif key in ("attrs", "params") and isinstance(value, dict):
            out[key] = {str(k)[:60]: decode(v, 1, budget) for k, v in list(value.items())[:40]}
        elif key == "convs":
            out[key] = decode(value, 0, budget)
        elif key in ("bases",) and isinstance(value, list):
            out[key] = [clean(b) for b in value[:40]]
        else:
            out[str(key)[:60]] = decode(value, 1, budget)
    return out


def clean(text) -> str:
    """Text from the learner's side, safe to print: capped, control characters replaced."""
    text = str(text)[:MAX_TEXT]
    return "".join(c if c.isprintable() else " " for c in text)


# --------------------------------------------------------------------------- the learner's side

def _type_name(x) -> str:
    t = type(x)
    return f"{getattr(t, '__module__', '?')}.{getattr(t, '__qualname__', '?')}" \
        .removeprefix("builtins.")[:MAX_TEXT]


def _bases(x) -> list[str]:
    """The qualified names of x's classes, its own first (isinstance, told as plain data)."""
    return [f"{c.__module__}.{c.__qualname__}"[:MAX_TEXT] for c in type(x).__mro__][:40]


def _short_repr(x) -> str:
    try:
        return repr(x)[:60]
    except Exception:
        return ""


def _as_array(x) -> np.ndarray | None:
    """x as a NumPy array if it is one, or a tensor or anything else with __array__; else None."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a PyTorch tensor (maybe needing grad)
        x = x.detach().cpu()
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return np.asarray(x)
    return None


PROCESS = "a new process"  # how a process started while the learner's function is checked is noted
PROCESS_EVENTS = ("os.fork", "os.forkpty", "os.system", "os.posix_spawn", "os.exec", "os.spawn",
                  "subprocess.Popen", "pty.spawn")
WATCH_EVENT = "fcconv.grader.watch"  # the audit event that hands the running watch to threads
# The convolution family (a forbid "@convolution"): PyTorch's, NumPy's and SciPy's convolution
# and correlation ops and the unfold/fold/im2col that build one, by the name they run under.
OPS = re.compile(r"_*(conv\d?d?|conv_?transpose\d?d?|conv_tbc|\w*convolution\w*|convolve\w*|"
                 r"correlate\w*|unfold|fold|im2col|col2im)$")
OP_OWNERS = ("torch", "numpy", "scipy")
OP_TREES = ("scipy.signal", "scipy.ndimage")  # every function of these, whatever its name


def resolve(name: str):
    """The function (or builtin, or module) a dotted name such as
    ``fcconv.formulas.conv_output_size`` names, unwrapped from its decorators; None if it cannot
    be imported here."""
    module, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except Exception:  # a module itself, not installed here (PyTorch), or renamed
        try:
            return importlib.import_module(name)
        except Exception:
            return None
    while hasattr(obj, "__wrapped__"):
        obj = obj.__wrapped__
    return obj


def library_root() -> str:
    """The folder the fcconv package is in, in this process (a kernel's is sent to it)."""
    import fcconv
    return os.path.dirname(os.path.dirname(os.path.abspath(fcconv.__file__)))


def where(forbids) -> list:
    """How the watch recognises what ``forbids`` names, as plain data, worked out on the judge's
    side from its own library: ["code", path, qualname or "*", shown] (a function by the file
    and name of its code, or every function of a module's file; ``path`` relative to the library
    root for fcconv, else absolute), ["tree", folder, shown] (every function under a folder),
    ["op", name, shown] (a builtin by name), ["ops"] (the convolution family, ``OPS``)."""
    out, root = [], library_root()
    for dotted in forbids:
        if dotted == "@convolution":
            out.append(["ops"])
            out += [e for tree in OP_TREES for e in where([tree + ".*"])]
            continue
        family = dotted.endswith(".*")
        obj = resolve(dotted.removesuffix(".*"))
        if obj is None:
            continue
        path = getattr(obj, "__file__", None) if family else \
            getattr(getattr(obj, "__code__", None), "co_filename", None)
        if path is None:
            if not family:
                out.append(["op", getattr(obj, "__name__", dotted.rpartition(".")[2]), dotted])
            continue
        path = os.path.abspath(path)
        if os.path.basename(path) == "__init__.py" and family:  # a package: all of its folder
            out.append(["tree", os.path.dirname(path) + os.sep, dotted.removesuffix(".*")])
            continue
        if path.startswith(root + os.sep):
            path = "lib:" + os.path.relpath(path, root)
        out.append(["code", path, "*" if family else obj.__code__.co_qualname,
                    dotted.removesuffix(".*")])
    return out


class _Watch:
    """Notes every call the learner's code makes to a function the statement forbids, however
    it was reached (an alias, a helper of theirs, a library function, a decorator, another
    thread), recognised by where its code is (its file and name), never by a name the learner's
    code can set; also a new process (the watch cannot see into it). Made only once the
    learner's cells have run, and tested before each check (``canary``)."""

    def __init__(self, places, lib: str, needs=()):
        self.seen: list[str] = []
        self.need = _Watch(needs, lib) if needs else None  # what the statement asks to be called
        self.files: dict[str, dict[str, str]] = {}
        self.trees, self.ops, self.op_dirs, self.closing = [], {}, (), False
        for entry in places:
            kind = entry[0]
            if kind == "code":
                path = str(entry[1])
                path = os.path.join(lib, path[4:]) if path.startswith("lib:") else path
                self.files.setdefault(path, {})[str(entry[2])] = str(entry[3])
            elif kind == "tree":
                self.trees.append((str(entry[1]), str(entry[2])))
            elif kind == "op":
                self.ops[str(entry[1])] = str(entry[2])
            elif kind == "ops":
                self.op_dirs = tuple(filter(None, map(_package_dir, OP_OWNERS)))
                self.ops[""] = ""  # (the builtins of the family are recognised by name)

    def note(self, name: str) -> None:
        if name not in self.seen:
            self.seen.append(name)

    def _profile(self, frame, event, arg):
        if self.need is not None:
            self.need._profile(frame, event, arg)
        if event == "call":
            code = frame.f_code
            where = code.co_filename
            names = self.files.get(where)
            if names is not None:
                found = names.get(code.co_qualname)
                if found is None and "*" in names:
                    found = f"{names['*']}.{code.co_qualname}"
                if found is not None:
                    self.note(found)
            for folder, shown in self.trees:
                if where.startswith(folder):
                    self.note(f"{shown} ({code.co_qualname})")
            if self.op_dirs and where.startswith(self.op_dirs) and OPS.match(code.co_name):
                self.note(f"{_owner(where)}.{code.co_name}")
        elif event == "c_call":
            name = getattr(arg, "__name__", None)
            if not isinstance(name, str):
                return
            if name in self.ops and name:
                self.note(self.ops[name])
            elif "" in self.ops and OPS.match(name):
                owner = getattr(arg, "__module__", None) or \
                    type(getattr(arg, "__self__", None)).__module__
                if str(owner).split(".")[0] in OP_OWNERS:
                    self.note(f"{owner}.{name}")
        elif event == "process":  # (from the audit hook)
            self.note(f"{PROCESS} ({arg})")
        elif event == "replaced" and not self.closing:  # another watch was handed to threads
            self.note(WATCH_OFF)

    def canary(self, nonce: str) -> bool:
        """Call a function made to look, to the watch, like one the statement forbids (the file
        and name of the first forbidden function), the way the learner's code would: True if
        the watch saw it. Then forget it."""
        for path, names in self.files.items():
            for qualname in names:
                name = "fcconv_canary" if qualname == "*" else qualname
                if name.isidentifier():
                    scope: dict = {}
                    start = len(self.seen)
                    exec(compile(f"def {name}(n):\n    return n\n", path, "exec"), scope)
                    seen = len(self.seen)
                    ok = scope[name](nonce) == nonce and len(self.seen) > seen
                    del self.seen[start:]
                    return ok
        return True  # (nothing of the library is forbidden: nothing to test with)

    def __enter__(self):
        self.old = sys.getprofile()
        self.old_threads = getattr(threading, "_profile_hook", None)
        sys.audit(WATCH_EVENT, self._profile)  # threads started before the check (see grade)
        threading.setprofile(self._profile)  # threads started during it
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc):
        if sys.getprofile() != self._profile and WATCH_OFF not in self.seen:
            self.note(WATCH_OFF)  # the learner's code replaced the watch: said, not hidden
        self.closing = True
        sys.setprofile(self.old)
        threading.setprofile(self.old_threads)
        sys.audit(WATCH_EVENT, None)


def _package_dir(module: str) -> str | None:
    """The folder of an installed package (found, not imported), with a trailing separator."""
    try:
        spec = importlib.util.find_spec(module)
        return os.path.abspath(spec.submodule_search_locations[0]) + os.sep
    except Exception:  # not installed here
        return None


def _owner(path: str) -> str:
    """The top package a file of ``OP_OWNERS`` belongs to."""
    return next((m for m in OP_OWNERS if f"{os.sep}{m}{os.sep}" in path), "?")


def serve(shell, nonces: dict) -> None:
    """In a grading kernel, once the learner's cells have run: answer the grader's check requests
    (message ``fcconv_check_request``: {"answer": name, "exercise": id, "request": ...}) with
    ``evaluate``'s reply as JSON text, its watch tested and the reply signed (HMAC-SHA256) with
    the exercise's nonce from ``nonces``, which no request carries: a reply that is not this
    handler's is told apart. The handler is the kernel's, not a name in the learner's
    namespace, and it did not exist while their code ran."""
    import hashlib
    import hmac
    kernel = shell.kernel

    def answer_check(stream, idents, msg):
        content = msg.get("content") or {}
        nonce = str(nonces.get(str(content.get("exercise")), ""))
        request = {**(content.get("request") or {}), "nonce": nonce}
        try:
            text = json.dumps(evaluate(shell.user_ns.get(str(content.get("answer"))), request))
            reply = {"status": "ok", "reply": text,
                     "mac": hmac.new(nonce.encode(), text.encode(), hashlib.sha256).hexdigest()}
        except BaseException as err:  # an interrupt (the check's time is up), or worse
            reply = {"status": "error", "ename": type(err).__name__, "evalue": str(err)[:MAX_TEXT]}
        kernel.session.send(stream, "fcconv_check_reply", reply, msg, idents)
    kernel.shell_handlers["fcconv_check_request"] = answer_check


def _facts(answer) -> dict:
    """What a module holds: type names, each layer's attributes and parameters."""
    facts = {"type": encode(_type_name(answer)), "bases": _bases(answer)}
    shape = getattr(answer, "shape", None)
    if shape is not None:
        facts["shape"] = encode(tuple(shape))
    if hasattr(answer, "named_modules"):
        layers = []
        for name, sub in list(answer.named_modules())[:300]:
            attrs = {a: encode(getattr(sub, a)) for a in _ATTRS if hasattr(sub, a)}
            params = {p: encode(t) for p, t in [*sub.named_parameters(recurse=False),
                                                 *sub.named_buffers(recurse=False)]}
            layers.append({"name": encode(name), "type": encode(_type_name(sub)),
                           "bases": _bases(sub),
                           "attrs": attrs, "params": params})
        facts["layers"] = layers
    return facts


_ATTRS = ("kernel_size", "stride", "padding", "dilation", "groups", "eps", "in_features",
          "out_features", "in_channels", "out_channels", "num_features")


def _probe(answer, inputs: list) -> dict:
    """Run a module on the check's inputs (arrays): its outputs and facts (for the hints only:
    nothing the module says about itself decides a verdict), with, for each input, the
    convolutions PyTorch computed on it (``convs``: measured here, not said by the module)."""
    import torch

    outputs, convs = [], []
    facts = _facts(answer)
    if isinstance(answer, torch.nn.Module):
        answer = answer.double().eval()
    with torch.no_grad():
        for x in inputs:
            convs.append([])
            try:
                with _Convolutions(convs[-1]):
                    out = answer(torch.from_numpy(x))
                outputs.append(encode(out))
            except Exception as err:
                outputs.append({"raised": [_type_name(err), str(err)[:MAX_TEXT]]})
    facts["convs"] = encode([[(tuple(i), tuple(w)) for i, w in c[:200]] for c in convs])
    return {"outputs": outputs, "facts": facts}


def _convolutions():
    """A PyTorch dispatch mode that notes every convolution computed while it is on (whatever
    called it: a Conv2d, F.conv2d, torch.convolution): (input shape, weight shape) each."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Convolutions(TorchDispatchMode):
        def __init__(self, seen: list):
            super().__init__()
            self.seen = seen

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if OPS.match(func.overloadpacket.__name__) and len(args) >= 2 and \
                    all(hasattr(a, "shape") for a in args[:2]):
                self.seen.append((args[0].shape, args[1].shape))
            return func(*args, **(kwargs or {}))
    return Convolutions


def _Convolutions(seen: list):  # noqa: N802 (a class, made once PyTorch is there)
    global _CONVOLUTIONS
    if _CONVOLUTIONS is None:
        _CONVOLUTIONS = _convolutions()
    return _CONVOLUTIONS(seen)


_CONVOLUTIONS = None


def evaluate(fn, request: dict) -> dict:
    """The learner's side of a check: call ``fn`` on each call's arguments (fresh copies, decoded
    here), and reduce each answer to plain data. ``request``: {"calls": [[args...]...],
    "probe": None or {"inputs": [[arrays] per call]} (the answer is a module), "forbids":
    [[module, qualname]...]}. The reply: {"stub": true} while the answer is a stub, else
    {"answers": [...], "forbidden": [names]}, each answer {"value": ...}, {"probed": ...} or
    {"raised": [...]}."""
    if fn is None or fn is Ellipsis:
        return {"stub": True}
    if not callable(fn):
        return {"answers": [], "forbidden": [], "not_callable": encode(fn)}
    answers = []
    calls = [[_arg(a) for a in args] for args in request["calls"]]  # the grader's work: not watched
    probe = request.get("probe")
    inputs = [[_from_npy(x) for x in xs] for xs in probe["inputs"]] if probe else None
    nonce = request.get("nonce")
    with _Watch(request.get("forbids", ()), request.get("lib") or library_root(),
                request.get("needs", ())) as watch:
        if nonce is not None and not watch.canary(str(nonce)):
            return {"answers": [], "forbidden": [], "canary": False}
        for i, args in enumerate(calls):
            try:
                answer = fn(*args)
                answers.append({"probed": _probe(answer, inputs[i])} if probe else
                               {"value": encode(answer)})
            except NotImplementedError as err:
                if _raised_by(err, fn):  # the stub itself: not attempted
                    return {"stub": True}
                answers.append({"raised": [_type_name(err), str(err)[:MAX_TEXT]]})
                break
            except (Exception, SystemExit) as err:  # the learner's code failed: say how
                answers.append({"raised": [_type_name(err), str(err)[:MAX_TEXT]]})
                break
    return {"answers": answers, "forbidden": watch.seen, "canary": nonce is not None,
            **({"needed": watch.need.seen} if watch.need is not None else {})}


def _raised_by(err: BaseException, fn) -> bool:
    """Was ``err`` raised by ``fn``'s own code (its innermost frame is the answer's), not by a
    library or a helper it called?"""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code is getattr(fn, "__code__", None)


def _arg(v):
    """One argument as the learner's function receives it: a fresh object of its own."""
    value = decode(v)
    return value.make() if isinstance(value, Module) else value


def request(calls, probe=None, forbids=(), nonce: str | None = None, needs=()) -> dict:
    """A check's request, as JSON-ready data: ``calls`` (tuples of arguments), ``probe`` (None,
    or the inputs to run each call's module on), ``forbids`` (what the statement forbids: dotted
    names, "module.*", "@convolution"; sent as ``where`` says), ``nonce`` (the grader's: the
    watch is tested and the reply signed with it), ``needs`` (what the statement asks the answer
    to call, one of them at least: the reply says which it saw)."""
    return {"calls": [[encode(a) for a in call] for call in calls],
            "probe": None if probe is None else {
                "inputs": [[_npy(np.asarray(x)) for x in xs] for xs in probe]},
            "forbids": where(forbids), "nonce": nonce, "needs": where(needs)}


def round_trip(reply: dict) -> dict:
    """The reply as the other side reads it: through JSON text, as across the boundary."""
    return json.loads(json.dumps(reply))
