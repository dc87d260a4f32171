"""Runs in a subprocess with 8 simulated CPU devices (see core/parallel_test.py); prints JSON."""
import json
import os
import sys
import tempfile

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ebm_jax.core import parallel
from ebm_jax.run import runner, train
from ebm_jax import spec  # noqa: E402
from testutil import tiny_toy_config, without_clock  # noqa: E402


def config(num_devices, steps, **overrides):
  c = tiny_toy_config(**{"init.bank_size": 64, "batch_size": 16, "longrun.num_chains": 16,
                         "num_train_steps": steps, "checkpoint_every_steps": 3,
                         "parallel.num_devices": num_devices,
                         # SGD: Adam's normalisation would turn reduction-order noise in
                         # near-zero gradients into full-size steps.
                         "optimizer.name": "sgd", "optimizer.beta1": 0.0,
                         "optimizer.learning_rate": 0.05, **overrides})
  return c


def max_diff(a, b):
  a, b = without_clock(a), without_clock(b)    # seconds of training are not the trajectory
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def loop_collectives(c):
  """Collectives inside the compiled 8-device train step's loops (the chain must have none)."""
  run = runner.Runner(spec.from_config(c), None)
  hp = run.hparams([c])
  text = run.step.lower(run.init(hp), hp, run.images, run.all_active).compile().as_text()
  return parallel.collectives_in_loops(text)


def main():
  out = {"device_count": jax.device_count()}
  root = tempfile.mkdtemp()
  init = sys.argv[1] if len(sys.argv) > 1 else "persistent"
  extra = {"init.name": init}
  one = train.train_and_evaluate(config(1, 6, **extra), f"{root}/one")
  eight = train.train_and_evaluate(config(8, 6, **extra), f"{root}/eight")
  out["diff_1_vs_8"] = max_diff(one, eight)
  out["params_scale"] = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(one.params))
  out["bank_spec"] = str(eight.chain_store.samples.sharding.spec)
  out["bank_devices"] = len(eight.chain_store.samples.sharding.device_set)
  out["params_replicated"] = all(x.sharding.is_fully_replicated
                                 for x in jax.tree.leaves(eight.params))
  out["loop_collectives"] = loop_collectives(config(8, 6, **extra))
  # The 8-device checkpoint at step 6 restores on 1 and on 4 devices, and training continues
  # from it the same way on each.
  cont = {}
  for n in (1, 4, 8):
    workdir = f"{root}/cont{n}"
    os.system(f"cp -r {root}/eight {workdir}")
    c = config(n, 9, **extra)
    _, _, restored, _ = runner.load_run(workdir)
    cont[n] = {"restored_step": int(restored.step), "restore_diff": max_diff(restored, eight)}
    with open(f"{workdir}/config.json", "w") as f:   # the run continues with n devices
      f.write(json.dumps(c.to_dict()))
    state = train.train_and_evaluate(c, workdir)
    cont[n]["final_step"] = int(state.step)
    cont[n]["state"] = state
  out["continued"] = {n: {k: v for k, v in d.items() if k != "state"} for n, d in cont.items()}
  out["continue_diff_1_vs_4"] = max_diff(cont[1]["state"], cont[4]["state"])
  out["continue_diff_1_vs_8"] = max_diff(cont[1]["state"], cont[8]["state"])
  print("RESULT " + json.dumps(out))


if __name__ == "__main__":
  main()
