"""A name rebound after the first backward call: `x` is another tensor in call 2."""

import torch

x = torch.tensor([1.0, 2.0], requires_grad=True)
y = (x * 3).sum()
y.backward()
x = torch.ones(3, requires_grad=True)
z = (x * 2).sum()
z.backward()
