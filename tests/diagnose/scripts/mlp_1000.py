"""A correct 1,000-step MLP training loop: Adam, zero_grad, step, loss logged with .item()."""

import torch
import torch.nn.functional as F

torch.manual_seed(0)
x = torch.randn(64, 4)
y = (x[:, :1] * 2 - x[:, 1:2]).tanh()

model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
total = 0.0
for step in range(1000):
    optimizer.zero_grad()
    loss = F.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    total += loss.item()
print("mean loss:", total / 1000)
