"""Chain initialisers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax.core import inits

KEY = jax.random.key(0)


def test_uniform_and_gaussian_moments():
  u = inits.noise_init("uniform", KEY, (20000, 2), scale=2.0)
  assert float(u.min()) >= -2 and float(u.max()) <= 2
  np.testing.assert_allclose(u.var(), 4 / 3, rtol=0.03)
  g = inits.noise_init("gaussian", KEY, (20000, 2), scale=0.5)
  np.testing.assert_allclose(g.std(), 0.5, rtol=0.03)
  np.testing.assert_allclose(g.mean(), 0.0, atol=0.02)


def test_data_init_adds_noise_of_the_given_std():
  data = jnp.ones((5000, 4))
  np.testing.assert_array_equal(inits.data_init(KEY, data), data)
  noisy = inits.data_init(KEY, data, noise_std=0.1)
  np.testing.assert_allclose((noisy - data).std(), 0.1, rtol=0.03)


@pytest.mark.parametrize("call, match", [
    (lambda: inits.noise_init("laplace", KEY, (2, 2)), "unknown name 'laplace'"),
    (lambda: inits.uniform_init(KEY, (2,)), r"shape must be a tuple of positive ints"),
    (lambda: inits.uniform_init(KEY, (2, -1)), r"shape must be a tuple of positive ints"),
    (lambda: inits.gaussian_init(KEY, (2, 2), dtype=jnp.int32), "dtype must be floating"),
    (lambda: inits.data_init(KEY, jnp.ones((2, 2), jnp.int32)), "data_batch must be a float"),
])
def test_bad_arguments_fail_with_one_line(call, match):
  with pytest.raises(ValueError, match=match):
    call()
