"""A hidden layer whose bias starts very negative: every ReLU is dead, layer 0 gets zero grads."""

import torch
from torch import nn

torch.manual_seed(0)

inputs = torch.randn(16, 4)
targets = torch.randn(16, 1)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
with torch.no_grad():
    model[0].bias.fill_(-10.0)

loss = nn.functional.mse_loss(model(inputs), targets)
loss.backward()
print("layer 0 weight grad sum:", model[0].weight.grad.abs().sum().item())
