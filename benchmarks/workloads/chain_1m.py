"""A chain of 1_000_000 ops from one leaf: `y = y * 1.0001 + 0.1` repeated (2 ops per step)."""

import torch

x = torch.tensor(1.0, requires_grad=True)
y = x
for _ in range(1_000_000 // 2):
    y = y * 1.0001 + 0.1

loss = y
loss.backward()

print("loss:", round(loss.item(), 4), "x.grad:", round(x.grad.item(), 4))
params = {"x": x}
