"""The thesis's four claims judged on synthetic study rows with known answers."""

import numpy as np
import pytest

from ebm_jax.study import claims
from ebm_jax.study import stats as study_stats
from testutil import AXES, ROLES, synthetic_rows


def test_claim_1_names_the_setting_with_the_largest_effect():
  k_dominant = synthetic_rows(lambda k, lr, noise, sn: (10.0 if k == 5 else 0.1) * (1 + lr))
  verdict, lines, _ = claims.claim_k_matters_most(k_dominant, AXES, ROLES, "kl")
  assert verdict == "supported"
  lr_dominant = synthetic_rows(lambda k, lr, noise, sn: (100.0 if lr == 1e-2 else 1.0) * k)
  verdict, lines, _ = claims.claim_k_matters_most(lr_dominant, AXES, ROLES, "kl")
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
  result = claims.claim_k_matters_most(rows, AXES, ROLES, "kl")
  text = "\n".join(result.lines)
  assert "Largest level contrast here: **optimizer.learning_rate** (+1.00 orders" in text
  assert result.verdict == "not supported"


def test_claim_2_reads_divergence_at_small_k_and_the_spectral_norm_rescue():
  rows = synthetic_rows(lambda *a: 1.0, diverged_fn=lambda k, lr, noise, sn: (
      k == 5 and lr == 1e-2 and (not sn or noise > 0)), seeds=(0, 1, 2))
  verdict, lines, _ = claims.claim_small_k_low_lr(rows, AXES, ROLES, "kl")
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
  result = claims.claim_small_k_low_lr(low_fails, AXES, ROLES, "kl")
  assert "Learning rate: not supported" in "\n".join(result.lines)


def test_one_blow_up_among_the_seeds_is_not_evidence_that_spectral_norm_prevents_them():
  # Spectral norm doubles the KL in every seed; one K 5 cell without it blew up, in one seed.
  rows = synthetic_rows(lambda k, lr, noise, sn: 2.0 if sn else 1.0, seeds=(0, 1, 2))
  lone = next(r for r in rows if r["sampler.num_steps"] == 5 and not r["model.spectral_norm"]
              and r["seed"] == 0)
  lone.update(status="diverged", diverged_at_step=7, quality=np.nan, stable=False)
  result = claims.claim_small_k_low_lr(rows, AXES, ROLES, "kl")
  text = "\n".join(result.lines)
  assert "blow-ups without vs with, 1 vs 0 of 12 pairs (exact McNemar p = 1)" in text
  assert "spectral norm: not supported." in text          # worse KL over its interval


def test_claim_3_reads_time_to_quality_and_stability():
  # Equal quality per update, K 100 five times slower per update: it reaches the target later.
  rows = synthetic_rows(lambda k, lr, noise, sn: 1.0 + lr)
  verdict, lines, effect = claims.claim_large_k_stable_slow(rows, AXES, ROLES, "kl")
  assert verdict == "supported" and "one update takes 5.0x as long" in "\n".join(lines)
  assert effect.startswith("log10 time-to-target ratio: 0.699")      # log10 5
  # K 100 per update as cheap and ten times better per update: it is faster to the target.
  fast = synthetic_rows(lambda k, lr, noise, sn: (0.1 if k == 100 else 1.0) * (1 + lr),
                        sps={5: 10.0, 100: 9.0})
  assert claims.claim_large_k_stable_slow(fast, AXES, ROLES, "kl")[0] == "not supported"
  unstable = synthetic_rows(lambda *a: 1.0, diverged_fn=lambda k, *a: k == 100)
  assert claims.claim_large_k_stable_slow(unstable, AXES, ROLES, "kl")[0] == (
      "not supported")


def test_one_unstable_cell_does_not_make_large_k_less_often_stable():
  # K 100 five times slower per update in every seed; one K 100 cell diverged, in one seed.
  rows = synthetic_rows(lambda k, lr, noise, sn: 1.0 + lr, seeds=(0, 1, 2))
  lone = next(r for r in rows if r["sampler.num_steps"] == 100 and r["seed"] == 0)
  lone.update(status="diverged", diverged_at_step=7, quality=np.nan, stable=False)
  result = claims.claim_large_k_stable_slow(rows, AXES, ROLES, "kl")
  assert "only at K=5: 1 vs 0 of 24 pairs (exact McNemar p = 1)" in "\n".join(result.lines)
  assert result.verdict == "supported"


def test_claim_4_compares_matched_noiseless_and_noisy_cells():
  better = synthetic_rows(lambda k, lr, noise, sn: 1.0 if noise == 0 else 1.2)
  verdict, lines, _ = claims.claim_noiseless_comparable(better, AXES, ROLES, "kl")
  assert verdict == "supported" and "median 0.833" in "\n".join(lines)
  worse = synthetic_rows(lambda k, lr, noise, sn: 3.0 if noise == 0 else 1.0)
  assert claims.claim_noiseless_comparable(worse, AXES, ROLES, "kl")[0] == "not supported"


def test_claim_4_compares_quality_where_both_finished_and_divergences_apart():
  # Noiseless cells 1.8x worse than noisy ones (beyond the 1.5x margin) wherever both finish;
  # half the noisy cells diverge. Scored as the grid's worst (the noiseless 1.8), those pairs
  # would show no gap and halve the mean into the margin.
  rows = claims.with_scores(synthetic_rows(
      lambda k, lr, noise, sn: 1.8 if noise == 0 else 1.0, seeds=(0, 1, 2),
      diverged_fn=lambda k, lr, noise, sn: noise > 0 and lr == 1e-2))
  result = claims.claim_noiseless_comparable(rows, AXES, ROLES, "kl")
  text = "\n".join(result.lines)
  assert result.effect.startswith("log10 gap noiseless - noisy: 0.255")
  assert result.verdict == "not supported"
  assert "noiseless vs noisy: 0 vs 12 of 24 pairs (exact McNemar p = 0.00049)" in text


def test_replicated_verdicts_carry_intervals_and_say_inconclusive_when_noise_wins():
  # True effect of K: 1 order of magnitude; seed noise sd 0.05 decades: clearly supported.
  quality = lambda k, lr, noise, sn: 10.0 if k == 5 else 1.0        # noqa: E731
  clear = synthetic_rows(quality, seeds=(0, 1, 2, 3), noise_sd=0.05)
  result = claims.claim_k_matters_most(clear, AXES, ROLES, "kl")
  assert result.verdict == "supported"
  assert "excludes 0" in "\n".join(result.lines)
  # Seed noise of 1 decade drowns a 0.1-decade effect: the interval straddles 0.
  weak = synthetic_rows(lambda k, lr, noise, sn: 1.26 if k == 5 else 1.0, seeds=(0, 1, 2),
                        noise_sd=1.0)
  assert claims.claim_k_matters_most(weak, AXES, ROLES, "kl").verdict == "inconclusive"
  # Claim 4 as an equivalence test: a factor 1.2 worse with tight seeds is comparable; with
  # noisy cells the interval reaches past a factor 1.5 and the verdict is inconclusive.
  tight = synthetic_rows(lambda k, lr, noise, sn: 1.2 if noise == 0 else 1.0, seeds=(0, 1, 2),
                         noise_sd=0.01)
  assert claims.claim_noiseless_comparable(tight, AXES, ROLES, "kl").verdict == (
      "supported")
  wide = synthetic_rows(lambda k, lr, noise, sn: 1.2 if noise == 0 else 1.0, seeds=(0, 1, 2),
                        noise_sd=0.3)
  assert claims.claim_noiseless_comparable(wide, AXES, ROLES, "kl").verdict == (
      "inconclusive")
  # A seed's offset shared by all its settings is not noise for a contrast within the seed:
  # paired, half a decade of seed-to-seed spread leaves the factor 1.2 exact.
  offsets = synthetic_rows(lambda k, lr, noise, sn: 1.2 if noise == 0 else 1.0,
                           seeds=(0, 1, 2), seed_offsets={0: -0.5, 1: 0.0, 2: 0.5})
  result = claims.claim_noiseless_comparable(offsets, AXES, ROLES, "kl")
  assert result.verdict == "supported" and "0.0792 [0.0792, 0.0792]" in "\n".join(result.lines)


def test_claims_without_their_axes_are_not_tested():
  rows = synthetic_rows(lambda *a: 1.0)
  verdict, lines, _ = claims.claim_noiseless_comparable(rows, AXES[:2], ROLES, "kl")
  assert verdict == "not tested" and "noise" in lines[0]


def test_a_main_effect_is_signed_so_its_interval_can_hold_zero():
  # No effect at all, seed noise only: the range of level means would be positive in every
  # resample; the signed contrast's interval straddles 0.
  rows = synthetic_rows(lambda *a: 1.0, seeds=(0, 1, 2), noise_sd=0.2)
  for key in AXES:
    interval = study_stats.by_replicate(rows, lambda rs, key=key: claims._effect(rs, key))
    assert interval.low < 0 < interval.high, (key, interval)
  # And the sign says which way: K 100 is a decade better than K 5.
  better = synthetic_rows(lambda k, *a: 0.1 if k == 100 else 1.0, seeds=(0, 1, 2))
  assert claims._effect(better, AXES[0]) == pytest.approx(-1.0)


def test_a_seed_missing_a_level_or_never_reaching_the_target_is_handled():
  # Seed 2 has no K 100 cells (its group has not run): its K contrast is nan and left out, not
  # a contrast between other levels; the report does not crash.
  rows = [r for r in synthetic_rows(lambda k, *a: 0.1 if k == 100 else 1.0, seeds=(0, 1, 2))
          if not (r["seed"] == 2 and r[AXES[0]] == 100)]
  scored = claims.with_scores(rows)
  interval = study_stats.by_replicate(
      scored, lambda rs: claims._effect(rs, AXES[0], levels=(5, 100)))
  assert interval.estimate == pytest.approx(-1.0) and interval.replicated
  # K 100 reaches the target (KL 1, K 5's end) after 10 updates = 5 s, K 5 after 100 = 10 s:
  # log10(5 / 10) in seeds 0 and 1, seed 2 left out; faster, so not supported.
  result = claims.claim_large_k_stable_slow(scored, AXES, ROLES, "kl")
  assert result.verdict == "not supported"
  assert result.effect.startswith("log10 time-to-target ratio: -0.301")
  # K 100 never reaches the target in any seed (it diverges): the ratio is +inf in every seed,
  # read as a range over seeds, not dropped as "not tested".
  slow = claims.with_scores(synthetic_rows(lambda k, *a: 1.0, seeds=(0, 1, 2),
                                                 diverged_fn=lambda k, *a: k == 100))
  ratio = study_stats.by_replicate(slow, lambda rs: np.inf)
  assert (ratio.estimate, ratio.method) == (np.inf, "range")
  assert claims._interval_note(ratio).startswith("the range over seeds excludes 0")
  # Three seeds on one side are a sign test's p = 0.25, not a 95 % interval.
  assert claims._judge(ratio) == "inconclusive"


def test_levels_order_by_value_whatever_their_type():
  assert sorted([np.int64(100), np.int64(5), np.int64(20)], key=claims._order) == [5, 20,
                                                                                          100]
  assert sorted([True, False], key=claims._order) == [False, True]


def test_claim_4_also_reads_the_log_likelihood_gap_of_the_pairs():
  rows = synthetic_rows(lambda *a: 1.0, seeds=(0, 1, 2))
  text = "\n".join(claims.claim_noiseless_comparable(rows, AXES, ROLES, "kl").lines)
  assert "Log-likelihood: no matched pair has a finite one on both sides" in text
  for r in rows:   # noiseless energies 0.5 nats per example worse, +-0.1 by seed
    r["log_likelihood"] = -1.0 - (0.5 if r[AXES[2]] == 0 else 0.0) + 0.1 * r["seed"] * (
        r[AXES[2]] == 0)
    r["log_likelihood_method"] = "grid"
  text = "\n".join(claims.claim_noiseless_comparable(rows, AXES, ROLES, "kl").lines)
  line = next(x for x in text.splitlines() if x.startswith("Log-likelihood of the same pairs"))
  assert "noiseless 0 of" in line
  assert "grid; 24 pairs" in line and "noisy higher" in line
  assert "-0.4 [" in line      # the mean over seeds of -0.5, -0.4, -0.3
  rows[0]["log_likelihood"], rows[0]["log_likelihood_method"] = np.nan, "not normalisable"
  text = "\n".join(claims.claim_noiseless_comparable(rows, AXES, ROLES, "kl").lines)
  assert "No finite density (not normalisable, or AIS not settled): noiseless 1 of" in text
