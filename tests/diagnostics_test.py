"""Diagnostics against hand-computed series and analytic densities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax import data, diagnostics


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
