"""Two losses on one hidden value, each with its own backward: the second one fails.

The first backward frees the saved tensors of the graph of `h`; plain python dies with
"Trying to backward through the graph a second time".
"""

import torch

x = torch.tensor([1.0, 2.0, 3.0])
w = torch.tensor([0.5, 0.5, 0.5], requires_grad=True)

h = torch.tanh(x * w)
loss1 = (h**2).sum()
loss1.backward()

loss2 = (h - 1).abs().sum()
loss2.backward()
