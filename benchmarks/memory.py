"""How large a bank / buffer and batch fit: each recipe's train-step memory, from XLA.

    python benchmarks/memory.py                           # every recipe's default config
    python benchmarks/memory.py --recipes thesis cifar10 --all_variants --device_gib 24 141

For each recipe the train step is compiled exactly as ``train.py`` builds it, but from abstract
shapes (``jax.eval_shape``), so paper-scale banks are measured without being allocated. XLA's
``memory_analysis`` of the compiled step gives its arguments (parameters, optimizer state,
bank / buffer, the dataset on the device), its outputs (donated: they reuse the arguments'
buffers) and its temporaries (activations of the chain's last step, of the loss' backward
pass, the bank gather); compiling at the recipe's batch and at twice it gives the temporaries
per sample. The table then says, for each memory size in ``--device_gib``, the largest batch
that fits with the recipe's bank and the largest bank (float32 and bfloat16 storage,
``init.bank_dtype``) that fits with the recipe's batch. On a GPU run it there (buffer
assignment differs somewhat between backends).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

# Training-split sizes: the dataset lives on the device during training.
TRAIN_IMAGES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000,
                "oxford_flowers102": 8189}   # flowers: every split (see ebm_jax/data/images.py)


def step_memory(c, batch):
  """(argument, output, alias, temp) bytes of the compiled train step at ``batch``, and the
  shape of one sample."""
  import jax
  import jax.numpy as jnp
  import compile_times
  from ebm_jax.run import runner
  from ebm_jax import spec

  c = c.copy_and_resolve_references()
  c.batch_size = batch
  c.parallel.num_devices = 1
  stand_in = compile_times.stand_in_images(c, max(batch, 16))
  run = runner.Runner(spec.from_config(c), stand_in)
  hp = run.hparams([c])
  state = jax.eval_shape(run._init, hp)
  # The dataset as the step sees it: the real training split's size, never allocated.
  images = (jax.ShapeDtypeStruct((0,), jnp.uint8) if stand_in is None else
            jax.ShapeDtypeStruct((TRAIN_IMAGES.get(c.data.name, 60000),) + stand_in.shape[1:],
                                 stand_in.dtype))
  stats = run.step.lower(state, hp, images, run.all_active).compile().memory_analysis()
  return (stats.argument_size_in_bytes, stats.output_size_in_bytes,
          stats.alias_size_in_bytes, stats.temp_size_in_bytes, run.comps.data.sample_shape)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--recipes", nargs="*", default=[])
  parser.add_argument("--all_variants", action="store_true")
  parser.add_argument("--device_gib", type=float, nargs="*", default=[24.0, 141.0],
                      help="memory sizes (GiB) to fit into (default: a 24 GiB machine, an H200)")
  parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
  args = parser.parse_args()
  import common
  common.pin_threads(2, args.device)
  import compile_times
  import jax
  import numpy as np

  gib = 2.0 ** 30
  print(f"backend {jax.default_backend()}; sizes in MiB; fits for {args.device_gib} GiB")
  print(f"{'recipe':22s} {'batch':>5s} {'bank':>7s} {'bank MiB':>9s} {'args MiB':>9s} "
        f"{'temp MiB':>9s} {'temp/sample':>11s}  largest batch | bank f32 | bank bf16")
  for label, c in compile_times.recipes(args.recipes, args.all_variants):
    b = c.batch_size
    arg1, out1, alias1, temp1, sample_shape = step_memory(c, b)
    temp2 = step_memory(c, 2 * b)[3]
    per_sample_temp = max(temp2 - temp1, 0) / b
    sample_bytes = 4 * int(np.prod(sample_shape))
    uses_bank = c.init.name in ("persistent", "replay")
    bank_bytes = (sample_bytes * c.init.bank_size * (0.5 if c.init.bank_dtype == "bfloat16" else 1)
                  if uses_bank else 0)
    peak = arg1 + out1 - alias1 + temp1
    fits = []
    for size in args.device_gib:
      free = size * gib - (peak - temp1)          # what the temporaries may take
      batch_fit = int(b + (free - temp1) / per_sample_temp) if per_sample_temp else 0
      room = size * gib - (peak - bank_bytes)     # what a bank may take at this batch
      fits.append(f"{size:g} GiB: {max(batch_fit, 0):,} | "
                  + (f"{int(room / sample_bytes):,} | {int(room / (sample_bytes / 2)):,}"
                     if uses_bank else "- | -"))
    print(f"{label:22s} {b:5d} {c.init.bank_size if uses_bank else 0:7d} "
          f"{bank_bytes / 2**20:9.1f} {arg1 / 2**20:9.1f} {temp1 / 2**20:9.1f} "
          f"{per_sample_temp / 2**20:9.3f}Mi  " + "; ".join(fits), flush=True)


if __name__ == "__main__":
  main()
