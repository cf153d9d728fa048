"""Capture: run the user's code and record what autograd did.

Everything that touches torch while the script runs lives here: the recorder (a dispatch mode
that attaches each op's value, module and line to its autograd node, the `nn.Module` stack, and
the `Watch` that diagnostics read), the backward interception and the graph walk, tensor
summaries, variable naming, and running a script as `python FILE` would. What comes out is the
torch-free `graphviz_grad.model.Graph`. Nothing here imports diagnose, views, render, teach or
the CLI.

Example:
    >>> with record() as rec:
    ...     loss = (2.0 * w - 4.0) ** 2
    ...     loss.backward()
    >>> rec.graph(-1).nodes[-1].grad.data
    -8.0
"""

from __future__ import annotations

from ._forward import USER_FRAMES, op_record
from ._snapshot import gradient_edge, saved_attrs
from .calls import CallSpec, capture_calls, no_graph, parse_call_spec, run_recorded
from .fsdp import gathered
from .naming import unregistered, unwrap
from .recorder import Recorder, record, trace
from .runner import (
    ScriptRun,
    in_big_stack,
    live_status,
    load_cells,
    load_source,
    run_script,
    user_traceback,
)
from .script import Captured, CaptureOptions, capture_script, pick_graph
from .summary import DATA_LIMIT, dtype_name, summarize
from .watch import CallEvents, Cut, InplaceWrite, Watch, owner_name

__all__ = [
    "DATA_LIMIT",
    "USER_FRAMES",
    "CallEvents",
    "CallSpec",
    "CaptureOptions",
    "Captured",
    "Cut",
    "InplaceWrite",
    "Recorder",
    "ScriptRun",
    "Watch",
    "capture_calls",
    "capture_script",
    "dtype_name",
    "gathered",
    "gradient_edge",
    "in_big_stack",
    "live_status",
    "load_cells",
    "load_source",
    "no_graph",
    "op_record",
    "owner_name",
    "parse_call_spec",
    "pick_graph",
    "record",
    "run_recorded",
    "run_script",
    "saved_attrs",
    "summarize",
    "trace",
    "unregistered",
    "unwrap",
    "user_traceback",
]
