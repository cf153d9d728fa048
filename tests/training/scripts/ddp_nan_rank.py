"""2-rank DDP where rank 1's batch holds a NaN: only rank 1's local gradient is NaN, but DDP's
all-reduce puts NaN into `.grad` on every rank."""

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = nn.Linear(3, 1)
ddp = DDP(model)
x = torch.randn(4, 3)
if rank == 1:
    x[0, 0] = float("nan")
loss = ddp(x).pow(2).mean()
loss.backward()
dist.destroy_process_group()
