"""Log-likelihoods of an energy model: annealed importance sampling (AIS) and, in 2-D, exact
quadrature.

The model is the density ``p(x) = exp(-c E(x)) / Z`` at the temperature ``c`` its sampler
targets. :func:`ais` estimates ``log Z`` (Neal 2001): chains start from a normalised base
density ``p_0`` (a Gaussian fitted to data, or a uniform box), move through intermediate
densities ``f_k(x) = p_0(x)^(1 - beta_k) exp(-beta_k c E(x))`` along ``0 = beta_0 < ... <
beta_M = 1`` with MALA or HMC transitions (blackjax, through :mod:`ebm_jax.core.samplers`), and
collect importance weights ``log w = sum_k log f_k(x_{k-1}) - log f_{k-1}(x_{k-1})``. Then
``Z ≈ mean(w)``: unbiased for ``Z``, so ``log mean(w)`` *underestimates* ``log Z`` in
expectation (Jensen) and the log-likelihood it gives is an *overestimate*. :func:`reverse_ais`
runs the same path backwards from exact samples of the model (available in 2-D from the grid)
and bounds ``log Z`` from above in expectation, so the two sandwich it (Grosse et al. 2015).

Every estimate carries its Monte Carlo standard error (the delta method on the weights' mean),
the effective sample size of the weights, and the spread over independent repeats;
:func:`grid_log_z` is the truth in 2-D (the energy summed on a fine grid).
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax import data as data_lib
from ebm_jax import files
from ebm_jax.core import samplers
from ebm_jax.data import images as images_lib

Array = jax.Array

TRANSITIONS = ("mala", "hmc")
BASES = ("gaussian", "uniform")
TARGET_ACCEPTANCE = {"mala": 0.574, "hmc": 0.65}


# ----------------------------------------------------------------------------- bases


class Base(NamedTuple):
  """A normalised base density: ``log_prob(x) -> [batch]``, ``sample(key, n)`` and its words."""
  log_prob: Callable[[Array], Array]
  sample: Callable[[Array, int], Array]
  words: str


def gaussian_base(data: np.ndarray, min_sd: float = 0.05) -> Base:
  """A diagonal Gaussian with the data's mean and per-dimension sd (at least ``min_sd``: an
  always-black MNIST pixel has sd 0)."""
  data = np.asarray(data, np.float64)
  mean = jnp.asarray(data.mean(0), jnp.float32)
  sd = jnp.asarray(np.maximum(data.std(0), min_sd), jnp.float32)
  log_norm = -jnp.sum(jnp.log(sd)) - 0.5 * mean.size * math.log(2 * math.pi)

  def log_prob(x):
    z = (x - mean) / sd
    return log_norm - 0.5 * jnp.sum(jnp.square(z).reshape(x.shape[0], -1), axis=1)

  def sample(key, n):
    return mean + sd * jax.random.normal(key, (n, *mean.shape))

  return Base(log_prob, sample, f"a diagonal Gaussian fitted to {len(data)} data points "
              f"(sd floor {min_sd:g})")


def uniform_base(shape: tuple, low: float = -1.0, high: float = 1.0) -> Base:
  """The uniform density on the box ``[low, high]^D``: the model is then the density
  ``exp(-c E)`` restricted to the box (images' range), and ``Z`` its integral there."""
  dim = int(np.prod(shape))
  log_density = -dim * math.log(high - low)

  def log_prob(x):
    inside = jnp.all(((x >= low) & (x <= high)).reshape(x.shape[0], -1), axis=1)
    return jnp.where(inside, log_density, -jnp.inf)

  def sample(key, n):
    return jax.random.uniform(key, (n, *shape), minval=low, maxval=high)

  return Base(log_prob, sample, f"the uniform density on [{low:g}, {high:g}]^{dim}")


def _log_sech2(z):
  # log(1 - tanh(z)^2) = 2 (log 2 - z - softplus(-2 z)), stable for large |z|.
  return 2 * (math.log(2) - z - jax.nn.softplus(-2 * z))


def box_to_plane(energy_fn: Callable[[Array], Array]) -> Callable[[Array], Array]:
  """``exp(-E)`` on the box ``(-1, 1)^D`` as a density on all of ``R^D`` through ``x = tanh(z)``:
  ``E_z(z) = E(tanh z) - sum log(1 - tanh(z)^2)``, with the same ``Z``. A sampler that clips
  its chains to ``[-1, 1]`` targets the box; MALA in the plane needs no rejections at its walls
  (in 784 dimensions nearly every proposal would cross one)."""

  def plane_energy(z):
    log_jacobian = jnp.sum(_log_sech2(z).reshape(z.shape[0], -1), axis=1)
    return energy_fn(jnp.tanh(z)) - log_jacobian

  return plane_energy


def to_plane(x: np.ndarray, margin: float = 1 / 128) -> np.ndarray:
  """``atanh`` of points of ``[-1, 1]``, pulled ``margin`` inside (an image's -1 background)."""
  return np.arctanh(np.clip(np.asarray(x, np.float64), -1 + margin, 1 - margin))


def uniform_plane_base(shape: tuple) -> Base:
  """The uniform density on ``(-1, 1)^D`` seen through ``x = tanh(z)``."""
  dim = int(np.prod(shape))

  def log_prob(z):
    return -dim * math.log(2) + jnp.sum(_log_sech2(z).reshape(z.shape[0], -1), axis=1)

  def sample(key, n):
    return jnp.arctanh(jax.random.uniform(key, (n, *shape), minval=-1 + 1e-6, maxval=1 - 1e-6))

  return Base(log_prob, sample, f"the uniform density on (-1, 1)^{dim}, through x = tanh(z)")


# ----------------------------------------------------------------------------- schedules


def sigmoid_schedule(num: int, delta: float = 4.0) -> np.ndarray:
  """``num + 1`` inverse temperatures from 0 to 1, dense at both ends: a sigmoid of an even grid
  on ``[-delta, delta]``, rescaled to end exactly at 0 and 1 (Grosse et al. 2015; Wu et al.
  2017)."""
  if num < 1:
    raise ValueError(f"AIS: num_distributions must be positive, got {num}")
  s = 1 / (1 + np.exp(-np.linspace(-delta, delta, num + 1)))
  return (s - s[0]) / (s[-1] - s[0])


# ----------------------------------------------------------------------------- estimates


class Estimate(NamedTuple):
  """One AIS run's ``log Z`` from its weights."""
  log_z: float          # log mean(w)
  log_z_se: float       # delta-method standard error of log mean(w): sd(w) / (sqrt(n) mean(w))
  ess: float            # effective sample size (sum w)^2 / sum w^2, out of num_chains
  log_weights: np.ndarray
  acceptance: float     # mean acceptance rate of the transitions
  final_step_size: float


def estimate_from_log_weights(log_w) -> tuple[float, float, float]:
  """``(log mean w, its standard error, ESS)`` of log-weights (stable in log space)."""
  log_w = np.asarray(log_w, np.float64)
  n = len(log_w)
  finite = np.isfinite(log_w)
  if not finite.any():
    return -math.inf, math.inf, 0.0
  top = log_w[finite].max()
  w = np.where(finite, np.exp(log_w - top), 0.0)
  mean = w.mean()
  se = w.std(ddof=1) / (math.sqrt(n) * mean) if n > 1 else math.inf
  return float(top + math.log(mean)), float(se), float(w.sum() ** 2 / np.sum(w ** 2))


def _transition(name: str, step_size, hmc_leapfrog_steps: int) -> samplers.Sampler:
  if name == "mala":
    return samplers.mala(step_size)
  if name == "hmc":
    return samplers.hmc(step_size, hmc_leapfrog_steps)
  raise ValueError(f"likelihood.transition: expected one of {TRANSITIONS}, got {name!r}")


def _anneal(energy_fn, base: Base, betas, x0, key, *, transition: str, step_size: float,
            steps_per_distribution: int, hmc_leapfrog_steps: int, adapt: bool):
  """The AIS path from ``x0`` along ``betas`` (either direction). Returns ``(sum of log f_k(x) -
  log f_{k-1}(x) at each point, mean acceptance, final step size)``: with increasing betas the
  forward log-weights, with decreasing ones minus the reverse log-weights."""
  target = TARGET_ACCEPTANCE[transition]

  def energy_at(beta):
    # -log f_beta: the tempered energy, normalised base included.
    return lambda x: beta * energy_fn(x) - (1 - beta) * base.log_prob(x)

  def body(carry, inputs):
    x, log_w, log_step, acc_sum = carry
    beta_prev, beta, k = inputs
    e_prev, e_next = energy_at(beta_prev)(x), energy_at(beta)(x)
    log_w = log_w + (e_prev - e_next)
    sampler = _transition(transition, jnp.exp(log_step), hmc_leapfrog_steps)
    energy = energy_at(beta)
    state = sampler.init(x, energy)
    state, info = samplers.run_chain(k, sampler.step, state, energy, steps_per_distribution)
    acc = jnp.mean(info.acceptance_rate)
    if adapt:   # Robbins-Monro on the log step, from this distribution's acceptance only
      log_step = log_step + 2.0 * (acc - target)
    return (state.position, log_w, log_step, acc_sum + acc), None

  n = betas.shape[0] - 1
  keys = jax.random.split(key, n)
  init = (x0, jnp.zeros(x0.shape[0], jnp.float32), jnp.log(jnp.float32(step_size)),
          jnp.float32(0))
  (x, log_w, log_step, acc_sum), _ = jax.lax.scan(body, init, (betas[:-1], betas[1:], keys))
  return log_w, acc_sum / n, jnp.exp(log_step)


_ANNEAL = jax.jit(_anneal, static_argnames=(
    "energy_fn", "base", "transition", "steps_per_distribution", "hmc_leapfrog_steps", "adapt"))


def ais(energy_fn: Callable[[Array], Array], base: Base, key: Array, *, num_chains: int,
        num_distributions: int, transition: str = "mala", step_size: float = 1e-2,
        steps_per_distribution: int = 1, hmc_leapfrog_steps: int = 5,
        adapt: bool = True) -> Estimate:
  """Forward AIS from ``base`` to ``exp(-energy_fn)`` (put the temperature into
  ``energy_fn``): ``num_chains`` chains, vmapped, through ``num_distributions`` intermediate
  densities of :func:`sigmoid_schedule`, ``steps_per_distribution`` MALA / HMC steps at each
  (step size adapted towards blackjax's target acceptance from each distribution's mean
  acceptance when ``adapt``). Returns the :class:`Estimate` of ``log Z``, a stochastic lower
  bound in expectation."""
  k_base, k_path = jax.random.split(key)
  x0 = base.sample(k_base, num_chains)
  log_w, acc, step = _ANNEAL(energy_fn, base, jnp.asarray(sigmoid_schedule(num_distributions),
                                                          jnp.float32), x0, k_path,
                transition=transition, step_size=step_size,
                steps_per_distribution=steps_per_distribution,
                hmc_leapfrog_steps=hmc_leapfrog_steps, adapt=adapt)
  log_w = np.asarray(log_w, np.float64)
  return Estimate(*estimate_from_log_weights(log_w), log_w, float(acc), float(step))


def reverse_ais(energy_fn: Callable[[Array], Array], base: Base, exact_samples: Array,
                key: Array, *, num_distributions: int, transition: str = "mala",
                step_size: float = 1e-2, steps_per_distribution: int = 1,
                hmc_leapfrog_steps: int = 5, adapt: bool = True) -> Estimate:
  """Reverse AIS from exact samples of ``exp(-energy_fn) / Z`` back to ``base``: its weights
  estimate ``1 / Z`` without bias, so ``-log mean`` bounds ``log Z`` from *above* in
  expectation (the upper half of the sandwich; exact samples exist for 2-D models, from the
  grid). The returned ``log_z`` is that upper estimate, ``log_weights`` the reverse ones."""
  betas = sigmoid_schedule(num_distributions)[::-1].copy()
  log_w, acc, step = _ANNEAL(energy_fn, base, jnp.asarray(betas, jnp.float32),
                             jnp.asarray(exact_samples), key,
                transition=transition, step_size=step_size,
                steps_per_distribution=steps_per_distribution,
                hmc_leapfrog_steps=hmc_leapfrog_steps, adapt=adapt)
  # The reverse path's increments are log f_{k-1} - log f_k: log_w here is their sum, an
  # estimate of log(Z_base / Z) = -log Z per chain.
  log_w = np.asarray(log_w, np.float64)
  log_inv_z, se, ess = estimate_from_log_weights(log_w)
  return Estimate(-log_inv_z, se, ess, log_w, float(acc), float(step))


# ----------------------------------------------------------------------------- 2-D truth


class Grid(NamedTuple):
  log_z: float           # log of the sum of exp(-E) x cell area over the grid
  limit: float
  res: int
  tail_change: float     # log Z on a grid twice as wide minus this one (0: no mass outside)
  points: np.ndarray     # [res^2, 2]
  log_density: np.ndarray  # [res^2] -E - log Z at the points


def grid_log_z(energy_fn: Callable[[Array], Array], limit: float, res: int = 1000,
               chunk: int = 65536) -> Grid:
  """``log Z`` of a 2-D ``exp(-energy_fn)`` by the midpoint rule on a ``res x res`` grid over
  ``[-limit, limit]^2``, with the same sum on ``[-2 limit, 2 limit]^2`` to show the mass outside
  (``tail_change``)."""

  def on(lim):
    width = 2 * lim / res
    axis = -lim + width * (np.arange(res) + 0.5)
    xx, yy = np.meshgrid(axis, axis)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    energy = np.concatenate([np.asarray(energy_fn(jnp.asarray(points[i:i + chunk])),
                                        np.float64) for i in range(0, len(points), chunk)])
    top = np.max(-energy)
    log_z = float(top + np.log(np.sum(np.exp(-energy - top))) + 2 * np.log(width))
    return log_z, points, -energy - log_z

  log_z, points, log_density = on(limit)
  wide, _, _ = on(2 * limit)
  return Grid(log_z, limit, res, wide - log_z, points, log_density)


def sample_grid(grid: Grid, key: Array, n: int) -> np.ndarray:
  """``n`` samples of a grid density: a cell by its mass, then uniform within it (exact up to
  the grid's resolution)."""
  k_cell, k_jitter = jax.random.split(key)
  p = np.exp(grid.log_density - grid.log_density.max())
  cells = np.asarray(jax.random.choice(k_cell, len(p), (n,), p=jnp.asarray(p / p.sum())))
  width = 2 * grid.limit / grid.res
  jitter = np.asarray(jax.random.uniform(k_jitter, (n, 2), minval=-0.5, maxval=0.5)) * width
  return (grid.points[cells] + jitter).astype(np.float32)


# ----------------------------------------------------------------------------- log-likelihoods


BIN = 1 / 128     # an 8-bit bin's width in [-1, 1) after dequantization


def bits_per_dim(nats_per_example: float, dim: int) -> float:
  """Bits per dimension of a mean log-likelihood of dequantized images (:func:`dequantize`,
  ``x = (x_8bit + u) / 128 - 1``), in 8-bit units as image models report them: the density of
  ``x_8bit + u`` is ``p(x) / 128^D``, so ``(-ll + D log 128) / (D ln 2)``."""
  return float((-nats_per_example - dim * math.log(BIN)) / (dim * math.log(2)))


def dequantize(images_u8: np.ndarray, key: Array) -> np.ndarray:
  """8-bit images as continuous points of ``[-1, 1)``: ``(x_8bit + u) / 128 - 1``, ``u ~
  U[0, 1)``, each value spread over its own bin (Theis et al. 2016: a continuous density's
  log-likelihood of dequantized data bounds the discrete one). The bins are 1/128 wide, the
  training data's values (``x_8bit / 127.5 - 1``) lie in them within 0.4 %."""
  u = np.asarray(jax.random.uniform(key, images_u8.shape))
  return ((np.asarray(images_u8, np.float32) + u) * BIN - 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- a trained model

RECORD = "likelihood.json"
# A 2-D energy whose grid log Z moves by more than this when the grid doubles in width puts mass
# outside it: the energy falls along some direction (a leaky-ReLU net grows only linearly) and
# exp(-c E) may have no finite integral at all; its log Z and log-likelihoods mean nothing.
NORMALISABLE_TOLERANCE = 0.01
STREAM = 2 ** 32 - 40       # fold_in tag of the likelihood's keys


def _repeats(fn, key, repeats: int) -> list[Estimate]:
  return [fn(jax.random.fold_in(key, r)) for r in range(repeats)]


def _summary(estimates: list[Estimate]) -> dict:
  values = [e.log_z for e in estimates]
  return {"log_z": float(np.mean(values)),
          "spread_sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
          "repeats": values, "se": [e.log_z_se for e in estimates],
          "ess": [e.ess for e in estimates], "acceptance": [e.acceptance for e in estimates],
          "final_step_size": [e.final_step_size for e in estimates]}


def measure(runner, state, hp, lc, log: Callable[[str], None] = print) -> dict:
  """``log Z`` and the test log-likelihood of the model in ``state`` with its ``hp`` (a
  :class:`~ebm_jax.run.runner.Runner`'s model), by the protocol ``lc`` (a spec's
  ``likelihood`` section). Toys: forward and reverse AIS against the grid's exact value, and the
  exact log-likelihood of fresh samples of the true density. Images: forward AIS (its repeats'
  spread, and its value as the number of distributions grows) and the log-likelihood of
  dequantized test images in nats and bits per dimension."""
  step = int(state.step)
  c = float(lc.temperature) or runner.temperature(hp)
  where = ("set by likelihood.temperature" if lc.temperature else
           "the training sampler's" if runner.sampler_temperature(hp) is not None else
           "1: the training sampler targets no density")
  variables = runner.eval_variables(state)
  model_energy = runner.comps.energy

  def energy(x):
    return c * model_energy(variables, x)

  key = jax.random.fold_in(jax.random.fold_in(state.rng, STREAM), step)
  k_base, k_ais, k_test, k_rev, k_grid, k_sizes = jax.random.split(key, 6)
  toy = runner.toy
  if toy is not None:
    base_data = np.asarray(toy.sample(k_base, 10000))
    test = np.asarray(toy.sample(k_test, lc.test_examples))
    test_words = f"{lc.test_examples} fresh samples of the true {runner.spec.data.name} density"
  else:
    dc = runner.spec.data
    train = np.asarray(runner.images[:10000])
    base_data = np.asarray(images_lib.to_float(train))
    test_u8 = data_lib.load_images(dc.name, "test", data_dir=dc.dir, image_size=dc.image_size,
                                   classes=tuple(dc.classes), log=log).images[:lc.test_examples]
    test = dequantize(test_u8, k_test)
    test_words = (f"the first {len(test)} {dc.name} test images, dequantized: (x_8bit + u) / "
                  "128 - 1, u ~ U[0, 1)")
  box = bool(runner.spec.sampler.clip_x)   # chains clipped to [-1, 1]: a density on the box
  if box and toy is not None:
    raise ValueError("likelihood: a toy run whose sampler clips its chains to [-1, 1] has its "
                     "density on that square, which the toys' grid (and their true density) "
                     "do not match; measure toys trained without sampler.clip_x")
  if box:
    ais_energy = box_to_plane(energy)
    base = (gaussian_base(to_plane(base_data)) if lc.base == "gaussian" else
            uniform_plane_base(base_data.shape[1:]))
    base = base._replace(words=f"{base.words}, in z = atanh(x) (the sampler clips its chains to "
                               "[-1, 1]: its density is exp(-c E) on that box, integrated on "
                               "R^D through x = tanh(z))")
  else:
    ais_energy = energy
    base = (gaussian_base(base_data) if lc.base == "gaussian" else
            uniform_base(base_data.shape[1:]))
  options = dict(transition=lc.transition, step_size=lc.step_size,
                 steps_per_distribution=lc.steps_per_distribution,
                 hmc_leapfrog_steps=lc.hmc_leapfrog_steps)

  def forward(num_distributions):
    return lambda k: ais(ais_energy, base, k, num_chains=lc.num_chains,
                         num_distributions=num_distributions, **options)

  log(f"likelihood at step {step}: AIS, {lc.repeats} x {lc.num_chains} chains through "
      f"{lc.num_distributions} distributions ({lc.transition}) ...")
  forward_runs = _repeats(forward(lc.num_distributions), k_ais, lc.repeats)
  record = {
      "step": step, "temperature": c,
      "protocol": {
          "target": f"exp(-{c:.6g} E), temperature {where}"
                    + (", EMA weights" if runner.spec.ema.decay else ""),
          "base": base.words, "transition": lc.transition,
          "schedule": f"sigmoid, delta 4, {lc.num_distributions} distributions",
          "steps_per_distribution": lc.steps_per_distribution,
          "initial_step_size": lc.step_size,
          "step_size_rule": f"adapted per distribution towards acceptance "
                            f"{TARGET_ACCEPTANCE[lc.transition]}",
          "num_chains": lc.num_chains, "repeats": lc.repeats, "test_data": test_words,
          "bias": "forward AIS: log Z is underestimated in expectation, so the log-likelihood "
                  "is overestimated; reverse AIS (toys) bounds log Z from above"},
      "ais": _summary(forward_runs),
  }
  # Stability: one run at fewer distributions, to show where the estimate settles.
  sizes = sorted({max(1, lc.num_distributions // d) for d in (16, 4)} - {lc.num_distributions})
  record["by_num_distributions"] = {
      str(m): forward(m)(jax.random.fold_in(k_sizes, m)).log_z for m in sizes}
  record["by_num_distributions"][str(lc.num_distributions)] = forward_runs[0].log_z
  log_z = record["ais"]["log_z"]
  neg_energy = -np.concatenate([np.asarray(energy(jnp.asarray(test[i:i + 500])), np.float64)
                                for i in range(0, len(test), 500)])
  ll_se = float(np.std(neg_energy, ddof=1) / math.sqrt(len(neg_energy)))
  record["test"] = {"num_examples": len(test), "mean_neg_energy": float(np.mean(neg_energy)),
                    "log_likelihood": float(np.mean(neg_energy) - log_z),
                    "log_likelihood_se_over_examples": ll_se,
                    "log_likelihood_spread_from_log_z": record["ais"]["spread_sd"]}
  if toy is not None:
    limit = 2 * float(toy.plot_limit)
    grid = grid_log_z(energy, limit, lc.grid_res)
    record["grid"] = {"log_z": grid.log_z, "limit": limit, "res": lc.grid_res,
                      "log_z_change_on_twice_the_width": grid.tail_change,
                      "normalisable": bool(abs(grid.tail_change) < NORMALISABLE_TOLERANCE)}
    exact = sample_grid(grid, k_grid, lc.num_chains)
    reverse_runs = _repeats(lambda k: reverse_ais(energy, base, exact, k,
                                                  num_distributions=lc.num_distributions,
                                                  **options), k_rev, lc.repeats)
    record["reverse_ais"] = _summary(reverse_runs)
    record["test"]["log_likelihood_exact"] = float(np.mean(neg_energy) - grid.log_z)
    record["test"]["log_likelihood_sandwich"] = [
        float(np.mean(neg_energy) - record["reverse_ais"]["log_z"]), record["test"]
        ["log_likelihood"]]
    record["test"]["true_log_likelihood"] = float(np.mean(np.asarray(toy.log_density(
        jnp.asarray(test)))))
  else:
    dim = int(np.prod(test.shape[1:]))
    record["test"]["bits_per_dim"] = bits_per_dim(record["test"]["log_likelihood"], dim)
    # A density's mean log over a dequantization bin is at most log(1 / bin volume), so over the
    # test images mean(-c E) - log Z <= -D log(BIN) in expectation: log Z below this floor (a
    # negative bits/dim) proves forward AIS has not settled, by at least the gap.
    floor = float(np.mean(neg_energy) + dim * math.log(BIN))
    record["test"]["log_z_floor_from_dequantization"] = floor
    record["test"]["settled"] = bool(log_z >= floor)
  return record


def write(workdir: str, record: dict, log: Callable[[str], None]) -> None:
  if not files.is_writer():
    return
  files.write_json(os.path.join(workdir, RECORD), record)
  t, a = record["test"], record["ais"]
  spread = f" (sd {a['spread_sd']:.3g} over {len(a['repeats'])} runs)" if a["spread_sd"] else ""
  if "grid" in record:
    g = record["grid"]
    extra = f"; grid {g['log_z']:.4f}, reverse AIS {record['reverse_ais']['log_z']:.4f}"
    if not g["normalisable"]:
      extra += (f" (NOT NORMALISABLE: the grid's log Z grows by "
                f"{g['log_z_change_on_twice_the_width']:.3g} on twice the width; no estimate "
                "means anything)")
  else:
    extra = f"; {t['bits_per_dim']:.4f} bits/dim"
    if not t["settled"]:
      extra += (f" (NOT SETTLED: log Z is {t['log_z_floor_from_dequantization'] - a['log_z']:.4g}"
                " below the floor the dequantized test images set; the log-likelihood is "
                "overstated by at least that)")
  log(f"likelihood at step {record['step']}: log Z {a['log_z']:.4f}{spread}{extra}; test "
      f"log-likelihood {t['log_likelihood']:.4f} nats per example "
      f"({t['num_examples']} examples) -> {RECORD}")


def read(workdir: str) -> dict | None:
  path = os.path.join(workdir, RECORD)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)
