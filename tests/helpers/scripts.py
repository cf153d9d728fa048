"""Scripts that several tests run as a user would."""

#: A GAN's loop: calls alternate `d_loss` and `g_loss`; the generator's call backpropagates
#: through the discriminator, whose `.grad` `opt_d.zero_grad()` clears before its next step.
GAN = """\
import torch
import torch.nn as nn

torch.manual_seed(0)
gen = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
disc = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3)
opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
bce = nn.BCEWithLogitsLoss()
for step in range(6):
    real, fake = torch.randn(32, 2) + 3, gen(torch.randn(32, 4))
    opt_d.zero_grad()
    d_loss = bce(disc(real), torch.ones(32, 1)) + bce(disc(fake.detach()), torch.zeros(32, 1))
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad()
    g_loss = bce(disc(fake), torch.ones(32, 1))
    g_loss.backward()
    opt_g.step()
"""

#: Anomaly mode on a `sqrt` at 0: the backward call stops at SqrtBackward0 ("Function
#: 'SqrtBackward0' returned nan values"), which the script catches; `sqrt` is line 4.
ANOMALY_SQRT = """\
import torch
w = torch.nn.Parameter(torch.tensor([1.0, 0.0, 2.0]))
with torch.autograd.set_detect_anomaly(True):
    r = torch.sqrt(w * w - w * w)
    loss = (r * 0.0 + w).sum()
    try:
        loss.backward()
    except RuntimeError as e:
        print('caught', e)
"""
