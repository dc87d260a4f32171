"""AIS against what is known: a Gaussian's closed-form log Z, a 2-D density's grid quadrature,
the sandwich of forward and reverse AIS, and the bits-per-dimension conversion."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax.data import toys
from ebm_jax.eval import likelihood

DIM = 6
MEAN = jnp.linspace(-1.0, 1.0, DIM)
SD = jnp.linspace(0.2, 0.6, DIM)


def gaussian_energy(x):
  return 0.5 * jnp.sum(((x - MEAN) / SD) ** 2, axis=1)


GAUSSIAN_LOG_Z = float(jnp.sum(jnp.log(jnp.sqrt(2 * jnp.pi) * SD)))


def standard_base(dim=DIM):
  return likelihood.gaussian_base(np.random.RandomState(0).randn(5000, dim))


@pytest.mark.parametrize("transition", ["mala", "hmc"])
def test_ais_recovers_a_gaussians_closed_form_log_z(transition):
  est = likelihood.ais(gaussian_energy, standard_base(), jax.random.key(0), num_chains=400,
                       num_distributions=300, transition=transition)
  assert abs(est.log_z - GAUSSIAN_LOG_Z) < 3 * est.log_z_se + 0.01
  assert est.log_z_se < 0.1 and est.ess > 100
  assert 0.4 < est.acceptance < 0.85          # the adapted step near blackjax's target


def test_ais_converges_as_distributions_are_added():
  """Over 6 independent runs each, the error and the stated standard error shrink as
  intermediate distributions are added (2 -> 100 -> 1,000), and at 1,000 the stated error
  covers the actual one."""
  rms, se = [], []
  for m in (2, 100, 1000):
    runs = [likelihood.ais(gaussian_energy, standard_base(), jax.random.key(s), num_chains=400,
                           num_distributions=m) for s in range(6)]
    rms.append(np.sqrt(np.mean([(e.log_z - GAUSSIAN_LOG_Z) ** 2 for e in runs])))
    se.append(np.mean([e.log_z_se for e in runs]))
  assert rms[2] < rms[1] < rms[0] and se[2] < se[1] < se[0]
  assert rms[2] < 0.05 and rms[0] > 5 * rms[2]
  assert rms[2] < 2 * se[2]


def test_grid_quadrature_is_exact_for_a_normalised_density():
  toy = toys.gmm()
  grid = likelihood.grid_log_z(lambda x: -toy.log_density(x), 2 * toy.plot_limit, 600)
  assert abs(grid.log_z) < 1e-4 and abs(grid.tail_change) < 1e-6


def test_an_energy_falling_along_a_direction_is_flagged_by_the_wider_grid():
  # E = x_0 on the plane: exp(-E) has no finite integral; the grid's log Z grows with the box.
  grid = likelihood.grid_log_z(lambda x: x[:, 0] + 0.5 * x[:, 1] ** 2, 3.0, 200)
  assert grid.tail_change > 2.5 > likelihood.NORMALISABLE_TOLERANCE


def confined_net_energy():
  """A random 2-D MLP energy plus a quadratic wall: normalisable, with no closed form."""
  keys = jax.random.split(jax.random.key(7), 3)
  w1 = jax.random.normal(keys[0], (2, 32))
  w2 = jax.random.normal(keys[1], (32, 1)) / 4

  def energy(x):
    return 3 * (jnp.tanh(x @ w1) @ w2)[:, 0] + 0.5 * jnp.sum(x ** 2, axis=1)

  return energy


def test_forward_and_reverse_ais_sandwich_the_grid_value_of_a_network_energy():
  energy = confined_net_energy()
  grid = likelihood.grid_log_z(energy, 6.0, 800)
  assert abs(grid.tail_change) < 1e-5
  base = standard_base(2)
  forward = [likelihood.ais(energy, base, jax.random.key(s), num_chains=500,
                            num_distributions=200) for s in range(3)]
  exact = likelihood.sample_grid(grid, jax.random.key(10), 500)
  reverse = [likelihood.reverse_ais(energy, base, exact, jax.random.key(20 + s),
                                    num_distributions=200) for s in range(3)]
  for est in forward + reverse:
    assert abs(est.log_z - grid.log_z) < 4 * est.log_z_se + 0.01
  # In expectation forward <= log Z <= reverse; with few distributions the gap is visible in
  # the means of 8 runs each.
  lo = np.mean([likelihood.ais(energy, base, jax.random.key(30 + s), num_chains=500,
                               num_distributions=3).log_z for s in range(8)])
  hi = np.mean([likelihood.reverse_ais(energy, base, exact, jax.random.key(40 + s),
                                       num_distributions=3).log_z for s in range(8)])
  assert lo < grid.log_z - 0.03 and hi > grid.log_z + 0.1


def test_grid_samples_follow_the_grid_density():
  toy = toys.gmm()
  grid = likelihood.grid_log_z(lambda x: -toy.log_density(x), 2 * toy.plot_limit, 400)
  x = likelihood.sample_grid(grid, jax.random.key(0), 20000)
  exact = np.asarray(toy.sample(jax.random.key(1), 20000))
  np.testing.assert_allclose(np.mean(x ** 2, 0), np.mean(exact ** 2, 0), rtol=0.03)
  np.testing.assert_allclose(np.linalg.norm(x, axis=1).mean(),
                             np.linalg.norm(exact, axis=1).mean(), atol=0.005)


def test_uniform_base_gives_the_boxed_integral():
  # exp(-0) on [-1, 1]^3: Z = 8, exactly, at any number of distributions.
  est = likelihood.ais(lambda x: jnp.zeros(x.shape[0]), likelihood.uniform_base((3,)),
                       jax.random.key(0), num_chains=50, num_distributions=5)
  assert est.log_z == pytest.approx(math.log(8), abs=1e-5) and est.log_z_se < 1e-5


def test_weights_summary_and_bits_per_dim():
  log_z, se, ess = likelihood.estimate_from_log_weights(np.full(10, 2.0))
  assert log_z == pytest.approx(2.0) and se == pytest.approx(0.0) and ess == pytest.approx(10)
  log_z, _, ess = likelihood.estimate_from_log_weights(np.log([1.0, 3.0]))
  assert log_z == pytest.approx(math.log(2.0)) and ess == pytest.approx(16 / 10)
  # The uniform density on [-1, 1]^D is uniform 8-bit noise: exactly 8 bits per dimension.
  dim = 784
  assert likelihood.bits_per_dim(-dim * math.log(2), dim) == pytest.approx(8.0)


def test_dequantized_images_stay_in_their_bin():
  x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  d = likelihood.dequantize(x, jax.random.key(0))
  low = x / 128.0 - 1
  assert np.all((d >= low) & (d < low + 1 / 128)) and d.min() >= -1 and d.max() < 1
  # Within 0.4 % of the training data's scale, x / 127.5 - 1.
  assert np.abs(d - (x / 127.5 - 1)).max() < 1.5 / 128


def test_a_density_on_the_box_is_integrated_through_tanh():
  # exp(-a x^2) on (-1, 1)^3, separable: Z = prod sqrt(pi / a) erf(sqrt(a)), by 1-D closed form.
  from scipy.special import erf
  a = np.array([0.5, 3.0, 20.0], np.float32)
  energy = lambda x: jnp.sum(a * x ** 2, axis=1)
  truth = float(np.sum(np.log(np.sqrt(np.pi / a) * erf(np.sqrt(a)))))
  plane = likelihood.box_to_plane(energy)
  for base in (likelihood.uniform_plane_base((3,)),
               likelihood.gaussian_base(likelihood.to_plane(
                   np.random.RandomState(0).uniform(-1, 1, (2000, 3))))):
    est = likelihood.ais(plane, base, jax.random.key(0), num_chains=400, num_distributions=200)
    assert abs(est.log_z - truth) < 3 * est.log_z_se + 0.01, (est.log_z, truth)
  # With zero energy the uniform base is the target: Z = 8 exactly.
  flat = likelihood.ais(likelihood.box_to_plane(lambda x: jnp.zeros(x.shape[0])),
                        likelihood.uniform_plane_base((3,)), jax.random.key(1), num_chains=50,
                        num_distributions=5)
  assert flat.log_z == pytest.approx(math.log(8), abs=1e-4)


def test_a_uniform_base_is_refused_where_the_chains_are_not_clipped_to_its_box():
  from ebm_jax import config as config_lib
  c = config_lib.load_recipe("configs/toy_gmm.py", {"likelihood.base": "uniform"})
  with pytest.raises(config_lib.ConfigError, match="config.likelihood.base: expected 'gaussian' "
                                                   "unless sampler.clip_x"):
    config_lib.validate(c)
  config_lib.validate(config_lib.load_recipe("configs/mnist.py", {"likelihood.base": "uniform"}))
