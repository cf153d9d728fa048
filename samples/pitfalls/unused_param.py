"""A model whose forward forgets one of its layers: `self.extra` is defined but never used."""

import torch
from torch import nn

torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 8)
        self.extra = nn.Linear(8, 8)
        self.out = nn.Linear(8, 1)

    def forward(self, x):
        h = torch.relu(self.hidden(x))
        return self.out(h)


inputs = torch.randn(16, 4)
targets = torch.randn(16, 1)
model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

optimizer.zero_grad()
prediction = model(inputs)
loss = nn.functional.mse_loss(prediction, targets)
loss.backward()
optimizer.step()
print("extra.weight.grad:", model.extra.weight.grad)
