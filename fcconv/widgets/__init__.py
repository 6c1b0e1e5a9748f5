"""One ipywidgets explorer per notebook topic. Each keeps its computation in plain functions
(state in, numbers or figure out) that tests call without a browser; the widget only wires
controls to them."""
