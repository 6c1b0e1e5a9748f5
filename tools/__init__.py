"""Build steps only the Makefile runs (``python -m tools.NAME``), kept out of the fcconv package:
``exercises`` (exercises/ from solutions/), ``handouts`` (static HTML), ``nbtools`` (strip outputs).
"""
