"""The study report's analysis on synthetic results with known answers."""

import itertools
import os

import numpy as np
import pytest

from ebm_jax.study import report as study_report, stats as study_stats, sweep
from testutil import tiny_toy_config

AXES = ["sampler.num_steps", "optimizer.learning_rate", "sampler.noise_std",
        "model.spectral_norm"]
ROLES = {"K": AXES[0], "lr": AXES[1], "noise": AXES[2], "sn": AXES[3]}


def synthetic_rows(quality_fn, diverged_fn=lambda k, lr, noise, sn: False, sps=None,
                   seeds=(None,), noise_sd=0.0, seed_offsets=None):
  """Seed-level rows of a 2x2x2x2 grid; quality_fn's value times a lognormal seed effect of sd
  ``noise_sd`` (log10 units) and a fixed offset per seed (``seed_offsets``, log10). Each
  cell's curve, evaluated at 10, 50 and 100 updates at the cell's speed, is quality x 100 /
  step."""
  rng = np.random.default_rng(0)
  rows = []
  for k, lr, noise, sn, seed in itertools.product((5, 100), (1e-3, 1e-2), (0.0, 0.1),
                                                  (False, True), seeds):
    diverged = diverged_fn(k, lr, noise, sn)
    setting = f"K{k}-lr{lr}-n{noise}-sn{sn}"
    speed = (sps or {5: 10.0, 100: 2.0})[k]
    q = quality_fn(k, lr, noise, sn) * 10 ** (noise_sd * rng.normal()
                                              + (seed_offsets or {}).get(seed, 0.0))
    steps = np.array([10, 50, 100])
    rows.append({
        "cell": setting + ("" if seed is None else f"-seed{seed}"), "setting": setting,
        AXES[0]: k, AXES[1]: lr, AXES[2]: noise, AXES[3]: sn,
        **({} if seed is None else {"seed": seed}),
        "status": "diverged" if diverged else "finished",
        "diverged_at_step": 7 if diverged else "", "quality": np.nan if diverged else q,
        "stable": not diverged, "dynamics": "stable", "models_in_group": 4,
        "steps_per_sec": speed, "seconds_per_update": 1.0 / speed,
        "_curve": {"step": steps, "wall_time": steps / speed, "grad_evals": steps * 10.0 * k,
                   "quality": q * 100.0 / steps}})
  return rows


def test_claim_1_names_the_setting_with_the_largest_effect():
  k_dominant = synthetic_rows(lambda k, lr, noise, sn: (10.0 if k == 5 else 0.1) * (1 + lr))
  verdict, lines, _ = study_report.claim_k_matters_most(k_dominant, AXES, ROLES, "kl")
  assert verdict == "supported"
  lr_dominant = synthetic_rows(lambda k, lr, noise, sn: (100.0 if lr == 1e-2 else 1.0) * k)
  verdict, lines, _ = study_report.claim_k_matters_most(lr_dominant, AXES, ROLES, "kl")
  assert verdict == "not supported"
  assert "Largest level contrast here: **optimizer.learning_rate** (+2.00 orders" in (
      "\n".join(lines))


def test_claim_1_sees_a_factor_whose_best_level_is_in_the_middle():
  # The learning rate's best level is the middle one (a decade better than both ends, which are
  # equal, so its last-minus-first effect is 0); K 5 is 0.3 decades worse than K 100.
  base = synthetic_rows(lambda k, lr, noise, sn: (0.1 if lr == 1e-2 else 1.0) * (2 if k == 5
                                                                                  else 1),
                        seeds=(0, 1, 2), noise_sd=0.02)
  high = [dict(r, **{AXES[1]: 1e-1, "quality": r["quality"] * 10,
                     "setting": r["setting"].replace("lr0.01", "lr0.1"),
                     "cell": r["cell"].replace("lr0.01", "lr0.1")})
          for r in base if r[AXES[1]] == 1e-2]
  rows = base + high
  result = study_report.claim_k_matters_most(rows, AXES, ROLES, "kl")
  text = "\n".join(result.lines)
  assert "Largest level contrast here: **optimizer.learning_rate** (+1.00 orders" in text
  assert result.verdict == "not supported"


def test_claim_2_reads_divergence_at_small_k_and_the_spectral_norm_rescue():
  rows = synthetic_rows(lambda *a: 1.0, diverged_fn=lambda k, lr, noise, sn: (
      k == 5 and lr == 1e-2 and (not sn or noise > 0)), seeds=(0, 1, 2))
  verdict, lines, _ = study_report.claim_small_k_low_lr(rows, AXES, ROLES, "kl")
  text = "\n".join(lines)
  assert "K=5: 0.001; K=100: 0.01" in text        # 3 of 4 K=5, lr=1e-2 cells diverged
  # 9 of 12 matched (high, low) pairs at K 5 differ, all one way: p = 2 / 2^9.
  assert "at K=5 9 vs 0 of 12 pairs (exact McNemar p = 0.0039)" in text
  assert "Learning rate: supported" in text
  # Spectral norm saves 3 of 12 pairs (noise 0) and none the other way: p = 0.25, no evidence;
  # equal quality where both finished, and the diverged cells score as the worst, so the
  # quality gain without minus with is negative: spectral norm better, over its interval.
  assert "blow-ups without vs with, 3 vs 0 of 12 pairs (exact McNemar p = 0.25)" in text
  # A positive contrast that comes from the *low* learning rate failing at large K is not the
  # claim: at small K the high learning rate is as stable as the low one.
  low_fails = synthetic_rows(lambda k, lr, *a: 1.0 + lr, diverged_fn=lambda k, lr, noise, sn: (
      k == 100 and lr == 1e-3))
  result = study_report.claim_small_k_low_lr(low_fails, AXES, ROLES, "kl")
  assert "Learning rate: not supported" in "\n".join(result.lines)


def test_one_blow_up_among_the_seeds_is_not_evidence_that_spectral_norm_prevents_them():
  # Spectral norm doubles the KL in every seed; one K 5 cell without it blew up, in one seed.
  rows = synthetic_rows(lambda k, lr, noise, sn: 2.0 if sn else 1.0, seeds=(0, 1, 2))
  lone = next(r for r in rows if r["sampler.num_steps"] == 5 and not r["model.spectral_norm"]
              and r["seed"] == 0)
  lone.update(status="diverged", diverged_at_step=7, quality=np.nan, stable=False)
  result = study_report.claim_small_k_low_lr(rows, AXES, ROLES, "kl")
  text = "\n".join(result.lines)
  assert "blow-ups without vs with, 1 vs 0 of 12 pairs (exact McNemar p = 1)" in text
  assert "spectral norm: not supported." in text          # worse KL over its interval


def test_claim_3_reads_time_to_quality_and_stability():
  # Equal quality per update, K 100 five times slower per update: it reaches the target later.
  rows = synthetic_rows(lambda k, lr, noise, sn: 1.0 + lr)
  verdict, lines, effect = study_report.claim_large_k_stable_slow(rows, AXES, ROLES, "kl")
  assert verdict == "supported" and "one update takes 5.0x as long" in "\n".join(lines)
  assert effect.startswith("log10 time-to-target ratio: 0.699")      # log10 5
  # K 100 per update as cheap and ten times better per update: it is faster to the target.
  fast = synthetic_rows(lambda k, lr, noise, sn: (0.1 if k == 100 else 1.0) * (1 + lr),
                        sps={5: 10.0, 100: 9.0})
  assert study_report.claim_large_k_stable_slow(fast, AXES, ROLES, "kl")[0] == "not supported"
  unstable = synthetic_rows(lambda *a: 1.0, diverged_fn=lambda k, *a: k == 100)
  assert study_report.claim_large_k_stable_slow(unstable, AXES, ROLES, "kl")[0] == (
      "not supported")


def test_one_unstable_cell_does_not_make_large_k_less_often_stable():
  # K 100 five times slower per update in every seed; one K 100 cell diverged, in one seed.
  rows = synthetic_rows(lambda k, lr, noise, sn: 1.0 + lr, seeds=(0, 1, 2))
  lone = next(r for r in rows if r["sampler.num_steps"] == 100 and r["seed"] == 0)
  lone.update(status="diverged", diverged_at_step=7, quality=np.nan, stable=False)
  result = study_report.claim_large_k_stable_slow(rows, AXES, ROLES, "kl")
  assert "only at K=5: 1 vs 0 of 24 pairs (exact McNemar p = 1)" in "\n".join(result.lines)
  assert result.verdict == "supported"


def test_claim_4_compares_matched_noiseless_and_noisy_cells():
  better = synthetic_rows(lambda k, lr, noise, sn: 1.0 if noise == 0 else 1.2)
  verdict, lines, _ = study_report.claim_noiseless_comparable(better, AXES, ROLES, "kl")
  assert verdict == "supported" and "median 0.833" in "\n".join(lines)
  worse = synthetic_rows(lambda k, lr, noise, sn: 3.0 if noise == 0 else 1.0)
  assert study_report.claim_noiseless_comparable(worse, AXES, ROLES, "kl")[0] == "not supported"


def test_claim_4_compares_quality_where_both_finished_and_divergences_apart():
  # Noiseless cells 1.8x worse than noisy ones (beyond the 1.5x margin) wherever both finish;
  # half the noisy cells diverge. Scored as the grid's worst (the noiseless 1.8), those pairs
  # would show no gap and halve the mean into the margin.
  rows = study_report.with_scores(synthetic_rows(
      lambda k, lr, noise, sn: 1.8 if noise == 0 else 1.0, seeds=(0, 1, 2),
      diverged_fn=lambda k, lr, noise, sn: noise > 0 and lr == 1e-2))
  result = study_report.claim_noiseless_comparable(rows, AXES, ROLES, "kl")
  text = "\n".join(result.lines)
  assert result.effect.startswith("log10 gap noiseless - noisy: 0.255")
  assert result.verdict == "not supported"
  assert "noiseless vs noisy: 0 vs 12 of 24 pairs (exact McNemar p = 0.00049)" in text


def test_replicated_verdicts_carry_intervals_and_say_inconclusive_when_noise_wins():
  # True effect of K: 1 order of magnitude; seed noise sd 0.05 decades: clearly supported.
  quality = lambda k, lr, noise, sn: 10.0 if k == 5 else 1.0        # noqa: E731
  clear = synthetic_rows(quality, seeds=(0, 1, 2, 3), noise_sd=0.05)
  result = study_report.claim_k_matters_most(clear, AXES, ROLES, "kl")
  assert result.verdict == "supported"
  assert "excludes 0" in "\n".join(result.lines)
  # Seed noise of 1 decade drowns a 0.1-decade effect: the interval straddles 0.
  weak = synthetic_rows(lambda k, lr, noise, sn: 1.26 if k == 5 else 1.0, seeds=(0, 1, 2),
                        noise_sd=1.0)
  assert study_report.claim_k_matters_most(weak, AXES, ROLES, "kl").verdict == "inconclusive"
  # Claim 4 as an equivalence test: a factor 1.2 worse with tight seeds is comparable; with
  # noisy cells the interval reaches past a factor 1.5 and the verdict is inconclusive.
  tight = synthetic_rows(lambda k, lr, noise, sn: 1.2 if noise == 0 else 1.0, seeds=(0, 1, 2),
                         noise_sd=0.01)
  assert study_report.claim_noiseless_comparable(tight, AXES, ROLES, "kl").verdict == (
      "supported")
  wide = synthetic_rows(lambda k, lr, noise, sn: 1.2 if noise == 0 else 1.0, seeds=(0, 1, 2),
                        noise_sd=0.3)
  assert study_report.claim_noiseless_comparable(wide, AXES, ROLES, "kl").verdict == (
      "inconclusive")
  # A seed's offset shared by all its settings is not noise for a contrast within the seed:
  # paired, half a decade of seed-to-seed spread leaves the factor 1.2 exact.
  offsets = synthetic_rows(lambda k, lr, noise, sn: 1.2 if noise == 0 else 1.0,
                           seeds=(0, 1, 2), seed_offsets={0: -0.5, 1: 0.0, 2: 0.5})
  result = study_report.claim_noiseless_comparable(offsets, AXES, ROLES, "kl")
  assert result.verdict == "supported" and "0.0792 [0.0792, 0.0792]" in "\n".join(result.lines)


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


def test_claims_without_their_axes_are_not_tested():
  rows = synthetic_rows(lambda *a: 1.0)
  verdict, lines, _ = study_report.claim_noiseless_comparable(rows, AXES[:2], ROLES, "kl")
  assert verdict == "not tested" and "noise" in lines[0]


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


def test_a_main_effect_is_signed_so_its_interval_can_hold_zero():
  # No effect at all, seed noise only: the range of level means would be positive in every
  # resample; the signed contrast's interval straddles 0.
  rows = synthetic_rows(lambda *a: 1.0, seeds=(0, 1, 2), noise_sd=0.2)
  for key in AXES:
    interval = study_stats.by_replicate(rows, lambda rs, key=key: study_report._effect(rs, key))
    assert interval.low < 0 < interval.high, (key, interval)
  # And the sign says which way: K 100 is a decade better than K 5.
  better = synthetic_rows(lambda k, *a: 0.1 if k == 100 else 1.0, seeds=(0, 1, 2))
  assert study_report._effect(better, AXES[0]) == pytest.approx(-1.0)


def test_a_seed_missing_a_level_or_never_reaching_the_target_is_handled():
  # Seed 2 has no K 100 cells (its group has not run): its K contrast is nan and left out, not
  # a contrast between other levels; the report does not crash.
  rows = [r for r in synthetic_rows(lambda k, *a: 0.1 if k == 100 else 1.0, seeds=(0, 1, 2))
          if not (r["seed"] == 2 and r[AXES[0]] == 100)]
  scored = study_report.with_scores(rows)
  interval = study_stats.by_replicate(
      scored, lambda rs: study_report._effect(rs, AXES[0], levels=(5, 100)))
  assert interval.estimate == pytest.approx(-1.0) and interval.replicated
  # K 100 reaches the target (KL 1, K 5's end) after 10 updates = 5 s, K 5 after 100 = 10 s:
  # log10(5 / 10) in seeds 0 and 1, seed 2 left out; faster, so not supported.
  result = study_report.claim_large_k_stable_slow(scored, AXES, ROLES, "kl")
  assert result.verdict == "not supported"
  assert result.effect.startswith("log10 time-to-target ratio: -0.301")
  # K 100 never reaches the target in any seed (it diverges): the ratio is +inf in every seed,
  # read as a range over seeds, not dropped as "not tested".
  slow = study_report.with_scores(synthetic_rows(lambda k, *a: 1.0, seeds=(0, 1, 2),
                                                 diverged_fn=lambda k, *a: k == 100))
  ratio = study_stats.by_replicate(slow, lambda rs: np.inf)
  assert (ratio.estimate, ratio.method) == (np.inf, "range")
  assert study_report._interval_note(ratio).startswith("the range over seeds excludes 0")
  # Three seeds on one side are a sign test's p = 0.25, not a 95 % interval.
  assert study_report._judge(ratio) == "inconclusive"


def test_levels_order_by_value_whatever_their_type():
  assert sorted([np.int64(100), np.int64(5), np.int64(20)], key=study_report._order) == [5, 20,
                                                                                          100]
  assert sorted([True, False], key=study_report._order) == [False, True]
