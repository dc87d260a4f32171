"""The run directory: atomic writes, set-aside instead of overwrite, config.json history."""

import json
import os

from ebm_jax.run import rundir
from testutil import tiny_toy_config


def test_set_aside_never_overwrites_and_atomic_writes_leave_no_temporary(tmp_path):
  path = str(tmp_path / "samples.npz")
  for value in (1, 2, 3):
    rundir.set_aside(path, "before_step_6")
    rundir.write_npz(path, x=[value])
  names = sorted(os.listdir(tmp_path))
  assert names == ["samples.npz", "samples_before_step_6.1.npz", "samples_before_step_6.npz"]
  assert rundir.set_aside(str(tmp_path / "missing.json"), "x") is None
  rundir.write_json(str(tmp_path / "a" / "b.json"), {"k": 1})
  assert rundir.read_json(str(tmp_path / "a" / "b.json")) == {"k": 1}
  assert not [n for n in os.listdir(tmp_path / "a") if ".tmp" in n]


def test_a_changed_config_is_kept_under_the_step_it_ran_until(tmp_path):
  logs = []
  rundir.write_config(str(tmp_path), tiny_toy_config(), 0, logs.append)
  rundir.write_config(str(tmp_path), tiny_toy_config(), 3, logs.append)     # same: untouched
  assert not logs and os.listdir(tmp_path) == ["config.json"]
  rundir.write_config(str(tmp_path), tiny_toy_config(**{"seed": 1}), 3, logs.append)
  with open(tmp_path / "config_until_step_3.json") as f:
    assert json.load(f)["seed"] == 0
  assert rundir.read_json(str(tmp_path / "config.json"))["seed"] == 1
  assert "config_until_step_3.json" in logs[0]
