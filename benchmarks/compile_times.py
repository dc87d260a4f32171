"""First-compile time of every shipped recipe's train step, and recompiles after it.

    python benchmarks/compile_times.py                     # every recipe's default (CPU) config
    python benchmarks/compile_times.py --all_variants      # and the GPU-sized variants
    python benchmarks/compile_times.py --recipes mnist toy_gmm --steps 3

For each recipe (and variant) this builds the train step exactly as ``train.py`` does, on
random images of the recipe's shape (no dataset needed), times the first call (compilation +
one update), then runs ``--steps`` more updates and reports how many compiled programs the jitted
step holds (1 = no recompiles). The bank size is capped at ``--max_bank`` so paper-scale banks
fit in memory here; the compiled program does not depend on it except through shapes.
"""

import argparse
import glob
import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)


def recipes(names, all_variants):
  for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
    name = os.path.splitext(os.path.basename(path))[0]
    if name in ("__init__", "common", "default") or (names and name not in names):
      continue
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for variant in (None,) + (tuple(getattr(module, "VARIANTS", ())) if all_variants else ()):
      yield (f"{name}{':' + variant if variant else ''}",
             module.get_config(variant) if variant else module.get_config())


def stand_in_images(c, count):
  """Random uint8 images of the recipe's shape in place of its dataset (None for toys)."""
  import numpy as np
  from ebm_jax import data as data_lib
  if data_lib.is_toy(c.data.name):
    return None
  channels = data_lib.get(c.data.name).channels
  return np.random.default_rng(0).integers(
      0, 256, (count, c.data.image_size, c.data.image_size, channels), dtype=np.uint8)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--recipes", nargs="*", default=[])
  parser.add_argument("--steps", type=int, default=2)
  parser.add_argument("--all_variants", action="store_true",
                      help="also the GPU-sized variants (:paper, :thesis, ...; slow on a CPU)")
  parser.add_argument("--max_bank", type=int, default=10000)
  parser.add_argument("--threads", type=int, default=2)
  args = parser.parse_args()
  import common
  common.pin_threads(args.threads)
  import jax
  from ebm_jax.run import runner
  from ebm_jax import spec

  print(f"backend {jax.default_backend()}, 1 device, {args.threads} threads")
  for label, c in recipes(args.recipes, args.all_variants):
    c.init.bank_size = min(c.init.bank_size, args.max_bank)
    c.parallel.num_devices = 1
    images = stand_in_images(c, max(c.batch_size, 256))
    run = runner.Runner(spec.from_config(c), images)
    hp = run.hparams([c])
    state, step = run.init(hp), run.step
    t0 = time.perf_counter()
    state = common.block(step(state, hp, run.images, run.all_active))[0]
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
      state = step(state, hp, run.images, run.all_active)[0]
    common.block(state)
    per_step = (time.perf_counter() - t0) / max(args.steps, 1)
    print(f"{label:24s} first call {first_s:6.1f} s = compile ~{first_s - per_step:6.1f} s + "
          f"one update {per_step:7.3f} s; compiled programs after {args.steps + 1} updates: "
          f"{step._cache_size()}", flush=True)


if __name__ == "__main__":
  main()
