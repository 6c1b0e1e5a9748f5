"""The exercises' checks: run the learner's answer on fresh random cases and say, in plain words,
whether it is right, and if not the likely mistake. Never a traceback from here.

One module per exercise notebook: the check of exercise NN.k is in ``nNN.py`` (02.3: ``n02.py``),
declared once, with its exercise id::

    @check("02.1", forbids=("fcconv.formulas.conv_output_size",))
    def output_size(rng):
        \"\"\"fn(W, F, S, P) -> the number of outputs, as PyTorch computes it (floor).\"\"\"
        cases = [...]                                  # fixed cases, then random ones from rng
        return compare(cases, conv_output_size, hint, mistakes=[(wrong_formula, "its hint"), ...])

A check cell calls it on the learner's function::

    verdict = checks.output_size(my_output_size)
    assert verdict, verdict
    print(verdict)

so a wrong answer fails as an assertion whose message is the hint (what nbgrader reports), and a
right one prints "02.1 correct — well done." (printed, not the cell's value: nbgrader would read a
value as partial credit).

How a check is built (``core``): the declared function takes a random generator and returns a
``Plan``: the calls to make (their arguments are all the learner's side ever sees), how to read
each answer (``integer``, ``ints(n)``, ``array``, ``number``, ``probed`` for a module or a
matrix), and how to judge them. ``compare`` makes the plan of most checks: the expected value,
the known mistakes, each with its hint (an answer that is that mistake on every case gets that
hint), and the hint for anything else. Every check mixes fixed cases, chosen so that each named
mistake differs from the right answer, with random ones (a table of answers copied from here
scores nothing). A check that reads a number accepts any numeric type with the value asked (9,
9.0, np.int64(9), Fraction(9, 1)); arrays in float32 are judged with float32's tolerance; a
module or a matrix is judged by what it computes on the check's inputs, not by its class.

``wire`` is the boundary: what crosses between the learner's side and the judge's, as plain data.
A check cell runs both sides here; ``python -m fcconv grade`` (``fcconv.course.grade``) runs the
learner's side in the learner's kernel and plans and judges in its own process: that is the
trusted path (see docs/instructor.md).

To add an exercise (say 09.1 in a new notebook 09):

1. Declare its check in ``n09.py`` (create it: any module named ``nNN.py`` here is loaded) with
   ``@check("09.1")``; ``forbids=`` the library functions the statement says not to call,
   ``needs_torch=True`` if it needs PyTorch (import those modules with ``optional``).
2. Add its statement, answer cell (the answer between ``### BEGIN SOLUTION`` and ``### END
   SOLUTION``) and check cell (``verdict = checks.NAME(my_answer)`` as above) to
   ``solutions/09_*.ipynb``, with ``{"fcconv": {"exercise": "09.1", "role": "answer"}}`` (and
   ``"check"``) in the cells' metadata.
3. ``python -m tools.exercises --mark`` (nbgrader's metadata) and ``python -m tools.exercises``
   (writes exercises/).
4. In tests/test_exercises.py, give it a plausible wrong answer (with the hint it must get) and a
   right answer written another way; name ``n09.py`` in the README's Layout.

The checks of the NumPy exercises (notebooks 01 and 07, and those of 02, 05, 06 that need no
PyTorch) work where PyTorch is not installed; the others say plainly that they need it.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from .core import CHECKS, Check, Verdict

NOTEBOOKS = sorted(m.name for m in pkgutil.iter_modules(__path__) if re.fullmatch(r"n\d\d", m.name))

for _name in NOTEBOOKS:
    importlib.import_module(f".{_name}", __name__)
for _check in CHECKS.values():  # checks.output_size, as check cells call them
    if _check.__name__ in globals():
        raise ValueError(f"two checks are named {_check.__name__}")
    globals()[_check.__name__] = _check
del _name, _check

__all__ = ["CHECKS", "Check", "Verdict", *(c.__name__ for c in CHECKS.values())]
