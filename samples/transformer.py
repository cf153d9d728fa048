"""A tiny Transformer encoder (2 layers, d_model 16, 2 heads) with a linear head and MSE loss."""

import torch
from torch import nn

torch.manual_seed(0)

d_model = 16
layer = nn.TransformerEncoderLayer(
    d_model=d_model, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True
)
encoder = nn.TransformerEncoder(layer, num_layers=2)
head = nn.Linear(d_model, 1)

tokens = torch.randn(2, 5, d_model)  # batch of 2 sequences, 5 tokens each
target = torch.randn(2, 5, 1)

hidden = encoder(tokens)
prediction = head(hidden)
loss = nn.functional.mse_loss(prediction, target)
loss.backward()

print("loss:", round(loss.item(), 4))
print("head.weight.grad norm:", round(head.weight.grad.norm().item(), 4))
