"""Two graphs, each with its own backward call: `loss` from `w`, then `out` from `v`."""

import torch

w = torch.tensor([1.0, 2.0], requires_grad=True)
v = torch.tensor([0.5, 0.5], requires_grad=True)
loss = (w * 3).sum()
loss.backward()
out = (v * v).sum()
out.backward()
print("w.grad =", w.grad)
