"""A process forked while gradviz records (a DataLoader worker, a hogwild trainer) runs as it
would without gradviz: it inherits the forking thread's dispatch mode and every hook, and nothing
it records would ever be shown, so it takes them all off at the fork."""

from __future__ import annotations

import sys

import pytest
import torch
from helpers.oracle import close
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack
from torch.utils.data import DataLoader, Dataset

import graphviz_grad as gg

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows")


class WhatTheWorkerSees(Dataset):  # type: ignore[type-arg]
    """Each item: an op's result, and what is hooked in the process that made it."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.full((3,), float(i)) * 2 + 1
        module_hooks = len(torch.nn.modules.module._global_forward_pre_hooks) + len(
            torch.nn.modules.module._global_forward_hooks
        )
        seen = [
            len(_get_current_dispatch_mode_stack()),
            module_hooks,
            int(hasattr(torch.autograd.backward, "__wrapped__")),
            int(hasattr(torch.autograd.grad, "__wrapped__")),
        ]
        return x, torch.tensor(seen)


def test_a_dataloader_worker_forked_while_recording_runs_unobserved() -> None:
    loader = DataLoader(WhatTheWorkerSees(), batch_size=2, num_workers=2)
    with gg.record(keep=-1) as rec:
        w = torch.ones(3, requires_grad=True)
        seen = []
        for x, hooked in loader:
            seen.append(hooked)
            (x @ w).sum().backward()
        in_parent = len(_get_current_dispatch_mode_stack())
    assert in_parent == 1  # the parent still records
    assert torch.cat(seen).sum().item() == 0, torch.cat(seen).tolist()
    assert len(rec.calls) == 2
    # the last batch's call, as torch computes it
    leaf = rec.graph().nodes[-1]
    assert leaf.names == ("w",)
    assert close(leaf.grad, torch.autograd.grad((x @ w).sum(), w)[0])
    assert torch.equal(x, torch.tensor([[5.0] * 3, [7.0] * 3]))  # the workers' own ops ran
