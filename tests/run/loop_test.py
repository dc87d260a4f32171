"""The one loop: periodic actions called the same way for every model of a group."""

import json
import os

import numpy as np
import pytest

from ebm_jax.run import actions, loop, recovery
from testutil import inject_runaway, read_metrics, tiny_toy_config


class CountingAction:
  def __init__(self):
    self.calls = []

  def __call__(self, tick, model, runner):
    self.calls.append((tick.step, model.index, float(tick.row(model.index)["lr"])))


def test_actions_run_at_every_step_for_every_model_and_divergence_stops_one(tmp_path):
  good = tiny_toy_config(**{"divergence_threshold": 1e3})
  bad = tiny_toy_config(**{"divergence_threshold": 1e3, "loss.scale": 1e9})  # |loss| > 1e3
  counter = CountingAction()
  ended = {}
  outcomes, _ = loop.train([loop.Run(good, str(tmp_path / "good")),
                            loop.Run(bad, str(tmp_path / "bad"))],
                           log=lambda m: None, on_end=lambda i, o: ended.setdefault(i, o),
                           actions=actions.default_actions(good) + [counter])
  assert [o.status for o in outcomes] == ["finished", "diverged"]
  assert outcomes[1].diverged_at == 1 and outcomes[1].step == 0
  assert ended == {0: outcomes[0], 1: outcomes[1]}
  assert [c[:2] for c in counter.calls] == [(s, 0) for s in range(1, 7)]
  assert (tmp_path / "good" / "samples.npz").exists()
  assert not (tmp_path / "bad" / "samples.npz").exists()
  assert "training diverged at step 1" in (tmp_path / "bad" / "log.txt").read_text()


class SlowAction:
  """Makes every update take ``seconds`` of wall-clock."""

  def __init__(self, seconds):
    self.seconds = seconds

  def __call__(self, tick, model, runner):
    import time
    time.sleep(self.seconds)


def test_a_wall_clock_budget_ends_the_run_like_its_last_step_and_a_rerun_does_nothing(tmp_path):
  config = tiny_toy_config(**{"num_train_steps": 1000, "train_time_budget_s": 1.0,
                              "log_every_steps": 1})
  run = loop.Run(config, str(tmp_path / "run"))
  (outcome,), _ = loop.train([run], log=lambda m: None,
                             actions=actions.default_actions(config) + [SlowAction(0.15)])
  assert outcome.status == "finished" and 1 <= outcome.step < 1000
  assert (tmp_path / "run" / "samples.npz").exists()
  log = (tmp_path / "run" / "log.txt").read_text()
  assert "wall-clock budget of 1 s is spent" in log and f"finished {outcome.step} steps" in log
  # The same command again: the budget is spent, so nothing trains.
  lines = []
  (again,), _ = loop.train([run], log=lines.append)
  assert again.step == outcome.step and any("already finished" in m for m in lines)


def test_plateaued_reads_the_last_evaluations_against_the_best_before_them():
  improving = [(i, 1.0 / (i + 1)) for i in range(6)]
  flat = [(0, 1.0), (1, 0.5), (2, 0.495), (3, 0.51), (4, 0.499)]
  assert not actions.plateaued(improving, 3, 0.02)
  assert actions.plateaued(flat, 3, 0.02)              # 0.495 is not 2 % below 0.5
  assert not actions.plateaued(flat, 3, 0.0)           # any gain counts: 0.495 < 0.5
  assert not actions.plateaued(flat[:3], 3, 0.02)      # too few evaluations to judge
  assert not actions.plateaued(flat, 0, 0.02)          # off


class ConstantQuality:
  """Reports the same quality at every step, as an evaluation that stopped improving."""

  def __call__(self, tick, model, runner):
    model.measured(tick.step, {"kl_smoothed": 0.5})


def test_a_quality_plateau_ends_the_run_and_a_rerun_does_nothing(tmp_path):
  config = tiny_toy_config(**{"num_train_steps": 1000, "stop.plateau_patience": 3,
                              "diagnostics.landscape_every_steps": 0})
  run = loop.Run(config, str(tmp_path / "run"))
  (outcome,), _ = loop.train([run], log=lambda m: None,
                             actions=actions.default_actions(config) + [ConstantQuality()])
  # Measured at the end of steps 1-4, judged at the next step: at step 5 the last 3 do not
  # beat step 1's, so step 6 is the last.
  assert outcome.status == "finished" and outcome.step == 6
  assert outcome.cause.startswith("quality plateau: kl_smoothed 0.5 after 3 evaluations")
  assert (tmp_path / "run" / "samples.npz").exists()
  assert "the run ends here" in (tmp_path / "run" / "log.txt").read_text()
  lines = []
  (again,), _ = loop.train([run], log=lines.append)
  assert again.step == 6 and any("already finished" in m for m in lines)


class NoUpdatePast:
  """Fails the run if a model updates past ``limit`` (a run that would train forever)."""

  def __init__(self, limit):
    self.limit = limit

  def __call__(self, tick, model, runner):
    assert tick.step <= self.limit, f"update {tick.step} past num_train_steps {self.limit}"


def test_a_finished_run_missing_its_samples_finishes_without_training(tmp_path):
  config = tiny_toy_config()
  run = loop.Run(config, str(tmp_path / "run"))
  loop.train([run], log=lambda m: None)
  samples = tmp_path / "run" / "samples.npz"
  first = np.load(samples)["x"]
  rows = (tmp_path / "run" / "metrics.jsonl").read_text()
  samples.unlink()          # killed before writing them, or deleted to regenerate them
  lines = []
  (outcome,), _ = loop.train([run], log=lines.append,
                             actions=actions.default_actions(config) + [NoUpdatePast(6)])
  assert outcome.status == "finished" and outcome.step == 6
  assert any("already finished at step 6" in m and "completing its outputs" in m for m in lines)
  np.testing.assert_array_equal(np.load(samples)["x"], first)     # the same chains again
  assert int(np.load(samples)["step"]) == 6
  assert (tmp_path / "run" / "metrics.jsonl").read_text() == rows  # nothing trained


def test_checkpointers_are_closed_when_training_raises(tmp_path, monkeypatch):
  from ebm_jax.run import checkpointing
  closed = []
  real_close = checkpointing.Checkpointer.close
  monkeypatch.setattr(checkpointing.Checkpointer, "close",
                      lambda self: (closed.append(self.directory), real_close(self)))

  class Crash:
    def __call__(self, tick, model, runner):
      if tick.step == 2:
        raise RuntimeError("an action failed")

  configs = [tiny_toy_config(), tiny_toy_config(seed=1)]
  runs = [loop.Run(c, str(tmp_path / f"m{i}")) for i, c in enumerate(configs)]
  with pytest.raises(RuntimeError, match="an action failed"):
    loop.train(runs, log=lambda m: None, actions=[Crash()])
  assert sorted(closed) == sorted(str(tmp_path / f"m{i}" / "checkpoints") for i in range(2))


def test_a_group_refuses_runs_whose_static_settings_differ(tmp_path):
  runs = [loop.Run(tiny_toy_config(), str(tmp_path / "a")),
          loop.Run(tiny_toy_config(**{"sampler.num_steps": 9}), str(tmp_path / "b"))]
  with pytest.raises(ValueError, match=r"differs from .* in sampler\.num_steps$"):
    loop.train(runs, log=lambda m: None)


def test_a_rewind_forgets_the_discarded_evaluations_for_every_consumer(tmp_path):
  from ebm_jax import spec
  config = tiny_toy_config()
  model = loop.Model(0, loop.Run(config, str(tmp_path)), spec.from_config(config))
  plateau, search = object(), object()
  for step in (100, 200, 300):
    model.measured(step, {"kl_smoothed": step / 1000})
  assert [s for s, _ in model.unseen(plateau)] == [100, 200, 300]
  assert [s for s, _ in model.unseen(search)] == [100, 200, 300]
  model.rewind(200)                     # a recovery back to the checkpoint at step 200
  assert model.quality == [(100, 0.1), (200, 0.2)]
  model.measured(300, {"kl_smoothed": 0.9})     # step 300 of the new trajectory
  assert model.unseen(plateau) == [(300, {"kl_smoothed": 0.9})]
  assert model.unseen(search) == [(300, {"kl_smoothed": 0.9})]
  assert model.unseen(plateau) == []
  model.ckpt.close()


class EvaluationsAtEveryStep:
  """An evaluation record at every update (as eval.every_steps = 1 would write to eval.json),
  and a check that the model never holds one from past its current step."""

  def __init__(self, delay_s=0.0):
    self.delay_s = delay_s
    self.stale = []

  def __call__(self, tick, model, runner):
    import time
    time.sleep(self.delay_s)
    if any(step > tick.step for step, _ in model.evaluations):
      self.stale.append(tick.step)
    path = tmp_eval_path(model.workdir)
    records = (json.load(open(path)) if os.path.exists(path) else [])
    records.append({"step": tick.step, "samples": "x.npz", "fid": 1.0 / tick.step})
    json.dump(records, open(path, "w"))
    model.measured(tick.step, {"kl_smoothed": 1.0 / tick.step})


def tmp_eval_path(workdir):
  return os.path.join(workdir, "eval.json")


def test_a_recovery_rewinds_evaluations_and_eval_json_but_not_the_clock(tmp_path, monkeypatch):
  injected = inject_runaway(monkeypatch, at_step=9)
  config = tiny_toy_config(**{"num_train_steps": 12, "log_every_steps": 1,
                              "checkpoint_every_steps": 5})
  evaluations = EvaluationsAtEveryStep(delay_s=0.05)
  workdir = tmp_path / "run"
  (outcome,), _ = loop.train([loop.Run(config, str(workdir))], log=lambda m: None,
                             actions=actions.default_actions(config) + [evaluations])
  assert injected == [(9, None)] and outcome.status == "finished" and outcome.recoveries == 1
  assert evaluations.stale == []          # no evaluation from the discarded steps 6-8 remained
  records = json.load(open(workdir / "eval.json"))
  assert [r["step"] for r in records] == list(range(1, 13))     # steps 6-8 once, re-measured
  aside = json.load(open(workdir / "eval_until_step_8.json"))
  assert [r["step"] for r in aside] == list(range(1, 9))
  # The clock goes on through the rewind: the row of step 6 after it is later than every row
  # of the discarded steps 6-8, and the recovery event carries the time it happened.
  rows = read_metrics(str(workdir))
  discarded = [json.loads(line) for line in open(workdir / "metrics_until_step_8.jsonl")]
  event = [r for r in read_metrics(str(workdir), events=True) if r.get("event")][0]
  assert event["step"] == 5 and event["wall_time"] >= max(r["wall_time"] for r in discarded)
  after = next(r for r in rows if r["step"] == 6)
  assert after["wall_time"] > max(r["wall_time"] for r in discarded)
  assert [r["wall_time"] for r in rows] == sorted(r["wall_time"] for r in rows)
  # The checkpointed clock is the cumulative one, so a resumed run counts from it.
  from ebm_jax.run import checkpointing, runner
  from ebm_jax import spec
  with checkpointing.Checkpointer(str(workdir)) as ckpt:
    run = runner.Runner(spec.from_config(config), None)
    state = ckpt.restore(runner.unstack(run.init(run.hparams([config])), 0))
  assert int(state.step) == 12 and float(state.wall_time) >= rows[-1]["wall_time"] - 1e-3


def test_samples_without_their_step_are_redrawn_when_the_run_trains_on(tmp_path):
  # A samples.npz written before samples carried their step is current for a run found
  # finished, stale once the run has trained further.
  config = tiny_toy_config()
  workdir = tmp_path / "run"
  loop.train([loop.Run(config, str(workdir))], log=lambda m: None)
  x = np.load(workdir / "samples.npz")["x"]
  np.savez(workdir / "samples.npz", x=x)                         # the old form, no step
  loop.train([loop.Run(config, str(workdir))], log=lambda m: None)
  assert "step" not in np.load(workdir / "samples.npz").files    # found finished: kept
  longer = tiny_toy_config(num_train_steps=9)
  loop.train([loop.Run(longer, str(workdir))], log=lambda m: None)
  assert int(np.load(workdir / "samples.npz")["step"]) == 9      # trained on: drawn again
  assert np.load(workdir / "samples_before_step_9.npz").files == ["x"]


def test_a_group_resuming_behind_a_model_s_newest_checkpoint_sets_the_newer_aside(tmp_path):
  configs = [tiny_toy_config(), tiny_toy_config(seed=1)]
  runs = [loop.Run(c, str(tmp_path / f"m{i}")) for i, c in enumerate(configs)]
  loop.train(runs, log=lambda m: None)                      # both checkpointed at 3 and 6
  # Model 1's step-6 checkpoint is lost (killed while saving it); model 0 still holds its 6.
  import shutil
  shutil.move(str(tmp_path / "m1" / "checkpoints" / "6"), str(tmp_path / "lost6"))
  longer = [loop.Run(tiny_toy_config(num_train_steps=9, seed=i), r.workdir)
            for i, r in enumerate(runs)]
  lines = []
  outcomes, _ = loop.train(longer, log=lines.append)
  assert [o.step for o in outcomes] == [9, 9]
  assert any("resumed from checkpoint at step 3" in m for m in lines)
  assert (tmp_path / "m0" / "checkpoints_set_aside" / "6").is_dir()   # kept, never deleted
  assert any("checkpoints [6] are after step 3" in m for m in lines)


class FakeClock:
  """The reporters' wall-clock, advanced one second by every update (an action)."""

  def __init__(self):
    self.now = 1000.0

  def time(self):
    return self.now

  def perf_counter(self):
    import time
    return time.perf_counter()

  def __call__(self, tick, model, runner):
    self.now += 1.0


def test_a_recovered_run_s_budget_counts_the_time_its_discarded_updates_took(tmp_path,
                                                                             monkeypatch):
  # One second per update (after the update's checks), a 12 s budget, checkpoints every 5
  # updates, and updates 6-8 discarded by a runaway at update 9: 8 s are spent at the rewind
  # to step 5, so the budget is found spent at update 10, the last. A clock restarted from the
  # checkpoint row's 4 s would train on to update 14.
  from ebm_jax.run import reporting
  fake = FakeClock()
  monkeypatch.setattr(reporting, "time", fake)
  injected = inject_runaway(monkeypatch, at_step=9)
  config = tiny_toy_config(**{"num_train_steps": 100, "train_time_budget_s": 12.0,
                              "log_every_steps": 1, "checkpoint_every_steps": 5})
  (outcome,), states = loop.train([loop.Run(config, str(tmp_path / "run"))],
                                  log=lambda m: None,
                                  actions=actions.default_actions(config) + [fake])
  assert injected == [(9, None)] and outcome.recoveries == 1
  assert outcome.status == "finished" and outcome.step == 10
  rows = read_metrics(str(tmp_path / "run"))
  assert [r["step"] for r in rows] == list(range(1, 11))
  assert [r["wall_time"] for r in rows] == [0, 1, 2, 3, 4, 8, 9, 10, 11, 12]
  assert outcome.train_time_s == 12.0        # the clock of its last checkpoint, step 10


def test_the_runaway_baseline_has_left_initialisation():
  # Energies that start near 0 at initialisation and settle at 1 by update 100: a value of 5
  # later is ordinary growth, not a runaway; measured against updates 1-100 it was 5,000x.
  from ebm_jax import spec
  rc = spec.from_config(tiny_toy_config()).recovery
  early = np.r_[np.full(100, 1e-3), np.ones(150)]
  trace = {"step": list(range(1, 251)), **{k: list(early) for k in recovery.RUNAWAY_KEYS}}
  row = {k: 5.0 for k in recovery.RUNAWAY_KEYS}
  assert (rc.runaway_start, rc.runaway_window, rc.runaway_factor) == (100, 100, 1000.0)
  assert recovery.runaway_cause(row, trace, rc) is None
  assert recovery.runaway_cause({k: 2000.0 for k in recovery.RUNAWAY_KEYS}, trace, rc) == (
      "runaway: |energy_data| 2e+03 is 2e+03x its median 1 over updates 101-200")
  # Before update 200 the baseline is not complete: nothing is judged yet.
  short = {k: v[:150] for k, v in trace.items()}
  assert recovery.runaway_cause({k: 1e9 for k in recovery.RUNAWAY_KEYS}, short, rc) is None
