"""A model compiled with torch.compile (backend aot_eager: no C++ compiler needed)."""

import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
fast = torch.compile(model, backend="aot_eager")
x = torch.randn(8, 4)
loss = fast(x).pow(2).mean()
loss.backward()
