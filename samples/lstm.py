"""An LSTMCell unrolled by hand over 5 time steps, with a loss on the last hidden state."""

import torch
from torch import nn

torch.manual_seed(0)

batch, n_in, n_hidden, steps = 3, 4, 6, 5
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
print("weight_ih grad norm:", round(cell.weight_ih.grad.norm().item(), 4))
