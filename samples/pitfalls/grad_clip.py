"""Gradient clipping called between `zero_grad()` and `backward()`: it clips the gradients the
parameters hold at that moment, which `zero_grad()` has just cleared, so it clips nothing. The
optimizer then steps on the unclipped gradients, and with inputs on a large scale the loss
blows up although the script "clips". Clip after `backward()`, before `step()`."""

import torch
from torch import nn

torch.manual_seed(0)
x, y = torch.randn(64, 4) * 20, torch.randn(64, 1)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

for step in range(5):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    loss.backward()
    optimizer.step()
print("loss:", loss.item())
