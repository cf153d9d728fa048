"""The lesson's loop, summing the loss of the epoch with `total += l`.

`l` is a tensor with a graph, so `total` holds every iteration's graph. Use `l.item()`.
"""

import torch

x_data = [1.0, 2.0, 3.0]
y_data = [2.0, 4.0, 6.0]

w = torch.tensor([1.0], requires_grad=True)


def forward(x):
    return x * w


def loss(y_pred, y_val):
    return (y_pred - y_val) ** 2


total = 0
for epoch in range(10):
    for x_val, y_val in zip(x_data, y_data):
        l = loss(forward(x_val), y_val)
        l.backward()
        total += l
        w.data = w.data - 0.01 * w.grad.data
        w.grad.data.zero_()

print("mean loss:", total.item() / 30)
