"""A causal self-attention layer given `torch.tril(torch.ones(T, T))` as its mask. A float mask
is *added* to the attention scores, so this one raises the allowed scores by 1 and hides
nothing: every position attends to the future, and the model learns from tokens it should not
see. No error, and the loss even looks good. Give a bool mask (`nn.MultiheadAttention` masks
where it is True: `mask == 0`) or `nn.Transformer.generate_square_subsequent_mask(T)`."""

import torch
from torch import nn

torch.manual_seed(0)
T, D = 6, 8
x = torch.randn(4, T, D)

attention = nn.MultiheadAttention(D, num_heads=2, batch_first=True)
head = nn.Linear(D, 1)
optimizer = torch.optim.Adam([*attention.parameters(), *head.parameters()], lr=0.01)
mask = torch.tril(torch.ones(T, T))  # 1 where a position may look: meant as "keep"

for step in range(3):
    out, weights = attention(x, x, x, attn_mask=mask)
    loss = head(out).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print("loss:", loss.item())
