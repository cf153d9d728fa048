from __future__ import annotations

import math

import pytest
import torch
from helpers.graphs import big, scalar, vector

from graphviz_grad.capture import summarize
from graphviz_grad.model import TensorSummary
from graphviz_grad.render import DrawOptions
from graphviz_grad.render.format import (
    fmt_data,
    fmt_number,
    fmt_saved_value,
    fmt_shape,
    fmt_summary,
    fmt_summary_lines,
    short_dtype,
)


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (2.0, "2.0"),
        (-8.0, "-8.0"),
        (0.1, "0.1"),
        (1e-08, "1e-08"),
        (1 / 3, "0.3333"),
        (123456.0, "1.235e+05"),
        (-0.0, "0.0"),  # the sign of a zero is noise (`max=-0.0` after a ReLU)
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (3, "3"),
        (True, "True"),
        (1000.0, "1000.0"),  # exact: keeps its .0
        (2369.4, "2369"),  # rounded to a whole number: no trailing dot
        (999.97, "1000"),
        (6.0000005, "6.000"),
    ],
)
def test_fmt_number(x: float, text: str) -> None:
    assert fmt_number(x, 4) == text


def test_shapes_and_dtypes() -> None:
    assert fmt_shape((3, 4)) == "[3, 4]"
    assert fmt_shape(()) == "[]"
    assert short_dtype("float32") == "f32"
    assert short_dtype("torch.bfloat16") == "bf16"
    assert short_dtype("quint8") == "quint8"


def test_summary_scalar_and_missing() -> None:
    assert fmt_summary(None) == "—"
    assert fmt_summary(scalar(-8.0)) == "-8.0"
    one = TensorSummary(shape=(1, 1), dtype="float32", numel=1, data=[[2.5]])
    assert fmt_summary(one) == "2.5"


def test_summary_small_data() -> None:
    assert fmt_summary(vector([1.0, 2.0, 3.0])) == "[1.0, 2.0, 3.0]"
    nested = TensorSummary(shape=(2, 2), dtype="int64", numel=4, data=[[1, 2], [3, 4]])
    assert fmt_summary(nested) == "[[1, 2], [3, 4]]"
    flags = TensorSummary(shape=(2,), dtype="bool", numel=2, data=[True, False])
    assert fmt_summary(flags) == "[True, False]"


def test_complex_values_read_at_the_same_precision_as_real_ones() -> None:
    """A complex tensor's numbers are kept exact (Python's text of each) and shown with the
    digits of every other number, in every view."""
    z = torch.tensor([0.3285975456237793 + 0.19177961349487305j, -1 - 2.5j, 3 + 0j])
    s = summarize(z)
    assert s.data == [str(complex(v)) for v in z.tolist()]
    assert fmt_summary(s) == "[0.3286+0.1918j, -1.0-2.5j, 3.0+0.0j]"
    assert fmt_summary(summarize(torch.tensor(2 - 1j))) == "2.0-1.0j"
    nonfinite = summarize(torch.tensor([complex(math.nan, math.inf)]))
    assert fmt_summary(nonfinite) == "nan+infj"
    big_z = summarize(torch.full((64,), 3 + 4j))
    stats = "μ=5.0 min=5.0 max=5.0 norm=40.0 (complex: statistics of |z|)"
    assert fmt_summary(big_z) == f"c64[64] {stats}"


def test_summary_truncates() -> None:
    text = fmt_summary(vector([0.123456] * 16), max_chars=30)
    assert text == "[0.1235, 0.1235, 0.1235,…"  # whole numbers only, at most 30 characters
    assert fmt_data([1.0, 2.0], max_chars=60) == "[1.0, 2.0]"
    assert fmt_data([1.0, 2.0, 3.0], max_chars=15) == "[1.0, 2.0, 3.0]"  # exactly fits
    assert fmt_data([1.0, 2.0, 3.0], max_chars=14) == "[1.0, 2.0,…"


def test_a_cut_list_never_ends_in_part_of_a_number() -> None:
    # the tree showed `value=[-0.1283, ..., -0.01332, 0.…`: a `0.` that is no number
    data = [-0.1283, -0.2912, -0.05329, 0.07703, -0.2438, -0.01332, 0.5, 0.25, 0.125]
    for limit in range(3, 80):
        text = fmt_data(data, max_chars=limit)
        assert len(text) <= limit
        if text.endswith("…") and "," in text:  # after whole numbers, on a `,` or `[`
            assert text[-2] in "[,", text
        elif text.endswith("…"):  # not one number fits: the first one's leading digits
            assert "[-0.1283".startswith(text[:-1]), text
    assert fmt_data([[1.5, 2.5], [3.5, 4.5]], max_chars=16) == "[[1.5, 2.5], […"
    assert fmt_data([[1.5, 2.5], [3.5, 4.5]], max_chars=13) == "[[1.5, 2.5],…"
    assert fmt_data([-1.098, 0.5, 0.25], max_chars=9) == "[-1.098,…"


def test_summary_stats() -> None:
    assert fmt_summary(big((64, 128))) == "f32[64, 128] μ=0.01 min=-0.5 max=0.75 norm=12.25"
    assert fmt_summary(big((2, 2), nan=3)).endswith("nan=3")
    empty = TensorSummary(shape=(0,), dtype="float32", numel=0, note="sparse")
    assert fmt_summary(empty) == "f32[0] (empty) (sparse)"


def test_summary_lines() -> None:
    assert fmt_summary_lines(None) == ["—"]
    assert fmt_summary_lines(big((64, 128), nan=2)) == [
        "f32[64, 128] (8192 elements)",
        "μ=0.01 min=-0.5 max=0.75 norm=12.25",
        "nan=2 inf=0",
    ]
    assert fmt_summary_lines(scalar(2.0))[:2] == ["f32[] (1 element)", "data: 2.0"]


@pytest.mark.parametrize(
    ("name", "text", "shown"),
    [
        ("reduction", "1", "'mean'"),
        ("reduction", "0", "'none'"),
        ("reduction", "2", "'sum'"),
        ("ignore_index", "18446744073709551516", "-100"),
        ("dim", "18446744073709551615", "-1"),
        ("dim", "1", "1"),
        ("beta", "1.0", "1.0"),
        ("weight", "None", "None"),
        ("reduction", "7", "7"),
    ],
)
def test_saved_values_read_as_written(name: str, text: str, shown: str) -> None:
    assert fmt_saved_value(name, text) == shown


def test_saved_values_of_a_real_loss_in_the_picture() -> None:
    import torch
    import torch.nn.functional as F

    import graphviz_grad as gg
    from graphviz_grad.render import to_dot

    x = torch.randn(4, 5, requires_grad=True)
    target = torch.tensor([1, 2, -100, 3])
    graph = gg.trace(F.cross_entropy(x, target, ignore_index=-100))
    dot = to_dot(graph, DrawOptions(saved=True))
    assert 'ignore_index</td><td align="left">-100<' in dot
    assert 'reduction</td><td align="left">&#39;mean&#39;<' in dot
    assert "18446744073709551516" not in dot
