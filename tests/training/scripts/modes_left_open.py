"""Sets a default device and leaves a torch function mode entered, then one backward."""

import torch
from torch.overrides import TorchFunctionMode


class PassThrough(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


torch.set_default_device("cpu")
PassThrough().__enter__()
w = torch.randn(3, requires_grad=True)
loss = (w * 2).sum()
loss.backward()
