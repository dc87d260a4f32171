"""The long-run convergence check: its verdict rule, at the end of a run, and afterwards."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ebm_jax.eval import convergence
from ebm_jax.run import loop
from testutil import tiny_toy_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("short, data, noise, expected", [
    (0.1, 0.12, 0.15, "convergent"),     # long runs keep the quality (within 2x)
    (0.1, 0.05, 0.08, "convergent"),     # or improve on it
    (0.1, 0.15, 0.9, "non-mixing"),      # from data fine, from noise the modes are not reached
    (0.1, 0.5, 0.1, "non-convergent"),   # from data the chains leave the data
    (np.nan, 0.1, 0.1, "unknown"),
])
def test_verdict_rule(short, data, noise, expected):
  assert convergence.verdict(short, data, noise) == expected


def test_a_run_with_longrun_at_end_records_both_long_runs_and_a_verdict(tmp_path):
  config = tiny_toy_config(**{"longrun.at_end": True, "longrun.num_steps": 30,
                              "longrun.num_chains": 64})
  (outcome,), _ = loop.train([loop.Run(config, str(tmp_path))], log=lambda m: None)
  record = json.loads((tmp_path / convergence.RECORD).read_text())
  assert record["step"] == outcome.step == 6 and record["metric"] == "kl_smoothed"
  # The short-run reference: as many samples of the training chain as the long runs have.
  assert record["short_run"] == record["short_run_scores"]["kl_smoothed"] > 0
  for start in ("from_data", "from_noise"):
    assert np.isfinite(record[start]["kl_smoothed"]) and record[start]["kl_smoothed_floor"] > 0
  assert record["verdict"] == convergence.verdict(record["short_run"],
                                                  record["from_data"]["kl_smoothed"],
                                                  record["from_noise"]["kl_smoothed"])
  # From data the chains start on the true density: after 30 small steps on a 6-update model
  # they are still much closer to it than chains from uniform noise.
  assert record["from_data"]["kl_smoothed"] < record["from_noise"]["kl_smoothed"]
  assert "long-run check at step 6" in (tmp_path / "log.txt").read_text()
  # The command on the finished run, with more steps, writes the record again.
  result = subprocess.run([sys.executable, "-m", "ebm_jax.study.longrun",
                           f"--workdir={tmp_path}", "--num_steps=40"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert json.loads((tmp_path / convergence.RECORD).read_text())["num_steps"] == 40
  bad = subprocess.run([sys.executable, "-m", "ebm_jax.study.longrun"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith(
      "error: nothing to check")
