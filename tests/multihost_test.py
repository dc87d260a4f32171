"""Multi-host for real: two JAX processes on this machine, connected by jax.distributed on a
localhost coordinator with CPU collectives, train the toy recipe with the batch split across
them, checkpoint, and one process restores the checkpoint; the result matches one process."""

import os
import socket
import subprocess
import sys

import numpy as np

from testutil import read_metrics

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 6


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def check(*args, env=None):
  return subprocess.Popen([sys.executable, os.path.join(HERE, "multihost_check.py"), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})


def finish(process) -> str:
  out, _ = process.communicate(timeout=600)
  assert process.returncode == 0, out[-3000:]
  return out


def leaves(path):
  with np.load(path) as f:
    return [f[f"leaf_{i}"] for i in range(len(f.files))]


def test_two_processes_train_like_one_and_their_checkpoint_restores_on_one(tmp_path):
  two, one = tmp_path / "two", tmp_path / "one"
  coordinator = {"JAX_COORDINATOR_ADDRESS": f"localhost:{free_port()}", "JAX_NUM_PROCESSES": "2"}
  workers = [check("train", str(two), str(STEPS), env={**coordinator, "JAX_PROCESS_ID": str(i)})
             for i in range(2)]
  one_process = check("single", str(one), str(STEPS))   # alongside: the pair idles on collectives
  outputs = [finish(w) for w in workers]
  assert "process 0 of 2, 1 local of 2 devices" in outputs[0]
  assert "process 1 of 2, 1 local of 2 devices" in outputs[1]
  finish(one_process)
  finish(check("restore", str(two)))

  multi, single = leaves(two / "final.npz"), leaves(one / "final.npz")
  assert len(multi) == len(single)
  scale = max(1.0, max(float(np.abs(x).max()) for x in single if x.size))
  print("max |two processes - one process| over the state:",
        max(float(np.abs(a - b).max()) for a, b in zip(multi, single) if a.size))
  for a, b in zip(multi, single):
    assert a.shape == b.shape                        # the bank whole, gathered from both
    np.testing.assert_allclose(a, b, atol=1e-5 * scale)   # up to reduction order
  for a, b in zip(leaves(two / "restored.npz"), multi):
    np.testing.assert_array_equal(a, b)              # the checkpoint restores exactly on one
  # Only process 0 wrote the run's files: one metrics row per log step, one samples file.
  assert [r["step"] for r in read_metrics(two)] == [2, 4, 6]
  assert (two / "samples.npz").exists()
