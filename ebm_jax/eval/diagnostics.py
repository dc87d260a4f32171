"""Learning diagnostics of ebm-anatomy and toy-density landscapes.

* :func:`anatomy_correlations`: the cross-correlation of the energy difference ``d_s_t`` with
  the mean Langevin gradient magnitude ``r_t`` over lags, and their auto-correlations, over a
  recent window, computed exactly as ebm-anatomy's ``plot_diagnostics`` does.
* :func:`learning_verdict`: one line on what the recent ``d_s_t`` says (ebm-anatomy, Sec. 3):
  in stable maximum-likelihood learning ``d_s_t = mean E(data) - mean E(samples)`` oscillates
  around 0; a drift away from 0 means the samples no longer track the model.
* :func:`toy_landscape`: true density, the model's normalised density and a kernel density
  estimate of its samples on a grid, with KL(true || model) and KL(true || KDE).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Correlations(NamedTuple):
  lags: np.ndarray            # -max_lag .. max_lag
  cross: np.ndarray           # cross-correlation of d_s_t and r_t at each lag
  acf_lags: np.ndarray        # 0 .. max_lag
  acf_d_s_t: np.ndarray       # auto-correlation of d_s_t
  acf_r_t: np.ndarray         # auto-correlation of r_t


def anatomy_correlations(d_s_t, r_t, max_lag: int = 15, window: int = 2000) -> Correlations:
  """ebm-anatomy's correlation diagnostics over the last ``window`` steps.

  As in its code, ``d_s_t`` is rescaled to unit mean square but *not* centred (its level around
  0 is the point), ``r_t`` is standardised, and ``corr[L] = sum_n a[n + L] b[n] / (T - 1)``:
  a positive lag ``L`` pairs ``d_s_t`` with ``r_t`` from ``L`` steps earlier.
  """
  d = np.asarray(d_s_t, np.float64)[-window:]
  r = np.asarray(r_t, np.float64)[-window:]
  t = len(d)
  if t < 3:
    raise ValueError(f"anatomy_correlations: need at least 3 steps, got {t}")
  max_lag = min(max_lag, t - 1)
  d = d / np.sqrt(np.sum(d * d) / (t - 1) + 1e-300)
  r_sd = np.std(r, ddof=1)
  r = (r - r.mean()) / (r_sd if r_sd > 0 else 1.0)
  center = t - 1
  full = lambda a, b: np.correlate(a, b, "full") / (t - 1)
  lags = np.arange(-max_lag, max_lag + 1)
  acf_lags = np.arange(max_lag + 1)
  return Correlations(lags, full(d, r)[center + lags], acf_lags, full(d, d)[center + acf_lags],
                      full(r, r)[center + acf_lags])


def learning_verdict(d_s_t, r_t, window: int = 500) -> str:
  """One line on the recent learning dynamics, where ebm-anatomy's analysis gives one."""
  d = np.asarray(d_s_t, np.float64)[-window:]
  r = np.asarray(r_t, np.float64)
  n = len(d)
  if n < 20:
    return f"too early for a verdict ({n} steps)"
  if not np.all(np.isfinite(d)):
    return "non-finite d_s_t: training has diverged"
  mean, sd = float(d.mean()), float(d.std())
  crossings = int(np.sum(np.signbit(d[1:]) != np.signbit(d[:-1])))
  stats = f"mean {mean:.3g}, sd {sd:.3g}, {crossings} zero crossings in the last {n} steps"
  if abs(mean) <= sd and crossings >= max(2, n // 50):
    verdict = f"stable: d_s_t oscillates around 0 ({stats}), as in stable ML learning"
  elif mean < 0:
    verdict = (f"drifting below 0: data energy stays below the samples' ({stats}); the chains "
               "lag the model (too few / too small steps) or the learning rate is too high")
  else:
    verdict = (f"drifting above 0: samples sit at lower energy than data ({stats}); chains "
               "overshoot into energy minima the data do not visit")
  if len(r) >= 2 * n and np.mean(r[-n:]) > 10 * np.mean(r[:n]):
    verdict += f"; r_t has grown {np.mean(r[-n:]) / np.mean(r[:n]):.0f}x since the start"
  return verdict


# ----------------------------------------------------------------------------- toy landscapes


class Landscape(NamedTuple):
  axis: np.ndarray            # grid coordinates along x and y
  true: np.ndarray            # [res, res] densities, rows = y, columns = x
  model: np.ndarray
  kde: np.ndarray | None      # the samples' KDE with the fixed kernel of kl_smoothed
  kl_true_model: float
  kl_true_kde: float | None   # KL(true || scipy-bandwidth KDE): rewards too narrow samples
  kl_kde_floor: float | None = None   # the same KL for as many exact samples (see kde_floor)
  kl_smoothed: float | None = None    # the proper score: KL(true * K || KDE_K), see kl_smoothed
  kl_smoothed_floor: float | None = None   # its mean for as many exact samples


def grid_points(limit: float, res: int):
  axis = np.linspace(-limit, limit, res)
  xx, yy = np.meshgrid(axis, axis)
  return axis, np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)


def normalise_on_grid(log_density: np.ndarray, cell_area: float) -> np.ndarray:
  log_density = np.asarray(log_density, np.float64)
  p = np.exp(log_density - log_density.max())
  return p / (p.sum() * cell_area)


@jax.jit
def _kde_chunk(points, whitened_samples, sample_sq, whiten, log_norm):
  # A module-level jit: every landscape of a run (same shapes) reuses one program. In whitened
  # coordinates the kernel's quadratic form is a squared distance, |p|^2 + |s|^2 - 2 p.s: one
  # matmul instead of a (points x samples x dims) difference tensor (8x faster on CPU).
  z = points @ whiten
  quad = jnp.sum(z * z, axis=1)[:, None] + sample_sq[None, :] - 2.0 * z @ whitened_samples.T
  return jax.nn.logsumexp(-0.5 * jnp.maximum(quad, 0.0), axis=1) + log_norm


def kde_log_density(samples, points, bandwidth: float, chunk: int = 4096,
                    kernel_sd: float | None = None) -> np.ndarray:
  """Gaussian KDE evaluated in JAX in chunks: with scipy's ``gaussian_kde(bw_method=bandwidth)``
  kernel (covariance ``bandwidth**2`` times the samples' covariance), or, with ``kernel_sd``, a
  fixed isotropic kernel of that sd (the same for every sample set)."""
  samples = jnp.asarray(samples, jnp.float32)
  cov = (jnp.cov(samples.T) * bandwidth ** 2 if kernel_sd is None
         else jnp.eye(samples.shape[1]) * jnp.float32(kernel_sd) ** 2)
  whiten = jnp.linalg.cholesky(jnp.linalg.inv(cov))     # inv(cov) = whiten @ whiten.T
  log_norm = -0.5 * jnp.log(jnp.linalg.det(2 * jnp.pi * cov)) - jnp.log(samples.shape[0])
  whitened = samples @ whiten
  sample_sq = jnp.sum(whitened * whitened, axis=1)
  points = np.asarray(points, np.float32)
  return np.concatenate([np.asarray(_kde_chunk(points[i:i + chunk], whitened, sample_sq, whiten,
                                               log_norm))
                         for i in range(0, len(points), chunk)])


def kl_on_grid(p: np.ndarray, q: np.ndarray, cell_area: float) -> float:
  """KL(p || q) of two densities tabulated on the same grid."""
  p, q = np.asarray(p, np.float64).ravel(), np.asarray(q, np.float64).ravel()
  mask = p > 0
  return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(np.maximum(q[mask], 1e-300))))
               * cell_area)


def kernel_sd(true: np.ndarray, axis: np.ndarray, bandwidth: float) -> float:
  """The fixed kernel of :func:`kl_smoothed`: ``bandwidth`` times the true density's per-axis
  standard deviation (so ``diagnostics.kde_bandwidth`` keeps its meaning, but the kernel no
  longer depends on the samples)."""
  p = true.reshape(len(axis), len(axis))
  p = p / p.sum()
  px, py = p.sum(axis=0), p.sum(axis=1)              # marginals along x (columns) and y (rows)
  var = sum(float(np.sum(m * axis ** 2) - np.sum(m * axis) ** 2) for m in (px, py)) / 2
  return bandwidth * var ** 0.5


def smoothed(density: np.ndarray, axis: np.ndarray, sd: float) -> np.ndarray:
  """A density on the grid convolved with an isotropic Gaussian of sd ``sd`` (the law of
  X + sd Z), renormalised on the grid."""
  from scipy import ndimage
  cell = float(axis[1] - axis[0])
  grid = density.reshape(len(axis), len(axis))
  out = ndimage.gaussian_filter(grid, sd / cell, mode="constant", truncate=6.0)
  return (out / (out.sum() * cell * cell)).ravel()


def kl_smoothed(true: np.ndarray, samples, axis: np.ndarray, points: np.ndarray,
                bandwidth: float) -> tuple[float, np.ndarray]:
  """The proper toy score: KL(true * K || KDE_K of the samples), ``K`` the fixed Gaussian kernel
  of :func:`kernel_sd`; returns it and the KDE.

  A KDE of exact samples estimates the true density *smoothed by its kernel*, not the true
  density. Against the unsmoothed truth, KL(true || KDE) is lowest for samples narrower than
  the truth (the kernel's variance makes up for theirs: GMM, 4,000 samples, every mode 10 %
  too narrow scores 0.010, exact samples 0.027). Comparing like with like, the truth smoothed
  by the same kernel, the smoothing cancels: the score is consistent (exact samples are best
  as the sample count grows; at a finite count the KDE's variance adds a term of order
  1 / (n h^2), the floor below). Means of 6 draws of 4,000 samples: 0.012 exact, 0.027 10 %
  narrower, 0.021 10 % wider, 0.065 modes reweighted 2:1, 1.05 one mode of eight dropped
  (``tests/eval/diagnostics_test.py``). Its value for exact samples of the same count
  (:func:`smoothed_floor`) is the real floor.
  """
  area = float((axis[1] - axis[0]) ** 2)
  sd = kernel_sd(true, axis, bandwidth)
  kde = normalise_on_grid(kde_log_density(samples, points, bandwidth, kernel_sd=sd), area)
  return kl_on_grid(smoothed(true, axis, sd), kde, area), kde


def true_on_grid(log_density: Callable, limit: float, res: int):
  """``(axis, points, cell area, true density)`` of a toy on the ``res x res`` landscape grid."""
  axis, points = grid_points(limit, res)
  area = float((axis[1] - axis[0]) ** 2)
  return axis, points, area, normalise_on_grid(np.asarray(log_density(jnp.asarray(points))),
                                               area)


def smoothed_floor(toy, num: int, limit: float, res: int = 200, kde_bandwidth: float = 0.1,
                   draws: int = 5) -> float:
  """The mean of :func:`kl_smoothed` over ``draws`` sets of ``num`` exact samples of ``toy``:
  what a perfect sampler scores with this many samples (the KDE's variance alone)."""
  axis, points, _, true = true_on_grid(toy.log_density, limit, res)
  return float(np.mean([
      kl_smoothed(true, toy.sample(jax.random.PRNGKey(seed), num), axis, points,
                  kde_bandwidth)[0] for seed in range(draws)]))


def kde_floor(toy, num: int, limit: float, res: int = 200, kde_bandwidth: float = 0.1,
              seed: int = 0) -> float:
  """KL(true || KDE of ``num`` exact samples of ``toy``) on the landscape grid: what a perfect
  sampler scores with this many samples and this bandwidth (the KDE's own bias)."""
  _, points, area, true = true_on_grid(toy.log_density, limit, res)
  samples = toy.sample(jax.random.PRNGKey(seed), num)
  return kl_on_grid(true, normalise_on_grid(kde_log_density(samples, points, kde_bandwidth),
                                            area), area)


def toy_landscape(true_log_density: Callable, energy_fn: Callable, limit: float,
                  temperature_scale: float = 1.0, samples=None, res: int = 200,
                  kde_bandwidth: float = 0.1) -> Landscape:
  """True, model and sample-KDE densities on a ``res x res`` grid over ``[-limit, limit]^2``.

  The model density is ``exp(-temperature_scale * E)`` normalised on the grid; the scale maps
  the network's energy to the temperature its sampler targets (``2 step_size / noise_std**2``
  for Langevin, i.e. ebm-anatomy's ``2 / eps**2`` with step size 1). ``energy_fn`` is called
  once on all grid points: pass a jitted one (the runner's is compiled once per run).
  """
  axis, points, area, true = true_on_grid(true_log_density, limit, res)
  energy = np.asarray(energy_fn(jnp.asarray(points)), np.float64)
  model = normalise_on_grid(-temperature_scale * energy, area)
  kde = kl_kde = kl_proper = None
  if samples is not None:
    kl_kde = kl_on_grid(true, normalise_on_grid(kde_log_density(samples, points, kde_bandwidth),
                                                area), area)
    kl_proper, kde = kl_smoothed(true, samples, axis, points, kde_bandwidth)
  shape = (res, res)
  return Landscape(axis, true.reshape(shape), model.reshape(shape),
                   None if kde is None else kde.reshape(shape), kl_on_grid(true, model, area),
                   kl_kde, kl_smoothed=kl_proper)
