"""The train step and loop: bit-exact resume, no retracing, stores, divergence, outputs."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ebm_jax import config as config_lib
from ebm_jax import hparams
from ebm_jax.run import checkpointing, loop, train
from testutil import (CONTRACT_KEYS, NO_IMAGES, ROOT, diverging_toy, make_step, read_metrics,
                      tiny_image_config, tiny_toy_config, without_clock)


def test_train_step_updates_params_bank_and_step_without_retracing():
  config = tiny_toy_config()
  objective, state, _ = make_step(config)
  step = jax.jit(chex.assert_max_traces(n=1)(objective.train_step))
  bank0 = np.asarray(state.chain_store.samples)
  new, metrics, images = step(state, hparams.from_config(config), NO_IMAGES)
  for lr in (1e-3, 2e-3, 5e-4):          # other hyper-parameters: the same program
    new, metrics, images = step(new, hparams.from_config(
        tiny_toy_config(**{"optimizer.learning_rate": lr})), NO_IMAGES)
  assert int(new.step) == 4
  assert float(metrics["finite"]) == 1.0
  changed_rows = np.any(np.asarray(new.chain_store.samples) != bank0, axis=1)
  assert 16 <= changed_rows.sum() <= 64          # four batches of 16 written back
  assert not jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)),
                                       new.params, state.params))
  for key in ("loss", "d_s_t", "energy_data", "energy_samples", "energy_start", "energy_end",
              "grad_norm_start", "grad_norm_end", "r_t", "lr"):
    assert np.isfinite(float(metrics[key])), key
  chex.assert_shape([images["data"], images["starts"], images["samples"]], [(16, 2)] * 3)


def test_the_persistent_bank_holds_the_chains_end_points():
  config = tiny_toy_config(**{"init.bank_size": 16})   # batch == bank: every row is drawn
  comps, state, step = make_step(config)
  new, _, images = step(state, NO_IMAGES)
  np.testing.assert_array_equal(np.sort(np.asarray(new.chain_store.samples), axis=0),
                                np.sort(np.asarray(images["samples"]), axis=0))
  np.testing.assert_array_equal(np.sort(np.asarray(state.chain_store.samples), axis=0),
                                np.sort(np.asarray(images["starts"]), axis=0))


@pytest.mark.parametrize("init", ["uniform", "gaussian", "data", "replay"])
def test_every_chain_init_trains(init):
  comps, state, step = make_step(tiny_toy_config(**{"init.name": init}))
  new, metrics, _ = step(state, NO_IMAGES)
  assert int(new.step) == 1 and float(metrics["finite"]) == 1.0


@pytest.mark.parametrize("sampler", ["gradient_descent", "momentum_sgd", "adam", "mala", "hmc"])
def test_every_sampler_trains(sampler):
  comps, state, step = make_step(tiny_toy_config(**{"sampler.name": sampler}))
  new, metrics, _ = step(state, NO_IMAGES)
  assert int(new.step) == 1 and float(metrics["finite"]) == 1.0
  if sampler in ("mala", "hmc"):
    assert 0.0 < float(metrics["acceptance_rate"]) <= 1.0


def test_spectral_norm_state_advances_once_per_update():
  comps, state, step = make_step(tiny_toy_config(**{"model.spectral_norm": True}))
  new, _, _ = step(state, NO_IMAGES)
  before, after = jax.tree.leaves(state.model_state), jax.tree.leaves(new.model_state)
  assert len(before) == 10                       # u and sigma of 5 layers
  assert any(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("init", ["persistent", "replay"])
def test_nonfinite_update_is_not_applied_to_any_part_of_the_state(init):
  config = tiny_toy_config(**{"optimizer.learning_rate": 1e30, "optimizer.name": "sgd",
                              "optimizer.beta1": 0.0, "loss.scale": 1e30, "init.name": init,
                              "init.start_noise_std": 0.1})
  comps, state, step = make_step(config)
  for _ in range(5):
    new, metrics, _ = step(state, NO_IMAGES)
    if not float(metrics["finite"]):
      break
    state = new
  assert float(metrics["finite"]) == 0.0
  # The whole state is the last good one: the bank / buffer too (no starts, noisy or not,
  # written back; the replay pointer not advanced).
  chex.assert_trees_all_equal(new, state)


def test_training_writes_the_contract_outputs(tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_toy_config(**{"diagnostics.figures": True}), workdir)
  rows = read_metrics(workdir)
  assert [r["step"] for r in rows] == [2, 4, 6]
  assert CONTRACT_KEYS <= set(rows[0])
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["sampler"]["num_steps"] == 5
  samples = np.load(os.path.join(workdir, "samples.npz"))["x"]
  assert samples.shape == (20, 2) and samples.dtype == np.float32
  assert sorted(os.listdir(os.path.join(workdir, "images"))) == [
      "points_000002.png", "points_000004.png", "points_000006.png"]
  assert os.path.exists(os.path.join(workdir, "plots", "training.png"))
  assert checkpointing.Checkpointer(workdir).all_steps() == [3, 6]


def test_resume_is_bit_exact(tmp_path):
  config = tiny_toy_config(**{"init.name": "replay"})
  straight = train.train_and_evaluate(config, str(tmp_path / "straight"))
  config.num_train_steps = 3
  train.train_and_evaluate(config, str(tmp_path / "resumed"))
  config.num_train_steps = 6                        # raising the steps continues the run
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  # params, opt state, buffer, step, rng
  chex.assert_trees_all_equal(without_clock(straight), without_clock(resumed))
  a, b = read_metrics(str(tmp_path / "straight")), read_metrics(str(tmp_path / "resumed"))
  assert [r["step"] for r in b] == [2, 3, 4, 6]    # the first run logged its last step, 3
  by_step = {r["step"]: r for r in b}
  for ra in (a[0], a[2]):                          # same logging windows: steps 1-2 and 5-6
    assert ra["loss"] == by_step[ra["step"]]["loss"]
    assert ra["d_s_t"] == by_step[ra["step"]]["d_s_t"]
  # The finished run's first samples were kept, not overwritten.
  assert os.path.exists(tmp_path / "resumed" / "samples_before_step_6.npz")


def test_rerunning_a_finished_run_does_no_work(tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_toy_config()
  train.train_and_evaluate(config, workdir)
  before = {name: os.path.getmtime(os.path.join(workdir, name))
            for name in ("metrics.jsonl", "samples.npz", "config.json")}
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 6
  after = {name: os.path.getmtime(os.path.join(workdir, name)) for name in before}
  assert before == after
  with open(os.path.join(workdir, "log.txt")) as f:
    assert "already finished" in f.read()


def test_a_changed_config_keeps_the_old_one(tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_toy_config()
  config.num_train_steps = 3
  train.train_and_evaluate(config, workdir)
  config.num_train_steps = 4
  train.train_and_evaluate(config, workdir)
  assert os.path.exists(os.path.join(workdir, "config_until_step_3.json"))


def test_a_run_that_cannot_recover_stops_with_a_message_and_keeps_the_last_good_state(tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_toy_config(**{"optimizer.learning_rate": 1e30, "optimizer.name": "sgd",
                              "optimizer.beta1": 0.0, "loss.scale": 1e30})
  with pytest.raises(loop.TrainingDiverged,
                     match=r"training diverged at step \d+ after 3 recoveries") as error:
    train.train_and_evaluate(config, workdir)
  events = [r for r in read_metrics(workdir, events=True) if r.get("event") == "recovery"]
  assert [e["recovery"] for e in events] == [1, 2, 3]
  # Every update is rejected, so the last good state is the initial one, step 0: that is the
  # checkpoint and the grids of its chains.
  assert "the last good state (step 0) is checkpointed" in str(error.value)
  with checkpointing.Checkpointer(workdir) as ckpt:
    assert ckpt.all_steps() == [0]
  images = os.listdir(os.path.join(workdir, "images"))
  assert {"diverged_last_good_starts_000000.png", "diverged_last_good_samples_000000.png"} <= set(
      images)


# Orbax leaves its aborted async reads to the garbage collector when a restore fails.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_checkpoint_of_another_shape_is_a_clear_error(tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_toy_config(**{"num_train_steps": 3}), workdir)
  with pytest.raises(checkpointing.CheckpointError, match="does not match this config"):
    train.train_and_evaluate(tiny_toy_config(**{"model.n_f": 16}), workdir)


# Orbax leaves its aborted async reads to the garbage collector when a restore fails.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_unreadable_checkpoint_is_moved_aside_and_the_previous_one_used(tmp_path):
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(tiny_toy_config(), workdir)          # checkpoints 3 and 6
  ckpt_dir = os.path.join(workdir, "checkpoints", "6")
  for root, _, files in os.walk(ckpt_dir):
    for name in files:
      if name not in ("_CHECKPOINT_METADATA", "commit_success.txt"):
        with open(os.path.join(root, name), "wb") as f:
          f.write(b"garbage")
  config = tiny_toy_config()
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 6                                  # retrained 4..6 from step 3
  assert os.path.isdir(os.path.join(workdir, "checkpoints_unreadable", "6"))


def test_image_training_on_small_data_with_evaluation(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds
  monkeypatch.setenv("EBM_CACHE_DIR", str(tmp_path / "cache"))
  config = tiny_image_config(**{"data.dir": str(tmp_path / "nodata"), "eval.every_steps": 4})
  with tfds.testing.mock_data(num_examples=32):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  records = json.loads((tmp_path / "run" / "eval.json").read_text())
  assert [r["step"] for r in records] == [4, 6]
  assert (tmp_path / "run" / "eval_samples" / "samples_000004.npz").exists()
  samples = np.load(tmp_path / "run" / "samples.npz")["x"]
  assert samples.shape == (20, 28, 28, 1)
  names = os.listdir(tmp_path / "run" / "images")
  for kind in ("data", "starts", "samples"):
    assert f"{kind}_000006.png" in names


def test_a_run_killed_during_its_evaluation_is_evaluated_when_run_again(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds
  monkeypatch.setenv("EBM_CACHE_DIR", str(tmp_path / "cache"))
  config = tiny_image_config(**{"data.dir": str(tmp_path / "nodata"), "eval.at_end": True})
  workdir = tmp_path / "run"
  with tfds.testing.mock_data(num_examples=32):
    train.train_and_evaluate(config, str(workdir))
    first = json.loads((workdir / "eval.json").read_text())
    rows = (workdir / "metrics.jsonl").read_text()
    (workdir / "eval.json").unlink()           # killed after samples.npz, while scoring them
    train.train_and_evaluate(config, str(workdir))
    again = json.loads((workdir / "eval.json").read_text())
    assert [r["step"] for r in again] == [6]
    assert again[0]["fid"] == pytest.approx(first[0]["fid"], rel=1e-6)   # the same samples
    assert (workdir / "metrics.jsonl").read_text() == rows               # nothing retrained
    train.train_and_evaluate(config, str(workdir))
    assert len(json.loads((workdir / "eval.json").read_text())) == 1     # evaluated once


def test_diagnostics_long_runs_and_landscapes_are_written(tmp_path):
  workdir = tmp_path / "run"
  config = tiny_toy_config(**{"longrun.every_steps": 3, "longrun.num_steps": 20,
                              "longrun.num_chains": 16, "longrun.init": "persistent",
                              "diagnostics.landscape_every_steps": 3,
                              "diagnostics.landscape_res": 30, "diagnostics.kde_samples": 50,
                              "diagnostics.figures": True})
  train.train_and_evaluate(config, str(workdir))
  for name in ("plots/diagnostics.png", "plots/landscape_000006.png", "plots/longrun_000003.png",
               "plots/longrun_000006.png", "images/longrun_000003.png"):
    assert (workdir / name).exists(), name
  # Without figures: the same measurements and grids, no matplotlib files.
  config.diagnostics.figures = False
  train.train_and_evaluate(config, str(tmp_path / "no_figures"))
  assert not (tmp_path / "no_figures" / "plots").exists()
  assert (tmp_path / "no_figures" / "images" / "longrun_000003.png").exists()
  assert "kl_true_kde" in read_metrics(tmp_path / "no_figures")[-1]
  rows = read_metrics(str(workdir))
  assert "kl_true_model" in rows[-1] and "kl_true_kde" in rows[-1]
  assert "kl_true_model" not in rows[0]
  with np.load(workdir / "diagnostics.npz") as trace:
    np.testing.assert_array_equal(trace["step"], np.arange(1, 7))
    assert trace["d_s_t"].shape == (6,)
  log = (workdir / "log.txt").read_text()
  assert "long run of 20 steps" in log and "too early for a verdict (6 steps)" in log


def test_a_divergence_writes_the_metrics_leading_up_to_it(tmp_path):
  # SGD at lr 1 with loss scale 1e3: update 1 is good, update 2 passes |loss| 1e4.
  config = tiny_toy_config(**{"optimizer.name": "sgd", "optimizer.beta1": 0.0,
                              "optimizer.learning_rate": 1.0, "loss.scale": 1e3,
                              "divergence_threshold": 1e4, "log_every_steps": 50,
                              "recovery.max_retries": 0})
  workdir = str(tmp_path / "run")
  with pytest.raises(loop.TrainingDiverged, match="training diverged at step 2"):
    train.train_and_evaluate(config, workdir)
  assert [r["step"] for r in read_metrics(workdir)] == [1]
  with np.load(os.path.join(workdir, "diagnostics.npz")) as trace:
    np.testing.assert_array_equal(trace["step"], [1])


def test_resuming_sets_the_later_history_aside_instead_of_deleting_it(tmp_path):
  workdir = tmp_path / "run"
  train.train_and_evaluate(tiny_toy_config(), str(workdir))          # checkpoints 3 and 6
  before = (workdir / "metrics.jsonl").read_text()
  with open(workdir / "metrics.jsonl", "a") as f:
    f.write('{"step": 7, "loss": 0.1, "d_s')                          # a write cut short
  ckpt = checkpointing.Checkpointer(str(workdir))
  ckpt.close()
  os.rename(workdir / "checkpoints" / "6", tmp_path / "6")            # resume from step 3
  train.train_and_evaluate(tiny_toy_config(), str(workdir))
  kept = (workdir / "metrics_until_step_6.jsonl").read_text()
  assert kept.startswith(before) and kept.endswith('"d_s')            # every old line, as it was
  assert [r["step"] for r in read_metrics(str(workdir))] == [2, 4, 6]
  assert (workdir / "diagnostics_until_step_6.npz").exists()
  assert "1 unreadable line(s)" in (workdir / "log.txt").read_text()


def test_no_silent_restart_from_step_0_over_a_history(tmp_path):
  workdir = tmp_path / "run"
  train.train_and_evaluate(tiny_toy_config(), str(workdir))
  os.rename(workdir / "checkpoints", tmp_path / "moved")
  files = sorted(os.listdir(workdir))
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"metrics up to step 6 but no checkpoint to resume from.*new --workdir"):
    train.train_and_evaluate(tiny_toy_config(**{"num_train_steps": 8}), str(workdir))
  assert sorted(os.listdir(workdir)) == files


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_config_json_is_only_replaced_when_training_continues(tmp_path):
  workdir = tmp_path / "run"
  train.train_and_evaluate(tiny_toy_config(), str(workdir))
  original = (workdir / "config.json").read_text()
  train.train_and_evaluate(tiny_toy_config(**{"optimizer.learning_rate": 5e-3}), str(workdir))
  assert (workdir / "config.json").read_text() == original          # finished: nothing to do
  with pytest.raises(checkpointing.CheckpointError, match="does not match"):
    train.train_and_evaluate(tiny_toy_config(**{"model.n_f": 16, "num_train_steps": 8}),
                             str(workdir))
  assert (workdir / "config.json").read_text() == original          # shapes differ: untouched
  assert not list(workdir.glob("config_until_step_*"))


def test_a_run_diverging_mid_run_recovers_from_its_last_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  state = train.train_and_evaluate(diverging_toy(), workdir)
  assert int(state.step) == 600 and int(state.recoveries) == 1
  assert np.all(np.isfinite(np.load(os.path.join(workdir, "samples.npz"))["x"]))
  events = [r for r in read_metrics(workdir, events=True) if r.get("event") == "recovery"]
  assert [(e["step"], e["lr_scale"]) for e in events] == [(200, 0.5)]
  rejected = events[0]["rejected_step"]
  assert 200 < rejected <= 400
  # The energies run away (over 1000x their early scale) before |loss| passes its threshold.
  assert events[0]["cause"].startswith(("runaway: ", "|loss| "))
  assert [r["step"] for r in read_metrics(workdir)] == [100, 200, 300, 400, 500, 600]
  # The rows logged before the rewind are kept whole beside the new ones.
  kept = os.path.join(workdir, f"metrics_until_step_{rejected - 1}.jsonl")
  assert [json.loads(line)["step"] for line in open(kept)][-1] == rejected - 1
  log = open(os.path.join(workdir, "log.txt")).read()
  assert "recovery 1/3: back to step 200 with new chain keys and the learning rate x0.5" in log


def test_a_recovered_run_resumes_bit_exactly_from_before_and_after_its_recovery(tmp_path):
  straight = train.train_and_evaluate(diverging_toy(), str(tmp_path / "straight"))
  # Stopped at the straight run's checkpoints before the divergence (it runs away between
  # updates 200 and 400, where depends on the CPU) and after its recovery: a stop between them
  # would add a checkpoint the straight run lacks, and so another point to recover to.
  for stop in (200, 400):
    workdir = str(tmp_path / f"stopped_{stop}")
    train.train_and_evaluate(diverging_toy(num_train_steps=stop), workdir)
    resumed = train.train_and_evaluate(diverging_toy(), workdir)
    chex.assert_trees_all_equal(without_clock(straight), without_clock(resumed))


def test_runaway_energies_are_a_divergence_not_a_finished_run(tmp_path):
  # MALA on the toy GMM recipe trains on with r_t growing a thousandfold (toy_gmm's healthy
  # runs stay within 2x of their scale over updates 101-200).
  config = tiny_toy_config(**{"sampler.name": "mala", "model.n_f": 32, "init.bank_size": 1000,
                              "batch_size": 100, "sampler.num_steps": 100,
                              "sampler.step_size": 1.0, "sampler.noise_std": 0.125,
                              "num_train_steps": 1200, "log_every_steps": 100,
                              "checkpoint_every_steps": 100, "num_final_samples": 100,
                              "recovery.max_retries": 0})   # recovery is tested above
  workdir = str(tmp_path / "run")
  with pytest.raises(loop.TrainingDiverged,
                     match=r"diverged at step \d+ \(runaway: \|\w+\| \S+ is \S+x its median "
                           r"\S+ over updates 101-200\)"):
    train.train_and_evaluate(config, workdir)
  assert not os.path.exists(os.path.join(workdir, "samples.npz"))


KILLED_RUN = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from ebm_jax.run import train
from testutil import diverging_toy
train.train_and_evaluate(diverging_toy(log_every_steps=1), {workdir!r})
"""


def test_a_run_killed_during_its_recovery_resumes_bit_exactly(tmp_path):
  import signal
  import subprocess
  import sys
  import time
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # tests/
  workdir = tmp_path / "killed"
  code = KILLED_RUN.format(root=os.path.dirname(here), tests=here, workdir=str(workdir))
  proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  log, deadline = workdir / "log.txt", time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if log.exists() and "recovery 1/3" in log.read_text():
      proc.send_signal(signal.SIGKILL)      # kill -9 right after the rewind
      break
    time.sleep(0.02)
  assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
  resumed = train.train_and_evaluate(diverging_toy(), str(workdir))
  straight = train.train_and_evaluate(diverging_toy(), str(tmp_path / "straight"))
  chex.assert_trees_all_equal(without_clock(straight), without_clock(resumed))
  assert int(resumed.recoveries) == 1


def test_objective_name_leaves_the_run_ids_of_existing_runs_as_they_were():
  # The same command finds its run: where objective.name is what init.name chose before the key
  # existed, the id is that of the config without it; another objective makes another run.
  for recipe in ("mnist.py", "mnist_coopnets.py", "toy_gmm.py"):
    c = config_lib.load_recipe(os.path.join(ROOT, "configs", recipe))
    before = c.to_dict()
    del before["objective"]
    assert train.run_id(c) == train.run_id(ml_collections.ConfigDict(before)), recipe
    c.objective.name = "another"
    assert train.run_id(c) != train.run_id(ml_collections.ConfigDict(before)), recipe

