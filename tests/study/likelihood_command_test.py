"""``likelihood.json`` end to end: the end-of-run action on a toy (AIS against the grid's
exact log Z), the command on a finished run, and an image run's bits per dimension."""

import json
import subprocess
import sys

import numpy as np

from ebm_jax.eval import likelihood
from ebm_jax.run import loop
from ebm_jax.study import likelihood as likelihood_cmd
from testutil import ROOT, tiny_image_config, tiny_toy_config

SMALL = {"likelihood.num_chains": 128, "likelihood.num_distributions": 100,
         "likelihood.repeats": 2, "likelihood.test_examples": 300, "likelihood.grid_res": 300}


def test_a_toy_run_measures_its_likelihood_at_the_end_and_by_command(tmp_path):
  # 300 updates: a 6-update net still falls linearly along some directions (no finite Z; the
  # unit test of that case is in tests/eval/likelihood_test.py).
  config = tiny_toy_config(**{"likelihood.at_end": True, "num_train_steps": 300,
                              "checkpoint_every_steps": 300, "log_every_steps": 100, **SMALL})
  (outcome,), _ = loop.train([loop.Run(config, str(tmp_path))], log=lambda m: None)
  record = likelihood.read(str(tmp_path))
  assert record["step"] == outcome.step == 300
  grid, ais, rev = record["grid"]["log_z"], record["ais"], record["reverse_ais"]
  assert record["grid"]["normalisable"]
  for est in (ais, rev):      # each run within 4 of its stated standard errors of the truth
    for value, se in zip(est["repeats"], est["se"]):
      assert abs(value - grid) < 4 * se + 0.02
  t = record["test"]
  assert t["log_likelihood_exact"] == (t["mean_neg_energy"] - grid)
  # A 300-update model is far from the truth: KL(true || model) > 0 on 300 samples.
  assert t["true_log_likelihood"] > t["log_likelihood_exact"] + 0.1
  assert record["protocol"]["transition"] == "mala" and "sigmoid" in record["protocol"][
      "schedule"]
  assert set(record["by_num_distributions"]) == {"6", "25", "100"}
  assert "likelihood at step 300: log Z" in (tmp_path / "log.txt").read_text()

  result = subprocess.run(
      [sys.executable, "-m", "ebm_jax.likelihood", f"--workdir={tmp_path}",
       "--config.likelihood.num_distributions=20", "--config.likelihood.repeats=1",
       "--config.likelihood.grid_res=100"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  again = likelihood.read(str(tmp_path))
  assert again["protocol"]["schedule"] == "sigmoid, delta 4, 20 distributions"
  assert again["ais"]["spread_sd"] is None and len(again["ais"]["repeats"]) == 1
  bad = subprocess.run([sys.executable, "-m", "ebm_jax.likelihood", f"--workdir={tmp_path}",
                        "--config.sampler.num_steps=3"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1] == (
      "error: --config.sampler.num_steps: only likelihood.* keys change a measurement (the "
      "model is the run's)")


def test_an_image_run_reports_bits_per_dimension(tmp_path):
  import tensorflow_datasets as tfds
  config = tiny_image_config(**{"data.dir": str(tmp_path / "nodata"), "num_train_steps": 2,
                                "checkpoint_every_steps": 2, "log_every_steps": 2})
  with tfds.testing.mock_data(num_examples=40):
    loop.train([loop.Run(config, str(tmp_path / "run"))], log=lambda m: None)
    record = likelihood_cmd.measure_run(
        str(tmp_path / "run"), {"likelihood.num_chains": 16, "likelihood.num_distributions": 8,
                                "likelihood.repeats": 2, "likelihood.test_examples": 20},
        log=lambda m: None)
  t = record["test"]
  assert t["num_examples"] == 20 and "grid" not in record
  assert t["bits_per_dim"] == likelihood.bits_per_dim(t["log_likelihood"], 28 * 28)
  assert np.isfinite(t["bits_per_dim"]) and len(record["ais"]["repeats"]) == 2
  assert "dequantized" in record["protocol"]["test_data"]
  # The bound a dequantized test set puts under log Z, and whether AIS cleared it.
  dim = 28 * 28
  floor = t["mean_neg_energy"] - dim * np.log(128)
  assert abs(t["log_z_floor_from_dequantization"] - floor) < 1e-6 * abs(floor)
  assert t["settled"] == (record["ais"]["log_z"] >= t["log_z_floor_from_dequantization"])
  assert t["settled"] == (t["bits_per_dim"] >= 0)
  assert json.loads((tmp_path / "run" / "likelihood.json").read_text())["step"] == 2
