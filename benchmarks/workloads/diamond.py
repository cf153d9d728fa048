"""A diamond DAG of 30 layers: each layer uses the two before it (2^30 paths, 90 nodes)."""

import torch

a = torch.tensor(1.0, requires_grad=True)
b = torch.tensor(2.0, requires_grad=True)
layers = [a, b]
for _ in range(30):
    layers.append(torch.tanh(layers[-1] * 0.5 + layers[-2] * 0.5))

loss = layers[-1]
loss.backward()

print("loss:", round(loss.item(), 4), "a.grad:", round(a.grad.item(), 6))
params = {"a": a, "b": b}
