"""Bootstrap intervals over seeds and the ANOVA, on synthetic data with known answers."""

import numpy as np
import pytest

from ebm_jax.study import stats as study_stats


def rows_of(values_by_setting):
  return [{"setting": name, "y": v} for name, values in values_by_setting.items()
          for v in values]


def mean_gap(rows):
  a = np.mean([r["y"] for r in rows if r["setting"] == "a"])
  b = np.mean([r["y"] for r in rows if r["setting"] == "b"])
  return a - b


def simulate(gap, num_studies=200, seeds=5):
  """Coverage of ``gap`` and the fraction of intervals excluding 0, over simulated studies of
  ``seeds`` replicates per setting with unit noise."""
  rng = np.random.default_rng(0)
  covered = excluded = 0
  for i in range(num_studies):
    rows = rows_of({"a": gap + rng.normal(size=seeds), "b": rng.normal(size=seeds)})
    interval = study_stats.bootstrap(rows, mean_gap, num_resamples=400, seed=i)
    covered += interval.low <= gap <= interval.high
    excluded += interval.excludes(0.0)
  return covered / num_studies, excluded / num_studies


def test_interval_covers_the_true_difference_and_excludes_zero_only_for_real_effects():
  # The percentile bootstrap under-covers with 5 replicates (about 85-90 % for a nominal 95 %).
  covered, _ = simulate(1.0)
  assert 0.8 <= covered <= 0.98
  assert simulate(3.0)[1] > 0.95       # a 3-sd effect is seen in nearly every study
  assert simulate(0.0)[1] < 0.2        # no effect: few false positives


def test_resampling_never_mixes_settings():
  rows = rows_of({"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0]})
  for seed in range(20):
    drawn = study_stats.resample(rows, np.random.default_rng(seed))
    assert sorted(r["setting"] for r in drawn) == ["a", "a", "a", "b", "b"]
    assert {r["y"] for r in drawn if r["setting"] == "a"} <= {1.0, 2.0, 3.0}


def test_one_seed_gives_the_point_without_an_interval():
  interval = study_stats.bootstrap(rows_of({"a": [2.0], "b": [0.5]}), mean_gap)
  assert (interval.estimate, interval.low, interval.high) == (1.5, 1.5, 1.5)
  assert not interval.replicated and not interval.excludes(0.0)
  assert "no interval" in str(interval)


def test_infinite_statistics_give_order_statistics_not_nan():
  # A resample's gap is 1.0 when it draws a's three finite replicates only (probability
  # (3/4)^4 = 0.32) and inf otherwise: both far more often than the 2.5 % tails, so the
  # interval is [1, inf] around the inf estimate, never nan or -inf.
  rows = rows_of({"a": [1.0, 1.0, 1.0, np.inf], "b": [0.0, 0.0, 0.0]})
  interval = study_stats.bootstrap(rows, mean_gap, num_resamples=200)
  assert (interval.estimate, interval.low, interval.high) == (np.inf, 1.0, np.inf)
  assert interval.replicated and interval.excludes(0.0) and not interval.excludes(2.0)
  assert str(interval) == "inf [1, inf]"


def test_anova_shares_follow_the_generating_model():
  rng = np.random.default_rng(1)
  rows = []
  for a in ("x", "y", "z"):
    for b in ("p", "q"):
      for _ in range(4):
        effect = {"x": 0.0, "y": 1.0, "z": 2.0}[a] + (1.0 if (a, b) == ("z", "q") else 0.0)
        rows.append({"A": a, "B": b, "y": effect + 0.1 * rng.normal()})
  table = {t["term"]: t for t in study_stats.anova(rows, ["A", "B"], "y")}
  assert set(table) == {"A", "B", "A x B", "Residual"}
  assert table["A"]["share"] > table["A x B"]["share"] > table["Residual"]["share"]
  assert table["A x B"]["p"] < 1e-6
  assert table["A"]["df"] == 2 and table["A x B"]["df"] == 2 and table["Residual"]["df"] == 18
  assert sum(t["share"] for t in table.values()) == pytest.approx(1.0)


def test_anova_without_residual_degrees_falls_back_to_main_effects():
  rows = [{"A": a, "B": b, "y": float(i)} for i, (a, b) in
          enumerate([("x", "p"), ("x", "q"), ("y", "p"), ("y", "q")])]
  table = {t["term"]: t for t in study_stats.anova(rows, ["A", "B"], "y")}
  assert "A x B" not in table and table["Residual"]["df"] == 1


def test_the_t_interval_covers_at_three_replicates_and_the_percentile_bootstrap_does_not():
  # Simulated: 3 standard normal replicates, 2,000 times; the nominal level is 95 %.
  t = study_stats.coverage(study_stats.t_interval, n=3)
  rows = lambda v: [{"setting": "s", "y": float(x)} for x in v]      # noqa: E731
  boot = study_stats.coverage(
      lambda v: study_stats.bootstrap(rows(v), lambda rs: np.mean([r["y"] for r in rs]),
                                      num_resamples=200), n=3, simulations=400)
  assert 0.93 <= t <= 0.97, t
  assert boot < 0.85, boot


def test_a_contrast_by_replicate_pairs_each_seed_s_settings():
  # A setting effect of +1 with a seed effect of +-5: paired within seeds, the contrast is
  # exactly 1 with no spread; the seeds' offsets cancel.
  rows = [{"seed": s, "k": k, "y": 5.0 * (s - 1) + (1.0 if k == "high" else 0.0)}
          for s in (0, 1, 2) for k in ("low", "high")]
  def contrast(rs):
    return (np.mean([r["y"] for r in rs if r["k"] == "high"])
            - np.mean([r["y"] for r in rs if r["k"] == "low"]))
  i = study_stats.by_replicate(rows, contrast)
  assert (i.estimate, i.low, i.high, i.replicated) == (1.0, 1.0, 1.0, True)
  # The interval's half-width is t(0.975, 2) = 4.303 times the standard error.
  i = study_stats.t_interval([1.0, 2.0, 3.0])
  assert i.estimate == 2.0 and i.high - 2.0 == pytest.approx(4.302653 * 1.0 / np.sqrt(3), 1e-6)
  assert not study_stats.by_replicate([{"k": "a", "y": 1.0}], contrast).replicated
