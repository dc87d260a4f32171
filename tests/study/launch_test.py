"""The multi-machine launcher, on submitit's local executor: groups as jobs, skipping and
resuming."""

import os
import time

import pytest

submitit = pytest.importorskip("submitit")

from ebm_jax.study import launch, sweep  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SWEEP = """
from ebm_jax.study.sweep import Grid, Sweep
def get_sweep(variant=None):
  return Sweep([Grid("g", {{"sampler.num_steps": {ks}}}, base="configs/toy_gmm.py",
                     fixed={{"num_train_steps": {steps}, "log_every_steps": 10,
                            "checkpoint_every_steps": 10, "num_final_samples": 10,
                            "init.bank_size": 200, "batch_size": 16, "model.n_f": 8,
                            "diagnostics.kde_samples": 50, "diagnostics.landscape_res": 30,
                            "diagnostics.landscape_every_steps": 0, "ema.decay": 0.0,
                            "diagnostics.figures": False}})],
               seeds=(0, 1), replicate_groups=False)
"""


def write_sweep(tmp_path, ks, steps):
  path = tmp_path / "sweep_file.py"
  path.write_text(SWEEP.format(ks=ks, steps=steps))
  return str(path)


@pytest.fixture(autouse=True)
def in_repo_root(monkeypatch):
  monkeypatch.chdir(ROOT)        # the sweep's recipes are paths relative to the repo


def test_local_executor_trains_one_job_per_group_and_skips_finished_cells(tmp_path):
  spec = write_sweep(tmp_path, (2, 3), 10)
  workdir = str(tmp_path / "study")
  jobs = launch.launch(spec, None, workdir, cluster="local", log=lambda m: None,
                       parameters={"timeout_min": 10})
  assert len(jobs) == 2                          # K 2 and K 3: one group of 2 seeds each
  trained = sorted(name for job in jobs for name in job.result())
  assert trained == ["g-K2-seed0", "g-K2-seed1", "g-K3-seed0", "g-K3-seed1"]
  cells = sweep.expand(sweep.load_sweep(spec), None, workdir)
  for cell in cells:
    status = sweep.read_status(cell)
    assert status["status"] == "finished" and status["models_in_group"] == 2
  lines = []
  assert launch.launch(spec, None, workdir, cluster="local", log=lines.append) == []
  assert "4 cells, 4 already done; submitting 0 group(s)" in lines[0]


def test_a_killed_worker_s_group_resumes_from_its_checkpoints(tmp_path):
  spec = write_sweep(tmp_path, (2,), 200)      # killed at step >= 20: long before its end
  workdir = str(tmp_path / "study")
  [job] = launch.launch(spec, None, workdir, cluster="local", log=lambda m: None,
                        parameters={"timeout_min": 10})
  ckpts = os.path.join(workdir, "cells", "g-K2-seed0", "checkpoints")
  deadline = time.time() + 240
  while time.time() < deadline and not (os.path.isdir(ckpts) and any(
      d.isdigit() and int(d) >= 20 for d in os.listdir(ckpts))):
    time.sleep(0.5)
  job.cancel()                                 # the worker is killed mid-group
  while not job.done():
    time.sleep(0.2)
  cell = sweep.expand(sweep.load_sweep(spec), None, workdir)[0]
  assert sweep.read_status(cell) is None       # not finished
  [again] = launch.launch(spec, None, workdir, cluster="local", log=lambda m: None,
                          parameters={"timeout_min": 10})
  assert sorted(again.result()) == ["g-K2-seed0", "g-K2-seed1"]
  assert sweep.read_status(cell)["final_step"] == 200
  log = open(os.path.join(cell.workdir, "log.txt")).read()
  assert "resumed from checkpoint at step" in again.stderr() + again.stdout() + log
