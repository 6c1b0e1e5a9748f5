"""Which forbidden functions a learner's answer names in its source: the grader's source scan,
beside the call watch in the kernel (``wire``). Names are resolved as Python resolves them when
the check runs: the answer's definition and every top-level definition it uses are followed, a
name local to a function is the learner's own, a global is its last binding in the notebook (an
import, a def, an assignment), and an attribute chain counts only when it leads, in this
process's library, to the very function the statement forbids. So ``linear = ...`` in a
function, ``def conv_output_size(...)`` of the learner's, or ``my_iou = iou`` after their own
``def iou`` are theirs; ``cos(...)`` after ``from fcconv.formulas import conv_output_size as cos``
is not. Magics whose argument is Python (``%time``, ``%%timeit``, ...) are read as Python.
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import sys
import tokenize

from .checks import wire

try:  # how IPython reads a cell before Python parses it
    from IPython.core.inputtransformer2 import TransformerManager
except ImportError:  # (no IPython: such cells are reported as unread)
    TransformerManager = None

CODE_MAGICS = {"time", "timeit", "prun", "capture"}  # the magics whose argument is Python code
WATCH_OFF = ("sys.setprofile", "threading.setprofile", "sys.settrace", "threading.settrace")
_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
# What the scan parses, at most (ast.parse takes about 1.5 kB a token, and the trees are kept):
CELL_BYTES, CELL_TOKENS = 256 * 1024, 20_000  # one cell
NOTEBOOK_TOKENS = 100_000  # all of a notebook's cells together
UNSCANNED = "(a cell the source scan could not read)"  # found when the answer may depend on one


class Unscanned(ast.stmt):
    """A cell the scan did not parse (too large, or not Python even as IPython reads it): it
    binds every identifier it holds, as far as the scan can tell."""

    _fields = ()

    def __init__(self, names: set[str]):
        super().__init__()
        self.names = names


def read_cells(sources: list[str], numbers=None) -> tuple[list[ast.stmt], list[str]]:
    """Every statement of the cells ``sources`` (see ``_statements``) and, for each cell that
    could not be read, a line for the report. A cell over ``CELL_BYTES`` or ``CELL_TOKENS``, or
    past ``NOTEBOOK_TOKENS`` in all, is never parsed (the grader's memory stays bounded); a cell
    Python cannot parse is read as IPython runs it (``TransformerManager``); one that still
    fails is kept as ``Unscanned``, never dropped."""
    out, problems, left = [], [], NOTEBOOK_TOKENS
    for number, source in zip(numbers or range(1, len(sources) + 1), sources):
        why, tokens = _too_big(source, min(CELL_TOKENS, left))
        tree, big = None, why is not None
        if not big:
            left -= tokens
            tree = _parse(source)
            why = None if tree is not None else "not Python, even as IPython reads it"
        if tree is None:
            problems.append(f"cell {number} was not read by the source scan ({why}): a "
                            "forbidden function named there is not seen, and an answer that uses "
                            "a name it may bind is not checked")
            out.append(Unscanned(_names(source, everything=big)))
        else:
            _walk_top(tree.body, out)
    return out, problems


BINDS = re.compile(r"(?:\b(?:def|class|as|import|for|global)\s+([A-Za-z_]\w*))|"
                   r"(?:([A-Za-z_]\w*)\s*(?::=|=(?!=)))")


def _names(source: str, everything: bool) -> set[str]:
    """The names a cell the scan did not parse may bind: every identifier in it (a cell too large
    to parse, which the kernel still runs), or those it seems to bind (a cell that is not Python
    even as IPython reads it runs only if the notebook taught IPython its syntax)."""
    if everything:
        return set(re.findall(r"[A-Za-z_]\w*", source))
    return {name for pair in BINDS.findall(source) for name in pair if name}


def _too_big(source: str, tokens_left: int) -> tuple[str | None, int]:
    """Why a cell is not parsed (None: it may be) and its tokens, counted without parsing."""
    if len(source) > CELL_BYTES:
        return f"{len(source) // 1024} kB, over the scan's {CELL_BYTES // 1024} kB", 0
    count = 0
    try:
        for _ in tokenize.generate_tokens(io.StringIO(source).readline):
            count += 1
            if count > tokens_left:
                return f"over the scan's {tokens_left:,} tokens left", count
    except (tokenize.TokenError, SyntaxError, ValueError):  # IPython syntax: counted so far
        pass
    return None, count


def _parse(source: str) -> ast.Module | None:
    """The cell as Python (``python_of``), else as IPython would run it (its transformers turn
    ``name?``, ``!cmd`` and the rest into calls), else None."""
    kept = python_of(source)
    for text in (kept, _ipython(kept), _ipython(source)):
        try:
            return ast.parse(text) if text is not None else None
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            pass
    return None


def _ipython(source: str) -> str | None:
    if TransformerManager is None:
        return None
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # a cell IPython cannot read either
        return None


def forbidden_in_source(sources: list[str], answer: str, forbids) -> list[str]:
    """The forbidden functions (dotted names) that the answer named ``answer`` reaches in the
    source of the notebook's cells ``sources``; also the functions that turn the call watch off
    (``WATCH_OFF``), under the name the watch reports."""
    targets, families = {}, []
    for name in (*_named(forbids), *WATCH_OFF):
        family = name.endswith(".*")
        obj = wire.resolve(name.removesuffix(".*"))
        if obj is not None:
            shown = wire.WATCH_OFF if name in WATCH_OFF else \
                f"anything in {name.removesuffix('.*')}" if family else name
            targets.setdefault(id(obj), (shown, obj))
            if family:  # the module, and whatever it (a package: its folder) defines
                families.append(name.removesuffix(".*"))
    if not targets:
        return []
    statements = sources if sources and isinstance(sources[0], ast.AST) else read_cells(sources)[0]
    scan = _Scan(statements, targets, families, "@convolution" in forbids, "@matmul" in forbids)
    found = scan.answer(answer)
    return sorted(found, key=lambda name: name.startswith("anything in "))  # functions first


# What the scan looks for, for the convolution family (the watch knows it by name, ``wire.OPS``).
CONVOLUTIONS = ("numpy.convolve", "numpy.correlate", *(f"{m}.{op}" for m in (
    "torch", "torch.nn.functional") for op in ("conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                               "conv_transpose2d", "conv_transpose3d")),
                "torch.convolution", "torch.nn.functional.unfold", "torch.nn.functional.fold",
                "torch.nn.Conv1d", "torch.nn.Conv2d", "torch.nn.Conv3d", "torch.nn.Unfold",
                *(f"{tree}.*" for tree in wire.OP_TREES))


# A matrix product by name ("@matmul"); the ``@`` operator and a ``.dot``/``.matmul`` call in the
# answer's own functions are found besides (``MATMUL``).
PRODUCTS = (*(f"numpy.{f}" for f in ("matmul", "dot", "einsum", "tensordot", "inner", "vdot")),
            "numpy.linalg.multi_dot", "torch.nn.functional.linear", "torch.nn.Linear",
            *(f"torch.{f}" for f in ("matmul", "mm", "bmm", "einsum", "tensordot", "inner", "addmm")))
MATMUL = "a matrix product (the @ operator, .dot or .matmul)"


def _named(forbids) -> list[str]:
    """The forbids, the convolution and matrix-product families spelled out as names."""
    out = []
    for name in forbids:
        out += CONVOLUTIONS if name == "@convolution" else PRODUCTS if name == "@matmul" else [name]
    return out


def python_of(source: str) -> str:
    """A cell as Python: the argument of a code magic (``%time x = f()``, a ``%%timeit`` cell) is
    kept as code; any other magic or shell line is dropped."""
    lines, cell_magic = [], None
    for i, line in enumerate(source.splitlines()):
        match = re.match(r"^(\s*)(%%?)(\w+)((?:\s+-\w+(?:\s+\d+)?)*)\s?(.*)$", line)
        if i == 0 and match and match.group(2) == "%%":
            cell_magic = match.group(3)
            lines.append(match.group(1) + (match.group(5) if cell_magic in CODE_MAGICS else ""))
        elif cell_magic is not None and cell_magic not in CODE_MAGICS:
            lines.append("")
        elif match and match.group(2) == "%":
            lines.append(match.group(1) + (match.group(5) if match.group(3) in CODE_MAGICS else "pass"))
        elif line.lstrip().startswith("!"):
            lines.append(line[:len(line) - len(line.lstrip())] + "pass")
        else:
            lines.append(line)
    return "\n".join(lines)


def _walk_top(body: list, out: list) -> None:
    """Every statement run at a cell's top level, in order (into if/for/with/try bodies)."""
    for node in body:
        out.append(node)
        if isinstance(node, _COMPOUND):
            for field in ("body", "orelse", "finalbody"):
                _walk_top(getattr(node, field, []), out)
            for handler in getattr(node, "handlers", []):
                _walk_top(handler.body, out)


def _bound(node: ast.AST) -> list[str]:
    """The names a statement binds in the scope it runs in (not inside nested functions)."""
    if isinstance(node, Unscanned):
        return sorted(node.names)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"]
    out = []
    for sub in _own_nodes(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            out.append(sub.id)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            out.append(sub.name)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not node:
            out.append(sub.name)  # (a lambda binds nothing)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)) and sub is not node:
            out += _bound(sub)
    return out


def _own_nodes(node: ast.AST):
    """The nodes of ``node`` that run in its own scope: a nested function or class is yielded,
    but not what is inside it."""
    todo = [node]
    while todo:
        n = todo.pop()
        yield n
        if n is node or not isinstance(n, (*_FUNCTIONS, ast.ClassDef)):
            todo += list(ast.iter_child_nodes(n))


def _heads(node: ast.AST) -> list[ast.AST]:
    """What a def, lambda or class evaluates where it stands: decorators, defaults, bases."""
    out = [*getattr(node, "decorator_list", []), *getattr(node, "bases", []),
           *getattr(node, "keywords", [])]
    args = getattr(node, "args", None)
    if args is not None:
        out += [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    return out


def _body(node: ast.AST) -> list[ast.AST]:
    return node.body if isinstance(node.body, list) else [node.body]


def _locals(fn: ast.AST) -> set[str]:
    """The names local to a function (its parameters and every name it binds), less those it
    declares global."""
    args = fn.args
    names = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                             *filter(None, (args.vararg, args.kwarg))]}
    declared = set()
    for stmt in _body(fn):
        for sub in _own_nodes(stmt):
            if isinstance(sub, (ast.Global, ast.Nonlocal)):
                declared.update(sub.names)
        names.update(_bound(stmt))
        for sub in _own_nodes(stmt):  # comprehension targets: their own scope, never a global
            if isinstance(sub, ast.comprehension):
                names.update(n.id for n in ast.walk(sub.target) if isinstance(n, ast.Name))
    return names - declared


def _product(node: ast.AST) -> bool:
    """A matrix product written in the code itself: ``a @ b``, ``a @= b``, ``a.dot(b)``..."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.MatMult):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
        node.func.attr in ("dot", "matmul", "mm", "__matmul__", "__rmatmul__")


class _Scan:
    """Follows the answer through the notebook's top-level statements (see the module's doc)."""

    def __init__(self, statements: list[ast.stmt], targets: dict, families=(), ops=False,
                 matmul=False):
        self.targets, self.found, self.done = targets, [], set()
        self.families, self.ops, self.matmul = tuple(families), ops, matmul
        self.bindings: dict[str, list[tuple[int, ast.stmt]]] = {}
        for index, node in enumerate(statements):
            for name in _bound(node):
                self.bindings.setdefault(name, []).append((index, node))
        self.index = {id(node): i for i, node in enumerate(statements)}

    def answer(self, name: str) -> list[str]:
        self._global(name, when=None)
        return self.found

    def _global(self, name: str, when: int | None) -> None:
        """Follow a global name to its last binding before statement ``when`` (None: the end,
        when the check runs)."""
        found = [(i, n) for i, n in self.bindings.get(name, []) if when is None or i < when]
        if not found:
            return
        index, node = found[-1]
        if isinstance(node, Unscanned):
            if UNSCANNED not in self.found:
                self.found.append(UNSCANNED)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self._dotted(self._imported(node, name))
        else:
            self._statement(node, index)

    @staticmethod
    def _imported(node, name: str) -> str | None:
        """The dotted path an import binds ``name`` to."""
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            if bound != name:
                continue
            if isinstance(node, ast.Import):
                return alias.name if alias.asname else alias.name.split(".")[0]
            if node.level == 0 and node.module:
                return f"{node.module}.{alias.name}"
        return None

    def _statement(self, node: ast.stmt, index: int) -> None:
        if ("stmt", id(node)) in self.done:
            return
        self.done.add(("stmt", id(node)))
        self._walk(node, frozenset(), index)

    def _walk(self, node: ast.AST, local: frozenset, when: int | None) -> None:
        """Every name and attribute chain ``node`` uses; ``local``: names of the enclosing
        functions; ``when``: the statement it runs at (None: at check time, in a function)."""
        if isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
            for head in _heads(node):
                self._walk(head, local, when)
            function = isinstance(node, _FUNCTIONS)
            inner = frozenset(local | _locals(node)) if function else local
            for stmt in _body(node):
                self._walk(stmt, inner, None if function else when)
            return
        for sub in _own_nodes(node):
            if self.matmul and when is None and MATMUL not in self.found and _product(sub):
                self.found.append(MATMUL)
            if sub is not node and isinstance(sub, (*_FUNCTIONS, ast.ClassDef)):
                self._walk(sub, local, when)
            elif isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Load):
                chain = self._chain(sub)
                if chain and chain[0] not in local:
                    self._chained(chain, when)
            elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and \
                    sub.func.id == "getattr" and len(sub.args) >= 2 and \
                    isinstance(sub.args[1], ast.Constant) and isinstance(sub.args[1].value, str):
                chain = self._chain(sub.args[0])
                if chain and chain[0] not in local:
                    self._chained([*chain, sub.args[1].value], when)
            elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id not in local:
                self._global(sub.id, when)

    @staticmethod
    def _chain(node: ast.AST) -> list[str] | None:
        """``a.b.c`` as ["a", "b", "c"]; None for anything but names and attributes."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None

    def _chained(self, chain: list[str], when: int | None) -> None:
        """An attribute chain on a global: through an import, the dotted path it names."""
        found = [(i, n) for i, n in self.bindings.get(chain[0], []) if when is None or i < when]
        if found and isinstance(found[-1][1], (ast.Import, ast.ImportFrom)):
            base = self._imported(found[-1][1], chain[0])
            if base:
                self._dotted(".".join([base, *chain[1:]]))

    def _dotted(self, dotted: str | None) -> None:
        """Does the dotted path (or a prefix of it) name a target, in this process's library?"""
        if not dotted or ("dotted", dotted) in self.done:
            return
        self.done.add(("dotted", dotted))
        parts = dotted.split(".")
        if parts[0] not in sys.modules and parts[0] != "fcconv":  # never import a learner's name
            return
        obj = None
        for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                break
            except Exception:
                continue
        if obj is not None and i == len(parts):  # the module itself, not one of its names
            self._hit(obj, obj)
        for attr in parts[i:] if obj is not None else ():
            try:
                obj = getattr(obj, attr)
            except Exception:
                return
            unwrapped = obj
            while hasattr(unwrapped, "__wrapped__"):
                unwrapped = unwrapped.__wrapped__
            self._hit(obj, unwrapped)

    def _hit(self, obj, unwrapped) -> None:
        """Is ``obj`` a target, a function of a forbidden family, or a convolution op?"""
        hit = self.targets.get(id(unwrapped)) or self.targets.get(id(obj))
        shown = hit[0] if hit else None
        home = getattr(unwrapped, "__module__", None)
        if shown is None and isinstance(home, str) and callable(unwrapped):
            shown = next((f"{f}.{getattr(unwrapped, '__name__', '?')}" for f in self.families
                          if home == f or home.startswith(f + ".")), None)
            name = getattr(unwrapped, "__name__", "")
            if shown is None and self.ops and isinstance(name, str) and wire.OPS.match(name) and \
                    home.split(".")[0] in wire.OP_OWNERS:
                shown = f"{home}.{name}"
        if shown and shown not in self.found:
            self.found.append(shown)
