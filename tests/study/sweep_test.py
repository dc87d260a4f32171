"""The study engine: grids, vmapped groups (equal to separate runs), divergence masking,
resuming, and the report."""

import json
import os

import chex
import jax
import numpy as np
import pytest

from ebm_jax.run import runner, train
from ebm_jax.study import report as study_report, sweep
from testutil import (inject_runaway, read_metrics, shipped_specs, tiny_image_config,
                      tiny_toy_config, without_clock)


def load_params(workdir, config):
  del config   # the run's own config.json rebuilds it
  return runner.load_run(workdir, need_images=False)[2]


def test_grid_expansion_names_and_groups_cells(tmp_path):
  grid = sweep.Grid("toy", {"sampler.num_steps": (2, 3), "optimizer.learning_rate": (1e-3, 1e-2),
                            "seed": (0, 1)}, base=tiny_toy_config(), fixed={"batch_size": 8})
  cells = sweep.expand(sweep.Sweep([grid]), None, str(tmp_path))
  assert len(cells) == 8
  assert cells[0].name == "toy-K2-lr0.001-seed0"
  assert all(c.config.batch_size == 8 for c in cells)
  assert cells[-1].config.sampler.num_steps == 3 and cells[-1].config.seed == 1
  assert isinstance(cells[0].config.optimizer.learning_rate, float)
  groups = sweep.group_cells(cells)
  # K changes the compiled step; the learning rate does not; each seed (an axis here) is a
  # replicate of a whole group by default.
  assert [len(g) for g in groups] == [2, 2, 2, 2]
  assert {(c.config.sampler.num_steps, c.config.seed) for c in groups[0]} == {(2, 0)}
  assert sweep.varying_keys(groups[0]) == ["optimizer.learning_rate"]
  shared = sweep.group_cells(sweep.expand(sweep.Sweep([grid], replicate_groups=False), None,
                                          str(tmp_path)))
  assert [len(g) for g in shared] == [4, 4]
  assert sweep.varying_keys(shared[0]) == ["seed", "optimizer.learning_rate"]
  assert [len(g) for g in sweep.group_cells(cells, max_models=1)] == [1] * 8


def test_seeds_are_the_last_axis_and_replicates_share_a_setting(tmp_path):
  grid = sweep.Grid("toy", {"sampler.num_steps": (2, 3)}, base=tiny_toy_config())
  cells = sweep.expand(sweep.Sweep([grid], seeds=(0, 1, 2)), None, str(tmp_path))
  assert [c.name for c in cells[:3]] == ["toy-K2-seed0", "toy-K2-seed1", "toy-K2-seed2"]
  assert [c.config.seed for c in cells[:3]] == [0, 1, 2]
  assert {c.setting for c in cells} == {"toy-K2", "toy-K3"}
  assert cells[0].factors == {"sampler.num_steps": 2}
  # By default each seed is a replicate of a whole group: K is static, so one cell per group.
  assert [[c.name for c in g] for g in sweep.group_cells(cells)] == [[c.name] for c in cells]
  shared = sweep.expand(sweep.Sweep([grid], seeds=(0, 1, 2), replicate_groups=False), None,
                        str(tmp_path))
  assert [len(g) for g in sweep.group_cells(shared)] == [3, 3]    # seeds sharing a group
  order = [g[0].name for g in sweep.group_cells(cells, shuffle_seed=0)]
  assert sorted(order) == sorted(c.name for c in cells) and order != [c.name for c in cells]
  assert order == [g[0].name for g in sweep.group_cells(cells, shuffle_seed=0)]  # reproducible
  unreplicated = sweep.expand(sweep.Sweep([grid]), None, str(tmp_path))
  assert [c.name for c in unreplicated] == ["toy-K2", "toy-K3"]
  both = sweep.Grid("toy", {"seed": (0, 1)}, base=tiny_toy_config())
  with pytest.raises(sweep.SweepError, match="sweeps 'seed' and the sweep has seeds="):
    sweep.expand(sweep.Sweep([both], seeds=(0, 1)), None, str(tmp_path))


@pytest.mark.parametrize("spec", list(shipped_specs("sweeps", "get_sweep")), ids=os.path.basename)
def test_every_shipped_sweep_and_variant_expands_into_valid_cells(spec, tmp_path):
  cells = sweep.expand(sweep.load_sweep(spec), None, str(tmp_path))
  assert cells and len({c.name for c in cells}) == len(cells)


@pytest.mark.parametrize("axes, message", [
    ({"sampler.nope": (1,)}, "sampler.nope: unknown config key"),
    ({"sampler.num_steps": ("many",)}, "sampler.num_steps='many'"),
    ({"sampler.num_steps": ()}, "needs a non-empty tuple"),
    ({"sampler.name": ("metropolis",)}, "sampler.name"),
])
def test_bad_sweeps_fail_in_one_line(tmp_path, axes, message):
  with pytest.raises(sweep.SweepError, match=message.replace("(", r"\(")):
    sweep.expand(sweep.Sweep([sweep.Grid("g", axes, base=tiny_toy_config())]), None,
                 str(tmp_path))


def test_vmapped_group_equals_separate_runs(tmp_path):
  # SGD: Adam divides near-zero gradients by their own magnitude, which turns float rounding
  # differences between a batched and an unbatched matmul into visible parameter differences.
  base = tiny_toy_config(**{"optimizer.name": "sgd", "optimizer.beta1": 0.0})
  grid = sweep.Grid("g", {"optimizer.learning_rate": (0.05, 0.02),
                          "sampler.step_size": (0.05, 0.02)}, base=base)
  cells = sweep.expand(sweep.Sweep([grid], seeds=(0, 3)), None, str(tmp_path / "study"))
  cells = [cells[0], cells[-1]]          # differ in all three keys, the seed included
  assert [c.config.seed for c in cells] == [0, 3]
  sweep.train_group(cells, log=lambda m: None)
  for cell in cells:
    status = sweep.read_status(cell)
    assert status["status"] == "finished" and status["models_in_group"] == 2
    assert os.path.exists(os.path.join(cell.workdir, "samples.npz"))
    alone = str(tmp_path / "alone" / cell.name)
    train.train_and_evaluate(cell.config, alone)
    grouped = load_params(cell.workdir, cell.config)
    single = load_params(alone, cell.config)
    assert int(grouped.step) == int(single.step) == cell.config.num_train_steps
    chex.assert_trees_all_close(grouped.params, single.params, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(grouped.chain_store, single.chain_store, atol=1e-5, rtol=1e-5)
    grouped_rows, single_rows = read_metrics(cell.workdir), read_metrics(alone)
    np.testing.assert_allclose([r["d_s_t"] for r in grouped_rows],
                               [r["d_s_t"] for r in single_rows], rtol=1e-4, atol=1e-6)


def test_a_diverging_model_is_masked_and_reported_while_the_others_finish(tmp_path):
  # loss.scale is vmapped: one model's loss passes the divergence threshold at the first step.
  base = tiny_toy_config(divergence_threshold=1e3)
  grid = sweep.Grid("g", {"loss.scale": (1.0, 1e9)}, base=base)
  good, bad = sweep.expand(sweep.Sweep([grid]), None, str(tmp_path))
  sweep.train_group([good, bad], log=lambda m: None)
  assert sweep.read_status(bad)["status"] == "diverged"
  assert sweep.read_status(bad)["diverged_at_step"] == 1
  assert not os.path.exists(os.path.join(bad.workdir, "samples.npz"))
  assert sorted(os.listdir(os.path.join(bad.workdir, "checkpoints"))) == ["0"]
  assert sweep.read_status(good)["status"] == "finished"
  state = load_params(good.workdir, good.config)
  assert int(state.step) == base.num_train_steps
  assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(state.params))
  rows = [study_report.cell_row(c) for c in (good, bad)]
  assert rows[1]["status"] == "diverged" and np.isnan(rows[1]["quality"])
  assert rows[0]["status"] == "finished" and np.isfinite(rows[0]["quality"])


def test_by_default_a_study_cell_that_runs_away_ends_there_as_unstable(tmp_path, monkeypatch):
  # A study compares treatments: recovering at half the learning rate (a single run's
  # default) would change the one it measures, so the cell ends, counted as diverged.
  base = tiny_toy_config(**{"num_train_steps": 12, "checkpoint_every_steps": 5})
  grid = sweep.Grid("g", {"optimizer.learning_rate": (0.05, 1e-3)}, base=base)
  fast, slow = sweep.expand(sweep.Sweep([grid]), None, str(tmp_path))
  assert fast.config.recovery.max_retries == 0 and base.recovery.max_retries == 3
  injected = inject_runaway(monkeypatch, at_step=9, lr=0.05)
  sweep.train_group([fast, slow], log=lambda m: None)
  assert injected == [(9, 0.05)]
  status = sweep.read_status(fast)
  assert status["status"] == "diverged" and status["diverged_at_step"] == 9
  assert status["recoveries"] == 0 and status["last_good_step"] == 5
  assert sweep.read_status(slow)["status"] == "finished"
  row = study_report.cell_row(fast)
  assert row["status"] == "diverged" and row["stable"] is False
  with pytest.raises(sweep.SweepError, match=r"Sweep.recovery: expected one of \('stop', "
                                             r"'new_keys'\), got 'halve_lr'"):
    sweep.expand(sweep.Sweep([grid], recovery="halve_lr"), None, str(tmp_path))


def test_interrupted_group_resumes_exactly_and_a_finished_sweep_does_no_work(tmp_path):
  grid = sweep.Grid("g", {"optimizer.learning_rate": (1e-3, 3e-3)},
                    base=tiny_toy_config(checkpoint_every_steps=3))
  study = sweep.Sweep([grid])
  full = sweep.run_sweep(study, None, str(tmp_path / "full"), log=lambda m: None)
  # Interrupted after the step-3 checkpoint: train 3 steps, then forget that it finished.
  part = sweep.run_sweep(study, None, str(tmp_path / "part"),
                         extra_overrides={"num_train_steps": 3}, log=lambda m: None)
  for cell in part:
    os.remove(os.path.join(cell.workdir, sweep.STATUS_FILE))
  part = sweep.run_sweep(study, None, str(tmp_path / "part"), log=lambda m: None)
  for a, b in zip(full, part):
    chex.assert_trees_all_close(load_params(a.workdir, a.config).params,
                                load_params(b.workdir, b.config).params, atol=1e-6)
  messages = []
  mtimes = [os.path.getmtime(os.path.join(c.workdir, "samples.npz")) for c in full]
  sweep.run_sweep(study, None, str(tmp_path / "full"), log=messages.append)
  assert "0 to train now" in messages[0]
  assert mtimes == [os.path.getmtime(os.path.join(c.workdir, "samples.npz")) for c in full]


def test_a_cell_killed_while_finishing_gets_its_missing_outputs_and_status(tmp_path):
  base = tiny_toy_config(**{"longrun.at_end": True, "longrun.num_steps": 10,
                            "longrun.num_chains": 16})
  study = sweep.Sweep([sweep.Grid("g", {"optimizer.learning_rate": (1e-3, 3e-3)}, base=base)])
  cells = sweep.run_sweep(study, None, str(tmp_path), log=lambda m: None)
  done = [json.load(open(os.path.join(c.workdir, "longrun.json"))) for c in cells]
  rows = [open(os.path.join(c.workdir, "metrics.jsonl")).read() for c in cells]
  # Killed after samples.npz, during the long-run check: no longrun.json, no status.
  for cell in cells:
    os.remove(os.path.join(cell.workdir, "longrun.json"))
    os.remove(os.path.join(cell.workdir, sweep.STATUS_FILE))
  messages = []
  sweep.run_sweep(study, None, str(tmp_path), log=messages.append)
  assert "2 to train now" in messages[0]
  for cell, before, logged in zip(cells, done, rows):
    status = sweep.read_status(cell)
    assert status["status"] == "finished" and status["final_step"] == 6
    again = json.load(open(os.path.join(cell.workdir, "longrun.json")))
    assert again["verdict"] == before["verdict"] and again["step"] == 6
    assert again["short_run"] == pytest.approx(before["short_run"], rel=1e-6)
    assert open(os.path.join(cell.workdir, "metrics.jsonl")).read() == logged   # no training


def test_image_cells_train_as_a_group_with_every_periodic_output(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds
  monkeypatch.setenv("EBM_CACHE_DIR", str(tmp_path / "cache"))
  base = tiny_image_config(**{"data.dir": str(tmp_path / "nodata"), "init.name": "replay",
                              "eval.every_steps": 4, "longrun.every_steps": 3,
                              "longrun.num_steps": 5, "longrun.num_chains": 8,
                              "diagnostics.figures": True})
  grid = sweep.Grid("img", {"optimizer.learning_rate": (1e-3, 3e-3),
                            "init.reinit_prob": (0.05, 0.5)}, base=base)
  cells = sweep.expand(sweep.Sweep([grid]), None, str(tmp_path / "study"))
  assert [len(g) for g in sweep.group_cells(cells)] == [4]
  with tfds.testing.mock_data(num_examples=32):
    sweep.train_group(cells, log=lambda m: None)
  for cell in cells:
    assert sweep.read_status(cell)["status"] == "finished"
    assert np.load(os.path.join(cell.workdir, "samples.npz"))["x"].shape == (20, 28, 28, 1)
    for name in ("images/samples_000006.png", "images/longrun_000003.png",
                 "plots/longrun_000006.png", "eval_samples/samples_000004.npz"):
      assert os.path.exists(os.path.join(cell.workdir, name)), name
    with open(os.path.join(cell.workdir, "eval.json")) as f:
      assert [r["step"] for r in json.load(f)] == [4, 6]


def test_toy_cells_write_landscapes_and_long_runs_inside_a_group(tmp_path):
  base = tiny_toy_config(**{"longrun.every_steps": 3, "longrun.num_steps": 10,
                            "longrun.num_chains": 16, "diagnostics.landscape_every_steps": 3,
                            "diagnostics.figures": True})
  # The cells differ in the sampler's temperature 2 step / noise^2 (0.5 and 10), not only in
  # their seeds: each cell's model density is read at its own.
  grid = sweep.Grid("g", {"sampler.noise_std": (0.2, 0.1), "sampler.step_size": (0.01, 0.05)},
                    base=base)
  cells = sweep.expand(sweep.Sweep([grid]), None, str(tmp_path))
  cells = [cells[0], cells[-1]]
  sweep.train_group(cells, log=lambda m: None)
  kls = []
  for cell in cells:
    for name in ("plots/landscape_000006.png", "plots/longrun_000003.png",
                 "images/longrun_000006.png"):
      assert os.path.exists(os.path.join(cell.workdir, name)), name
    # The row's KL(true || model) is the final checkpoint's, recomputed alone from the cell's
    # own config.json at its own temperature.
    _, alone, state, hp = runner.load_run(cell.workdir, need_images=False)
    assert alone.temperature(hp) == pytest.approx(
        2 * cell.config.sampler.step_size / cell.config.sampler.noise_std ** 2, rel=1e-6)
    expected = alone.landscape(state, hp, 6, samples=np.zeros((50, 2), np.float32))
    kls.append(read_metrics(cell.workdir)[-1]["kl_true_model"])
    assert kls[-1] == pytest.approx(expected.kl_true_model, rel=1e-5)
  assert abs(kls[0] - kls[1]) > 0.01


def test_a_single_run_equals_a_group_of_one(tmp_path):
  config = tiny_toy_config(**{"init.name": "replay"})
  alone = str(tmp_path / "alone")
  single = train.train_and_evaluate(config, alone)
  (cell,) = sweep.expand(sweep.Sweep([sweep.Grid("g", {"seed": (0,)}, base=config)]), None,
                         str(tmp_path / "study"))
  sweep.train_group([cell], log=lambda m: None)
  grouped = load_params(cell.workdir, cell.config)
  # params, optimizer state, buffer, rng
  chex.assert_trees_all_equal(without_clock(single), without_clock(grouped))
  timing = ("wall_time", "samples_per_sec")
  strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]
  assert strip(read_metrics(alone)) == strip(read_metrics(cell.workdir))
  np.testing.assert_array_equal(np.load(os.path.join(alone, "samples.npz"))["x"],
                                np.load(os.path.join(cell.workdir, "samples.npz"))["x"])


def test_in_a_group_only_the_diverging_model_recovers(tmp_path, monkeypatch):
  base = tiny_toy_config(**{"divergence_threshold": 1e3, "num_train_steps": 600,
                            "log_every_steps": 100, "checkpoint_every_steps": 200})
  grid = sweep.Grid("g", {"optimizer.learning_rate": (3e-3, 1e-3)}, base=base)
  # The study asks for recoveries with new chain keys only: the treatment (lr) is unchanged.
  fast, slow = sweep.expand(sweep.Sweep([grid], recovery="new_keys"), None, str(tmp_path))
  assert fast.config.recovery.lr_factor == 1.0 and fast.config.recovery.max_retries == 3
  injected = inject_runaway(monkeypatch, at_step=339, lr=3e-3)
  sweep.train_group([fast, slow], log=lambda m: None)
  assert injected == [(339, 3e-3)]
  assert sweep.read_status(fast)["status"] == sweep.read_status(slow)["status"] == "finished"
  assert sweep.read_status(fast)["recoveries"] == 1 and sweep.read_status(slow)["recoveries"] == 0
  assert [study_report.cell_row(c)["recoveries"] for c in (fast, slow)] == [1, 0]
  for cell in (fast, slow):
    assert [r["step"] for r in read_metrics(cell.workdir)] == [100, 200, 300, 400, 500, 600]
    assert int(load_params(cell.workdir, cell.config).step) == 600
  events = lambda c: [r for r in read_metrics(c.workdir, events=True) if "event" in r]  # noqa: E731
  assert len(events(fast)) == 1 and events(slow) == []
  assert events(fast)[0]["lr_scale"] == 1.0
  lrs = [r["lr"] for r in read_metrics(fast.workdir)]
  np.testing.assert_allclose(lrs, 3e-3, rtol=1e-6)                  # before and after it
  assert not [n for n in os.listdir(slow.workdir) if "_until_step_" in n]   # never rewound
