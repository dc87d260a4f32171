"""Diagnostics against hand-computed series and analytic densities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax import data
from ebm_jax.eval import diagnostics


def test_correlations_of_known_sinusoids():
  t = np.arange(2000)
  period = 20
  d = np.sin(2 * np.pi * t / period)                 # oscillates around 0
  r = 3.0 + np.sin(2 * np.pi * (t - 5) / period)     # the same wave, 5 steps later
  c = diagnostics.anatomy_correlations(d, r, max_lag=15)
  assert list(c.lags) == list(range(-15, 16)) and list(c.acf_lags) == list(range(16))
  # Auto-correlation of a unit-mean-square sinusoid: cos(2 pi L / period).
  np.testing.assert_allclose(c.acf_d_s_t, np.cos(2 * np.pi * c.acf_lags / period), atol=0.01)
  np.testing.assert_allclose(c.acf_r_t, np.cos(2 * np.pi * c.acf_lags / period), atol=0.01)
  # corr[L] pairs d[n + L] with r[n]: d leads r by 5 steps, so the peak is at L = -5.
  assert c.lags[np.argmax(c.cross)] == -5
  np.testing.assert_allclose(c.cross.max(), 1.0, atol=0.01)


def test_correlations_use_only_the_recent_window():
  early = np.full(1000, 50.0)
  late = np.sin(np.arange(300) / 3.0)
  c = diagnostics.anatomy_correlations(np.concatenate([early, late]),
                                       np.concatenate([early, late]), window=300)
  np.testing.assert_allclose(c.acf_d_s_t[0], 1.0, atol=0.01)


def test_verdicts():
  rng = np.random.default_rng(0)
  r = np.ones(1000)
  stable = rng.normal(0, 1, 1000)
  assert diagnostics.learning_verdict(stable, r).startswith("stable")
  assert diagnostics.learning_verdict(-5 + 0.1 * rng.normal(size=1000), r).startswith(
      "drifting below 0")
  assert diagnostics.learning_verdict(5 + 0.1 * rng.normal(size=1000), r).startswith(
      "drifting above 0")
  assert diagnostics.learning_verdict(stable[:5], r[:5]).startswith("too early")
  assert "diverged" in diagnostics.learning_verdict(np.r_[stable, np.nan], np.r_[r, 1.0])
  growing = np.r_[np.ones(500), 100 * np.ones(500)]
  assert "r_t has grown 100x" in diagnostics.learning_verdict(stable, growing)


def test_kde_matches_scipy():
  from scipy.stats import gaussian_kde
  rng = np.random.default_rng(1)
  samples = rng.normal(size=(300, 2)) * [1.0, 0.5]
  points = rng.normal(size=(50, 2))
  ours = diagnostics.kde_log_density(samples, points, 0.2)
  theirs = np.log(gaussian_kde(samples.T, bw_method=0.2)(points.T))
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
  before = diagnostics._kde_chunk._cache_size()
  diagnostics.kde_log_density(samples + 1.0, points, 0.3)   # another landscape, same shapes
  assert diagnostics._kde_chunk._cache_size() == before


@pytest.mark.parametrize("toy", ["gmm", "rings"])
def test_toy_kl_is_small_for_true_samples_and_large_for_one_mode(toy):
  density = data.TOY_DENSITIES[toy]()
  bandwidth = {"gmm": 0.1, "rings": 0.075}[toy]         # ebm-anatomy's KDE bandwidths
  true_energy = lambda x: -density.log_density(x)
  samples = np.asarray(density.sample(jax.random.key(0), 4000))
  good = diagnostics.toy_landscape(density.log_density, true_energy, density.plot_limit,
                                   samples=samples, res=120, kde_bandwidth=bandwidth)
  assert good.kl_true_model < 1e-6          # the true energy is the model: KL 0
  assert good.kl_true_kde < 0.2             # KDE smoothing only
  # Samples of one mode / one ring only.
  if toy == "gmm":
    one = samples[np.linalg.norm(samples - [1.0, 0.0], axis=1) < 0.5]
  else:
    one = samples[np.linalg.norm(samples, axis=1) < 1.5]
  bad = diagnostics.toy_landscape(density.log_density, true_energy, density.plot_limit,
                                  samples=one, res=120, kde_bandwidth=bandwidth)
  assert bad.kl_true_kde > 1.0 and bad.kl_true_kde > 10 * good.kl_true_kde
  # A flat model is far from the truth.
  flat = diagnostics.toy_landscape(density.log_density, lambda x: jnp.zeros(x.shape[0]),
                                   density.plot_limit, res=120)
  assert flat.kl_true_model > 0.5          # log(grid area) - entropy of the truth


def test_kde_floor_is_what_exact_samples_score_and_shrinks_with_more_samples():
  density = data.TOY_DENSITIES["rings"]()
  floors = [diagnostics.kde_floor(density, n, density.plot_limit, res=100, kde_bandwidth=0.075)
            for n in (500, 4000)]
  samples = np.asarray(density.sample(jax.random.key(0), 4000))
  direct = diagnostics.toy_landscape(density.log_density, lambda x: -density.log_density(x),
                                     density.plot_limit, samples=samples, res=100,
                                     kde_bandwidth=0.075)
  np.testing.assert_allclose(floors[1], direct.kl_true_kde, rtol=1e-6)
  assert 0 < floors[1] < floors[0]


def _gmm_like(key, n, mode_sd=0.15, weights=None):
  """Samples of the 8-mode GMM with every mode's sd ``mode_sd`` and mode ``weights``."""
  angles = 2 * np.pi * np.arange(8) / 8
  means = np.stack([np.cos(angles), np.sin(angles)], axis=1)
  w = np.ones(8) if weights is None else np.asarray(weights, float)
  rng = np.random.default_rng(key)
  mode = rng.choice(8, size=n, p=w / w.sum())
  return means[mode] + mode_sd * rng.standard_normal((n, 2))


def test_the_smoothed_kl_is_proper_and_the_plain_one_rewards_narrow_samples():
  # Mean over 6 draws of 4,000 samples each: exact samples score best against 10 % narrower or
  # wider modes, one mode of eight dropped and modes reweighted 2:1; KL(true || KDE) prefers
  # the narrower ones (the kernel's variance stands in for theirs).
  density = data.TOY_DENSITIES["gmm"]()
  axis, points, area, true = diagnostics.true_on_grid(density.log_density, density.plot_limit,
                                                      120)
  cases = {"exact": {}, "narrower": {"mode_sd": 0.135}, "wider": {"mode_sd": 0.165},
           "one mode dropped": {"weights": [0, 1, 1, 1, 1, 1, 1, 1]},
           "reweighted": {"weights": [2, 1, 2, 1, 2, 1, 2, 1]}}
  proper, plain = {}, {}
  for name, kwargs in cases.items():
    draws = [_gmm_like(seed, 4000, **kwargs) for seed in range(6)]
    proper[name] = np.mean([diagnostics.kl_smoothed(true, x, axis, points, 0.1)[0]
                            for x in draws])
    plain[name] = np.mean([diagnostics.kl_on_grid(true, diagnostics.normalise_on_grid(
        diagnostics.kde_log_density(x, points, 0.1), area), area) for x in draws])
  assert min(proper, key=proper.get) == "exact", proper
  assert proper["narrower"] > 1.5 * proper["exact"] and proper["wider"] > 1.3 * proper["exact"]
  assert plain["narrower"] < plain["exact"], plain          # the bias the proper score removes
  # The floor is what exact samples score, and the landscape reports the same score.
  floor = diagnostics.smoothed_floor(density, 4000, density.plot_limit, res=120,
                                     kde_bandwidth=0.1, draws=6)
  assert floor == pytest.approx(proper["exact"], rel=0.1)
  landscape = diagnostics.toy_landscape(density.log_density, lambda x: -density.log_density(x),
                                        density.plot_limit, samples=_gmm_like(0, 4000),
                                        res=120, kde_bandwidth=0.1)
  assert landscape.kl_smoothed == pytest.approx(
      diagnostics.kl_smoothed(true, _gmm_like(0, 4000), axis, points, 0.1)[0], rel=1e-9)


def test_the_fixed_kernel_is_the_bandwidth_times_the_true_sd_and_smoothing_adds_its_variance():
  density = data.TOY_DENSITIES["gmm"]()
  axis, _, _, true = diagnostics.true_on_grid(density.log_density, density.plot_limit, 200)
  # Per-axis variance of the GMM: means on the unit circle (1/2) plus the mode's 0.15^2.
  sd = diagnostics.kernel_sd(true, axis, 0.1)
  assert sd == pytest.approx(0.1 * (0.5 + 0.15 ** 2) ** 0.5, rel=1e-3)
  # Smoothing by a Gaussian of sd 0.05 adds its variance (up to the grid's truncated tails).
  def axis_variance(density):
    px = density.reshape(len(axis), len(axis)).sum(axis=0)
    return float(np.sum(px * axis ** 2) / px.sum())
  added = axis_variance(diagnostics.smoothed(true, axis, 0.05)) - axis_variance(true)
  assert added == pytest.approx(0.05 ** 2, rel=0.02)
