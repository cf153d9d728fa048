"""GradScaler on CPU with one input so large that the scaled backward overflows to inf."""

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
x = torch.randn(3, 4)
x[0, 0] = 1e18  # a finite loss (~1e35) whose scaled backward overflows
with torch.autocast("cpu", dtype=torch.bfloat16):
    loss = model(x).float().pow(2).mean()
scaler.scale(loss).backward()
scaler.step(opt)
scaler.update()
print("scale now", scaler.get_scale())
