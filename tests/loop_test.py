"""The one loop: periodic actions called the same way for every model of a group."""

from ebm_jax import loop
from testutil import tiny_toy_config


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
                           actions=loop.default_actions(good) + [counter])
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
                             actions=loop.default_actions(config) + [SlowAction(0.15)])
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
  assert not loop.plateaued(improving, 3, 0.02)
  assert loop.plateaued(flat, 3, 0.02)              # 0.495 is not 2 % below 0.5
  assert not loop.plateaued(flat, 3, 0.0)           # any gain counts: 0.495 < 0.5
  assert not loop.plateaued(flat[:3], 3, 0.02)      # too few evaluations to judge
  assert not loop.plateaued(flat, 0, 0.02)          # off


class ConstantQuality:
  """Reports the same quality at every step, as an evaluation that stopped improving."""

  def __call__(self, tick, model, runner):
    model.measured(tick.step, {"kl_true_kde": 0.5})


def test_a_quality_plateau_ends_the_run_and_a_rerun_does_nothing(tmp_path):
  config = tiny_toy_config(**{"num_train_steps": 1000, "stop.plateau_patience": 3,
                              "diagnostics.landscape_every_steps": 0})
  run = loop.Run(config, str(tmp_path / "run"))
  (outcome,), _ = loop.train([run], log=lambda m: None,
                             actions=loop.default_actions(config) + [ConstantQuality()])
  # Measured at the end of steps 1-4, judged at the next step: at step 5 the last 3 do not
  # beat step 1's, so step 6 is the last.
  assert outcome.status == "finished" and outcome.step == 6
  assert outcome.cause.startswith("quality plateau: kl_true_kde 0.5 after 3 evaluations")
  assert (tmp_path / "run" / "samples.npz").exists()
  assert "the run ends here" in (tmp_path / "run" / "log.txt").read_text()
  lines = []
  (again,), _ = loop.train([run], log=lines.append)
  assert again.step == 6 and any("already finished" in m for m in lines)
