"""Samplers against analytic targets: Gaussian stationary variances, GMM modes, quadratics."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ebm_jax.core import models, samplers

KEY = jax.random.key(0)


def gaussian_energy(x):
  return 0.5 * jnp.sum(x ** 2, axis=1)


# ebm-anatomy's 8-mode GMM: radius 1, sd 0.15, equal weights.
GMM_MEANS = jnp.stack([jnp.cos(2 * jnp.pi * jnp.arange(8) / 8),
                       jnp.sin(2 * jnp.pi * jnp.arange(8) / 8)], axis=1)
GMM_SD = 0.15


def gmm_energy(x):
  d2 = jnp.sum((x[:, None, :] - GMM_MEANS[None]) ** 2, axis=-1)
  return -jax.nn.logsumexp(-d2 / (2 * GMM_SD ** 2), axis=1)


def stationary_variance(sampler, num_chains=4000, dim=2, burn=300, keep=40, every=10,
                        energy_fn=gaussian_energy):
  state = sampler.init(jax.random.normal(KEY, (num_chains, dim)), energy_fn)
  k1, k2 = jax.random.split(jax.random.key(1))
  run = jax.jit(functools.partial(samplers.run_chain, kernel=sampler.step,
                                  energy_fn=energy_fn, num_steps=burn))
  state, _ = run(k1, init_state=state)
  thinned = jax.jit(functools.partial(
      samplers.run_chain_thinned, kernel=sampler.step, energy_fn=energy_fn,
      num_steps=keep * every, keep_every=every))
  _, info, positions = thinned(k2, init_state=state)
  return float(jnp.var(positions)), info


# bfloat16 energies (models.with_compute_dtype: mixed precision) must sample the same targets
# as float32 ones, within the same tolerances.
@pytest.mark.parametrize("compute_dtype", models.COMPUTE_DTYPES)
def test_ula_stationary_variance_is_the_unadjusted_value_not_one(compute_dtype):
  eps = 0.5
  var, info = stationary_variance(samplers.langevin(*samplers.ula_params(eps)),
                                  energy_fn=models.with_compute_dtype(gaussian_energy,
                                                                      compute_dtype))
  expected = 1.0 / (1.0 - eps ** 2 / 4)   # 1.0667
  assert abs(var / expected - 1) < 0.03, var
  assert abs(var - 1.0) > 0.03            # the discretisation bias is really there
  np.testing.assert_allclose(info.acceptance_rate, 1.0)


def test_a_fraction_of_the_step_with_sqrt_noise_keeps_the_target_and_shrinks_the_bias():
  # The runner's final_step_fraction: step x f, noise x sqrt(f) keep the density Langevin
  # targets, exp(-2 step E / noise^2) (variance noise^2 / (2 step) = 0.125 here), while the
  # unadjusted chain's own variance noise^2 / (step (2 - step)) moves towards it.
  step, noise = 1.0, 0.5
  for f, expected in ((1.0, 0.25), (0.25, 0.0625 / (0.25 * 1.75))):
    var, _ = stationary_variance(samplers.langevin(step * f, noise * f ** 0.5), burn=400)
    assert abs(var / expected - 1) < 0.04, (f, var)
  assert abs(0.0625 / (0.25 * 1.75) / 0.125 - 1) < 0.15      # bias 100 % -> 14 %


def test_mala_removes_the_discretisation_bias():
  eps = 0.5
  var, info = stationary_variance(samplers.mala(eps ** 2 / 2))
  assert abs(var - 1.0) < 0.03, var
  assert 0.5 < float(info.acceptance_rate.mean()) < 1.0


def test_hmc_stationary_variance():
  var, info = stationary_variance(samplers.hmc(0.4, num_integration_steps=5))
  assert abs(var - 1.0) < 0.03, var
  assert 0.5 < float(info.acceptance_rate.mean()) <= 1.0


def mode_shares(x):
  nearest = jnp.argmin(jnp.sum((x[:, None] - GMM_MEANS[None]) ** 2, -1), axis=1)
  return np.bincount(np.asarray(nearest), minlength=8) / x.shape[0]


@pytest.mark.parametrize("compute_dtype", models.COMPUTE_DTYPES)
def test_long_noisy_chains_share_the_gmm_modes_equally(compute_dtype):
  # Uniform starts in the right half-plane: three modes start empty, so equal shares at the
  # end can only come from chains crossing between modes.
  x0 = jax.random.uniform(KEY, (4000, 2), minval=jnp.array([0.0, -2.0]), maxval=2.0)
  assert mode_shares(x0)[3:6].max() == 0
  sampler = samplers.langevin(*samplers.ula_params(0.2))
  energy_fn = models.with_compute_dtype(gmm_energy, compute_dtype)
  state = sampler.init(x0, energy_fn)
  chex.assert_type(state.energy_grad, jnp.float32)
  run = jax.jit(functools.partial(samplers.run_chain, kernel=sampler.step,
                                  energy_fn=energy_fn, num_steps=3000))
  state, _ = run(jax.random.key(2), init_state=state)
  np.testing.assert_allclose(mode_shares(state.position), 0.125, atol=0.03)


def test_noiseless_descent_ends_at_a_gmm_mode():
  sampler = samplers.gradient_descent(0.005)
  x0 = jax.random.uniform(KEY, (2000, 2), minval=-2, maxval=2)
  state = sampler.init(x0, gmm_energy)
  run = jax.jit(functools.partial(samplers.run_chain, kernel=sampler.step,
                                  energy_fn=gmm_energy, num_steps=3000))
  state, _ = run(jax.random.key(3), init_state=state)
  dist = jnp.min(jnp.linalg.norm(state.position[:, None] - GMM_MEANS[None], axis=-1), axis=1)
  assert float(jnp.max(dist)) < 0.05


def test_noiseless_descent_is_deterministic():
  sampler = samplers.gradient_descent(0.01)
  state = sampler.init(jnp.ones((3, 2)), gmm_energy)
  a, _ = samplers.run_chain(jax.random.key(0), sampler.step, state, gmm_energy, 5)
  b, _ = samplers.run_chain(jax.random.key(1), sampler.step, state, gmm_energy, 5)
  chex.assert_trees_all_equal(a, b)


QUAD_MEAN = jnp.array([1.0, -2.0])
QUAD_PREC = jnp.array([1.0, 4.0])


def quadratic_energy(x):
  return 0.5 * jnp.sum(QUAD_PREC * (x - QUAD_MEAN) ** 2, axis=1)


OPTAX_SAMPLERS = {
    "thesis_momentum_sgd": samplers.thesis_momentum_sgd(0.05, beta=0.9),
    "thesis_adam": samplers.thesis_adam(0.05),
    "optax_sgd_nesterov": optax.sgd(0.05, momentum=0.5, nesterov=True),
    "optax_rmsprop": optax.rmsprop(0.1),
}


@pytest.mark.parametrize("name", sorted(OPTAX_SAMPLERS))
def test_optax_kernels_descend_a_convex_quadratic(name):
  sampler = samplers.optax_sampler(OPTAX_SAMPLERS[name])
  state = sampler.init(jnp.full((8, 2), 10.0), quadratic_energy)
  start = float(state.energy.mean())
  state, info = samplers.run_chain(KEY, sampler.step, state, quadratic_energy, 1000)
  assert float(state.energy.mean()) < 1e-3 * start
  assert info.energy[-1] < info.energy[0]


@pytest.mark.parametrize("name", ["thesis_momentum_sgd", "thesis_adam"])
def test_optax_kernels_with_noise_target_the_right_mean(name):
  sampler = samplers.optax_sampler(OPTAX_SAMPLERS[name], noise_std=0.05)
  state = sampler.init(jnp.full((2000, 2), 5.0), quadratic_energy)
  state, _ = samplers.run_chain(KEY, sampler.step, state, quadratic_energy, 600)
  np.testing.assert_allclose(state.position.mean(0), QUAD_MEAN, atol=0.03)
  assert float(state.position.std(0).min()) > 0.01   # the noise is really there


def test_thesis_momentum_matches_its_formula():
  beta, lr = 0.8, 0.1
  sampler = samplers.optax_sampler(samplers.thesis_momentum_sgd(lr, beta))
  x = jnp.array([[3.0, 1.0]])
  state = sampler.init(x, quadratic_energy)
  m = None
  for k in range(3):
    g = QUAD_PREC * (x - QUAD_MEAN)
    m = g if k == 0 else beta * m + (1 - beta) * g     # the thesis code's update
    x = x - lr * m
    state, _ = sampler.step(jax.random.key(k), state, quadratic_energy)
  np.testing.assert_allclose(state.position, x, rtol=1e-6)


def test_clipping_of_positions_and_gradient_norms():
  steep = lambda x: 100.0 * jnp.sum(x, axis=1)   # gradient norm 100*sqrt(2)
  sampler = samplers.langevin(1.0, 0.0, clip_range=(-1.0, 1.0))
  state = sampler.init(jnp.zeros((4, 2)), steep)
  state, _ = sampler.step(KEY, state, steep)
  np.testing.assert_allclose(state.position, -1.0)
  sampler = samplers.langevin(1.0, 0.0, max_grad_norm=0.5)
  state = sampler.init(jnp.zeros((4, 2)), steep)
  state, info = sampler.step(KEY, state, steep)
  np.testing.assert_allclose(jnp.linalg.norm(state.position, axis=1), 0.5, rtol=1e-5)
  np.testing.assert_allclose(info.grad_norm, 100 * np.sqrt(2), rtol=1e-5)  # raw norm reported


def test_info_reports_start_energy_and_gradient_norm_per_sample_then_batch_means():
  sampler = samplers.langevin(0.1, 0.0)
  x = jnp.array([[3.0, 4.0], [0.0, 0.0]])
  state = sampler.init(x, gaussian_energy)
  _, info = sampler.step(KEY, state, gaussian_energy)
  np.testing.assert_allclose(info.energy, [12.5, 0.0])
  np.testing.assert_allclose(info.grad_norm, [5.0, 0.0])
  np.testing.assert_allclose(info.acceptance_rate, [1.0, 1.0])
  _, info = samplers.run_chain(KEY, sampler.step, state, gaussian_energy, 1)
  np.testing.assert_allclose(info.energy, [(12.5 + 0.0) / 2])
  np.testing.assert_allclose(info.grad_norm, [(5.0 + 0.0) / 2])


def test_nonfinite_energies_are_counted_not_hidden():
  def bad_energy(x):   # NaN for samples whose first coordinate is positive
    return jnp.where(x[:, 0] > 0, jnp.nan, 0.5 * jnp.sum(x ** 2, axis=1))
  sampler = samplers.langevin(0.1, 0.0)
  state = sampler.init(jnp.array([[-1.0, 0.0], [-2.0, 0.0], [1.0, 0.0]]), bad_energy)
  _, info = samplers.run_chain(KEY, sampler.step, state, bad_energy, 3)
  np.testing.assert_array_equal(info.num_nonfinite, [1, 1, 1])
  assert not np.isfinite(info.energy[0])


def test_vmapped_chains_equal_chains_run_one_by_one():
  sampler = samplers.langevin(0.01, 0.1)
  keys = jax.random.split(KEY, 5)
  x0 = jax.random.normal(jax.random.key(9), (5, 16, 2))
  step_sizes = jnp.linspace(0.001, 0.05, 5)

  def one(key, x, step_size):
    s = samplers.langevin(step_size, 0.1)
    return samplers.run_chain(key, s.step, s.init(x, gmm_energy), gmm_energy, 20)

  batched_state, batched_info = jax.jit(jax.vmap(one))(keys, x0, step_sizes)
  for i in range(5):
    state, info = jax.jit(one)(keys[i], x0[i], step_sizes[i])
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], batched_state), state,
                                rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], batched_info), info,
                                rtol=1e-5, atol=1e-6)
  del sampler


def test_no_retracing_when_keys_params_or_positions_change():
  def energy(params, x):
    return 0.5 * jnp.sum(params["prec"] * (x - params["mean"]) ** 2, axis=1)

  sampler = samplers.langevin(0.01, 0.1)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def chain(key, params, x):
    energy_fn = functools.partial(energy, params)
    return samplers.run_chain(key, sampler.step, sampler.init(x, energy_fn), energy_fn, 5)

  for i in range(3):
    params = {"prec": jnp.ones(2) * (i + 1), "mean": jnp.full(2, float(i))}
    chain(jax.random.key(i), params, jax.random.normal(jax.random.key(i), (4, 2)))
  # A tree_util.Partial energy passes through jit as a pytree, also without retracing.
  partial_chain = jax.jit(chex.assert_max_traces(n=1)(
      lambda key, energy_fn, state: samplers.run_chain(key, sampler.step, state, energy_fn, 5)))
  for i in range(3):
    energy_fn = jax.tree_util.Partial(energy, {"prec": jnp.ones(2) * i, "mean": jnp.zeros(2)})
    partial_chain(jax.random.key(i), energy_fn, sampler.init(jnp.ones((4, 2)) * i, energy_fn))


def test_thinned_chain_keeps_every_kth_position_and_matches_the_plain_chain():
  sampler = samplers.langevin(0.01, 0.1)
  state = sampler.init(jnp.ones((3, 2)), gaussian_energy)
  final, info, positions = samplers.run_chain_thinned(KEY, sampler.step, state,
                                                      gaussian_energy, 12, keep_every=4)
  chex.assert_shape(positions, (3, 3, 2))
  chex.assert_shape(info.energy, (12,))
  np.testing.assert_array_equal(positions[-1], final.position)


@pytest.mark.parametrize("bad, match", [
    (jnp.ones((4, 2), jnp.int32), "position must be a float array"),
    (jnp.ones((4,)), "position must have a batch axis"),
])
def test_bad_positions_fail_with_one_line(bad, match):
  with pytest.raises(ValueError, match=match):
    samplers.langevin(0.1, 0.1).init(bad, gaussian_energy)


def test_bad_chain_arguments_fail_with_one_line():
  sampler = samplers.langevin(0.1, 0.1)
  state = sampler.init(jnp.ones((4, 2)), gaussian_energy)
  with pytest.raises(ValueError, match="num_steps must be a positive int"):
    samplers.run_chain(KEY, sampler.step, state, gaussian_energy, 0)
  with pytest.raises(ValueError, match="keep_every must be a positive int dividing"):
    samplers.run_chain_thinned(KEY, sampler.step, state, gaussian_energy, 10, keep_every=3)
  with pytest.raises(ValueError, match="one energy per sample"):
    sampler.init(jnp.ones((4, 2)), lambda x: jnp.sum(x))


def test_chain_summary_reads_start_and_end():
  sampler = samplers.gradient_descent(0.5)
  state = sampler.init(jnp.array([[2.0, 0.0]]), gaussian_energy)
  final, info = samplers.run_chain(KEY, sampler.step, state, gaussian_energy, 2)
  summary = samplers.chain_summary(state, final, info)
  np.testing.assert_allclose(summary["energy_start"], 2.0)
  np.testing.assert_allclose(summary["grad_norm_start"], 2.0)
  np.testing.assert_allclose(summary["grad_norm_end"], 0.5)     # 2 -> 1 -> 0.5
  np.testing.assert_allclose(summary["r_t"], (2.0 + 1.0) / 2)
