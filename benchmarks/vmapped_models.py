"""Throughput of M models trained as one vmapped group vs M sequential runs of the same cells.

    python benchmarks/vmapped_models.py                  # toy MLP and small MNIST ConvNet, M 1 4 16
    python benchmarks/vmapped_models.py --case mnist --models 1 4 --threads 2

The M cells differ in learning rate and seed (vmappable), as in a sweep. "Sequential" is what a
sweep without grouping does: one jitted train step per cell, called in turn (M compiles); the
group is one :class:`ebm_jax.run.runner.Runner` of M models, as the loop trains it (one compile).
Both are timed interleaved in one process; the figure is model-updates per second and the
ratio group / sequential.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))


def case_config(name):
  from ebm_jax import config
  c = config.get_config()
  if name == "toy":        # ebm-anatomy's toy setting, K 100 (the toy study's largest)
    c.data.name, c.model.name, c.model.n_f = "gmm", "toy_mlp", 32
    c.sampler.num_steps, c.sampler.step_size, c.sampler.noise_std = 100, 1.0, 0.125
    c.init.name, c.init.bank_size, c.batch_size = "persistent", 10000, 100
    return c, None
  import numpy as np       # the MNIST study's cells: n_f 16 at 28x28, K 15, batch 32
  c.data.image_size, c.model.name, c.model.n_f, c.model.leak = 28, "vanilla", 16, 0.2
  c.sampler.num_steps, c.sampler.noise_std, c.sampler.clip_x = 15, 0.01, True
  c.init.name, c.init.bank_size, c.batch_size = "replay", 10000, 32
  images = np.random.default_rng(0).integers(0, 256, (2000, 28, 28, 1), dtype=np.uint8)
  return c, images


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--case", choices=["toy", "mnist"], nargs="+", default=["toy", "mnist"])
  parser.add_argument("--models", type=int, nargs="+", default=[1, 4, 16])
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--updates", type=int, default=10, help="updates per timed repeat")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
  args = parser.parse_args()
  import common
  common.pin_threads(args.threads, args.device)
  import jax
  import ml_collections
  from ebm_jax.run import runner
  from ebm_jax import spec

  print(f"backend {jax.default_backend()}, {args.threads} threads, {args.updates} updates per "
        f"repeat, median of {args.repeats}")
  for case in args.case:
    base, images = case_config(case)
    for m in args.models:
      configs = []
      for i in range(m):
        c = ml_collections.ConfigDict(base.to_dict())
        c.seed, c.optimizer.learning_rate = i, 1e-4 * (1 + i)
        configs.append(c)
      t0 = time.perf_counter()
      singles = []
      for c in configs:    # a fresh runner per cell: what a sweep without grouping compiles
        c.parallel.num_devices = 1
        run = runner.Runner(spec.from_config(c), images)
        hp = run.hparams([c])
        state = common.block(run.step(run.init(hp), hp, run.images, run.all_active))[0]
        singles.append([run, hp, state])
      compile_seq = time.perf_counter() - t0
      t0 = time.perf_counter()
      group = (runner.Runner(spec.from_config(base), images, num_models=m) if m > 1
               else singles[0][0])
      hparams = group.hparams(configs)
      on = group.all_active
      states = common.block(group.step(group.init(hparams), hparams, group.images, on))[0]
      compile_group = time.perf_counter() - t0
      holder = {"group": states}

      def run_sequential():
        for entry in singles:
          for _ in range(args.updates):
            entry[2] = entry[0].step(entry[2], entry[1], entry[0].images,
                                     entry[0].all_active)[0]
        common.block([e[2] for e in singles])

      def run_group():
        s = holder["group"]
        for _ in range(args.updates):
          s = group.step(s, hparams, group.images, on)[0]
        holder["group"] = common.block(s)

      t = common.interleaved_medians({"sequential": run_sequential, "group": run_group},
                                     args.repeats)
      seq_rate = m * args.updates / t["sequential"]
      group_rate = m * args.updates / t["group"]
      print(f"{case} M={m}: sequential {seq_rate:.1f} model-updates/s (compile {compile_seq:.1f} "
            f"s), vmapped group {group_rate:.1f} model-updates/s (compile {compile_group:.1f} s); "
            f"group_over_sequential={group_rate / seq_rate:.2f}", flush=True)


if __name__ == "__main__":
  main()
