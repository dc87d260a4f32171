"""Long runs in chunks and MH step-size adaptation, on analytic energies."""

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax import samplers, sampling


def scaled_gaussian(variables, x):
  return 0.5 * variables["prec"] * jnp.sum(x ** 2, axis=1)


def test_chunked_long_run_equals_its_traces_and_is_stationary():
  sampler = samplers.langevin(*samplers.ula_params(0.3))
  x0 = jnp.full((2000, 2), 3.0)
  run = sampling.long_run(jax.random.key(0), sampler, scaled_gaussian, {"prec": 1.0}, x0, 2500,
                          chunk_steps=1000)
  assert run.energy.shape == (2500,) and run.acceptance_rate.shape == (2500,)
  np.testing.assert_allclose(run.energy[0], 9.0, rtol=1e-6)      # 0.5 * |(3, 3)|^2
  np.testing.assert_allclose(np.var(run.positions), 1 / (1 - 0.3 ** 2 / 4), rtol=0.05)
  assert run.num_nonfinite == 0


def test_adapted_mala_reaches_its_target_acceptance_and_variance():
  # A narrow Gaussian (sd 0.1) with a far too large initial step size.
  variables = {"prec": 100.0}
  x0 = jax.random.normal(jax.random.key(1), (500, 4)) * 0.1
  step_size, x = sampling.adapt_step_size(jax.random.key(2), samplers.mala, scaled_gaussian,
                                          variables, x0, 1.0, 400, 0.574)
  assert step_size < 0.05
  run = sampling.long_run(jax.random.key(3), samplers.mala(step_size), scaled_gaussian,
                          variables, x, 400)
  assert abs(float(run.acceptance_rate.mean()) - 0.574) < 0.08
  np.testing.assert_allclose(np.var(run.positions), 0.01, rtol=0.1)
