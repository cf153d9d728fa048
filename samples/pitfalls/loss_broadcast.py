"""A regression whose prediction is [N, 1] and whose target is [N]: `F.mse_loss` broadcasts
them to [N, N] and compares every prediction with every target. Use `y.unsqueeze(1)`."""

import torch
import torch.nn.functional as F

torch.manual_seed(0)
x = torch.randn(8, 3)
y = x @ torch.tensor([1.0, -2.0, 0.5])  # shape [8]

model = torch.nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

pred = model(x)  # shape [8, 1]
loss = F.mse_loss(pred, y)
optimizer.zero_grad()
loss.backward()
optimizer.step()
print("loss:", loss.item())
