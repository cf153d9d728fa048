"""The same linear model as linear.py, but the script never calls backward().

gradviz computes the gradients itself; plain python just prints the forward values.
"""

import torch

x = torch.tensor(2.0)
y = torch.tensor(4.0)
w = torch.tensor(1.0, requires_grad=True)

y_hat = x * w
r = y_hat - y
loss = r**2

print("y_hat:", y_hat.item())
print("r:", r.item())
print("loss:", loss.item())
print("w.grad:", w.grad)  # None: nobody called backward()
