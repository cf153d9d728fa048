"""A small MLP classifier (4 -> 8 -> 3) trained for a few SGD steps on random data."""

import torch
from torch import nn

torch.manual_seed(0)

inputs = torch.randn(16, 4)
targets = torch.randint(0, 3, (16,))

model = nn.Sequential(
    nn.Linear(4, 8),
    nn.ReLU(),
    nn.Linear(8, 3),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for step in range(5):
    optimizer.zero_grad()
    logits = model(inputs)
    loss = criterion(logits, targets)
    loss.backward()
    optimizer.step()
    print(f"step {step}: loss {loss.item():.4f}")
