"""The course around the ideas: what notebooks, the grader and the tests use at run time.

``checks`` (the exercises' checks, one module per notebook), ``grade`` (``python -m fcconv grade``)
and ``sandbox`` (the isolated kernel it runs each notebook in), ``setup_check``
(notebook 00), ``results`` (reads benchmarks/RESULTS.md), ``folders`` (where the course folder and
the cache are), and the detectors: ``detect`` (digits) and ``faces``, trained for the course
(``retrain``), with their weights in ``trained/``, and ``mtcnn``, whose trained nets ``fetch``
puts in the cache at set-up; ``weights`` loads both kinds, checked. Nothing here is imported by
``import fcconv``.
"""
