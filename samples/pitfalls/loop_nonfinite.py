"""The second update jumps past 0, and the loss's `sqrt` of a negative number is NaN.

The learning rate is too large for this loss: lower it, or keep `w` positive.
"""

import torch

w = torch.tensor([1.0], requires_grad=True)
lr = 2.0

for step in range(4):
    loss = ((torch.sqrt(w) - 0.1) ** 2).sum()
    loss.backward()
    with torch.no_grad():
        w -= lr * w.grad
    w.grad = None
    print(step, loss.item())
