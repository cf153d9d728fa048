"""A 2-rank DDP step on CPU (gloo); writes torch's own gradients for the test to compare.

Each rank gets its own data, so the local gradients differ between ranks and DDP's all-reduced
`.grad` is their mean. `REF_DIR`: where to write `ref-RANK.json` (the local gradients from a
plain copy of the model, and the `.grad` that DDP left).
"""

import copy
import json
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1))
plain = copy.deepcopy(model)
torch.manual_seed(100 + rank)
x = torch.randn(4, 3)
y = torch.randn(4, 1)

local = torch.autograd.grad(((plain(x) - y) ** 2).mean(), list(plain.parameters()))

ddp = DDP(model)
loss = ((ddp(x) - y) ** 2).mean()
loss.backward()

ref = {
    "local": {n: g.tolist() for (n, _), g in zip(model.named_parameters(), local)},
    "synced": {n: p.grad.tolist() for n, p in model.named_parameters()},
}
with open(os.path.join(os.environ.get("REF_DIR", "."), f"ref-{rank}.json"), "w") as f:
    json.dump(ref, f)
dist.destroy_process_group()
