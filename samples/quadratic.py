"""A quadratic model y = w1 * x**2 + w2 * x + b, trained by plain SGD one point at a time."""

import torch

torch.manual_seed(0)

x_data = [0.5, 1.0, 1.5, 2.0]
y_data = [2.25, 4.0, 6.25, 9.0]  # (x + 1) ** 2

w1 = torch.tensor([1.0], requires_grad=True)
w2 = torch.tensor([1.0], requires_grad=True)
b = torch.tensor([1.0], requires_grad=True)


def forward(x):
    return w1 * x**2 + w2 * x + b


def loss(y_pred, y_val):
    return (y_pred - y_val) ** 2


print("Prediction (before training)", 3.0, forward(3.0).item())

for epoch in range(100):
    for x_val, y_val in zip(x_data, y_data):
        y_pred = forward(x_val)
        l = loss(y_pred, y_val)
        l.backward()
        w1.data = w1.data - 0.01 * w1.grad.data
        w2.data = w2.data - 0.01 * w2.grad.data
        b.data = b.data - 0.01 * b.grad.data
        w1.grad.data.zero_()
        w2.grad.data.zero_()
        b.grad.data.zero_()
    if epoch % 10 == 0:
        print(f"Epoch: {epoch} | Loss: {l.item():.6f}")

print(f"w1 = {w1.item():.4f}, w2 = {w2.item():.4f}, b = {b.item():.4f}")
print("Prediction (after training)", 3.0, forward(3.0).item())
