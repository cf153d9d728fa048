"""An nn.Sequential MLP trained for 1,000 steps of plain SGD (one backward call per step)."""

import torch
from torch import nn

torch.manual_seed(0)
model = nn.Sequential(
    nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
inputs = torch.randn(32, 64)
labels = torch.randint(0, 10, (32,))

for step in range(1000):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(inputs), labels)
    loss.backward()
    optimizer.step()

print("loss:", round(loss.item(), 4))
params = dict(model.named_parameters())
