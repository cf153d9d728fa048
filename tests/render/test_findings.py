"""The doctor's report at 80 and 120 columns: one short block per finding, never split mid-word."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from graphviz_grad.model import Finding
from graphviz_grad.render.findings import findings_text

FINDINGS = (
    Finding(
        "grad-nan",
        "error",
        "The first NaN gradient in backward order appears at #3 SubBackward0 at line 8 (coming "
        "back through #2 PowBackward0): 2 of 2 elements; its forward value was finite.",
        "samples/pitfalls/grad_nan.py",
        8,
        (3,),
        "Look for sqrt, log, division or pow at 0 in the op above; add an epsilon "
        "(`torch.sqrt(x + 1e-12)`).",
    ),
    Finding(
        "unused-param",
        "warning",
        "`w1` requires grad but the root does not depend on it, so `w1.grad` stays None.",
        hint="Check that the loss is computed from it.",
    ),
    Finding("graph-grows", "info", "The graph grew from 12 to 40 nodes.", "a/very/long/p.py", 3),
)


@pytest.mark.parametrize("width", [80, 120])
def test_golden(width: int, golden: Callable[[str, str], None]) -> None:
    golden(f"findings.{width}.txt", findings_text(FINDINGS, nodes=9, width=width))


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_every_word_whole_and_every_line_fits(width: int) -> None:
    text = findings_text(FINDINGS, nodes=9, width=width)
    assert max(len(line) for line in text.splitlines()) <= width
    words = {w for f in FINDINGS for w in f"{f.message} {f.hint or ''}".split()}
    printed = set(text.split())
    assert words <= printed, words - printed


def test_block_shape() -> None:
    lines = findings_text(FINDINGS[:1], width=80).splitlines()
    assert lines[0] == "gradviz doctor: 1 finding"
    assert lines[2] == "✖ error  grad-nan  samples/pitfalls/grad_nan.py:8"
    assert all(line.startswith("  ") for line in lines[3:])
    assert any(re.match(r"  fix: Look for sqrt", line) for line in lines)


def test_no_findings_says_what_was_checked() -> None:
    assert findings_text((), nodes=4) == "gradviz doctor: no findings (4 nodes checked).\n"
