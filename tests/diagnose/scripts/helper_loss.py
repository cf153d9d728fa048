"""A correct loop whose loss is computed inside a helper function."""

import torch


def compute_loss(model, x, y):
    pred = model(x)
    return ((pred - y) ** 2).mean()


torch.manual_seed(0)
x = torch.randn(32, 3)
y = x.sum(dim=1, keepdim=True)
model = torch.nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(20):
    optimizer.zero_grad()
    loss = compute_loss(model, x, y)
    loss.backward()
    optimizer.step()
print(loss.item())
