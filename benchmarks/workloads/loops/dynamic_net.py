"""A dynamic graph: a polynomial whose degree is drawn at random on every forward pass (4 or 5
terms past the cubic), fitted to sin(x) with SGD and momentum; 30,000 small backward calls.

In the spirit of the PyTorch tutorial's DynamicNet, written fresh for gradviz's benchmarks.
"""

import math
import random

import torch
from torch import nn


class RandomDegree(nn.Module):
    """y = a + b x + c x^2 + d x^3 + e (x^4 + ... ), with 0 to 2 extra terms chosen per call."""

    def __init__(self) -> None:
        super().__init__()
        self.coef = nn.ParameterList(nn.Parameter(torch.randn(())) for _ in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c, d, e = self.coef
        y = a + b * x + c * x**2 + d * x**3
        for power in range(4, random.randint(4, 6)):
            y = y + e * x**power
        return y


random.seed(0)
torch.manual_seed(0)
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)
model = RandomDegree()
criterion = nn.MSELoss(reduction="sum")
optimizer = torch.optim.SGD(model.parameters(), lr=1e-8, momentum=0.9)

for step in range(30_000):
    loss = criterion(model(x), y)
    if step % 5000 == 4999:
        print(step + 1, round(loss.item(), 2))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

params = dict(model.named_parameters())
