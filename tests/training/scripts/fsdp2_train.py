"""Two FSDP2 (`fully_shard`) training steps on 2 ranks, CPU (gloo); writes torch's own local
gradients for the test to compare.

Each layer is sharded: the model's parameters are shards (DTensors), and the graph's leaves are
the full copies FSDP gathers for the forward pass and frees after it. `REF_DIR`: where to write
`ref-RANK.json` (the gradients of a plain copy of the model on this rank's data, the last step).
"""

import copy
import json
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 20), nn.Tanh(), nn.Linear(20, 3))
plain = copy.deepcopy(model)
for layer in (model[0], model[2]):
    fully_shard(layer)
fully_shard(model)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
plain_optimizer = torch.optim.SGD(plain.parameters(), lr=0.1)
torch.manual_seed(100 + rank)
x = torch.randn(8, 6)
y = torch.randn(8, 3)

for _ in range(2):
    local = torch.autograd.grad(((plain(x) - y) ** 2).mean(), list(plain.parameters()))
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    # the plain copy takes FSDP's step: the mean of both ranks' gradients
    with torch.no_grad():
        for p, g in zip(plain.parameters(), local):
            mean = g.clone()
            dist.all_reduce(mean)
            p.grad = mean / 2
    plain_optimizer.step()

ref = {n: g.tolist() for (n, _), g in zip(plain.named_parameters(), local)}
with open(os.path.join(os.environ.get("REF_DIR", "."), f"ref-{rank}.json"), "w") as f:
    json.dump(ref, f)
dist.destroy_process_group()
