"""The linear model y_hat = x * w at a single point, with one backward pass.

By hand: y_hat = 2, r = -2, loss = 4 and dloss/dw = 2 * r * x = -8.
"""

import torch

x = torch.tensor(2.0)
y = torch.tensor(4.0)
w = torch.tensor(1.0, requires_grad=True)

y_hat = x * w
r = y_hat - y
loss = r**2
loss.backward()

print("y_hat:", y_hat.item())
print("r:", r.item())
print("loss:", loss.item())
print("w.grad:", w.grad.item())
