"""A linear model trained with an optimizer, but the gradients are never zeroed."""

import torch
from torch import nn

torch.manual_seed(0)

inputs = torch.randn(16, 4)
targets = torch.randn(16, 1)

model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

for step in range(5):
    prediction = model(inputs)
    loss = nn.functional.mse_loss(prediction, targets)
    loss.backward()
    optimizer.step()
    print(f"step {step}: loss {loss.item():.4f}")
