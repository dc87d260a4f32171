"""End-to-end: ``python train.py`` in a subprocess, into a temporary workdir."""

import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.num_train_steps=4", "--config.sampler.num_steps=3",
        "--config.log_every_steps=2", "--config.checkpoint_every_steps=2",
        "--config.num_final_samples=10", "--config.init.bank_size=200",
        "--config.batch_size=16", "--config.model.n_f=8", "--config.diagnostics.kde_samples=50"]


def run(args, cwd=ROOT, env=None, code=None):
  command = [sys.executable, "-c", code] if code else [sys.executable,
                                                       os.path.join(ROOT, "train.py")]
  return subprocess.run(command + args, cwd=cwd, capture_output=True, text=True, timeout=300,
                        env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})


def test_toy_run_writes_every_contract_file_and_a_rerun_resumes(tmp_path):
  workdir = tmp_path / "run"
  args = [f"--config={ROOT}/configs/toy_gmm.py", f"--workdir={workdir}", *TINY]
  result = run(args)
  assert result.returncode == 0, result.stderr[-2000:]
  for name in ("config.json", "metrics.jsonl", "samples.npz", "log.txt"):
    assert (workdir / name).exists(), name
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
  assert (workdir / "plots" / "training.png").exists()
  assert len(os.listdir(workdir / "images")) == 2
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [2, 4]
  assert np.load(workdir / "samples.npz")["x"].shape == (10, 2)

  again = run(args)
  assert again.returncode == 0, again.stderr[-2000:]
  assert "already finished" in again.stderr
  longer = run(args + ["--config.num_train_steps=6"])
  assert longer.returncode == 0, longer.stderr[-2000:]
  assert "resumed from checkpoint at step 4" in longer.stderr
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4", "6"]


def test_default_workdir_is_named_after_the_recipe(tmp_path):
  result = run([f"--config={ROOT}/configs/toy_rings.py", *TINY], cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  (run_dir,) = os.listdir(tmp_path / "runs")
  assert run_dir.startswith("toy_rings-")
  assert (tmp_path / "runs" / run_dir / "samples.npz").exists()


def test_unknown_key_and_bad_value_fail_in_one_line(tmp_path):
  result = run([f"--config={ROOT}/configs/toy_gmm.py", f"--workdir={tmp_path}",
                "--config.sampler.nope=1"])
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "error: config.sampler.nope: unknown config key (see ebm_jax/config.py)")
  result = run([f"--config={ROOT}/configs/toy_gmm.py", f"--workdir={tmp_path}",
                "--config.sampler.step_size=-1"])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "error: config.sampler.step_size: expected a number > 0, got -1.0")
  result = run([f"--config={ROOT}/configs/toy_gmm.py", f"--workdir={tmp_path}",
                "--config.batch_size=many"])
  assert result.returncode == 2 and "config.batch_size" in result.stderr.splitlines()[-1]


MOCK_MAIN = """
import sys
sys.path.insert(0, {root!r})
import tensorflow_datasets as tfds
from ebm_jax.run import train
with tfds.testing.mock_data(num_examples=48):
  train.main(["train.py"] + sys.argv[1:])
"""


def test_mnist_recipe_end_to_end_on_mock_data(tmp_path):
  workdir = tmp_path / "run"
  result = run([f"--config={ROOT}/configs/mnist.py", f"--workdir={workdir}",
                f"--config.data.dir={tmp_path / 'empty'}", "--config.model.n_f=4",
                "--config.num_train_steps=2", "--config.log_every_steps=2",
                "--config.sampler.num_steps=2", "--config.batch_size=8",
                "--config.init.bank_size=32", "--config.num_final_samples=8"],
               code=MOCK_MAIN.format(root=ROOT))
  assert result.returncode == 0, result.stderr[-2000:]
  assert np.load(workdir / "samples.npz")["x"].shape == (8, 28, 28, 1)
  for kind in ("data", "starts", "samples"):
    assert (workdir / "images" / f"{kind}_000002.png").exists()


TINY_SWEEP = """
from ebm_jax.study.sweep import Grid, Sweep
def get_sweep(variant=None):
  return Sweep([Grid("g", {"optimizer.learning_rate": (1e-3, 1e-2)},
                     fixed={"num_train_steps": 3, "sampler.num_steps": 3, "log_every_steps": 3,
                            "num_final_samples": 10, "init.bank_size": 200, "batch_size": 16,
                            "model.n_f": 8, "diagnostics.kde_samples": 50,
                            "diagnostics.landscape_res": 30, "diagnostics.figures": False})],
               roles={"lr": "optimizer.learning_rate"})
"""


def test_sweep_command_trains_a_vmapped_group_reports_and_reruns_for_free(tmp_path):
  spec = tmp_path / "tiny_sweep.py"
  spec.write_text(TINY_SWEEP)
  sweep_py = os.path.join(ROOT, "sweep.py")
  args = [f"--config={ROOT}/configs/toy_gmm.py", f"--sweep={spec}",
          f"--workdir={tmp_path / 'study'}"]
  result = subprocess.run([sys.executable, sweep_py] + args, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "group of 2 models (optimizer.learning_rate vmapped)" in result.stderr
  for name in ("results.csv", "report.md", "plots/heatmap-g-all.png",
               "cells/g-lr0.001/samples.npz", "cells/g-lr0.01/metrics.jsonl",
               "cells/g-lr0.01/sweep_cell.json"):
    assert (tmp_path / "study" / name).exists(), name
  again = subprocess.run([sys.executable, sweep_py] + args, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
  assert again.returncode == 0 and "2 already done; 0 to train now" in again.stderr
  # One override syntax for every command: --config.<key>=<value>; the old --set names it.
  bad = subprocess.run([sys.executable, sweep_py] + args + ["--config.sampler.nope=1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1] == (
      "error: config.sampler.nope: unknown config key (see ebm_jax/config.py)")
  old = subprocess.run([sys.executable, sweep_py] + args + ["--set", "num_train_steps=3"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert old.returncode == 2
  assert old.stderr.strip().splitlines()[-1] == (
      "error: --set num_train_steps=3 is now --config.num_train_steps=3 (the override syntax of "
      "every command)")


TINY_SEARCH = """
from ebm_jax.study.search import Float, Search
def get_search(variant=None):
  return Search("tiny", "configs/toy_gmm.py",
                {"optimizer.learning_rate": Float(1e-4, 1e-2, log=True)},
                fixed={"num_train_steps": 3, "sampler.num_steps": 3, "log_every_steps": 3,
                       "num_final_samples": 10, "init.bank_size": 200, "batch_size": 16,
                       "model.n_f": 8, "diagnostics.kde_samples": 50,
                       "diagnostics.landscape_res": 30, "optimizer.lr_min": 0.0,
                       "diagnostics.figures": False},
                num_trials=2, trials_per_group=2)
"""


def test_search_command_asks_trains_and_tells_into_a_journal(tmp_path):
  spec = tmp_path / "tiny_search.py"
  spec.write_text(TINY_SEARCH)
  args = [sys.executable, os.path.join(ROOT, "sweep.py"), f"--search={spec}",
          f"--workdir={tmp_path / 'search'}"]
  result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "trial 0: complete" in result.stderr and "trial 1: complete" in result.stderr
  report = (tmp_path / "search" / "search.md").read_text()
  assert "2 trials in `journal.log`: 2 complete" in report
  both = subprocess.run(args + ["--sweep=x.py"], cwd=ROOT, capture_output=True, text=True)
  assert both.returncode != 0 and "sweep" in both.stderr and "search" in both.stderr


def test_config_overrides_in_both_of_absl_s_forms():
  from ebm_jax import cli
  cli.parse_flags_with_config(["prog", "--config.seed", "3", "--config.data.dir=runs/2024"])
  assert cli.config_overrides() == ["seed=3", "data.dir=runs/2024"]
