"""An nn.LSTMCell unrolled by hand over 200 steps, loss on the last hidden state."""

import torch
from torch import nn

torch.manual_seed(0)
batch, n_in, n_hidden, steps = 4, 16, 32, 200
cell = nn.LSTMCell(n_in, n_hidden)
sequence = torch.randn(steps, batch, n_in)
target = torch.randn(batch, n_hidden)

h = torch.zeros(batch, n_hidden)
c = torch.zeros(batch, n_hidden)
for t in range(steps):
    h, c = cell(sequence[t], (h, c))

loss = ((h - target) ** 2).mean()
loss.backward()

print("loss:", round(loss.item(), 4))
params = dict(cell.named_parameters())
