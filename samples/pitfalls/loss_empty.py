"""A training split taken past the end of the data: `data[120:]` of 100 rows is empty, the mean
of nothing is NaN, and the model gets no gradient at all.

Split by the data's own length: `n = int(0.8 * len(data))`, then `data[:n]` and `data[n:]`.
"""

import torch
from torch import nn

torch.manual_seed(0)
data = torch.randn(100, 4)
labels = torch.randint(0, 3, (100,))
model = nn.Linear(4, 3)

batch, target = data[120:], labels[120:]
loss = nn.functional.cross_entropy(model(batch), target)
loss.backward()
print("loss:", loss.item())
