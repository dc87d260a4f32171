"""The adaptive search: Optuna ask-and-tell over vmapped groups, in a shared journal file."""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from ebm_jax.study import search as search_lib
from ebm_jax.study import sweep
from testutil import shipped_specs, tiny_toy_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def synthetic(cells, trials, log):
  """A known objective: (log10 lr + 2)^2 + (step_size - 0.3)^2, minimum at lr 1e-2, step 0.3.
  Writes a marker into each cell's directory, refusing one that exists (a duplicated cell)."""
  del trials, log
  out = []
  for cell in cells:
    os.makedirs(cell.workdir, exist_ok=True)
    with open(os.path.join(cell.workdir, "claimed"), "x") as f:
      f.write(str(os.getpid()))
    lr, step = cell.overrides["optimizer.learning_rate"], cell.overrides["sampler.step_size"]
    out.append(("complete", (np.log10(lr) + 2) ** 2 + (step - 0.3) ** 2))
  return out


def synthetic_search(num_trials=24, per_group=4, stale_after_s=900.0):
  return search_lib.Search(
      "synthetic", tiny_toy_config(),
      {"optimizer.learning_rate": search_lib.Float(1e-5, 1.0, log=True),
       "sampler.step_size": search_lib.Float(0.01, 1.0)},
      num_trials=num_trials, trials_per_group=per_group, prune=False,
      stale_after_s=stale_after_s)


def test_search_finds_the_known_optimum_of_a_synthetic_objective(tmp_path):
  study = search_lib.run_search(synthetic_search(), str(tmp_path), train=synthetic, seed=0,
                                log=lambda m: None)
  assert len(study.trials) == 24
  best = study.best_trial
  assert abs(np.log10(best.params["optimizer.learning_rate"]) + 2) < 0.5
  assert abs(best.params["sampler.step_size"] - 0.3) < 0.25
  assert best.value < 0.1
  report = (tmp_path / "search.md").read_text()
  assert "24 trials in `journal.log`: 24 complete" in report
  assert f"Best: trial {best.number}" in report
  # The same command again: the journal holds 24 trials, nothing new is asked.
  again = search_lib.run_search(synthetic_search(), str(tmp_path), train=synthetic,
                                log=lambda m: None)
  assert len(again.trials) == 24


def test_two_processes_share_one_journal_without_duplicating_a_cell(tmp_path):
  # Both workers start together (a file barrier) and take 0.2 s per round, so both get work.
  script = textwrap.dedent(f"""
      import os, sys, time
      sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, 'tests')!r},
                       {os.path.join(ROOT, 'tests', 'study')!r}]
      from search_test import synthetic, synthetic_search
      from ebm_jax.study import search
      barrier = {str(tmp_path / "ready")!r}
      os.makedirs(barrier, exist_ok=True)
      open(os.path.join(barrier, str(os.getpid())), "w").close()
      while len(os.listdir(barrier)) < 2:
        time.sleep(0.05)
      def slow(cells, trials, log):
        time.sleep(0.2)
        return synthetic(cells, trials, log)
      search.run_search(synthetic_search(num_trials=12, per_group=2), {str(tmp_path)!r},
                        train=slow, log=lambda m: None)
  """)
  workers = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
  for w in workers:
    assert w.wait(timeout=300) == 0, w.stderr.read()
  cells = sorted(os.listdir(tmp_path / "cells"))
  study = search_lib.open_study(synthetic_search(), str(tmp_path))
  numbers = [t.number for t in study.trials]
  assert len(numbers) == len(set(numbers)) and 12 <= len(numbers) <= 13   # overshoot <= 1
  assert cells == [f"trial-{n:04d}" for n in sorted(numbers)]
  assert all(t.state.name == "COMPLETE" for t in study.trials)
  owners = {open(tmp_path / "cells" / c / "claimed").read() for c in cells}
  assert len(owners) == 2                                  # both processes did work


def test_a_maximized_objective_finds_the_maximum_and_reports_it_first(tmp_path):
  def negated(cells, trials, log):
    return [(state, -value) for state, value in synthetic(cells, trials, log)]

  search = synthetic_search()
  search = search_lib.Search(**{**vars(search), "objective": "confident_fraction",
                                "maximize": True})
  study = search_lib.run_search(search, str(tmp_path), train=negated, seed=0,
                                log=lambda m: None)
  best = study.best_trial
  assert best.value == max(t.value for t in study.trials) > -0.1
  assert abs(np.log10(best.params["optimizer.learning_rate"]) + 2) < 0.5
  report = (tmp_path / "search.md").read_text()
  assert "the value is `confident_fraction`, higher is better" in report
  first_row = next(line for line in report.splitlines() if line.startswith("| ") and
                   line[2].isdigit())
  assert first_row.startswith(f"| {best.number} | complete |")


def test_an_objective_must_be_an_evaluation_number():
  with pytest.raises(sweep.SweepError, match="not an evaluation number"):
    search_lib.validate(search_lib.Search(**{**vars(synthetic_search()), "objective": "acc"}))
  with pytest.raises(sweep.SweepError, match="maximize needs an objective"):
    search_lib.validate(search_lib.Search(**{**vars(synthetic_search()), "maximize": True}))


@pytest.mark.parametrize("objective", ["", "kl_true_model"])
def test_a_search_trains_toy_trials_as_one_group_and_tells_their_quality(tmp_path, objective):
  search = search_lib.Search(
      "toy", tiny_toy_config(**{"num_train_steps": 4, "diagnostics.landscape_every_steps": 2}),
      {"optimizer.learning_rate": search_lib.Float(1e-4, 1e-2, log=True)},
      num_trials=2, trials_per_group=2, prune=True, objective=objective)
  told = objective or "kl_smoothed"      # the toys' quality metric by default
  lines = []
  study = search_lib.run_search(search, str(tmp_path), seed=0, log=lines.append)
  assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
  assert any("group of 2 models" in m for m in lines)
  for t in study.trials:
    cell = tmp_path / "cells" / f"trial-{t.number:04d}"
    status = json.loads((cell / sweep.STATUS_FILE).read_text())
    assert status["status"] == "finished" and status["models_in_group"] == 2
    rows = [json.loads(line) for line in (cell / "metrics.jsonl").read_text().splitlines()]
    kls = [r[told] for r in rows if told in r]
    assert t.value == pytest.approx(kls[-1])              # the final evaluation is told
    # Every evaluation was reported on the way, the final one included.
    assert t.intermediate_values == {2: pytest.approx(kls[0]), 4: pytest.approx(kls[1])}


class PruneAll:
  """A stand-in trial whose pruner gives up at the first report."""

  def __init__(self):
    self.reports = []

  def report(self, value, step):
    self.reports.append((step, value))

  def should_prune(self):
    return True


def test_a_pruned_trial_ends_early_and_is_told_as_pruned(tmp_path):
  config = tiny_toy_config(**{"num_train_steps": 50, "diagnostics.landscape_every_steps": 2})
  cell = sweep.Cell("trial-0000", "toy", {}, config, str(tmp_path / "cells" / "trial-0000"))
  trial = PruneAll()
  [(state, value)] = search_lib.train_trials([cell], [trial], log=lambda m: None)
  assert state == "pruned" and trial.reports[0][0] == 2
  status = sweep.read_status(cell)
  assert status["final_step"] == 3 and status["stopped_early"].startswith("pruned by the search")
  # An adopted trial resumes from its checkpoints and a fresh one starts from none: a stacked
  # group restores one common step, so they train in separate groups.
  fresh = sweep.Cell("trial-0001", "toy", {}, config, str(tmp_path / "cells" / "trial-0001"))
  assert sweep.split_by_checkpoint([[cell, fresh]]) == [[cell], [fresh]]


def test_a_rewound_model_s_evaluations_replace_what_its_trial_was_told(tmp_path):
  import optuna
  from ebm_jax.run import loop
  from ebm_jax import spec
  study = optuna.create_study(pruner=optuna.pruners.NopPruner())
  trial = study.ask()
  config = tiny_toy_config()
  model = loop.Model(0, loop.Run(config, str(tmp_path)), spec.from_config(config))
  report = search_lib.ReportToTrial([trial])
  for step in (2, 4):
    model.measured(step, {"kl_smoothed": 1.0 / step})
    report(None, model, None)
  assert study.trials[0].intermediate_values == {2: 0.5, 4: 0.25}
  model.rewind(2)                              # a recovery back to step 2
  model.measured(4, {"kl_smoothed": 0.9})      # step 4 of the trajectory it trains on now
  report(None, model, None)
  assert study.trials[0].intermediate_values == {2: 0.5, 4: 0.9}
  model.ckpt.close()


def test_a_trial_with_an_invalid_config_is_told_as_failed_and_the_search_goes_on(tmp_path):
  # The recipe's lr_min is 1e-3: a sampled learning rate below it makes an invalid config.
  search = search_lib.Search("s", tiny_toy_config(**{"optimizer.lr_min": 1e-3}),
                             {"optimizer.learning_rate": search_lib.Float(1e-5, 1e-2, log=True),
                              "sampler.step_size": search_lib.Float(0.01, 1.0)},
                             num_trials=8, trials_per_group=2, prune=False)
  lines = []
  study = search_lib.run_search(search, str(tmp_path), train=synthetic, seed=0,
                                log=lines.append)
  states = [t.state.name for t in study.trials]
  assert len(states) == 8 and "FAIL" in states and "COMPLETE" in states
  assert any("fail, invalid config" in m and "lr_min" in m for m in lines)
  assert all(t.params["optimizer.learning_rate"] < 1e-3 for t in study.trials
             if t.state.name == "FAIL")


@pytest.mark.parametrize("spec", list(shipped_specs("sweeps", "get_search")), ids=os.path.basename)
def test_every_shipped_search_and_variant_loads(spec):
  search = search_lib.load_search(spec)
  assert search.space and search.num_trials >= search.trials_per_group


def test_bad_search_spaces_fail_in_one_line():
  for space, message in (({"sampler.nope": search_lib.Float(0, 1)}, "sampler.nope"),
                         ({"optimizer.learning_rate": search_lib.Float(0.0, 1.0, log=True)},
                          "low > 0 on a log scale"),
                         ({"sampler.num_steps": (5, 10)}, "expected search.Float")):
    with pytest.raises(sweep.SweepError, match=message):
      search_lib.validate(search_lib.Search("s", tiny_toy_config(), space))


def test_a_dead_worker_s_trial_is_adopted_and_a_live_worker_s_is_left_alone(tmp_path):
  search = synthetic_search(num_trials=2, per_group=1, stale_after_s=60.0)
  study = search_lib.open_study(search, str(tmp_path))
  dead, live = study.ask(), study.ask()
  for trial, age in ((dead, 3600), (live, 0)):
    cell = search_lib.trial_cell(search, trial.number, search_lib.suggest(trial, search),
                                 str(tmp_path))
    with search_lib.heartbeat([cell], every_s=60):
      pass
    beat = os.path.join(cell.workdir, search_lib.HEARTBEAT)
    os.utime(beat, (time.time() - age,) * 2)
  lines = []
  study = search_lib.run_search(search, str(tmp_path), train=synthetic, log=lines.append)
  states = {t.number: t.state.name for t in study.trials}
  assert states == {dead.number: "COMPLETE", live.number: "RUNNING"}     # no trial asked
  assert any(f"trial {dead.number}: adopted" in m for m in lines)
  cells = tmp_path / "cells"
  assert (cells / f"trial-{dead.number:04d}" / "claimed").exists()
  assert not (cells / f"trial-{live.number:04d}" / "claimed").exists()
  # Its journalled values, not new ones, were trained and told.
  told = next(t for t in study.trials if t.number == dead.number)
  lr, step = told.params["optimizer.learning_rate"], told.params["sampler.step_size"]
  assert told.value == pytest.approx((np.log10(lr) + 2) ** 2 + (step - 0.3) ** 2)


def test_a_killed_worker_s_trials_are_adopted_once_its_heartbeat_stops(tmp_path):
  # The worker hangs in training; its heartbeat thread keeps its trials fresh until SIGKILL.
  script = textwrap.dedent(f"""
      import sys, time
      sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, 'tests')!r},
                       {os.path.join(ROOT, 'tests', 'study')!r}]
      from search_test import synthetic_search
      from ebm_jax.study import search
      def hang(cells, trials, log):
        time.sleep(600)
      search.run_search(synthetic_search(num_trials=2, per_group=2, stale_after_s=1.5),
                        {str(tmp_path)!r}, train=hang, log=lambda m: None)
  """)
  worker = subprocess.Popen([sys.executable, "-c", script])
  search = synthetic_search(num_trials=2, per_group=2, stale_after_s=1.5)
  beats = [tmp_path / "cells" / f"trial-{n:04d}" / search_lib.HEARTBEAT for n in (0, 1)]
  try:
    deadline = time.time() + 120
    while not all(b.exists() for b in beats):
      assert time.time() < deadline and worker.poll() is None, "the worker never started"
      time.sleep(0.1)
    time.sleep(2.0)             # longer than stale_after_s: only the heartbeat keeps them fresh
    study = search_lib.run_search(search, str(tmp_path), train=synthetic, log=lambda m: None)
    assert [t.state.name for t in study.trials] == ["RUNNING", "RUNNING"]
  finally:
    worker.kill()
    worker.wait()
  time.sleep(2.0)
  study = search_lib.run_search(search, str(tmp_path), train=synthetic, log=lambda m: None)
  assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
  assert sorted(os.listdir(tmp_path / "cells")) == ["trial-0000", "trial-0001"]


def test_a_rewound_trial_is_not_pruned_on_its_discarded_steps(tmp_path):
  import optuna
  from ebm_jax.run import loop
  from ebm_jax import spec

  class PruneAbove:   # prunes when the value at the trial's last step is above 0.5
    def __init__(self, trial):
      self.trial = trial

    def __getattr__(self, name):
      return getattr(self.trial, name)

    def should_prune(self):
      values = self.trial._cached_frozen_trial.intermediate_values
      return values[max(values)] > 0.5

  study = optuna.create_study(pruner=optuna.pruners.NopPruner())
  trial = PruneAbove(study.ask())
  config = tiny_toy_config()
  model = loop.Model(0, loop.Run(config, str(tmp_path)), spec.from_config(config))
  report = search_lib.ReportToTrial([trial])
  for step, value in ((2, 0.4), (4, 0.3), (6, 0.9)):
    model.measured(step, {"kl_smoothed": value})
  report(None, model, None)
  assert model.stop_reason.startswith("pruned")      # 0.9 at step 6
  model.stop_reason = ""
  model.rewind(2)                  # recovered to step 2: steps 4 and 6 were discarded
  model.measured(4, {"kl_smoothed": 0.2})
  report(None, model, None)
  assert model.stop_reason == ""   # step 6's 0.9 belongs to the discarded trajectory
  assert study.trials[0].intermediate_values == {2: 0.4, 4: 0.2, 6: 0.9}
  model.measured(6, {"kl_smoothed": 0.25})
  report(None, model, None)
  assert model.stop_reason == "" and study.trials[0].intermediate_values[6] == 0.25
  model.ckpt.close()
