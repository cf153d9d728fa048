"""An affine model y_hat = x * w + b at one point.

By hand: y_hat = 3, loss = (3 - 2) ** 2 = 1, dloss/dw = 2 * (y_hat - y) * x = 2 and
dloss/db = 2 * (y_hat - y) = 2.
"""

import torch

x = torch.tensor(1.0)
y = torch.tensor(2.0)
w = torch.tensor(1.0, requires_grad=True)
b = torch.tensor(2.0, requires_grad=True)

y_hat = x * w + b
loss = (y_hat - y) ** 2
loss.backward()

print("y_hat:", y_hat.item())
print("loss:", loss.item())
print("w.grad:", w.grad.item())
print("b.grad:", b.grad.item())
