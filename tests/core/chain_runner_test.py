"""Long runs in chunks and MH step-size adaptation, on analytic energies; compiled once."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax.core import samplers, chain_runner as sampling


def scaled_gaussian(variables, x):
  return 0.5 * variables["prec"] * jnp.sum(x ** 2, axis=1)


def ula(params):
  return samplers.langevin(*params)


def test_chunked_long_run_equals_its_traces_and_is_stationary():
  runner = sampling.ChainRunner(ula, scaled_gaussian, chunk_steps=1000)
  x0 = jnp.full((2000, 2), 3.0)
  run = runner.run(jax.random.key(0), {"prec": 1.0}, samplers.ula_params(0.3), x0, 2500)
  assert run.energy.shape == (2500,) and run.acceptance_rate.shape == (2500,)
  np.testing.assert_allclose(run.energy[0], 9.0, rtol=1e-6)      # 0.5 * |(3, 3)|^2
  np.testing.assert_allclose(np.var(run.positions), 1 / (1 - 0.3 ** 2 / 4), rtol=0.05)
  assert run.num_nonfinite == 0


def test_adapted_mala_reaches_its_target_acceptance_and_variance():
  # A narrow Gaussian (sd 0.1) with a far too large initial step size.
  variables = {"prec": 100.0}
  x0 = jax.random.normal(jax.random.key(1), (500, 4)) * 0.1
  adapter = sampling.StepSizeAdapter(samplers.mala, scaled_gaussian, 400, 0.574)
  step_size, x = adapter.adapt(jax.random.key(2), variables, x0, 1.0)
  assert step_size < 0.05
  run = sampling.ChainRunner(samplers.mala, scaled_gaussian).run(
      jax.random.key(3), variables, jnp.float32(step_size), x, 400)
  assert abs(float(run.acceptance_rate.mean()) - 0.574) < 0.08
  np.testing.assert_allclose(np.var(run.positions), 0.01, rtol=0.1)


def test_repeated_runs_and_adaptations_compile_once():
  build = chex.assert_max_traces(n=2)(samplers.mala)   # init + chunk, traced once each
  runner = sampling.ChainRunner(build, scaled_gaussian, chunk_steps=5)
  x0 = jnp.zeros((8, 2))
  for i, step_size in enumerate((0.1, 0.2, 0.05)):   # other step sizes, same program
    runner.run(jax.random.key(i), {"prec": 1.0 + i}, jnp.float32(step_size), x0, 10)
  chex.clear_trace_counter()    # the counter is per wrapped function (samplers.mala)
  adapt_build = chex.assert_max_traces(n=2)(samplers.mala)   # init + step, traced once each
  adapter = sampling.StepSizeAdapter(adapt_build, scaled_gaussian, 5, 0.574)
  for i in range(3):
    adapter.adapt(jax.random.key(i), {"prec": 1.0}, x0, 0.1 * (i + 1))
