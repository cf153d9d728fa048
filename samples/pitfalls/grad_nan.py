"""Euclidean distance with torch.sqrt: when the points coincide, the gradient is NaN."""

import torch

a = torch.tensor([1.0, 2.0], requires_grad=True)
b = torch.tensor([1.0, 2.0])

dist = torch.sqrt(((a - b) ** 2).sum())
dist.backward()
print("dist:", dist.item())
print("a.grad:", a.grad)
