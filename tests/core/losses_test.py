"""Losses against their closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax.core import losses


def linear_energy(w):
  return lambda x: x @ w


def test_contrastive_loss_gradient_is_the_ml_gradient():
  # E_w(x) = w.x: d/dw [mean E(data) - mean E(samples)] = mean(data) - mean(samples).
  data = jnp.array([[1.0, 2.0], [3.0, 0.0]])
  samples = jnp.array([[0.0, 1.0], [0.0, -1.0], [2.0, 2.0]])
  w = jnp.array([0.3, -0.7])
  grad_w, grad_s = jax.grad(
      lambda w, s: losses.contrastive_loss(linear_energy(w), data, s)[0], argnums=(0, 1))(
          w, samples)
  np.testing.assert_allclose(grad_w, data.mean(0) - samples.mean(0), rtol=1e-6)
  np.testing.assert_array_equal(grad_s, 0.0)            # samples are under stop_gradient


def test_scale_and_l2_energy_penalty():
  data, samples = jnp.array([[1.0]]), jnp.array([[3.0]])
  w = jnp.array([2.0])                                   # E(data)=2, E(samples)=6
  loss, aux = losses.contrastive_loss(linear_energy(w), data, samples, scale=10.0,
                                      l2_energy=0.5)
  np.testing.assert_allclose(aux.d_s_t, 10.0 * (2 - 6))
  np.testing.assert_allclose(loss, 10.0 * (2 - 6) + 0.5 * (4 + 36))
  np.testing.assert_allclose([aux.energy_data, aux.energy_samples], [2.0, 6.0])


def test_the_l2_penalty_is_per_sample_so_opposite_energies_do_not_cancel():
  data, samples = jnp.array([[1.0], [-1.0]]), jnp.array([[0.5], [-0.5]])
  w = jnp.array([100.0])                                # E(data) = +-100, E(samples) = +-50
  loss, aux = losses.contrastive_loss(linear_energy(w), data, samples, l2_energy=0.01)
  assert float(aux.d_s_t) == 0.0                        # batch means are both 0
  np.testing.assert_allclose(loss, 0.01 * (100 ** 2 + 50 ** 2))


def test_shape_mismatch_is_one_line():
  with pytest.raises(ValueError, match="same per-sample shape"):
    losses.contrastive_loss(lambda x: x.sum(1), jnp.ones((2, 3)), jnp.ones((2, 4)))


def test_generator_loss_closed_form_and_fixed_target():
  revised = jnp.zeros((2, 2, 2, 1))
  generated = jnp.ones((2, 2, 2, 1))
  np.testing.assert_allclose(losses.generator_loss(revised, generated, 0.5), 4 / (2 * 0.25))
  g = jax.grad(lambda r: losses.generator_loss(r, generated, 1.0))(revised)
  np.testing.assert_array_equal(g, 0.0)
