"""Costs per update of a study's settings, and the report's equal-wall-clock time from them."""

import json
import os

import numpy as np
import pytest

from ebm_jax.study import costs as study_costs, report as study_report, sweep
from testutil import tiny_toy_config


def test_each_static_setting_is_measured_once_and_looked_up_by_its_signature(tmp_path):
  grid = sweep.Grid("g", {"sampler.num_steps": (2, 8), "optimizer.learning_rate": (1e-3, 3e-3)},
                    base=tiny_toy_config())
  cells = sweep.expand(sweep.Sweep([grid]), None, str(tmp_path))
  lines = []
  costs = study_costs.measure(cells, repeats=2, updates=2, log=lines.append)
  assert len(costs["settings"]) == 2                 # K 2 and K 8; the lr is per model
  assert costs["repeats"] == 2 and costs["machine"]
  for cell in cells:
    seconds = study_costs.seconds_per_update(costs, cell.config)
    assert seconds is not None and 0 < seconds < 60
  same_k = [c for c in cells if c.config.sampler.num_steps == 8]
  assert (study_costs.seconds_per_update(costs, same_k[0].config)
          == study_costs.seconds_per_update(costs, same_k[1].config))
  assert study_costs.seconds_per_update(costs, tiny_toy_config(**{"model.n_f": 4})) is None
  assert len(lines) == 2
  path = study_costs.write(str(tmp_path), costs)
  assert study_costs.read(str(tmp_path)) == json.load(open(path))


def test_a_cell_s_curve_is_timed_by_its_setting_s_cost_not_its_group_s_clock(tmp_path):
  (cell,) = sweep.expand(sweep.Sweep([sweep.Grid("g", {"seed": (0,)}, base=tiny_toy_config())]),
                         None, str(tmp_path))
  os.makedirs(cell.workdir)
  with open(os.path.join(cell.workdir, "metrics.jsonl"), "w") as f:
    for step, wall in ((100, 50.0), (200, 400.0)):    # a group slowed by a loaded machine
      f.write(json.dumps({"step": step, "wall_time": wall, "samples_per_sec": 1600.0,
                          "kl_smoothed": 0.1, "loss": 0.0}) + "\n")
  sweep.write_status(cell, status="finished", final_step=200, models_in_group=4)
  costs = {"machine": "test CPU", "repeats": 5, "updates_per_repeat": 10,
           "settings": {sweep.group_signature(cell.config): {"cell": cell.name,
                                                             "seconds_per_update": 0.02}}}
  row = study_report.cell_row(cell, costs)
  np.testing.assert_allclose(row["_curve"]["wall_time"], [2.0, 4.0])
  assert row["seconds_per_update"] == 0.02
  shared = study_report.cell_row(cell)                  # no costs: the group's clock, shared
  np.testing.assert_allclose(shared["_curve"]["wall_time"], [12.5, 100.0])
  assert shared["seconds_per_update"] == pytest.approx(16 / 1600.0)
  note = study_report._costs_note(costs)
  assert "measured alone and interleaved in one run" in note and "test CPU" in note
