"""Scaling an activation in place: sigmoid saved its output for backward, so backward fails.

Plain python dies with "modified by an inplace operation"; gradviz still draws the graph.
"""

import torch

torch.manual_seed(0)

x = torch.randn(4)
w = torch.randn(4, requires_grad=True)

h = torch.sigmoid(x * w)
h *= 2
loss = h.sum()
loss.backward()
