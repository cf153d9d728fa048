"""A gradient reversal layer (domain-adversarial training): a hook on the features flips and
scales the gradient the domain head sends back, so the features learn to fool it."""

import torch
from torch import nn

torch.manual_seed(0)
features = nn.Linear(3, 2)
label_head = nn.Linear(2, 1)
domain_head = nn.Linear(2, 1)
x = torch.randn(4, 3)

f = features(x)
reversed_f = f.view_as(f)
reversed_f.register_hook(lambda g: -0.5 * g)  # the reversal: minus half the gradient
loss = label_head(f).pow(2).mean() + domain_head(reversed_f).pow(2).mean()
loss.backward()
