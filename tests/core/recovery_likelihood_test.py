"""Recovery likelihood (DRL): its levels, its conditional chains against a Gaussian's analytic
conditional, its reduction to the plain objective with one level, and a bit-exact resume."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax import config as config_lib
from ebm_jax import hparams
from ebm_jax.core import losses, samplers
from ebm_jax.core.objectives import recovery_likelihood as drl
from ebm_jax.run import train
from testutil import NO_IMAGES, make_step, override, tiny_toy_config, without_clock


def drl_config(**overrides):
  c = tiny_toy_config(**{"objective.name": "recovery_likelihood", "init.name": "gaussian",
                         "drl.num_levels": 3, "sampler.num_steps": 4})
  c.sampler.step_size, c.sampler.noise_std = drl.level0_langevin(c.drl)
  return override(c, overrides)


def test_levels_follow_the_paper_schedule():
  c = config_lib.get_config()
  lv = drl.schedule(c.drl)                            # T = 6, betas 1e-4 -> 0.02 over 1,000
  betas = np.linspace(1e-4, 0.02, 1000)
  cuts = [0, 100, 200, 300, 400, 500, 999]            # DRL's: 1000 // (2 (T - 1)) apart
  a_cum = np.sqrt(np.cumprod(1 - betas))[cuts]
  np.testing.assert_allclose(lv.a_cum, a_cum, rtol=1e-5)
  np.testing.assert_allclose(lv.a ** 2 + lv.sigma ** 2, 1.0, rtol=1e-6)
  assert lv.sigma[0] == pytest.approx(0.01, rel=1e-4)     # level 0: the data, barely perturbed
  assert lv.a_cum[-1] < 0.01                             # x_T: almost pure noise
  assert lv.recovery.tolist() == [1, 1, 1, 1, 1, 1, 0] and lv.a_prev[-1] == 1
  np.testing.assert_allclose(lv.b0, 2e-4 * lv.sigma_cum[:6] / 0.01 * lv.sigma[1:] ** 2,
                             rtol=1e-5)
  assert lv.weight[0] == 1 and np.all(np.diff(lv.weight) < 0)


# b^2 per level so that h lam is 0.2-0.6 (c_t^2 grows ~100x from level 0 to the top).
@pytest.mark.parametrize("level,b_square", [(0, 0.1), (1, 0.002), (2, 0.002)])
def test_the_conditional_chain_targets_the_gaussian_conditional(level, b_square):
  """With f(y, t) = b0_t |y|^2 / (2 tau^2), level t's conditional is Gaussian with precision
  lam = 1/tau^2 + r/sigma^2 and mean (r/sigma^2) x / lam (r = 0 at the top level); unadjusted
  Langevin at step h = s^2/2 keeps the mean and has variance 1 / (lam (1 - h lam / 2))."""
  c = drl_config(**{"drl.b_square": b_square, "sampler.num_steps": 300})
  c.sampler.step_size, c.sampler.noise_std = drl.level0_langevin(c.drl)
  objective, _, _ = make_step(c)
  lv, tau = objective.levels, 0.4
  objective.network = lambda variables, y, t: (jnp.asarray(lv.b0)[t] *
                                               0.5 * jnp.sum(y ** 2, axis=1) / tau ** 2)
  hp = hparams.from_config(c)
  n = 4000
  t = jnp.full((n,), level)
  x_next = jnp.full((n, 2), 1.5)
  final, _, _ = objective._level_chain(objective.spec.sampler, hp, None,
                                       jax.random.key(level), x_next, t)
  r, sigma = lv.recovery[level + 1], lv.sigma[level + 1]
  lam = 1 / tau ** 2 + r / sigma ** 2
  h = lv.b0[level] / 2
  mean = r / sigma ** 2 * 1.5 / lam
  var = 1 / (lam * (1 - h * lam / 2))
  assert 0.1 < h * lam < 0.7
  y = np.asarray(final.position)
  np.testing.assert_allclose(y.mean(0), mean, atol=4 * np.sqrt(var / n))
  np.testing.assert_allclose(y.var(0), var, rtol=0.1)


def test_one_level_is_the_plain_objective():
  """T = 1: the only level is the top one, without the Gaussian term and with weight 1, so its
  chain is Langevin on E = f(., 0) / b0 and its loss b0 x the contrastive loss of E."""
  c = drl_config(**{"drl.num_levels": 1})
  objective, state, _ = make_step(c)
  lv = objective.levels
  assert lv.recovery[1] == 0 and lv.a_prev[1] == 1 and lv.weight[0] == 1
  hp = hparams.from_config(c)
  variables = {"params": state.params, **state.model_state}
  b0 = float(lv.b0[0])
  energy = lambda x: objective.network(variables, x, jnp.zeros(x.shape[0], jnp.int32)) / b0
  x_next = jax.random.normal(jax.random.key(1), (64, 2))
  t = jnp.zeros(64, jnp.int32)
  final, _, _ = objective._level_chain(objective.spec.sampler, hp, variables,
                                       jax.random.key(2), x_next, t)
  plain = samplers.langevin(hp.step_size, hp.noise_std)
  expected, _ = samplers.run_chain(jax.random.key(2), plain.step, plain.init(x_next, energy),
                                   energy, c.sampler.num_steps)
  chex.assert_trees_all_close(final.position, expected.position, atol=1e-5)

  y_pos = jax.random.normal(jax.random.key(3), (64, 2))

  def drl_loss(params):
    net = functools.partial(objective.network, {**variables, "params": params})
    return drl.recovery_loss(net, y_pos, final.position, t, jnp.asarray(lv.weight))[0]

  def plain_loss(params):
    e = lambda x: objective.network({**variables, "params": params}, x,
                                    jnp.zeros(x.shape[0], jnp.int32)) / b0
    return b0 * losses.contrastive_loss(e, y_pos, final.position)[0]

  chex.assert_trees_all_close(jax.value_and_grad(drl_loss)(state.params),
                              jax.value_and_grad(plain_loss)(state.params), rtol=1e-4, atol=1e-7)


def test_a_step_trains_on_every_level_and_sampling_runs_them_all():
  c = drl_config()
  objective, state, step = make_step(c)
  for _ in range(3):
    state, metrics, images = step(state, NO_IMAGES)
  assert int(state.step) == 3 and np.isfinite(float(metrics["loss"]))
  chex.assert_shape([images["starts"], images["samples"]], (16, 2))
  hp = hparams.from_config(c)
  variables = {"params": state.params, **state.model_state}
  x0 = objective.sample(objective.spec.sampler, hp, variables, jax.random.key(0),
                        jax.random.normal(jax.random.key(1), (32, 2)))
  chex.assert_shape(x0, (32, 2))
  assert np.all(np.isfinite(np.asarray(x0)))
  # Level 0's energy in data space is the network's at a_1 x over b0_0.
  lv = objective.levels
  x = jax.random.normal(jax.random.key(4), (8, 2))
  direct = objective.network(variables, lv.a_prev[1] * x, jnp.zeros(8, jnp.int32)) / lv.b0[0]
  chex.assert_trees_all_close(objective.comps.energy(variables, x), direct, rtol=1e-6)


def test_a_resumed_run_is_bit_exact(tmp_path):
  config = drl_config(**{"num_train_steps": 4, "checkpoint_every_steps": 2,
                         "log_every_steps": 2})
  straight = train.train_and_evaluate(config, str(tmp_path / "a"))
  config.num_train_steps = 2
  train.train_and_evaluate(config, str(tmp_path / "b"))
  config.num_train_steps = 4
  resumed = train.train_and_evaluate(config, str(tmp_path / "b"))
  chex.assert_trees_all_equal(without_clock(straight), without_clock(resumed))
  with np.load(tmp_path / "a" / "samples.npz") as f:
    chex.assert_shape(f["x"], (20, 2))
    assert np.all(np.isfinite(f["x"]))
  log = (tmp_path / "a" / "log.txt").read_text()
  assert "recovery likelihood's 3 levels from x_T ~ N(0, 1^2) noise" in log


@pytest.mark.parametrize("key,value,message", [
    ("init.name", "persistent", "config.init.name"),
    ("sampler.name", "mala", "config.sampler.name"),
    ("drl.schedule", "quadratic", "config.drl.schedule"),
    ("drl.beta_end", 1e-5, "config.drl.beta_end"),
])
def test_bad_recovery_likelihood_settings_fail_in_one_line(key, value, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(drl_config(**{key: value}))


def test_the_cosine_schedule_also_ends_in_noise():
  c = config_lib.get_config()
  c.drl.schedule = "cosine"
  lv = drl.schedule(c.drl)
  assert lv.a_cum[-1] < 0.01 and np.all(np.diff(lv.a_cum) < 0)
  np.testing.assert_allclose(lv.a ** 2 + lv.sigma ** 2, 1.0, rtol=1e-6)


def test_the_cifar10_paper_recipe_validates_and_its_train_step_compiles():
  """DRL's CIFAR-10 settings (T 6, K 30 per level, batch 64, n_f 128 with spectral norm): the
  config validates and XLA compiles its train step and its six-level sampler on this CPU."""
  config = config_lib.load_recipe("configs/cifar10_drl.py:paper")
  config_lib.validate(config)
  images = np.zeros((64, 32, 32, 3), np.uint8)
  objective, state, _ = make_step(config, images)
  hp = hparams.from_config(config)
  step = jax.jit(objective.train_step).lower(state, hp, jnp.asarray(images)).compile()
  assert step is not None
  variables = {"params": state.params, **state.model_state}
  sample = jax.jit(lambda v, k, x: objective.sample(objective.spec.sampler, hp, v, k, x))
  starts = jax.ShapeDtypeStruct((64, 32, 32, 3), jnp.float32)
  assert sample.lower(variables, jax.random.key(0), starts).compile() is not None
