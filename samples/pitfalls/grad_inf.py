"""Weights used through a square root: the weight that is exactly 0 gets an infinite gradient."""

import torch

w = torch.tensor([0.0, 1.0, 4.0], requires_grad=True)
x = torch.tensor([1.0, 2.0, 3.0])

loss = (torch.sqrt(w) * x).sum()
loss.backward()
print("w.grad:", w.grad)
