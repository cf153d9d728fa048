"""Linear regression on raw features: age in seconds next to height in metres."""

import torch

age_s = torch.tensor([[9.5e8], [1.2e9], [7.3e8]])
height_m = torch.tensor([[1.62], [1.80], [1.75]])
weight_kg = torch.tensor([[60.0], [80.0], [72.0]])

w_age = torch.zeros(1, requires_grad=True)
w_height = torch.zeros(1, requires_grad=True)
b = torch.zeros(1, requires_grad=True)

prediction = age_s * w_age + height_m * w_height + b
loss = ((prediction - weight_kg) ** 2).mean()
loss.backward()
print("grads:", w_age.grad.item(), w_height.grad.item(), b.grad.item())
