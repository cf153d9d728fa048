"""Linear regression with a learning rate too large: every update overshoots and the loss
grows by orders of magnitude. Use `lr = 0.01`."""

import torch

x = torch.tensor([1.0, 2.0, 3.0, 4.0])
y = 2 * x

w = torch.zeros(1, requires_grad=True)
lr = 0.5

for step in range(12):
    loss = ((w * x - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= lr * w.grad
    w.grad = None
    print(step, loss.item())
