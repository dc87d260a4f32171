"""The recipe leaderboard: entries, curves, time to target, and the report of real runs."""

import json
import os

import numpy as np
import pytest

from ebm_jax.study import leaderboard


@pytest.mark.parametrize("task", list(leaderboard.ENTRIES))
def test_every_entry_is_a_valid_config_with_the_shared_budget(task):
  for entry in leaderboard.ENTRIES[task]:
    c = leaderboard.entry_config(task, entry, 60.0)
    assert c.train_time_budget_s == 60.0
    if task == "mnist":
      assert c.eval.every_steps == leaderboard.EVAL_EVERY[task] and c.data.image_size == 28
      assert c.data.name == "mnist"
    else:
      assert c.diagnostics.kde_samples == leaderboard.TOY_KDE_SAMPLES
    command = leaderboard.train_command(task, entry, 60.0, "/tmp/x")
    assert command[1].endswith("train.py") and f"--config={entry.recipe}" in command


def _write_run(path, rows, evals=None):
  os.makedirs(path)
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  if evals is not None:
    with open(os.path.join(path, "eval.json"), "w") as f:
      json.dump(evals, f)


def test_toy_time_to_target_is_the_first_measurement_within_the_margin(tmp_path):
  rows = [{"step": s, "loss": 0.0, "wall_time": t, "kl_smoothed": kl, "kl_smoothed_floor": 0.1,
           "kl_true_model": 0.0}
          for s, t, kl in ((100, 10.0, 0.5), (200, 20.0, 0.115), (300, 30.0, 0.13))]
  rows.insert(1, {"step": 150, "loss": 0.0, "wall_time": 15.0})    # a row without a landscape
  _write_run(tmp_path / "run", rows)
  entry = leaderboard.ENTRIES["gmm"][0]
  curve = leaderboard.toy_curve(str(tmp_path / "run"), entry)
  np.testing.assert_array_equal(curve.updates, [100, 200, 300])
  np.testing.assert_array_equal(curve.meets, [False, True, False])
  assert leaderboard.first_time(curve) == 20.0


def test_image_target_needs_all_three_criteria(tmp_path):
  rows = [{"step": s, "loss": 0.0, "wall_time": float(s)} for s in (300, 600, 900)]
  evals = [{"step": 300, "fid": 10.0, "confident_fraction": 0.95, "min_class_fraction": 0.01},
           {"step": 600, "fid": 30.0, "confident_fraction": 0.95, "min_class_fraction": 0.08},
           {"step": 900, "fid": 15.0, "confident_fraction": 0.92, "min_class_fraction": 0.06},
           {"fid": 1.0, "confident_fraction": 1.0, "min_class_fraction": 0.1}]  # no step: ignored
  _write_run(tmp_path / "run", rows, evals)
  curve = leaderboard.image_curve(str(tmp_path / "run"), leaderboard.ENTRIES["mnist"][0],
                                  real_fid=5.7)
  np.testing.assert_array_equal(curve.meets, [False, False, True])   # FID target 17.1
  assert leaderboard.first_time(curve) == 900.0
  unreached = leaderboard.image_curve(str(tmp_path / "run"), leaderboard.ENTRIES["mnist"][0],
                                      real_fid=4.0)
  assert leaderboard.first_time(unreached) is None


def test_a_tiny_leaderboard_trains_two_entries_at_a_time_once_and_reports_them(tmp_path,
                                                                             monkeypatch):
  tiny = leaderboard.Entry("tiny", "configs/toy_gmm.py",
                           {"model.n_f": 8, "sampler.num_steps": 5, "init.bank_size": 64,
                            "batch_size": 16, "diagnostics.figures": False}, "test")
  other = leaderboard.Entry("other", tiny.recipe, {**tiny.overrides, "sampler.num_steps": 2},
                            "test")
  monkeypatch.setattr(leaderboard, "ENTRIES", {"gmm": [tiny, other]})
  monkeypatch.setattr(leaderboard, "BUDGETS", {"gmm": 4.0})
  monkeypatch.setattr(leaderboard, "EVAL_EVERY", {"gmm": 20})
  monkeypatch.setattr(leaderboard, "TOY_KDE_SAMPLES", 200)
  out, figures = str(tmp_path / "leaderboard.md"), str(tmp_path / "figures")
  text = leaderboard.run(["gmm"], str(tmp_path / "runs"), out, figures, jobs=2,
                         log=lambda m: None)
  assert "| tiny | test |" in text and "| other | test |" in text
  assert os.path.exists(os.path.join(figures, "leaderboard_gmm.png"))
  rows = [json.loads(line) for line in open(tmp_path / "runs" / "gmm" / "tiny" / "metrics.jsonl")]
  # The budget ended the run, on a measurement: a KL of two densities normalised on one grid,
  # so finite and positive (Gibbs; a 4-second model is not the true density).
  last = rows[-1]
  kl, floor = last["kl_smoothed"], last["kl_smoothed_floor"]
  assert last["wall_time"] >= 4.0 and np.isfinite(kl) and kl > 0 and np.isfinite(floor)
  # The report's row states that final measurement, and a time to target read off the rows.
  measured = [r for r in rows if r.get("kl_smoothed") is not None]
  hit = next((r["wall_time"] for r in measured
              if r["kl_smoothed"] <= r["kl_smoothed_floor"] + leaderboard.TOY_MARGIN), None)
  to_target = "not reached" if hit is None else f"{hit:.0f} s"
  row = next(line for line in text.splitlines() if line.startswith("| tiny | test |"))
  assert row.endswith(f"| {last['step']} | {to_target} | {kl:.4f} ({floor:.4f}) |"), row
  # Again: the spent budget trains nothing, the report is the same run's.
  before = os.path.getmtime(tmp_path / "runs" / "gmm" / "tiny" / "samples.npz")
  leaderboard.run(["gmm"], str(tmp_path / "runs"), out, figures, log=lambda m: None)
  assert os.path.getmtime(tmp_path / "runs" / "gmm" / "tiny" / "samples.npz") == before


def test_regenerating_keeps_the_hand_written_sections(tmp_path):
  path = tmp_path / "leaderboard.md"
  leaderboard.write_between_markers(str(path), "# Board\n\nfirst numbers\n", log=lambda m: None)
  path.write_text(path.read_text() + "\n## Hand-written\n\nmeasured by hand\n")
  leaderboard.write_between_markers(str(path), "# Board\n\nsecond numbers\n", log=lambda m: None)
  text = path.read_text()
  assert "second numbers" in text and "first numbers" not in text
  assert text.endswith(f"{leaderboard.END}\n\n## Hand-written\n\nmeasured by hand\n")
  # A file without the markers (written before them) is kept whole beside the new one.
  old = tmp_path / "old.md"
  old.write_text("# An older board\n\nhand-written notes\n")
  lines = []
  leaderboard.write_between_markers(str(old), "# Board\n", log=lines.append)
  kept = (tmp_path / "old_before_markers.md").read_text()
  assert kept == "# An older board\n\nhand-written notes\n"
  assert old.read_text().startswith(leaderboard.BEGIN) and len(lines) == 1
