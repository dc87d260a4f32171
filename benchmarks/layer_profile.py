"""Where a Langevin step's time goes: each layer of the vanilla ConvNet, JAX vs PyTorch eager.

    python benchmarks/layer_profile.py                  # n_f 64, batch 100, 32x32x1, 2 threads
    python benchmarks/layer_profile.py --conv_impl xla --n_f 32

For every layer (convolution + leaky ReLU, on the activations the full net feeds it) it times
the forward pass alone and the forward pass with the gradient with respect to the layer's
*input* (what a Langevin step needs), both run ``--steps`` times inside one jitted
``lax.fori_loop`` (as in a chain: each iteration nudges the input by its gradient, so nothing
can be hoisted out of the loop), against the same loop in PyTorch eager with
``autograd.grad``. Prints a table of ms per iteration, GFLOP/s and the JAX / PyTorch throughput
ratio per layer, and, as the roofline both sides work against, the GFLOP/s of one dense
float32 matrix product of the largest layer's im2col shape in each framework.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--n_f", type=int, default=64)
  p.add_argument("--batch", type=int, default=100)
  p.add_argument("--size", type=int, default=32)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--conv_impl", default="auto", choices=["auto", "xla", "patches"])
  args = p.parse_args()
  common.pin_threads(args.threads)

  import jax
  import jax.numpy as jnp
  import numpy as np
  import torch
  import torch_reference
  from ebm_jax.core import models

  leak, nf, size = 0.05, args.n_f, args.size
  impl = models.resolve_conv_impl(args.conv_impl)
  # (features, kernel, stride, padding, activation) of each VanillaConvNet layer.
  specs = [(nf, 3, 1, 1, True), (2 * nf, 4, 2, 1, True), (4 * nf, 4, 2, 1, True),
           (8 * nf, 4, 2, 1, True), (1, size // 8, 1, 0, False)]
  torch_net = torch_reference.vanilla_net(1, nf, leak, size)
  torch_layers = [torch.nn.Sequential(torch_net[2 * i], torch_net[2 * i + 1]) for i in range(4)]
  torch_layers.append(torch_net[8])

  def jax_loop(apply, variables, x0, with_grad):
    def body(_, x):
      if with_grad:
        g = jax.grad(lambda x: jnp.sum(apply(variables, x)))(x)
      else:
        g = apply(variables, x)
        g = jnp.mean(g) * jnp.ones_like(x)   # keeps the forward pass live
      return x - 1e-6 * g
    return jax.jit(lambda x: jax.lax.fori_loop(0, args.steps, body, x)), x0

  def torch_loop(layer, x0, with_grad):
    def run():
      x = x0.clone().requires_grad_(with_grad)
      for _ in range(args.steps):
        if with_grad:
          g = torch.autograd.grad(layer(x).sum(), [x])[0]
        else:
          with torch.no_grad():
            g = layer(x).mean() * torch.ones_like(x)
        x.data -= 1e-6 * g
      return x
    return run

  rows, largest = [], (0, None)
  x_np = np.random.default_rng(0).uniform(-1, 1, (args.batch, size, size, 1)).astype(np.float32)
  x_jax = jnp.asarray(x_np)
  for index, (features, kernel, stride, padding, activate) in enumerate(specs):
    conv = models.Conv2D(features, kernel, stride, padding, impl=impl)
    variables = conv.init(jax.random.key(index), x_jax)
    apply = (lambda v, x, conv=conv, act=activate:
             jax.nn.leaky_relu(conv.apply(v, x), leak) if act else conv.apply(v, x))
    x_torch = torch.from_numpy(np.array(np.asarray(x_jax).transpose(0, 3, 1, 2), copy=True))
    name = (f"conv{index + 1} {kernel}x{kernel}/{stride} {x_jax.shape[-1]}->{features} "
            f"at {x_jax.shape[1]}x{x_jax.shape[2]}")
    out_hw = ((x_jax.shape[1] + 2 * padding - kernel) // stride + 1) ** 2
    macs = args.batch * out_hw * features * kernel * kernel * x_jax.shape[-1]
    if macs > largest[0]:
      largest = (macs, (args.batch * out_hw, kernel * kernel * x_jax.shape[-1], features))
    for with_grad in (False, True):
      fn, x0 = jax_loop(apply, variables, x_jax, with_grad)
      compiled = fn.lower(x0).compile()
      common.block(compiled(x0))
      tfn = torch_loop(torch_layers[index], x_torch, with_grad)
      tfn()
      medians = common.interleaved_medians(
          {"jax": lambda: common.block(compiled(x0)), "torch": tfn}, args.repeats)
      rows.append((name, "fwd+input grad" if with_grad else "fwd",
                   1e3 * medians["jax"] / args.steps, 1e3 * medians["torch"] / args.steps,
                   2 * macs * (2 if with_grad else 1)))
    x_jax = jax.jit(apply)(variables, x_jax)

  print(f"vanilla ConvNet n_f={nf} batch={args.batch} input={size}x{size}x1 "
        f"conv_impl={impl} threads={args.threads} steps={args.steps} "
        f"backend={jax.default_backend()}")
  print(f"{'layer':42s} {'pass':15s} {'jax ms':>8s} {'torch ms':>9s} {'jax GF/s':>9s} "
        f"{'torch GF/s':>10s} {'jax/torch':>9s}")
  totals = {}
  for name, kind, jax_ms, torch_ms, flops in rows:
    print(f"{name:42s} {kind:15s} {jax_ms:8.2f} {torch_ms:9.2f} {flops / jax_ms / 1e6:9.1f} "
          f"{flops / torch_ms / 1e6:10.1f} {torch_ms / jax_ms:9.2f}")
    j, t, f = totals.get(kind, (0.0, 0.0, 0.0))
    totals[kind] = (j + jax_ms, t + torch_ms, f + flops)
  for kind, (j, t, f) in totals.items():
    print(f"{'sum of layers':42s} {kind:15s} {j:8.2f} {t:9.2f} {f / j / 1e6:9.1f} "
          f"{f / t / 1e6:10.1f} {t / j:9.2f}")

  # The roofline: one dense matmul of the largest layer's im2col shape in each framework.
  m, k, n = largest[1]
  a = np.random.default_rng(1).standard_normal((m, k), np.float32)
  b = np.random.default_rng(2).standard_normal((k, n), np.float32)
  ja, jb, ta, tb = jnp.asarray(a), jnp.asarray(b), torch.from_numpy(a), torch.from_numpy(b)
  matmul = jax.jit(jnp.matmul)
  common.block(matmul(ja, jb))
  medians = common.interleaved_medians(
      {"jax": lambda: common.block(matmul(ja, jb)), "torch": lambda: ta @ tb}, args.repeats)
  print(f"dense float32 matmul [{m}x{k}] @ [{k}x{n}]: "
        + ", ".join(f"{side} {2 * m * k * n / sec / 1e9:.1f} GFLOP/s"
                    for side, sec in medians.items()))


if __name__ == "__main__":
  main()
