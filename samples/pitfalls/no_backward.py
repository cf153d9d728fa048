"""A training loop that never calls `loss.backward()`: every `optimizer.step()` finds no
gradient, so the weights never move and the loss stays where it started."""

import torch
import torch.nn.functional as F

torch.manual_seed(0)
x = torch.randn(16, 3)
y = x @ torch.tensor([[1.0], [-2.0], [0.5]])

model = torch.nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for step in range(5):
    optimizer.zero_grad()
    loss = F.mse_loss(model(x), y)
    optimizer.step()
    print(step, loss.item())
