"""gradviz: see how PyTorch computes gradients.

Run a script or a block of code, take the autograd graph from the loss, and show every node with
its forward value and the gradient that flowed through it.

Example:
    >>> import torch, graphviz_grad as gg
    >>> w = torch.tensor(1.0, requires_grad=True)
    >>> graph = gg.trace((2.0 * w - 4.0) ** 2)
    >>> gg.write(graph, "loss.svg")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CallInfo",
    "DrawOptions",
    "Edge",
    "Finding",
    "Graph",
    "GradvizError",
    "Node",
    "Recorder",
    "TensorSummary",
    "__version__",
    "record",
    "trace",
    "write",
]

from .errors import GradvizError
from .model import CallInfo, Edge, Finding, Graph, Node, TensorSummary

if TYPE_CHECKING:
    from .capture import Recorder, record, trace
    from .render import DrawOptions, write


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext graphviz_grad`: registers the `%gradviz` / `%%gradviz` magic (see `magic`).

    IPython's extension hook, so not in `__all__`."""
    from .magic import register

    register(ipython)


def __getattr__(name: str) -> Any:
    # torch is imported only when capture is first used, so `import graphviz_grad` stays cheap.
    if name in ("Recorder", "record", "trace"):
        from . import capture

        return getattr(capture, name)
    if name in ("write", "DrawOptions"):
        from . import render

        return getattr(render, name)
    raise AttributeError(f"module 'graphviz_grad' has no attribute {name!r}")
