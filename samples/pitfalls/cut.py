"""A two-layer net where the hidden layer is detached: the first layer never learns."""

import torch

torch.manual_seed(0)

x = torch.randn(8, 3)
y = torch.randn(8, 1)
w1 = torch.randn(3, 4, requires_grad=True)
w2 = torch.randn(4, 1, requires_grad=True)
optimizer = torch.optim.SGD([w1, w2], lr=0.1)

for step in range(3):
    optimizer.zero_grad()
    hidden = torch.tanh(x @ w1)
    prediction = hidden.detach() @ w2
    loss = ((prediction - y) ** 2).mean()
    loss.backward()
    optimizer.step()
    print(f"step {step}: loss {loss.item():.4f}, w1.grad {w1.grad}")
