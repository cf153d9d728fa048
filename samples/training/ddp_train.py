"""One DDP training step on CPU: run it with `torchrun --nproc-per-node 2 ddp_train.py`.

Each rank sees its own batch, so the local gradients differ between ranks; DDP all-reduces them
during backward, and every rank's `.grad` ends as their mean.
"""

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = DDP(nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1)))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
torch.manual_seed(100 + rank)
x, y = torch.randn(4, 3), torch.randn(4, 1)
loss = ((model(x) - y) ** 2).mean()
loss.backward()
opt.step()
dist.destroy_process_group()
