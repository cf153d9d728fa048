"""Two tensor-parallel training steps (`parallelize_module`, DTensor parameters) on 2 ranks, CPU
(gloo); writes each parameter's local part and local gradient for the test to compare.

`REF_DIR`: where to write `ref-RANK.json` ({name: [local value, local gradient, placement]} after
the last backward call, before its step).
"""

import json
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

dist.init_process_group("gloo")
rank = dist.get_rank()
mesh = init_device_mesh("cpu", (2,))
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
model = parallelize_module(model, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
torch.manual_seed(1)
x = torch.randn(16, 8)
y = torch.randn(16, 4)

for _ in range(2):
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    ref = {
        n: [p.to_local().tolist(), p.grad.to_local().tolist(), repr(p.placements[0])]
        for n, p in model.named_parameters()
    }
    optimizer.step()
    optimizer.zero_grad()

with open(os.path.join(os.environ.get("REF_DIR", "."), f"ref-{rank}.json"), "w") as f:
    json.dump(ref, f)
dist.destroy_process_group()
