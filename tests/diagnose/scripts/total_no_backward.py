"""The lesson's `total += l` in a loop that never calls backward: `total` holds every graph."""

import torch

x_data = [1.0, 2.0, 3.0]
y_data = [2.0, 4.0, 6.0]
w = torch.tensor([1.0], requires_grad=True)

total = 0
for epoch in range(3):
    for x_val, y_val in zip(x_data, y_data):
        l = (x_val * w - y_val) ** 2
        total += l
print("mean loss:", total.item() / 9)
