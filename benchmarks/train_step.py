"""Train-step throughput: ebm_jax's jitted step vs the PyTorch eager reference, interleaved.

    python benchmarks/train_step.py                     # the default MNIST recipe (CPU)
    python benchmarks/train_step.py --case vanilla_k100 --n_f 64
    python benchmarks/train_step.py --n_f 24             # the MNIST recipe at another width

Cases:
  mnist_default   configs/mnist.py as shipped (its net, K, batch and chain init).
  vanilla_k100    ebm-anatomy's vanilla ConvNet (n_f from --n_f), K = 100 Langevin steps,
                  batch 100, 32x32x1, uniform starts, Adam.
  toy_gmm         configs/toy_gmm.py as shipped (toy MLP, K = 100, batch 100, persistent bank
                  of 10,000); --steps 500 gives ebm-anatomy's K.
The PyTorch side runs the seeds' loop (one ``autograd.grad`` per Langevin step, then the loss
and an Adam step) on the same net, batch and K, from uniform starts. Random uint8 images stand
in for the dataset (speed does not depend on the pixels). Ends with ``jax_over_torch=<ratio>``
(steps/s of JAX over PyTorch; > 1 means JAX is faster).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402


def build_config(case, n_f, steps, batch=0):
  from configs import mnist, toy_gmm
  c = (toy_gmm if case == "toy_gmm" else mnist).get_config()
  if case == "vanilla_k100":
    c.data.image_size = 32
    c.model.name, c.model.n_f, c.model.leak = "vanilla", n_f or 64, 0.05
    c.sampler.num_steps = steps or 100
    c.init.name = "uniform"
    c.batch_size = 100
  else:
    c.sampler.num_steps = steps or c.sampler.num_steps
    c.model.n_f = n_f or c.model.n_f
  if batch:
    c.batch_size = batch
  return c


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--case", default="mnist_default",
                 choices=["mnist_default", "vanilla_k100", "toy_gmm"])
  p.add_argument("--n_f", type=int, default=0,
                 help="width (default: the case's own; vanilla_k100: 64)")
  p.add_argument("--steps", type=int, default=0, help="override K")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--conv_impl", default="auto")
  p.add_argument("--unroll", type=int, default=-1, help="override sampler.unroll (0 = fully)")
  p.add_argument("--batch", type=int, default=0, help="override the batch size")
  p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
  p.add_argument("--precision", default="fp32", choices=common.PRECISIONS)
  p.add_argument("--no_torch", action="store_true")
  p.add_argument("--cpu_devices", type=int, default=2,
                 help="CPU: split the host into N single-threaded devices and shard the batch "
                      "(2 = both cores, as the image recipes do; PyTorch gets --threads "
                      "threads: keep both equal). Ignored with --device gpu")
  args = p.parse_args()
  if args.device == "gpu":
    args.cpu_devices = 1
  common.pin_threads(args.threads, args.device)
  from ebm_jax.core import parallel
  parallel.set_cpu_devices(args.cpu_devices)

  import jax
  import numpy as np
  from ebm_jax.core import models
  from ebm_jax.run import runner
  from ebm_jax import spec

  config = build_config(args.case, args.n_f, args.steps, args.batch)
  config.model.conv_impl = args.conv_impl
  config.model.compute_dtype = common.set_jax_precision(args.precision)
  if args.unroll >= 0:
    config.sampler.unroll = args.unroll
  toy = args.case == "toy_gmm"
  s, ch = config.data.image_size, 1
  images = None if toy else np.random.default_rng(0).integers(0, 256, (1000, s, s, ch),
                                                             dtype=np.uint8)
  config.parallel.num_devices = args.cpu_devices
  run = runner.Runner(spec.from_config(config), images)   # the step train.py runs, same mesh
  hp = run.hparams([config])
  state, images_dev = run.init(hp), run.images
  start = time.perf_counter()
  compiled = run.step.lower(state, hp, images_dev, run.all_active).compile()
  compile_s = time.perf_counter() - start
  holder = {"state": state}

  def jax_step():
    holder["state"], metrics, _ = compiled(holder["state"], hp, images_dev, run.all_active)
    jax.block_until_ready(metrics)

  jax_step()
  fns = {"jax": jax_step}
  if not args.no_torch and common.torch_available():
    import torch
    import torch_reference
    net = (torch_reference.toy_net(config.model.n_f, config.model.leak) if toy else
           torch_reference.vanilla_net(ch, config.model.n_f, config.model.leak, s))
    b, k = config.batch_size, config.sampler.num_steps
    torch_device = "cuda" if args.device == "gpu" else "cpu"
    net = net.to(torch_device)
    optim = torch.optim.Adam(net.parameters(), lr=config.optimizer.learning_rate)
    shape = (b, 2) if toy else (b, ch, s, s)
    x_data = torch.rand(shape, device=torch_device) * 2 - 1

    fns["torch"] = common.torch_runner(lambda: torch_reference.train_step(
        net, optim, x_data, torch.rand(shape, device=torch_device) * 2 - 1, k,
        config.sampler.step_size, config.sampler.noise_std), args.precision, args.device)
    fns["torch"]()                                            # warm-up

  medians = common.interleaved_medians(fns, args.repeats)
  print(f"case={args.case} model={config.model.name} n_f={config.model.n_f} "
        f"K={config.sampler.num_steps} batch={config.batch_size} "
        f"input={'2-D points' if toy else f'{s}x{s}x{ch}'} "
        f"init={config.init.name} threads={args.threads} cpu_devices={args.cpu_devices} "
        f"unroll={config.sampler.unroll} "
        f"conv_impl={models.resolve_conv_impl(args.conv_impl)} "
        f"precision={args.precision} backend={jax.default_backend()}")
  common.print_results(medians, compile_s, args.repeats, lambda sec: (
      f"{1 / sec:.3f} train steps/s, {config.batch_size / sec:.1f} samples/s"))


if __name__ == "__main__":
  main()
