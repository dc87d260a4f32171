"""CoopNets (generator-initialised chains, MCMC teaching) and the thesis code's knobs."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax import hparams
from ebm_jax.core import samplers
from ebm_jax.run import train
from ebm_jax.core import optimizers
from testutil import NO_IMAGES, make_step, tiny_image_config, tiny_toy_config, without_clock

IMAGES = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)


def coop_config(**overrides):
  return tiny_image_config(**{"objective.name": "coopnets", "init.name": "generator",
                              "generator.n_f": 4, "generator.z_dim": 8, **overrides})


def setup(config, energy=None):
  return make_step(config, IMAGES, energy)


@pytest.mark.parametrize("latent_steps", [0, 3])
def test_coopnets_steps_update_both_nets_and_batch_norm(latent_steps):
  config = coop_config(**{"generator.langevin_steps": latent_steps,
                          "generator.langevin_noise": True})
  comps, state, step = setup(config)
  new, metrics, images = step(state, jnp.asarray(IMAGES))
  new, metrics, images = step(new, jnp.asarray(IMAGES))
  for key in ("loss", "gen_loss", "recon_loss", "d_s_t"):
    assert np.isfinite(float(metrics[key])), key
  assert float(metrics["gen_loss"]) > 0 and float(metrics["recon_loss"]) > 0
  changed = lambda a, b: any(not np.array_equal(x, y) for x, y in
                             zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert changed(new.generator.params, state.generator.params)
  assert changed(new.generator.batch_stats, state.generator.batch_stats)
  assert changed(new.params, state.params)
  assert int(new.generator.opt_state[0].count) == 2
  chex.assert_shape(images["starts"], (16, 28, 28, 1))   # the generator's proposals


def test_mcmc_teaching_pulls_the_generator_to_the_revised_samples():
  # A fixed quadratic energy around c: the sampler revises G(z) towards c, and G2 must then
  # teach the generator to produce c itself.
  c = 0.5
  quadratic = lambda variables, x: 0.5 * jnp.sum(jnp.square((x - c).reshape(x.shape[0], -1)), 1)
  config = coop_config(**{"sampler.num_steps": 10, "sampler.step_size": 0.3,
                          "sampler.noise_std": 0.0, "generator.learning_rate": 3e-3,
                          "generator.sigma": 1.0})
  comps, state, step = setup(config, energy=quadratic)
  gen_losses, distance = [], []
  for _ in range(40):
    state, metrics, images = step(state, jnp.asarray(IMAGES))
    gen_losses.append(float(metrics["gen_loss"]))
    distance.append(float(jnp.mean(jnp.abs(images["starts"] - c))))
  assert np.mean(gen_losses[-5:]) < 0.2 * np.mean(gen_losses[:5])
  assert distance[-1] < 0.3 * distance[0]


def test_coopnets_run_checkpoints_the_generator_and_resumes_bit_exactly(tmp_path):
  import tensorflow_datasets as tfds
  config = coop_config(**{"data.dir": str(tmp_path / "nodata"), "num_train_steps": 4,
                          "checkpoint_every_steps": 2, "log_every_steps": 2})
  with tfds.testing.mock_data(num_examples=32):
    straight = train.train_and_evaluate(config, str(tmp_path / "a"))
    config.num_train_steps = 2
    train.train_and_evaluate(config, str(tmp_path / "b"))
    config.num_train_steps = 4
    resumed = train.train_and_evaluate(config, str(tmp_path / "b"))
  chex.assert_trees_all_equal(without_clock(straight), without_clock(resumed))
  assert resumed.generator is not None and jax.tree.leaves(resumed.generator.batch_stats)
  rows = (tmp_path / "a" / "metrics.jsonl").read_text()
  assert '"gen_loss"' in rows and '"recon_loss"' in rows
  with np.load(tmp_path / "a" / "samples.npz") as f:   # the samples and, apart, their starts
    chex.assert_shape([f["x"], f["proposals"]], (20, 28, 28, 1))
    assert np.abs(f["x"] - f["proposals"]).max() > 0


def test_without_noise_a_chain_is_deterministic_for_a_fixed_start():
  for name in ("momentum_sgd", "adam", "langevin"):
    config = tiny_toy_config(**{"sampler.name": name, "sampler.noise_std": 0.0})
    sampler = samplers.build(config.sampler, config.sampler.step_size,
                             config.sampler.noise_std)
    energy = lambda x: jnp.sum(x ** 2, axis=1)
    state = sampler.init(jnp.ones((4, 2)), energy)
    a, _ = samplers.run_chain(jax.random.key(0), sampler.step, state, energy, 5)
    b, _ = samplers.run_chain(jax.random.key(1), sampler.step, state, energy, 5)
    chex.assert_trees_all_equal(a.position, b.position)


@pytest.mark.parametrize("divide", [1.0, 4.0])
def test_noise_divide_divides_the_noise_variance(divide):
  config = tiny_toy_config(**{"sampler.noise_std": 0.1, "sampler.noise_divide": divide,
                              "sampler.step_size": 1e-3})
  sampler = samplers.build(config.sampler, config.sampler.step_size,
                             config.sampler.noise_std)
  flat = lambda x: jnp.zeros(x.shape[0])                 # no gradient: one step is pure noise
  state = sampler.init(jnp.zeros((20000, 2)), flat)
  new, _ = sampler.step(jax.random.key(0), state, flat)
  np.testing.assert_allclose(np.var(new.position), 0.01 / divide, rtol=0.03)


def test_data_epsilon_is_added_to_persistent_starts():
  config = tiny_toy_config(**{"init.start_noise_std": 0.2})
  objective, state, _ = make_step(config)
  start = objective.chain_start("persistent")
  starts, idx = start.draw(state, jax.random.key(0), jnp.zeros((16, 2)),
                           hparams.from_config(config))
  np.testing.assert_allclose(np.std(np.asarray(starts - state.chain_store.samples[idx])), 0.2,
                             rtol=0.25)


def test_lr_decrease_and_divergence_threshold():
  config = tiny_toy_config(**{"optimizer.lr_decay": 0.999})
  lr = optimizers.learning_rate(config.optimizer, hparams.from_config(config), 1000)
  np.testing.assert_allclose(lr, 1e-3 * 0.999 ** 1000, rtol=1e-4)  # float32
  config = tiny_toy_config(**{"divergence_threshold": 1e-12})
  _, state, step = make_step(config)
  new, metrics, _ = step(state, NO_IMAGES)
  assert float(metrics["finite"]) == 0.0 and int(new.step) == 0


def test_generator_starts_for_sampling_use_running_statistics():
  config = coop_config()
  objective, state, _ = setup(config)
  x0, z = objective.chain_start("generator").draw(state, jax.random.key(0),
                                                  jnp.zeros((16, 28, 28, 1)),
                                                  hparams.from_config(config))
  chex.assert_shape([x0, z], [(16, 28, 28, 1), (16, 8)])
  assert float(jnp.abs(x0).max()) <= 1.0                  # tanh output
