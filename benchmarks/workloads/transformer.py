"""nn.TransformerEncoder (6 layers, d_model 128, 4 heads) on a batch of 8 x 32 tokens: 10 steps."""

import torch
from torch import nn

torch.manual_seed(0)
layer = nn.TransformerEncoderLayer(
    d_model=128, nhead=4, dim_feedforward=256, dropout=0.0, batch_first=True
)
encoder = nn.TransformerEncoder(layer, num_layers=6, enable_nested_tensor=False)
head = nn.Linear(128, 1)
optimizer = torch.optim.SGD([*encoder.parameters(), *head.parameters()], lr=1e-3)
tokens = torch.randn(8, 32, 128)
target = torch.randn(8, 32, 1)

for step in range(10):
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(head(encoder(tokens)), target)
    loss.backward()
    optimizer.step()

print("loss:", round(loss.item(), 4))
params = {
    **dict(encoder.named_parameters()),
    **{"head." + k: v for k, v in head.named_parameters()},
}
