"""Teaching mode: the backward pass explained step by step, training runs as tables, one-liners.

`explain` walks one graph node by node with the chain rule; `steps` turns every backward call of
a run into one row; `expr` builds a graph from a one-line expression; `calls` picks several
backward calls (`--call all`, `--call 1:6`).
"""

from __future__ import annotations
