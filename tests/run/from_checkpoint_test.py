"""Sampling a tiny trained checkpoint: the library path (compiled once) and the CLI."""

import json
import os
import subprocess
import sys

import chex
import numpy as np
import pytest

from ebm_jax.run import from_checkpoint as checkpoint_sampling, train
from ebm_jax.core import samplers
from testutil import tiny_toy_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  config = tiny_toy_config(**{"diagnostics.landscape_res": 30, "diagnostics.kde_samples": 50})
  train.train_and_evaluate(config, str(workdir))
  return workdir


@pytest.mark.parametrize("sampler", ["trained", "mala", "hmc"])
def test_sampling_writes_samples_traces_and_summary(trained_run, sampler, tmp_path):
  out = tmp_path / sampler
  summary = checkpoint_sampling.sample_checkpoint(
      str(trained_run), sampler=sampler, num_steps=30, init="uniform", num_samples=30,
      batch_size=16, adapt_steps=20, out=str(out), progress=False)
  x = np.load(out / "samples.npz")["x"]
  assert x.shape == (30, 2) and np.all(np.isfinite(x))
  with np.load(out / "traces.npz") as traces:
    assert traces["energy"].shape == (30,)
  for name in ("samples.png", "traces.png", "landscape.png", "summary.json"):
    assert (out / name).exists(), name
  assert summary["checkpoint_step"] == 6 and summary["num_samples"] == 30
  assert 0 < summary["acceptance_rate"] <= 1
  assert summary["adapted"] == (sampler != "trained")
  assert np.isfinite(summary["kl_true_model"])


def test_ten_batches_compile_once_and_an_earlier_output_is_set_aside(trained_run, tmp_path,
                                                                    monkeypatch):
  spec = samplers.SAMPLERS["mala"]
  # init + chunk of the long run, init + step of the adaptation: each traced once in all.
  monkeypatch.setitem(samplers.SAMPLERS, "mala",
                      spec._replace(build=chex.assert_max_traces(n=4)(spec.build)))
  out = tmp_path / "mala"
  kwargs = dict(sampler="mala", num_steps=6, num_samples=80, batch_size=8, adapt_steps=4,
                chunk_steps=3, out=str(out), progress=False)
  first = checkpoint_sampling.sample_checkpoint(str(trained_run), **kwargs)
  assert first["num_samples"] == 80                  # 10 batches of 8
  chex.clear_trace_counter()                         # a new call builds its functions anew
  checkpoint_sampling.sample_checkpoint(str(trained_run), **{**kwargs, "seed": 1})
  kept = [n for n in os.listdir(out) if n.startswith("samples_before_")]
  assert len(kept) == 2 and any(n.endswith(".npz") for n in kept)


def test_sample_command_line(trained_run, tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "sample.py"), f"--workdir={trained_run}",
       "--num_samples=8", "--num_steps=5", "--batch_size=8", f"--out={tmp_path / 'cli'}",
       "--sampler=momentum_sgd", "--init=data"],   # any registry name reaches the CLI
      capture_output=True, text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-2000:]
  summary = json.loads(result.stdout)
  assert summary["num_samples"] == 8 and summary["sampler"] == "momentum_sgd"
  assert summary["training_sampler_density"].startswith("exp(-")   # the run trained Langevin
  bad = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"),
                        f"--workdir={tmp_path / 'nothing'}"], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1].startswith("error: ")
  assert "is not a training run" in bad.stderr
