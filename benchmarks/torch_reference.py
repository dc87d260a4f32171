"""The seeds' PyTorch eager loop, for speed comparisons only (never imported by ebm_jax).

ebm-anatomy's VanillaNet / ToyNet and its Langevin loop: one ``autograd.grad`` per step, the
update done in place on ``x.data``; and its training step (chain, loss, SGD update).
"""

import torch as t
import torch.nn as nn


def vanilla_net(n_c=1, n_f=32, leak=0.05, size=32):
  """At 32x32 the last conv is 4x4 as in the papers; at 28x28 it is 3x3 (as in ebm_jax)."""
  return nn.Sequential(
      nn.Conv2d(n_c, n_f, 3, 1, 1), nn.LeakyReLU(leak),
      nn.Conv2d(n_f, n_f * 2, 4, 2, 1), nn.LeakyReLU(leak),
      nn.Conv2d(n_f * 2, n_f * 4, 4, 2, 1), nn.LeakyReLU(leak),
      nn.Conv2d(n_f * 4, n_f * 8, 4, 2, 1), nn.LeakyReLU(leak),
      nn.Conv2d(n_f * 8, 1, size // 8, 1, 0), nn.Flatten(0))


def toy_net(n_f=32, leak=0.05):
  return nn.Sequential(
      nn.Linear(2, n_f), nn.LeakyReLU(leak), nn.Linear(n_f, 2 * n_f), nn.LeakyReLU(leak),
      nn.Linear(2 * n_f, 2 * n_f), nn.LeakyReLU(leak), nn.Linear(2 * n_f, 2 * n_f),
      nn.LeakyReLU(leak), nn.Linear(2 * n_f, 1), nn.Flatten(0))


def langevin(f, x0, num_steps, step_size=1.0, noise_std=0.01):
  x = x0.clone().requires_grad_(True)
  for _ in range(num_steps):
    grad = t.autograd.grad(f(x).sum(), [x])[0]
    x.data += -step_size * grad + noise_std * t.randn_like(x)
  return x.detach()


def train_step(f, optim, x_data, x0, num_steps, step_size=1.0, noise_std=0.01):
  samples = langevin(f, x0, num_steps, step_size, noise_std)
  loss = f(x_data).mean() - f(samples).mean()
  optim.zero_grad()
  loss.backward()
  optim.step()
  return samples
