"""One process of a multi-host run on this machine (see multihost_test.py).

``multihost_check.py train WORKDIR STEPS``: started twice with ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES=2`` and ``JAX_PROCESS_ID`` set, as a pod slice's hosts are; the two processes
connect through ``jax.distributed`` (CPU collectives over gloo), train the tiny toy recipe with
the batch and the persistent bank split across them (one CPU device each), checkpoint, and
process 0 saves the final state to ``WORKDIR/final.npz``.

``multihost_check.py single WORKDIR STEPS``: the same recipe in one process on one device.

``multihost_check.py restore WORKDIR``: one process restores the two-process checkpoint and
saves it to ``WORKDIR/restored.npz``.
"""
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ebm_jax.core import parallel
from ebm_jax.run import runner, train  # noqa: E402


def config(steps):
  from testutil import tiny_toy_config   # after jax.distributed starts: it creates an array
  return tiny_toy_config(**{
      "init.bank_size": 64, "batch_size": 16, "longrun.num_chains": 16,
      "num_train_steps": steps, "checkpoint_every_steps": steps, "log_every_steps": 2,
      "parallel.distributed": "auto",
      # SGD: Adam's normalisation would turn reduction-order noise in near-zero gradients into
      # full-size steps.
      "optimizer.name": "sgd", "optimizer.beta1": 0.0, "optimizer.learning_rate": 0.05})


def save(path, state):
  """Every leaf gathered to the host (a collective: all processes call it), the wall-clock
  aside: seconds of training are not the trajectory the processes must agree on."""
  state = state.replace(wall_time=None)
  leaves = {f"leaf_{i}": parallel.fetch(x) for i, x in enumerate(jax.tree.leaves(state))}
  if parallel.is_main_process():
    np.savez(path, **leaves)


def main():
  mode, workdir = sys.argv[1], sys.argv[2]
  if mode == "restore":
    _, _, state, _ = runner.load_run(workdir)
    save(os.path.join(workdir, "restored.npz"), state)
    return
  parallel.start_devices(0, "auto")      # before any array exists, as train.py does
  c = config(int(sys.argv[3]))
  print(f"process {jax.process_index()} of {jax.process_count()}, "
        f"{jax.local_device_count()} local of {jax.device_count()} devices", flush=True)
  state = train.train_and_evaluate(c, workdir)
  save(os.path.join(workdir, "final.npz"), state)


if __name__ == "__main__":
  main()
