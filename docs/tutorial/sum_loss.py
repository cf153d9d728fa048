"""The lesson's loop for two epochs, adding up the loss with `total += l`.

`l` is a tensor with a graph, so `total` is too: it holds every iteration's graph alive.
`total += l.item()` adds a number instead.
"""

import torch

w = torch.tensor([1.0], requires_grad=True)
total = 0
for epoch in range(2):
    for x_val, y_val in [(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)]:
        l = (x_val * w - y_val) ** 2
        l.backward()
        total += l
        w.data = w.data - 0.01 * w.grad.data
        w.grad.data.zero_()
print("total loss:", total.item())
