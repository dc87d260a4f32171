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
