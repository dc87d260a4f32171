"""Drawing many samples from a persistent bank: one program per batch vs eager row indexing.

``Runner.draw_samples`` continues distinct chains of the bank in batches; it gathers each
batch's rows inside one jitted program and fetches the batch before dispatching the next (the
eager per-batch indexing of a sharded bank, all batches in flight at once, deadlocked XLA's
CPU client on 4 devices). This times it against that earlier form, interleaved, on the toy GMM
recipe's landscape draw (10,000 samples, batches of 100, 200 final-chain steps)::

    python benchmarks/draw_samples.py [--devices 1] [--samples 10000] [--repeats 5]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--devices", type=int, default=1)
  parser.add_argument("--samples", type=int, default=10000)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  if args.devices > 1:
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
  import common
  common.pin_threads(2)
  import jax
  import jax.numpy as jnp
  import numpy as np

  from ebm_jax import config as config_lib
  from ebm_jax.core import parallel
  from ebm_jax.run import runner
  from ebm_jax import spec
  from ebm_jax.core.objectives import base

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  c = config_lib.load_recipe(os.path.join(root, "configs", "toy_gmm.py"))
  run = runner.Runner(spec.from_config(c), None)
  hp = runner.unstack(run.hparams([c]), 0)
  state = runner.unstack(run.init(run.hparams([c])), 0)
  key = jax.random.key(0)
  b, n = run.spec.batch_size, args.samples
  sc = run.spec.final_sampler
  chains = jax.jit(lambda state, hp, x0, k: base.run_sampler(
      sc, run.comps, run.final_hparams(hp), run.eval_variables(state), k, x0)[0].position)

  def earlier():   # eager rows per batch, every batch dispatched before any is fetched
    k_rows, k = jax.random.split(key)
    rows = np.asarray(jax.random.permutation(k_rows, state.chain_store.samples.shape[0]))
    starts = [state.chain_store.samples[rows[i * b:(i + 1) * b]].astype(jnp.float32)
              for i in range(-(-n // b))]
    out = [chains(state, hp, x0, jax.random.fold_in(k, i)) for i, x0 in enumerate(starts)]
    return np.concatenate([parallel.fetch(x) for x in out])[:n]

  def now():
    return run.draw_samples(state, hp, key, n)

  np.testing.assert_allclose(now(), earlier(), rtol=1e-5, atol=1e-5)   # the same samples
  medians = common.interleaved_medians({"one program per batch": now, "eager rows": earlier},
                                       args.repeats)
  for name, t in medians.items():
    print(f"{name}: {t:.3f} s for {n} samples ({args.devices} device(s))")
  ratio = medians["one program per batch"] / medians["eager rows"]
  print(f"ratio one-program / eager: {ratio:.3f}")


if __name__ == "__main__":
  main()
