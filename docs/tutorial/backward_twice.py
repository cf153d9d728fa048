"""The linear model with backward called twice on the same graph: the second call fails.

The first `l.backward()` frees what the graph saved for backward (here x, and r for `r**2`).
"""

import torch

x = torch.tensor(2.0)
y = torch.tensor(4.0)
w = torch.tensor(1.0, requires_grad=True)

l = (x * w - y) ** 2
l.backward()
print("w.grad after the first backward:", w.grad.item())
l.backward()  # RuntimeError: Trying to backward through the graph a second time
