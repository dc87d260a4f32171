"""Sample stores for chain starts: a persistent bank and a replay buffer, as pure pytrees.

Both hold their samples on the device as one array ``[size, *sample_shape]``; every operation
returns a new store (inside a jitted step XLA updates the buffer in place when the old one is
donated or dead).

Memory: ``size * prod(sample_shape) * itemsize`` bytes. ebm-anatomy's MNIST bank (one per
training image, 60,000 x 32 x 32 x 1, float32) is 245 MB; the thesis's 500,000-sample CIFAR-10
bank (500,000 x 32 x 32 x 3) is 6.1 GB in float32 and 3.1 GB stored as bfloat16
(``dtype=jnp.bfloat16``; starts are returned in float32 and writes are rounded to bfloat16).

* :class:`PersistentBank` (ebm-anatomy, persistent contrastive divergence): a batch of
  distinct indices is drawn, their chains continue from where they stopped, and the results
  are written back to the same indices.
* :class:`ReplayBuffer` (IGEBM / JEM): starts are drawn from the buffer and each is replaced by
  fresh noise with probability ``reinit_prob``; the chains' results are pushed back into the
  buffer first-in-first-out, overwriting its oldest entries.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ebm_jax.core import inits

Array = jax.Array


class PersistentBank(NamedTuple):
  samples: Array                     # [size, *sample_shape]


class ReplayBuffer(NamedTuple):
  samples: Array                     # [capacity, *sample_shape]
  next_index: Array                  # int32 scalar: where the next push starts


def _check_size(where: str, size: int, batch_size: int | None = None) -> None:
  if not isinstance(size, int) or size < 1:
    raise ValueError(f"{where}: size must be a positive int, got {size!r}")
  if batch_size is not None and batch_size > size:
    raise ValueError(f"{where}: batch_size {batch_size} is larger than the store ({size})")


def _noise_samples(key, size, sample_shape, init, dtype, scale):
  return inits.noise_init(init, key, (size, *sample_shape), scale=scale).astype(dtype)


def init_persistent_bank(key: Array, size: int, sample_shape, *, init: str = "uniform",
                         scale=1.0, dtype=jnp.float32) -> PersistentBank:
  """A bank of ``size`` chains started from noise (``init``: uniform in [-scale, scale] |
  gaussian with sd ``scale``)."""
  _check_size("init_persistent_bank", size)
  return PersistentBank(_noise_samples(key, size, tuple(sample_shape), init, dtype, scale))


def bank_draw(bank: PersistentBank, key: Array, batch_size: int) -> tuple[Array, Array]:
  """Draws ``batch_size`` distinct chains. Returns ``(starts [float32], indices)``."""
  size = bank.samples.shape[0]
  _check_size("bank_draw", size, batch_size)
  # The batch_size largest of `size` iid uniforms are a uniformly random subset (in random
  # order): a top-k instead of the full permutation `random.choice(replace=False)` sorts, which
  # dominated the toy train step (benchmarks/README.md).
  indices = jax.lax.top_k(jax.random.uniform(key, (size,)), batch_size)[1]
  return bank.samples[indices].astype(jnp.float32), indices


def bank_write(bank: PersistentBank, indices: Array, samples: Array,
               accept=True) -> PersistentBank:
  """Writes ``samples`` back at ``indices``; all other entries are unchanged. Where ``accept``
  is false (a rejected update) the bank stays exactly as it was."""
  # A rejected write targets no row (out-of-range indices, dropped by the scatter) rather than
  # writing the old rows back: no gather of them, which on a sharded bank is a collective.
  target = jnp.where(accept, indices, bank.samples.shape[0])
  return PersistentBank(bank.samples.at[target].set(samples.astype(bank.samples.dtype),
                                                    mode="drop"))


def init_replay_buffer(key: Array, capacity: int, sample_shape, *, init: str = "uniform",
                       scale=1.0, dtype=jnp.float32) -> ReplayBuffer:
  """A full buffer of ``capacity`` noise samples (so every draw is defined from step 0)."""
  _check_size("init_replay_buffer", capacity)
  samples = _noise_samples(key, capacity, tuple(sample_shape), init, dtype, scale)
  return ReplayBuffer(samples, jnp.zeros((), jnp.int32))


def replay_draw(buffer: ReplayBuffer, key: Array, batch_size: int, *, reinit_prob=0.05,
                init: str = "uniform", scale=1.0) -> tuple[Array, Array]:
  """Draws starts; each is fresh noise with probability ``reinit_prob``.

  Returns ``(starts [float32], reinit_mask [bool, batch])``.
  """
  capacity = buffer.samples.shape[0]
  _check_size("replay_draw", capacity, batch_size)
  k_idx, k_noise, k_mask = jax.random.split(key, 3)
  indices = jax.random.randint(k_idx, (batch_size,), 0, capacity)
  starts = buffer.samples[indices].astype(jnp.float32)
  noise = inits.noise_init(init, k_noise, starts.shape, scale=scale)
  reinit = jax.random.bernoulli(k_mask, reinit_prob, (batch_size,))
  mask = reinit.reshape((-1,) + (1,) * (starts.ndim - 1))
  return jnp.where(mask, noise, starts), reinit


def replay_push(buffer: ReplayBuffer, samples: Array, accept=True) -> ReplayBuffer:
  """Pushes a batch first-in-first-out, overwriting the oldest entries (wrapping around).
  Where ``accept`` is false (a rejected update) the buffer stays exactly as it was."""
  capacity = buffer.samples.shape[0]
  _check_size("replay_push", capacity, samples.shape[0])
  indices = (buffer.next_index + jnp.arange(samples.shape[0])) % capacity
  target = jnp.where(accept, indices, capacity)      # rejected: out of range, dropped
  pushed = ((buffer.next_index + samples.shape[0]) % capacity).astype(jnp.int32)
  return ReplayBuffer(
      buffer.samples.at[target].set(samples.astype(buffer.samples.dtype), mode="drop"),
      jnp.where(accept, pushed, buffer.next_index))
