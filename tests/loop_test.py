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
