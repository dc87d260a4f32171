"""Persistent bank and replay buffer: writes, draws, reinitialisation rate, storage dtype."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax.core import buffers

KEY = jax.random.key(0)


def test_bank_starts_as_uniform_noise_in_the_image_range():
  bank = buffers.init_persistent_bank(KEY, 500, (4, 4, 1))
  chex.assert_shape(bank.samples, (500, 4, 4, 1))
  assert float(bank.samples.min()) >= -1 and float(bank.samples.max()) <= 1
  assert abs(float(bank.samples.mean())) < 0.05 and abs(float(bank.samples.var()) - 1 / 3) < 0.02


def test_bank_write_changes_only_the_drawn_indices():
  bank = buffers.init_persistent_bank(KEY, 50, (3,))
  starts, idx = buffers.bank_draw(bank, jax.random.key(1), 10)
  assert len(set(np.asarray(idx).tolist())) == 10            # distinct chains
  np.testing.assert_array_equal(starts, bank.samples[idx])
  new = jnp.full((10, 3), 7.0)
  written = buffers.bank_write(bank, idx, new)
  np.testing.assert_array_equal(written.samples[idx], new)
  others = np.setdiff1d(np.arange(50), np.asarray(idx))
  np.testing.assert_array_equal(written.samples[others], bank.samples[others])


def test_bank_draws_cover_the_bank_uniformly():
  bank = buffers.init_persistent_bank(KEY, 20, (1,))
  draw = jax.jit(lambda k: buffers.bank_draw(bank, k, 5)[1])
  counts = np.bincount(np.concatenate([np.asarray(draw(jax.random.key(i)))
                                       for i in range(400)]), minlength=20)
  # each index is drawn with probability 5/20 per draw: 100 +- 3 sd (sd ~ 8.7)
  assert counts.min() > 100 - 3 * 8.7 and counts.max() < 100 + 3 * 8.7


def test_bfloat16_bank_halves_memory_and_returns_float32():
  bank = buffers.init_persistent_bank(KEY, 100, (8, 8, 3), dtype=jnp.bfloat16)
  assert bank.samples.dtype == jnp.bfloat16 and bank.samples.nbytes == 100 * 8 * 8 * 3 * 2
  starts, idx = buffers.bank_draw(bank, KEY, 4)
  assert starts.dtype == jnp.float32
  bank = buffers.bank_write(bank, idx, starts + 0.5)
  assert bank.samples.dtype == jnp.bfloat16


def test_replay_reinit_fraction_matches_reinit_prob():
  buf = buffers.init_replay_buffer(KEY, 1000, (2,), init="gaussian")
  buf = buf._replace(samples=jnp.full_like(buf.samples, 5.0))   # marks buffer entries
  p, n = 0.05, 20000
  starts, reinit = _many_draws(buf, p, n)
  frac = float(reinit.mean())
  se = np.sqrt(p * (1 - p) / n)
  assert abs(frac - p) < 3 * se, (frac, p, se)
  # Reinitialised starts are fresh noise, the others come from the buffer.
  assert float(jnp.abs(starts[reinit] - 5.0).min()) > 0
  np.testing.assert_array_equal(starts[~reinit], 5.0)
  assert float(jnp.abs(starts[reinit]).max()) <= 1.0          # uniform noise by default


def _many_draws(buf, p, n):
  draw = jax.jit(lambda k: buffers.replay_draw(buf, k, 1000, reinit_prob=p))
  parts = [draw(jax.random.key(100 + i)) for i in range(n // 1000)]
  return jnp.concatenate([a for a, _ in parts]), jnp.concatenate([b for _, b in parts])


def test_replay_push_is_fifo_with_wraparound():
  buf = buffers.init_replay_buffer(KEY, 10, (1,))
  original = buf.samples
  buf = buffers.replay_push(buf, jnp.full((6, 1), 1.0))
  np.testing.assert_array_equal(buf.samples[:6], 1.0)
  np.testing.assert_array_equal(buf.samples[6:], original[6:])   # untouched
  buf = buffers.replay_push(buf, jnp.full((6, 1), 2.0))           # writes 6..9, then 0..1
  np.testing.assert_array_equal(buf.samples[6:], 2.0)
  np.testing.assert_array_equal(buf.samples[:2], 2.0)
  np.testing.assert_array_equal(buf.samples[2:6], 1.0)
  assert int(buf.next_index) == 2


def test_store_errors_are_one_line():
  bank = buffers.init_persistent_bank(KEY, 8, (2,))
  with pytest.raises(ValueError, match="batch_size 9 is larger than the store"):
    buffers.bank_draw(bank, KEY, 9)
  with pytest.raises(ValueError, match="size must be a positive int"):
    buffers.init_persistent_bank(KEY, 0, (2,))
  with pytest.raises(ValueError, match="unknown name 'cauchy'"):
    buffers.init_replay_buffer(KEY, 8, (2,), init="cauchy")


def test_a_rejected_write_or_push_leaves_the_store_exactly_as_it_was():
  bank = buffers.init_persistent_bank(jax.random.key(0), 10, (1,))
  _, idx = buffers.bank_draw(bank, jax.random.key(1), 4)
  chex.assert_trees_all_equal(buffers.bank_write(bank, idx, jnp.full((4, 1), 9.0), False), bank)
  buf = buffers.init_replay_buffer(jax.random.key(2), 10, (1,))
  chex.assert_trees_all_equal(buffers.replay_push(buf, jnp.full((6, 1), 9.0), False), buf)
  assert int(buffers.replay_push(buf, jnp.full((6, 1), 9.0), True).next_index) == 6
