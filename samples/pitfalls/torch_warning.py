"""Reading `.grad` of a tensor that is not a leaf: PyTorch warns and gives None.

`h` is computed from `w`, so backward does not keep its gradient. Call `h.retain_grad()`
before backward, or read `w.grad`.
"""

import torch

x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
w = torch.tensor([0.5, -0.5], requires_grad=True)

h = x @ w
loss = (h**2).mean()
loss.backward()
print("h.grad:", h.grad)
