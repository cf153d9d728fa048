"""SGD written as the formula: `w = w - lr * w.grad` makes `w` a non-leaf, so the graph grows.

`w.grad` is None after the first step (w is no longer a leaf), hence the `retain_grad()`.
"""

import torch

x_data = [1.0, 2.0, 3.0]
y_data = [2.0, 4.0, 6.0]

w = torch.tensor([1.0], requires_grad=True)

for epoch in range(5):
    for x_val, y_val in zip(x_data, y_data):
        l = (x_val * w - y_val) ** 2
        l.backward()
        w = w - 0.01 * w.grad
        w.retain_grad()

print("w:", w.item())
