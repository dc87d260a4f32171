"""End to end on 4 and 8 simulated CPU devices: a pod slice must not hang where a laptop passes.

Each run is ``train.py`` in a subprocess with ``--xla_force_host_platform_device_count``: the
batch, chains and bank sharded over the devices, the toy landscape (its KDE of many batches of
samples drawn from the sharded bank) and the final samples included. Drawing those batches by
indexing the sharded bank eagerly once per batch put many small programs with collectives in
flight at once, and XLA aborted the process after 40 s at the first landscape on 4 devices.
"""

import json

import numpy as np
import pytest

from cli_test import MOCK_MAIN, ROOT, run

STEPS = ["--config.num_train_steps=10", "--config.log_every_steps=5",
         "--config.checkpoint_every_steps=10", "--config.diagnostics.figures=false",
         "--config.tensorboard=false"]


@pytest.mark.parametrize("devices", [4, 8])
def test_the_toy_recipe_trains_on_simulated_devices(devices, tmp_path):
  workdir = tmp_path / "run"
  # The command that aborted on 4 devices, with the recipe's 10,000-sample landscape KDE (157
  # batches from the bank) at steps 5 and 10.
  result = run([f"--config={ROOT}/configs/toy_gmm.py", f"--workdir={workdir}", *STEPS,
                "--config.batch_size=64", "--config.num_final_samples=64",
                "--config.optimizer.name=sgd", "--config.diagnostics.landscape_every_steps=5",
                "--config.final_num_steps=20"],
               env={"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"on {devices} cpu device(s)" in (workdir / "log.txt").read_text()
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [5, 10]
  assert all(np.isfinite(r["kl_true_model"]) and np.isfinite(r["kl_smoothed"]) for r in rows)
  x = np.load(workdir / "samples.npz")["x"]
  assert x.shape == (64, 2) and np.all(np.isfinite(x))
  assert len(np.unique(x, axis=0)) == 64          # distinct chains of the sharded bank


@pytest.mark.parametrize("devices", [4, 8])
def test_the_mnist_recipe_trains_on_simulated_devices(devices, tmp_path):
  workdir = tmp_path / "run"
  result = run([f"--config={ROOT}/configs/mnist.py", f"--workdir={workdir}", *STEPS,
                f"--config.data.dir={tmp_path / 'empty'}", "--config.model.n_f=4",
                "--config.sampler.num_steps=2", "--config.final_num_steps=2",
                "--config.batch_size=16", "--config.init.bank_size=64",
                "--config.num_final_samples=48", "--config.longrun.num_chains=16"],
               code=MOCK_MAIN.format(root=ROOT),
               env={"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"on {devices} cpu device(s)" in (workdir / "log.txt").read_text()
  x = np.load(workdir / "samples.npz")["x"]
  assert x.shape == (48, 28, 28, 1) and np.all(np.isfinite(x))
  for kind in ("data", "starts", "samples"):
    assert (workdir / "images" / f"{kind}_000010.png").exists()
