"""The course around the ideas: what notebooks, the grader and the tests use at run time.

``checks`` (the exercises' checks, one module per notebook), ``grade`` (``python -m fcconv grade``)
and ``sandbox`` (the isolated kernel it runs each notebook in), ``setup_check``
(notebook 00), ``results`` (reads benchmarks/RESULTS.md), ``folders`` (where the course folder and
the cache are), and the detectors trained for the course: ``detect`` (digits), ``faces``, with
their weights in ``trained/`` (``weights``). Nothing here is imported by ``import fcconv``.
"""
