"""Views: module collapse, folding, focus, hide and the layout budget, on recorded models.

Values shown by a collapsed module are checked against PyTorch: the module's output tensor and
`torch.autograd.grad` of the loss with respect to it and to its parameters.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest
import torch
from torch import nn

import graphviz_grad as gg
from graphviz_grad.errors import RootError
from graphviz_grad.model import Graph
from graphviz_grad.render import render_bytes, to_dot
from graphviz_grad.render.clusters import dot_name
from graphviz_grad.views import (
    ViewOptions,
    find_node,
    fit_budget,
    make_view,
    whole,
    with_inputs,
    wrap,
)

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


class Block(nn.Module):
    """Linear + tanh with a residual: the repeated unit."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.lin = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tanh(self.lin(x))


class Net(nn.Module):
    def __init__(self, width: int = 3, depth: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(2, width)
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h)
        return self.out(h)


def record_net() -> tuple[Graph, Net, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(4, 2)
    seen: dict[str, torch.Tensor] = {}
    net.blocks[1].register_forward_hook(lambda m, a, out: seen.update(block1=out))
    with gg.record(namespaces=[{"net": net}]) as rec:
        loss = net(x).pow(2).mean()
        seen["loss"] = loss
        (g_block,) = torch.autograd.grad(loss, seen["block1"], retain_graph=True)
        seen["grad_block1"] = g_block
        loss.backward()
    return rec.graph(-1), net, seen


@pytest.fixture(scope="module")
def net_graph() -> tuple[Graph, Net, dict[str, torch.Tensor]]:
    return record_net()


def chain(n: int) -> Graph:
    x = torch.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(n // 2):
        y = y * 1.0001 + 0.1
    return gg.trace(y)


def test_whole_view_draws_every_node_and_edge(net_graph: tuple[Graph, Net, dict]) -> None:
    graph = net_graph[0]
    view = whole(graph)
    assert view.size == len(graph.nodes)
    assert [e.edge for e in view.edges] == list(graph.edges)


def test_nodes_carry_module_scopes(net_graph: tuple[Graph, Net, dict]) -> None:
    graph = net_graph[0]
    tanh = [n for n in graph.nodes if n.op == "TanhBackward0"]
    assert len(tanh) == 3
    paths = sorted(n.scopes[1][0] for n in tanh)
    assert paths == ["net.blocks.0", "net.blocks.1", "net.blocks.2"]
    assert all(n.scopes[0][:2] == ("net", "Net") and n.scopes[1][1] == "Block" for n in tanh)


def test_depth_collapses_modules_and_keeps_their_numbers(
    net_graph: tuple[Graph, Net, dict],
) -> None:
    graph, net, seen = net_graph
    view = make_view(graph, ViewOptions(depth=1))
    titles = [g.title for g in view.groups]
    assert sorted(titles) == sorted(
        ["net.inp", "net.blocks.0", "net.blocks.1", "net.blocks.2", "net.out"]
    )
    block = next(g for g in view.groups if g.title == "net.blocks.1")
    out = graph.nodes[block.output]
    assert out.value is not None and out.grad is not None
    assert torch.allclose(torch.tensor(out.value.data), seen["block1"].detach())
    assert torch.allclose(torch.tensor(out.grad.data), seen["grad_block1"])
    assert block.module_type == "Block"
    assert block.ops == sum(
        1 for n in graph.nodes if n.scopes[1:2] and n.scopes[1][0] == block.title
    )
    names = {graph.nodes[i].names[0] for i in block.params}
    assert names == {"net.blocks.1.lin.weight", "net.blocks.1.lin.bias"}
    for i in block.params:
        leaf = graph.nodes[i]
        param = dict(net.named_parameters())[leaf.names[0].removeprefix("net.")]
        assert leaf.grad is not None and leaf.grad.norm == pytest.approx(float(param.grad.norm()))


def test_depth_zero_is_one_node_per_top_level_module(net_graph: tuple[Graph, Net, dict]) -> None:
    graph = net_graph[0]
    view = make_view(graph, ViewOptions(depth=0))
    assert [g.title for g in view.groups] == ["net"]
    # the parameters are used only inside `net`: drawn inside its node, not beside it
    assert all(graph.nodes[i].kind == "op" and not graph.nodes[i].scopes for i in view.shown)


@pytest.mark.parametrize("widths", [(8, 16, 4, 1), (8, 8, 8, 8)])
def test_fold_keeps_the_layers_of_a_plain_sequential(widths: tuple[int, ...]) -> None:
    """`Sequential(Linear, ReLU, Linear, ReLU, Linear)`: the Linears are not identical blocks
    when their shapes differ, and even when they match a ReLU sits between each two, so a fold
    would draw the stack as a loop (`model.0 … model.4 ×3`, edges back and forth)."""
    a, b, c, d = widths
    model = nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c), nn.ReLU(), nn.Linear(c, d))
    with gg.record(namespaces=[{"model": model}]) as rec:
        model(torch.randn(5, a)).pow(2).mean().backward()
    view = make_view(rec.graph(-1), ViewOptions(fold=True))
    assert [g for g in view.groups if g.kind == "fold"] == []


def test_fold_draws_identical_blocks_once(net_graph: tuple[Graph, Net, dict]) -> None:
    graph = net_graph[0]
    view = make_view(graph, ViewOptions(fold=True))
    folds = [g for g in view.groups if g.kind == "fold"]
    assert len(folds) == 1
    fold = folds[0]
    assert fold.repeat == 3
    assert fold.title == "net.blocks.0 … net.blocks.2"
    block_ops = sum(1 for n in graph.nodes if len(n.scopes) > 1 and n.scopes[1][1] == "Block")
    assert fold.ops == block_ops
    # the fold's output is the last block's output, the one nearest the root
    assert graph.nodes[fold.output].scopes[1][0] == "net.blocks.2"
    # and the picture says so: the numbers beside the title belong to different blocks
    assert (fold.output_of, fold.params_of) == ("net.blocks.2", "net.blocks.0")
    assert {graph.nodes[i].names[0] for i in fold.params} == {
        "net.blocks.0.lin.weight",
        "net.blocks.0.lin.bias",
    }


def test_rnn_steps_are_separate_calls_and_fold_into_one() -> None:
    torch.manual_seed(0)
    cell = nn.LSTMCell(2, 3)
    with gg.record(namespaces=[{"cell": cell}]) as rec:
        h, c = torch.zeros(1, 3), torch.zeros(1, 3)
        for _ in range(5):
            h, c = cell(torch.randn(1, 2), (h, c))
        h.sum().backward()
    graph = rec.graph(-1)
    per_call = make_view(graph, ViewOptions(depth=0))
    assert len(per_call.groups) == 5
    assert [g.title for g in per_call.groups] == [f"cell [call {j}]" for j in range(5, 0, -1)]
    # the weights are shared by every step: drawn once, beside the groups
    leaves = [graph.nodes[i] for i in per_call.shown if graph.nodes[i].kind == "leaf"]
    assert sorted(n.names[0] for n in leaves) == sorted(
        f"cell.{p}" for p, _ in cell.named_parameters()
    )
    folded = make_view(graph, ViewOptions(fold=True))
    assert [(g.title, g.repeat) for g in folded.groups] == [("cell", 5)]
    assert folded.groups[0].output_of == "call 5 of 5"
    assert folded.groups[0].params_of == "all 5 calls (shared)"
    assert all(graph.nodes[i].kind == "op" for i in folded.shown)  # weights inside the fold


def test_focus_keeps_the_neighbourhood() -> None:
    graph = chain(40)
    view = make_view(graph, ViewOptions(focus="#10", radius=3))
    assert view.shown == tuple(range(7, 14))
    assert len(view.edges) == 6
    assert "focus on #10" in view.notes[0]


@pytest.mark.parametrize("key", ["nope", "#999", "999"])
def test_focus_on_a_missing_node_says_so(key: str) -> None:
    with pytest.raises(RootError) as info:
        find_node(chain(10), key)
    assert info.value.hint


def test_focus_by_name_and_op(net_graph: tuple[Graph, Net, dict]) -> None:
    graph = net_graph[0]
    assert find_node(graph, "net.out.bias").kind == "leaf"
    assert find_node(graph, "TanhBackward0").op == "TanhBackward0"


def test_hide_views_bridges_over_reshapes() -> None:
    w = torch.randn(2, 3, requires_grad=True)
    graph = gg.trace((w.reshape(3, 2).t().exp()).sum())
    ops = [n.op for n in graph.nodes]
    assert "TBackward0" in ops
    view = make_view(graph, ViewOptions(hide=("views",)))
    drawn = [graph.nodes[i].op for i in view.shown]
    assert "TBackward0" not in drawn and not any(str(o).startswith("View") for o in drawn)
    exp = next(n.id for n in graph.nodes if n.op == "ExpBackward0")
    leaf = next(n.id for n in graph.nodes if n.kind == "leaf")
    assert (leaf, exp) in {(e.src, e.dst) for e in view.edges}


def test_hide_accumulate_drops_leaves(net_graph: tuple[Graph, Net, dict]) -> None:
    graph = net_graph[0]
    view = make_view(graph, ViewOptions(hide=("accumulate",)))
    assert all(graph.nodes[i].kind == "op" for i in view.shown)
    assert all(e.src in view.shown and e.dst in view.shown for e in view.edges)


def test_budget_elides_the_far_end_of_a_chain() -> None:
    graph = chain(3000)
    view = fit_budget(graph, budget=100)
    assert view.size == 100
    assert view.shown == tuple(range(99))  # the root and its nearest inputs
    (elided,) = view.groups
    assert elided.kind == "elided" and len(elided.members) == len(graph.nodes) - 99
    assert "--full" in view.notes[-1] and "elided" in view.notes[-1]


def test_budget_folds_before_collapsing(net_graph: tuple[Graph, Net, dict]) -> None:
    graph = net_graph[0]
    assert len(graph.nodes) > 20
    view = fit_budget(graph, budget=20)
    assert view.size <= 20
    assert [g.kind for g in view.groups] == ["fold"]
    assert "folded repeated blocks" in view.notes[-1] and "collapsed" not in view.notes[-1]


def test_budget_collapses_modules_when_folding_is_not_enough(
    net_graph: tuple[Graph, Net, dict],
) -> None:
    graph = net_graph[0]
    folded = make_view(graph, ViewOptions(fold=True)).size
    view = fit_budget(graph, budget=folded - 1)
    assert view.size <= folded - 1
    assert all(g.kind != "elided" for g in view.groups)
    assert "collapsed the module calls at depth" in view.notes[-1]


class Loop(nn.Module):
    """Many ops straight inside one module: no repeated child to fold."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(150):
            x = x * 1.0001 + 0.1
        return x


def test_budget_never_draws_almost_nothing() -> None:
    x = torch.tensor(1.0, requires_grad=True)
    loop = Loop()
    with gg.record(namespaces=[{"loop": loop}]) as rec:
        loop(x).sum().backward()
    graph = rec.graph(-1)
    assert make_view(graph, ViewOptions(depth=0)).size <= 3  # one box: almost nothing
    view = fit_budget(graph, budget=100)
    assert view.size == 100
    assert view.groups[-1].kind == "elided"
    assert "elided" in view.notes[-1]


class Sequence(nn.Module):
    """pytorch/examples time_sequence_prediction: two LSTMCells and a Linear per step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm1 = nn.LSTMCell(1, 4)
        self.lstm2 = nn.LSTMCell(4, 4)
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = c = h2 = c2 = torch.zeros(x.size(0), 4)
        outputs = []
        for step in x.split(1, dim=1):
            h, c = self.lstm1(step, (h, c))
            h2, c2 = self.lstm2(h, (h2, c2))
            outputs.append(self.linear(h2))
        return torch.cat(outputs, dim=1)


def test_budget_folds_a_long_recurrent_loop_into_a_few_nodes() -> None:
    torch.manual_seed(0)
    seq = Sequence()
    with gg.record(namespaces=[{"seq": seq}]) as rec:
        seq(torch.randn(2, 120)).pow(2).mean().backward()
    graph = rec.graph(-1)
    assert len(graph.nodes) > 3000
    view = fit_budget(graph, budget=1500)
    folds = sorted((g.title, g.repeat) for g in view.groups if g.kind == "fold")
    assert folds == [("seq.linear", 120), ("seq.lstm1", 120), ("seq.lstm2", 120)]
    # each box shows the last step's output, and says so
    assert {g.output_of for g in view.groups if g.kind == "fold"} == {"call 120 of 120"}
    assert view.size < 12
    assert "folded repeated blocks" in view.notes[-1]


def test_budget_leaves_small_graphs_alone(net_graph: tuple[Graph, Net, dict]) -> None:
    graph = net_graph[0]
    assert fit_budget(graph).size == len(graph.nodes)
    assert fit_budget(graph).notes == ()


def test_views_are_deterministic() -> None:
    a, b = record_net()[0], record_net()[0]
    for options in (ViewOptions(depth=1), ViewOptions(fold=True), ViewOptions(depth=0)):
        assert to_dot(a, view=make_view(a, options)) == to_dot(b, view=make_view(b, options))


@pytest.mark.parametrize(
    "name,options",
    [
        ("net_depth1.dot", ViewOptions(depth=1)),
        ("net_fold.dot", ViewOptions(fold=True)),
        ("net_clusters.dot", ViewOptions()),
    ],
)
def test_dot_golden(
    net_graph: tuple[Graph, Net, dict],
    golden: Callable[[str, str], None],
    name: str,
    options: ViewOptions,
) -> None:
    graph = net_graph[0]
    golden(name, to_dot(graph, view=make_view(graph, options)))


@needs_dot
@pytest.mark.parametrize("options", [ViewOptions(), ViewOptions(depth=1), ViewOptions(fold=True)])
def test_svg_draws_one_node_per_drawn_item(
    net_graph: tuple[Graph, Net, dict], options: ViewOptions
) -> None:
    graph = net_graph[0]
    view = make_view(graph, options)
    root = ET.fromstring(render_bytes(graph, "svg", view=view))
    titles = [g.findtext(f"{SVG}title") for g in root.iter(f"{SVG}g") if g.get("class") == "node"]
    drawn = with_inputs(view)  # small: the inputs are drawn too
    expected = [dot_name(drawn, d) for d in drawn.drawn]
    assert sorted(t for t in titles if t != "findings") == sorted(expected)
    clusters = [g for g in root.iter(f"{SVG}g") if g.get("class") == "cluster"]
    assert clusters  # module calls are drawn as clusters


def test_budget_trims_wide_fans_of_shared_weights() -> None:
    torch.manual_seed(0)
    cell = nn.RNNCell(2, 3)
    with gg.record(namespaces=[{"cell": cell}]) as rec:
        h = torch.zeros(1, 3)
        for _ in range(20):
            h = cell(torch.randn(1, 2), h)
        h.sum().backward()
    graph = rec.graph(-1)
    full = make_view(graph, ViewOptions(depth=0))
    weight = next(n.id for n in graph.nodes if n.names == ("cell.weight_ih",))
    assert sum(1 for e in full.edges if e.src == weight) == 20
    view = fit_budget(graph, ViewOptions(depth=0))
    kept = [e for e in view.edges if e.src == weight]
    assert len(kept) == 3 and kept[-1].label == "+17 more uses"
    assert "shared weights" in view.notes[-1]
    assert "+17 more uses" in to_dot(graph, view=view)


def test_parameters_are_drawn_inside_their_module(net_graph: tuple[Graph, Net, dict]) -> None:
    graph = net_graph[0]
    view = whole(graph)
    weight = graph.find("net.blocks.1.lin.weight")
    assert weight is not None
    assert [path for path, _, _ in view.scopes(weight.id)] == [
        "net",
        "net.blocks.1",
        "net.blocks.1.lin",
    ]
    dot = to_dot(graph, view=view)
    cluster = dot.index("net.blocks.1.lin (Linear)")
    assert dot.index(f"n{weight.id} [", cluster) < dot.index("}", cluster)


def test_shared_weights_sit_in_the_module_around_every_call() -> None:
    torch.manual_seed(0)
    cell = nn.RNNCell(2, 3)
    with gg.record(namespaces=[{"cell": cell}]) as rec:
        h = torch.zeros(1, 3)
        for _ in range(3):
            h = cell(torch.randn(1, 2), h)
        h.sum().backward()
    graph = rec.graph(-1)
    weight = graph.find("cell.weight_ih")
    assert weight is not None
    assert whole(graph).scopes(weight.id) == ()  # used by three calls: in none of them


def test_a_long_chain_wraps_into_columns() -> None:
    graph = chain(200)
    view = wrap(whole(graph))
    columns = len(view.heads)
    assert columns >= 3
    per_column = [sum(1 for b in view.bands.values() if b == k) for k in range(columns)]
    assert max(per_column) <= 2 * len(graph.nodes) / columns  # balanced
    dot = to_dot(graph)
    crossing = [line for line in dot.splitlines() if "constraint=false" in line]
    assert len(crossing) == columns - 1  # only the edges from one column into the next
    assert view.bands[graph.leaves[0].id] == 0 and view.bands[graph.root] == columns - 1


def test_a_short_graph_is_not_wrapped(net_graph: tuple[Graph, Net, dict]) -> None:
    assert not wrap(whole(chain(20))).bands
    assert not wrap(whole(net_graph[0])).bands


@needs_dot
def test_wrapped_chain_is_not_a_sliver() -> None:
    svg = ET.fromstring(render_bytes(chain(200), "svg"))
    width, height = (float(svg.get(k, "0").removesuffix("pt")) for k in ("width", "height"))
    assert 1 / 3 < height / width < 3
    straight = ET.fromstring(render_bytes(chain(20), "svg"))
    assert float(straight.get("height", "0").removesuffix("pt")) > 3 * float(
        straight.get("width", "0").removesuffix("pt")
    )


class Tower(nn.Module):
    """Nested blocks (a transformer's shape): too nested to wrap, folded instead."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(3, 3), nn.Tanh()) for _ in range(12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x


def test_a_sliver_that_cannot_wrap_is_folded() -> None:
    torch.manual_seed(0)
    tower = Tower()
    with gg.record(namespaces=[{"tower": tower}]) as rec:
        tower(torch.randn(2, 3)).sum().backward()
    graph = rec.graph(-1)
    view = fit_budget(graph)  # well under the budget, but 12 nested blocks tall
    assert [(g.kind, g.repeat) for g in view.groups] == [("fold", 12)]
    assert "long narrow strip" in view.notes[-1]
    assert fit_budget(graph, ViewOptions(focus="#0", radius=3)).groups == ()


def test_budget_keeps_a_few_whole_terms_of_a_wide_fan_in() -> None:
    """A loss that stacks one term per step (REINFORCE's `-log_prob * R` of every step of an
    episode): one level of every term side by side drew a strip tens of thousands of pixels
    wide. Over the budget, the first two terms and the last are drawn whole; the rest is one
    elided node, and the note says so."""
    w = torch.tensor([0.5, -1.0], requires_grad=True)
    with gg.record() as rec:
        terms = [((w * (i + 1)).sin() * 2).sum() for i in range(300)]
        torch.stack(terms).sum().backward()
    graph = rec.graph()
    view = fit_budget(graph, budget=100)
    stack = next(n.id for n in graph.nodes if n.op == "StackBackward0")
    into_stack = {e.src for e in view.edges if e.dst == stack}
    (elided,) = view.groups
    assert elided.kind == "elided" and elided.id in into_stack
    assert len(into_stack - {elided.id}) == 3  # three whole terms, each down to its `w`
    terms_drawn = [i for i in view.shown if graph.nodes[i].op == "SinBackward0"]
    assert len(terms_drawn) == 3
    assert "past the first 2 and the last of the 300 inputs of a node" in view.notes[-1]


def test_call_numbers_count_over_the_whole_graph_not_the_view() -> None:
    """With the middle terms elided, the last term's module box is `[call 300]`, not `[call 3]`."""
    w = nn.Linear(2, 1)
    with gg.record() as rec:
        torch.stack([w(torch.full((2,), float(i))).sum() for i in range(300)]).sum().backward()
    graph = rec.graph()
    dot = to_dot(graph, view=fit_budget(graph, budget=100))
    calls = sorted(set(re.findall(r"w \(Linear\) \[call (\d+)\]", dot)), key=int)
    assert calls == ["1", "2", "300"]
