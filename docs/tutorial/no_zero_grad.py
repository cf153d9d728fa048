"""The lesson's training loop with one line missing: the gradient is never zeroed."""

import torch

w = torch.tensor([1.0], requires_grad=True)

for x_val, y_val in [(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)]:
    l = (x_val * w - y_val) ** 2
    l.backward()
    w.data = w.data - 0.01 * w.grad.data
    # forgotten: w.grad.data.zero_()
