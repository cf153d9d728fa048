"""Small initial weights made in one line: `w` is the output of `* 0.01`, not a leaf."""

import torch

torch.manual_seed(0)

x = torch.randn(8, 3)
y = torch.randn(8, 1)
w = torch.randn(3, 1, requires_grad=True) * 0.01
b = torch.zeros(1, requires_grad=True)

prediction = x @ w + b
loss = ((prediction - y) ** 2).mean()
loss.backward()

print("b.grad:", b.grad)
print("w.grad:", w.grad)
