"""Predict sine waves with two stacked LSTMCells unrolled over 999 time steps, trained with
LBFGS (every closure is one backward call over ~32k autograd nodes).

In the spirit of pytorch/examples' time_sequence_prediction, written fresh for gradviz's
benchmarks; the data is made here and the run is cut to one LBFGS step of 2 closure calls.
"""

import torch
from torch import nn

torch.manual_seed(0)
waves, length, period = 100, 1000, 20
shift = torch.randint(-4 * period, 4 * period, (waves, 1))
data = torch.sin((torch.arange(length) + shift) / period).double()
inputs, targets = data[3:, :-1], data[3:, 1:]


class Sequence(nn.Module):
    def __init__(self, hidden: int = 51) -> None:
        super().__init__()
        self.hidden = hidden
        self.cell1 = nn.LSTMCell(1, hidden)
        self.cell2 = nn.LSTMCell(hidden, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        n = seq.size(0)
        h1 = c1 = h2 = c2 = torch.zeros(n, self.hidden, dtype=torch.double)
        outputs = []
        for x in seq.split(1, dim=1):
            h1, c1 = self.cell1(x, (h1, c1))
            h2, c2 = self.cell2(h1, (h2, c2))
            outputs.append(self.out(h2))
        return torch.cat(outputs, dim=1)


model = Sequence().double()
criterion = nn.MSELoss()
optimizer = torch.optim.LBFGS(model.parameters(), lr=0.8, max_iter=2)


def closure() -> torch.Tensor:
    optimizer.zero_grad()
    loss = criterion(model(inputs), targets)
    loss.backward()
    return loss


optimizer.step(closure)
loss = criterion(model(inputs), targets)
print("loss:", round(loss.item(), 6))
params = dict(model.named_parameters())
