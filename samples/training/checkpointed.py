"""Activation checkpointing: the first block is recomputed during backward."""

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

torch.manual_seed(0)
block = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
head = nn.Linear(4, 1)
x = torch.randn(2, 4, requires_grad=True)
h = checkpoint(block, x, use_reentrant=False)
loss = head(h).sum()
loss.backward()
