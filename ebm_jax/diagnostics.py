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
  kde: np.ndarray | None
  kl_true_model: float
  kl_true_kde: float | None
  kl_kde_floor: float | None = None   # the same KL for as many exact samples (see kde_floor)


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


def kde_log_density(samples, points, bandwidth: float, chunk: int = 4096) -> np.ndarray:
  """Gaussian KDE with scipy's ``gaussian_kde(bw_method=bandwidth)`` kernel (covariance
  ``bandwidth**2`` times the samples' covariance), evaluated in JAX in chunks."""
  samples = jnp.asarray(samples, jnp.float32)
  cov = jnp.cov(samples.T) * bandwidth ** 2
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


def kde_floor(toy, num: int, limit: float, res: int = 200, kde_bandwidth: float = 0.1,
              seed: int = 0) -> float:
  """KL(true || KDE of ``num`` exact samples of ``toy``) on the landscape grid: what a perfect
  sampler scores with this many samples and this bandwidth (the KDE's own bias)."""
  axis, points = grid_points(limit, res)
  area = float((axis[1] - axis[0]) ** 2)
  true = normalise_on_grid(np.asarray(toy.log_density(jnp.asarray(points))), area)
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
  axis, points = grid_points(limit, res)
  area = float((axis[1] - axis[0]) ** 2)
  true = normalise_on_grid(np.asarray(true_log_density(jnp.asarray(points))), area)
  energy = np.asarray(energy_fn(jnp.asarray(points)), np.float64)
  model = normalise_on_grid(-temperature_scale * energy, area)
  kde = kl_kde = None
  if samples is not None:
    kde = normalise_on_grid(kde_log_density(samples, points, kde_bandwidth), area)
    kl_kde = kl_on_grid(true, kde, area)
  shape = (res, res)
  return Landscape(axis, true.reshape(shape), model.reshape(shape),
                   None if kde is None else kde.reshape(shape), kl_on_grid(true, model, area),
                   kl_kde)
