"""Chain initialisers: where a chain's starting positions come from.

All are pure functions of a PRNG key. The stateful starts (persistent bank, replay buffer) live
in :mod:`ebm_jax.core.buffers`; CoopNets' generator start is its objective's
(:mod:`ebm_jax.core.objectives.coopnets`, through ``chain_starts.STARTS['generator']``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from ebm_jax import _moved

Array = jax.Array


def _check_shape(where: str, shape) -> tuple[int, ...]:
  if (not isinstance(shape, (tuple, list)) or len(shape) < 2
      or not all(isinstance(d, int) and d > 0 for d in shape)):
    raise ValueError(f"{where}: shape must be a tuple of positive ints [batch, ...], "
                     f"got {shape!r}")
  return tuple(shape)


def _check_float_dtype(where: str, dtype) -> None:
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{where}: dtype must be floating, got {jnp.dtype(dtype)}")


def uniform_init(key: Array, shape, *, scale=1.0, dtype=jnp.float32) -> Array:
  """Uniform noise in ``[-scale, scale]`` (scale 1 = the image range)."""
  shape = _check_shape("uniform_init", shape)
  _check_float_dtype("uniform_init", dtype)
  return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * scale


def gaussian_init(key: Array, shape, *, scale=1.0, dtype=jnp.float32) -> Array:
  """Gaussian noise with standard deviation ``scale``."""
  shape = _check_shape("gaussian_init", shape)
  _check_float_dtype("gaussian_init", dtype)
  return jax.random.normal(key, shape, dtype) * scale


NOISE_INITS: dict[str, Callable[..., Array]] = {
    "uniform": uniform_init,
    "gaussian": gaussian_init,
}


def noise_init(name: str, key: Array, shape, *, scale=1.0, dtype=jnp.float32) -> Array:
  """Noise starts by name: ``"uniform"`` or ``"gaussian"``."""
  if name not in NOISE_INITS:
    raise ValueError(f"noise_init: unknown name {name!r}; expected one of {sorted(NOISE_INITS)}")
  return NOISE_INITS[name](key, shape, scale=scale, dtype=dtype)


def data_init(key: Array, data_batch: Array, *, noise_std=0.0) -> Array:
  """Chains started at data, optionally with Gaussian noise of std ``noise_std`` added."""
  if not jnp.issubdtype(data_batch.dtype, jnp.floating) or data_batch.ndim < 2:
    raise ValueError(f"data_init: data_batch must be a float array [batch, ...], got "
                     f"{data_batch.dtype} {tuple(data_batch.shape)}")
  if isinstance(noise_std, (int, float)) and noise_std == 0:
    return data_batch
  return data_batch + noise_std * jax.random.normal(key, data_batch.shape, data_batch.dtype)


def __getattr__(name: str):
  return _moved.attribute(__name__, name)     # a name that moved away, named in one line
