"""The study report's analysis on synthetic results with known answers."""

import os

import numpy as np
import pytest

from ebm_jax.study import report as study_report, stats as study_stats, sweep
from testutil import AXES, synthetic_rows, tiny_toy_config

def test_budget_matched_table_reads_each_curve_at_the_common_budget():
  # 100 updates each, evaluated at 10, 50, 100, quality q x 100 / step; K 5: q = 1 at 10
  # updates/s, K 100: q = 0.5 at 2 updates/s. At the end K 100 is better (log10 0.5); at equal
  # wall-clock (10 s, K 5's end) K 100 has only its first evaluation (5.0 at 5 s); at equal
  # gradient evaluations (5,000 = K 5's end) K 100 has none (its first costs 10,000).
  rows = synthetic_rows(lambda k, lr, noise, sn: 1.0 if k == 5 else 0.5)
  text = "\n".join(study_report.budget_lines(rows, AXES, "kl"))
  assert "100 updates, 10 s of wall-clock" in text and "5e+03 energy-gradient" in text
  assert "8 of 16 cells unevaluated at equal gradient evaluations" in text
  line = next(t for t in text.splitlines() if t.startswith("| sampler.num_steps | 100 |"))
  end, updates, wall, grads = line.split(" | ")[2:6]
  assert end.startswith("-0.301") and updates.startswith("-0.301")
  assert wall.startswith("0.699") and grads == "- |"
  k5 = next(t for t in text.splitlines() if t.startswith("| sampler.num_steps | 5 |"))
  assert all(v.startswith("0 ") for v in k5.split(" | ")[2:6])


def test_a_budget_reads_a_late_divergence_by_its_curve_and_never_a_level_of_imputations():
  # As above, and two K 100 cells diverged: one at update 3 (within every budget), one at
  # update 90 (after the equal-wall-clock budget of 10 s = 20 of its updates, whose first
  # evaluation it had). At equal gradient evaluations no K 100 cell had been evaluated: the
  # one imputed divergence there is no measurement of the level, so the table says '-'.
  rows = synthetic_rows(lambda k, lr, noise, sn: 1.0 if k == 5 else 0.5)
  k100 = [r for r in rows if r["sampler.num_steps"] == 100]
  for r, step in zip(k100[:2], (3, 90)):
    r.update(status="diverged", diverged_at_step=step, quality=np.nan, stable=False)
  text = "\n".join(study_report.budget_lines(rows, AXES, "kl"))
  line = next(t for t in text.splitlines() if t.startswith("| sampler.num_steps | 100 |"))
  end, updates, wall, grads = line.split(" | ")[2:6]
  # At equal wall-clock: 7 cells at log10 5.0 (the late-diverging one among them) and one at
  # the grid's worst measured there (also 5.0): 0.699; at the end the two divergences score
  # as the grid's worst finished cell (0, K 5's): (6 x -0.301 + 2 x 0) / 8.
  assert wall.startswith("0.699") and grads == "- |"
  assert end.startswith("-0.226")


def test_anova_finds_the_factor_and_the_interaction_that_made_the_data():
  rows = synthetic_rows(lambda k, lr, noise, sn: 10 ** ((k == 5) + 0.5 * (k == 5) * (lr == 1e-2)),
                        seeds=(0, 1, 2), noise_sd=0.05)
  text = "\n".join(study_report.anova_lines(rows, AXES, "kl"))
  table = [line.split(" | ") for line in text.splitlines() if line.startswith("| ")][1:]
  assert table[0][0] == "| sampler.num_steps"
  assert table[2][0] == "| sampler.num_steps x optimizer.learning_rate"
  assert float(table[2][4].strip(" |")) < 1e-3         # p of the interaction


def test_runaway_gradient_norm_is_not_called_stable():
  assert study_report._r_t_growth(np.geomspace(1, 1e5, 100)) > 100
  assert study_report._r_t_growth(np.full(100, 0.05)) == pytest.approx(1.0)
  # A quiet start (r_t 1e-3 over the first 100 updates, initialisation) then a steady 1.0 is
  # no explosion: the baseline is the window after initialisation, as the loop's.
  quiet_start = np.concatenate([np.full(100, 1e-3), np.full(1900, 1.0)])
  assert study_report._r_t_growth(quiet_start) == pytest.approx(1.0)


def test_report_states_a_verdict_per_claim_with_its_intervals_and_figures(tmp_path, monkeypatch):
  # The report's wiring, not its intervals (tested above and in study_stats_test): 200
  # resamples instead of 2,000.
  monkeypatch.setattr(study_stats, "NUM_RESAMPLES", 200)
  grid = sweep.Grid("g", {"sampler.num_steps": (2, 4), "optimizer.learning_rate": (1e-3, 1e-2),
                          "sampler.noise_std": (0.0, 0.1)},
                    base=tiny_toy_config(num_train_steps=4,
                                         **{"diagnostics.landscape_every_steps": 2,
                                            "longrun.at_end": True, "longrun.num_steps": 10,
                                            "longrun.num_chains": 64}))
  study = sweep.Sweep([grid], roles={"K": "sampler.num_steps", "lr": "optimizer.learning_rate",
                                     "noise": "sampler.noise_std"}, seeds=(0, 1))
  cells = sweep.run_sweep(study, None, str(tmp_path), log=lambda m: None)
  path = study_report.write_report(study, cells, str(tmp_path), title="tiny")
  with open(path) as f:
    report = f.read()
  for claim in ("Claim 1.", "Claim 2.", "Claim 3.", "Claim 4."):
    assert claim in report
  assert "Learning rate: " in report and "Spectral norm at" not in report   # no sn axis
  assert "16 cells (16 run; 0 diverged; 0 recovered from a divergence or runaway;" in report
  assert "2 seeds per setting (0, 1)" in report
  assert "95 % t interval over seeds" in report
  assert "### Main effects and interactions" in report and "| Residual |" in report
  assert "### Budget-matched comparison" in report and "4 updates" in report
  assert "long-run check of 16 finished cells: chains of the training sampler run 10 steps" in (
      report)
  assert "| sampler.num_steps | 2 | 8 |" in report
  with open(tmp_path / "results.csv") as f:
    header, *rows = f.read().splitlines()
  assert len(rows) == 16
  for column in ("sampler.num_steps", "seed", "setting", "status", "recoveries", "d_s_t_mean",
                 "r_t_mean", "kl_smoothed", "steps_per_sec", "grad_evals_per_update", "convergence",
                 "longrun_from_data", "longrun_from_noise"):
    assert column in header.split(",")
  assert "_curve" not in header
  plots = os.listdir(tmp_path / "plots")
  assert "heatmap-g-noise0.png" in plots and "curves-g.png" in plots
  assert any(p.startswith("traces-g-noise0.1-K") for p in plots)


def test_likelihood_columns_read_exact_toy_values_and_ais_image_values():
  from ebm_jax.study import report as report_lib
  toy = {"temperature": 2.0, "grid": {"normalisable": True}, "ais": {"spread_sd": 0.01},
         "test": {"log_likelihood_exact": -1.25, "log_likelihood": -1.2}}
  cols = report_lib.likelihood_columns(toy)
  assert (cols["log_likelihood"], cols["log_likelihood_method"]) == (-1.25, "grid")
  toy["grid"]["normalisable"] = False
  cols = report_lib.likelihood_columns(toy)
  assert np.isnan(cols["log_likelihood"]) and cols["log_likelihood_method"] == "not normalisable"
  image = {"temperature": 20000.0, "ais": {"spread_sd": 3.5},
           "test": {"log_likelihood": 1500.0, "bits_per_dim": 1.2}}
  cols = report_lib.likelihood_columns(image)
  assert cols == {"log_likelihood": 1500.0, "log_likelihood_sd": 3.5,
                  "log_likelihood_temperature": 20000.0, "log_likelihood_method": "AIS",
                  "bits_per_dim": 1.2}
  image["test"]["settled"] = False      # log Z below the dequantization floor
  cols = report_lib.likelihood_columns(image)
  assert np.isnan(cols["log_likelihood"]) and cols["log_likelihood_method"] == "AIS not settled"
  assert report_lib.likelihood_columns(None)["log_likelihood_method"] == "not measured"
