"""A classifier whose model ends in `nn.Softmax`, trained with `F.cross_entropy`: the loss applies
`log_softmax` itself, so the probabilities are squashed twice and the gradients shrink. No error;
the loss just barely moves. Give `cross_entropy` the logits (drop the `nn.Softmax`)."""

import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(16, 4)
y = torch.randint(0, 3, (16,))

model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Softmax(dim=1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

probs = model(x)
loss = F.cross_entropy(probs, y)
optimizer.zero_grad()
loss.backward()
optimizer.step()
print("loss:", loss.item())
