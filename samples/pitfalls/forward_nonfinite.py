"""Binary cross-entropy written by hand: once a sigmoid saturates to exactly 1.0 in float32,
`log(1 - p)` is log(0) = -Inf, and 0 * -Inf makes the loss NaN.

Give the scores to `F.binary_cross_entropy_with_logits(z, y)` instead: it never takes log(0).
"""

import torch

x = torch.tensor([4.0, -3.0, 20.0])
y = torch.tensor([1.0, 0.0, 1.0])
w = torch.tensor(2.0, requires_grad=True)

p = torch.sigmoid(x * w)
loss = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
loss.backward()
print("loss:", loss.item())
