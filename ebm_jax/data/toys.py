"""ebm-anatomy's toy densities, exactly: 2-D, sampled on the fly inside the train step, with their
true log-densities for landscapes and the proper score."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class ToyDensity(NamedTuple):
  """A 2-D density with exact samples and log-density (ebm-anatomy's ToyDataset)."""
  name: str
  sample: Callable[[Array, int], Array]      # (key, n) -> [n, 2]
  log_density: Callable[[Array], Array]      # [n, 2] -> [n], normalised
  plot_limit: float                          # half-width of the square to plot

def _log_normal(x, mean, sd):
  return -0.5 * ((x - mean) / sd) ** 2 - jnp.log(sd * jnp.sqrt(2 * jnp.pi))

def gmm(sd: float = 0.15, radius: float = 1.0, num_modes: int = 8) -> ToyDensity:
  """Equal-weight isotropic Gaussians with means at ``radius`` and angles 2 pi k / num_modes."""
  angles = 2 * jnp.pi * jnp.arange(num_modes) / num_modes
  means = radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)

  def sample(key, n):
    k_mode, k_noise = jax.random.split(key)
    mode = jax.random.randint(k_mode, (n,), 0, num_modes)
    return means[mode] + sd * jax.random.normal(k_noise, (n, 2))

  def log_density(x):
    per_mode = jnp.sum(_log_normal(x[:, None, :], means[None], sd), axis=-1)
    return jax.nn.logsumexp(per_mode, axis=1) - jnp.log(num_modes)

  return ToyDensity("gmm", sample, log_density, radius + 4 * sd)

def rings(sd: float = 0.15, radius: float = 1.0, num_rings: int = 4) -> ToyDensity:
  """Equal-weight rings: radius ~ N(k * radius, sd^2) for k = 1..num_rings, angle uniform.

  The log-density is ebm-anatomy's: sum_k w_k N(r; k radius, sd^2) / (2 pi k radius), which
  integrates to 1 up to the (negligible) mass of negative radii.
  """
  ks = jnp.arange(1, num_rings + 1)

  def sample(key, n):
    k_ring, k_r, k_theta = jax.random.split(key, 3)
    ring = jax.random.randint(k_ring, (n,), 1, num_rings + 1)
    r = ring * radius + sd * jax.random.normal(k_r, (n,))
    theta = 2 * jnp.pi * jax.random.uniform(k_theta, (n,))
    return jnp.stack([r * jnp.cos(theta), r * jnp.sin(theta)], axis=1)

  def log_density(x):
    r = jnp.linalg.norm(x, axis=1, keepdims=True)
    per_ring = _log_normal(r, ks[None] * radius, sd) - jnp.log(2 * jnp.pi * ks[None] * radius)
    return jax.nn.logsumexp(per_ring, axis=1) - jnp.log(num_rings)

  return ToyDensity("rings", sample, log_density, num_rings * radius + 4 * sd)

TOY_DENSITIES = {"gmm": gmm, "rings": rings}
