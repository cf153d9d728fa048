"""400 tanh blocks with a small initialisation: gradients vanish towards the input."""

import torch

torch.manual_seed(0)
blocks = torch.nn.Sequential(
    *[torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh()) for _ in range(400)]
)
for layer in blocks:
    torch.nn.init.normal_(layer[0].weight, std=0.4)
    torch.nn.init.zeros_(layer[0].bias)

x = torch.randn(4, 8)
loss = blocks(x).pow(2).sum()
loss.backward()
