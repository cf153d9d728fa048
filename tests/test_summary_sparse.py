"""A sparse tensor (an `nn.Embedding(sparse=True)` gradient) is summarised as the dense tensor it
stands for: the statistics equal those of `to_dense()`, and a note says how much is stored."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from graphviz_grad.capture.summary import summarize

NAN, INF = float("nan"), float("inf")
INDICES = torch.tensor([[0, 1, 1, 3, 6], [2, 0, 2, 1, 4]])


def _coo(values: list[float], shape: tuple[int, ...] = (7, 5)) -> torch.Tensor:
    return torch.sparse_coo_tensor(
        INDICES[:, : len(values)], torch.tensor(values), shape, check_invariants=False
    )


def _cases() -> dict[str, torch.Tensor]:
    """Made when a test runs, not when the file is collected, and with `check_invariants` given:
    PyTorch warns once per process that it does not check sparse indices otherwise, and
    tests/diagnose checks that warning."""
    with warnings.catch_warnings():  # "sparse CSR is in beta"
        warnings.simplefilter("ignore")
        return {
            "coo": _coo([3.0, -4.0, 1.0, 2.0, 0.5]),
            "csr": _coo([3.0, -4.0, 1.0, 2.0, 0.5]).to_sparse_csr(),
            "all positive": _coo([3.0, 4.0, 1.0, 2.0, 0.5]),
            "float64": _coo([3.0, -4.0, 1.0, 2.0, 0.5]).double(),
            "nan and inf": _coo([NAN, 1.0, 2.0, INF, -1.0]),
            "nothing stored": _coo([]),
            "only a nan stored": _coo([NAN]),
            "uncoalesced": torch.sparse_coo_tensor(
                torch.tensor([[0, 0, 4]]),
                torch.tensor([1.0, 2.0, -1.0]),
                (40,),
                check_invariants=False,
            ),
            "small enough to list": _coo([3.0, -4.0], (2, 3)),
            "hybrid (dense rows)": torch.randn(30, 6).to_sparse(sparse_dim=1),
            "large": torch.sparse_coo_tensor(
                torch.randint(0, 100_000, (1, 300)),
                torch.randn(300),
                (100_000,),
                check_invariants=False,
            ),
        }


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)


NAMES = [
    "coo",
    "csr",
    "all positive",
    "float64",
    "nan and inf",
    "nothing stored",
    "only a nan stored",
    "uncoalesced",
    "small enough to list",
    "hybrid (dense rows)",
    "large",
]


def test_every_case_is_named() -> None:
    assert list(_cases()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_the_statistics_are_those_of_the_dense_tensor(name: str) -> None:
    t = _cases()[name]
    sparse, dense = summarize(t), summarize(t.to_dense())
    for field in ("min", "max", "mean", "norm"):
        assert _same(getattr(sparse, field), getattr(dense, field)), field
    assert (sparse.nan, sparse.inf, sparse.data) == (dense.nan, dense.inf, dense.data)
    assert (sparse.shape, sparse.dtype, sparse.numel) == (dense.shape, dense.dtype, dense.numel)
    layout = str(t.layout).removeprefix("torch.")
    stored = t.coalesce().values().numel() if t.is_sparse else t.values().numel()
    assert sparse.note == f"{layout}: {stored:,} of {t.numel():,} stored"


def test_a_complex_sparse_tensor_says_what_it_is() -> None:
    s = summarize(_coo([3.0, -4.0]).to(torch.complex64))
    assert s.min is None and s.note == "sparse_coo: 2 of 35 stored; complex: statistics of |z|"


def test_a_sparse_embedding_gradient_is_shown_with_its_statistics() -> None:
    import graphviz_grad as gg

    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 4, sparse=True)
    idx = torch.tensor([1, 7, 7, 30])
    with gg.record() as rec:
        loss = emb(idx).pow(2).sum()
        loss.backward()
    [leaf] = rec.graph().leaves
    assert emb.weight.grad is not None and emb.weight.grad.is_sparse
    dense = summarize(emb.weight.grad.to_dense())
    assert leaf.grad is not None and leaf.grad.note == "sparse_coo: 12 of 200 stored"
    for field in ("min", "max", "mean", "norm"):
        assert _same(getattr(leaf.grad, field), getattr(dense, field)), field
