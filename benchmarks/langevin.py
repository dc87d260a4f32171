"""Langevin chain throughput: ebm_jax vs the PyTorch eager reference, interleaved.

    python benchmarks/langevin.py                       # vanilla ConvNet n_f 64, batch 100, K 100
    python benchmarks/langevin.py --n_f 32 --threads 1 --cpu_devices 2
    python benchmarks/langevin.py --device gpu --n_f 128 --batch 256 --precision bf16 \
        --peak_tflops 989

Prints compile time, median ms per Langevin step and images x steps / s for each side (and,
with ``--peak_tflops``, TFLOP/s and the fraction of that peak, counting XLA's FLOPs of one
forward + input-gradient pass per step for both sides), and ends with ``jax_over_torch=<ratio>``
(throughput ratio; > 1 means JAX is faster).
"""

import argparse
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", default="vanilla", choices=["vanilla", "toy_mlp"])
  p.add_argument("--n_f", type=int, default=64)
  p.add_argument("--batch", type=int, default=100)
  p.add_argument("--steps", type=int, default=100)
  p.add_argument("--size", type=int, default=32)
  p.add_argument("--channels", type=int, default=1)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--unroll", type=int, default=1, help="lax.scan unroll (0 = fully)")
  p.add_argument("--conv_impl", default="auto", choices=["auto", "xla", "patches"])
  p.add_argument("--cpu_devices", type=int, default=2,
                 help="CPU: split the host into N single-threaded devices and shard the batch "
                      "(2 = both cores, as the image recipes do; PyTorch gets --threads "
                      "threads: keep both equal). Ignored with --device gpu")
  p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
  p.add_argument("--precision", default="fp32", choices=common.PRECISIONS)
  p.add_argument("--peak_tflops", type=float, default=0.0,
                 help="the chip's peak at --precision: also report the fraction reached")
  p.add_argument("--no_torch", action="store_true")
  args = p.parse_args()
  if args.device == "gpu":
    args.cpu_devices = 1
  common.pin_threads(args.threads, args.device)
  from ebm_jax.core import parallel
  parallel.set_cpu_devices(args.cpu_devices)

  import jax
  from ebm_jax.core import models, samplers

  shape = (args.batch, 2) if args.model == "toy_mlp" else (
      args.batch, args.size, args.size, args.channels)
  compute_dtype = common.set_jax_precision(args.precision)
  module = models.get_model(args.model, n_f=args.n_f, conv_impl=args.conv_impl)
  x0 = jax.random.uniform(jax.random.key(0), shape, minval=-1, maxval=1)
  variables = models.init_variables(module, jax.random.key(1), x0)
  if args.cpu_devices > 1:
    mesh = parallel.make_mesh(args.cpu_devices)
    x0 = jax.device_put(x0, parallel.batch_sharded(mesh))
    variables = jax.device_put(variables, parallel.replicated(mesh))
  model_energy = models.make_energy_fn(module, compute_dtype)
  # The float32 program's count for every precision (casts would add to a bfloat16 one's);
  # per device for a sharded batch, so times the devices for the whole batch.
  flops_per_step = (common.grad_flops(models.make_energy_fn(module), variables, x0)
                    * args.cpu_devices)
  sampler = samplers.langevin(1.0, 0.01)
  unroll = True if args.unroll == 0 else args.unroll

  @jax.jit
  def chain(key, variables, x0):
    energy_fn = functools.partial(model_energy, variables)
    state, _ = samplers.run_chain(key, sampler.step, sampler.init(x0, energy_fn), energy_fn,
                                  args.steps, unroll=unroll)
    return state.position

  start = time.perf_counter()
  compiled = chain.lower(jax.random.key(0), variables, x0).compile()
  compile_s = time.perf_counter() - start
  common.block(compiled(jax.random.key(0), variables, x0))   # warm-up

  fns = {"jax": lambda: common.block(compiled(jax.random.key(0), variables, x0))}
  if not args.no_torch and common.torch_available():
    import torch
    import torch_reference
    net = (torch_reference.toy_net(args.n_f) if args.model == "toy_mlp"
           else torch_reference.vanilla_net(args.channels, args.n_f, size=args.size))
    tx0 = torch.rand(shape if args.model == "toy_mlp" else
                     (args.batch, args.channels, args.size, args.size)) * 2 - 1
    if args.device == "gpu":
      net, tx0 = net.cuda(), tx0.cuda()
    fns["torch"] = common.torch_runner(
        lambda: torch_reference.langevin(net, tx0, args.steps), args.precision, args.device)
    fns["torch"]()                                            # warm-up

  medians = common.interleaved_medians(fns, args.repeats)
  print(f"model={args.model} n_f={args.n_f} batch={args.batch} steps={args.steps} "
        f"input={shape[1:]} threads={args.threads} cpu_devices={args.cpu_devices} "
        f"unroll={args.unroll} "
        f"conv_impl={models.resolve_conv_impl(args.conv_impl)} precision={args.precision} "
        f"backend={jax.default_backend()} ({jax.devices()[0].device_kind})")

  def rate(sec):
    tflops = flops_per_step * args.steps / sec / 1e12
    peak = f" = {100 * tflops / args.peak_tflops:.1f}% of peak" if args.peak_tflops else ""
    return (f"{1e3 * sec / args.steps:.2f} ms/step, "
            f"{args.batch * args.steps / sec:.0f} images*steps/s, {tflops:.3f} TFLOP/s{peak}")

  print(f"flops per step (forward + input gradient, XLA cost analysis): {flops_per_step:.4g}")
  common.print_results(medians, compile_s, args.repeats, rate)


if __name__ == "__main__":
  main()
