"""The runner: one model or a stacked group, and per-model functions compiled once."""

import chex
import jax
import numpy as np
import pytest

from ebm_jax.run import runner
from ebm_jax import spec
from testutil import tiny_toy_config


def test_repeated_samples_long_runs_and_landscapes_compile_once():
  config = tiny_toy_config(**{"longrun.num_steps": 6, "longrun.num_chains": 16,
                              "longrun.init": "persistent"})
  run = runner.Runner(spec.from_config(config), None)
  hp = run.hparams([config])
  state, hp1 = runner.unstack(run.init(hp), 0), runner.unstack(hp, 0)
  for step in (1, 2, 3):        # as at successive log / long-run / landscape steps
    run.final_samples(state, hp1)
    run.long_run(state, hp1, step)
    run.landscape(state, hp1, step)
  assert run._chains_from_store()._cache_size() == 1     # samples continue distinct bank chains
  assert run.starts_fn("persistent", 16)._cache_size() == 1
  assert run._long_runner.chunk._cache_size() == 1 and run._long_runner.init._cache_size() == 1
  assert run._energy._cache_size() == 1


@pytest.mark.parametrize("init", ["persistent", "replay"])
def test_samples_of_a_store_continue_distinct_chains_of_it(init):
  # A sampler that does not move (no noise, a vanishing step): the samples are the starts.
  config = tiny_toy_config(**{"init.name": init, "sampler.noise_std": 0.0,
                              "sampler.step_size": 1e-30, "init.reinit_prob": 0.5})
  run = runner.Runner(spec.from_config(config), None)
  hp = run.hparams([config])
  state, hp1 = runner.unstack(run.init(hp), 0), runner.unstack(hp, 0)
  x = run.draw_samples(state, hp1, jax.random.key(0), 64)        # the whole bank of 64
  bank = np.asarray(state.chain_store.samples)
  np.testing.assert_allclose(np.sort(x, axis=0), np.sort(bank, axis=0), atol=1e-6)
  assert len(np.unique(x, axis=0)) == 64                          # no duplicates, no restarts
  assert run.sampling_protocol(hp1, 64).startswith(f"64 distinct chains of the {init}")
  assert run.sampling_protocol(hp1, 64).endswith("with the raw weights")
  # Asking for more than the store holds: independent batches of the training init.
  chex.assert_shape(run.draw_samples(state, hp1, jax.random.key(0), 80), (80, 2))
  assert run.sampling_protocol(hp1, 80).startswith(f"80 chains from {init} starts")


def test_a_group_steps_every_model_with_its_own_hyper_parameters():
  configs = [tiny_toy_config(**{"seed": s, "optimizer.learning_rate": lr})
             for s, lr in ((0, 1e-3), (1, 1e-2), (2, 1e-3))]
  group = runner.Runner(spec.from_config(configs[0]), None, num_models=3)
  hp = group.hparams(configs)
  states = group.init(hp)
  chex.assert_shape(states.chain_store.samples, (3, 64, 2))
  assert not np.array_equal(states.params["Dense_0"]["kernel"][0],
                            states.params["Dense_0"]["kernel"][1])   # seeds differ
  states, metrics, images = group.step(states, hp, group.images, group.all_active)
  np.testing.assert_allclose(metrics["lr"], [1e-3, 1e-2, 1e-3], rtol=1e-6)
  chex.assert_shape(images["samples"], (3, 16, 2))
  np.testing.assert_array_equal(states.step, [1, 1, 1])
  # Model 2 = model 0's learning rate with another seed: a separate model, not a copy.
  assert not np.allclose(jax.tree.leaves(runner.unstack(states, 0).params)[0],
                         jax.tree.leaves(runner.unstack(states, 2).params)[0])


def test_more_devices_than_exist_is_a_one_line_error():
  import pytest
  from ebm_jax import config
  c = tiny_toy_config(**{"parallel.num_devices": jax.device_count() + 1})
  with pytest.raises(config.ConfigError, match=r"config.parallel.num_devices: \d+ requested "
                                               r"but only \d+ devices exist"):
    runner.Runner(spec.from_config(c), None)


def _uniform_samples(**overrides):
  """A fresh tiny toy model's runner and its 32 samples from uniform starts."""
  config = tiny_toy_config(**{"init.name": "uniform", **overrides})
  run = runner.Runner(spec.from_config(config), None)
  hp = runner.unstack(run.hparams([config]), 0)
  state = runner.unstack(run.init(run.hparams([config])), 0)
  return run, hp, run.draw_samples(state, hp, jax.random.key(3), 32)


def test_final_num_steps_sets_the_chains_of_samples_only():
  run0, hp0, default = _uniform_samples()
  _, _, same = _uniform_samples(final_num_steps=5)        # the training K of tiny_toy_config
  run7, hp7, longer = _uniform_samples(final_num_steps=40)
  np.testing.assert_array_equal(default, same)
  assert not np.allclose(default, longer)
  assert "K = 5 " in run0.sampling_protocol(hp0, 32)
  assert "K = 40 " in run7.sampling_protocol(hp7, 32)
  assert run7.spec.sampler.num_steps == 5             # training chains keep their K


def test_final_step_fraction_scales_the_final_chains_step_and_noise_only():
  run_f, hp_f, fraction = _uniform_samples(final_step_fraction=0.25)
  _, _, explicit = _uniform_samples(**{"sampler.step_size": 0.05 * 0.25,
                                       "sampler.noise_std": 0.1 * 0.5})
  np.testing.assert_allclose(fraction, explicit, rtol=1e-6, atol=1e-6)
  assert "step 0.0125, noise 0.05)" in run_f.sampling_protocol(hp_f, 32)
  np.testing.assert_allclose(run_f.final_hparams(hp_f).step_size, 0.0125)
  np.testing.assert_allclose(hp_f.step_size, 0.05)            # training chains keep theirs


def test_long_runs_use_the_final_chains_step_and_noise():
  # The long-run check runs the chain of samples.npz longer: same step fraction, more steps.
  def long_run(**overrides):
    config = tiny_toy_config(**{"longrun.num_steps": 30, "longrun.num_chains": 16,
                                "longrun.init": "uniform", **overrides})
    run = runner.Runner(spec.from_config(config), None)
    hp = run.hparams([config])
    return run.long_run(runner.unstack(run.init(hp), 0), runner.unstack(hp, 0), 7).positions

  fraction = long_run(final_step_fraction=0.25)
  explicit = long_run(**{"sampler.step_size": 0.05 * 0.25, "sampler.noise_std": 0.1 * 0.5})
  np.testing.assert_allclose(fraction, explicit, rtol=1e-5, atol=1e-5)
  assert not np.allclose(fraction, long_run())


def test_final_step_fraction_is_refused_for_samplers_it_would_retarget():
  from ebm_jax import config
  with pytest.raises(config.ConfigError, match=r"config.final_step_fraction: expected 1 for "
                                               r"sampler 'mala'"):
    config.validate(tiny_toy_config(**{"sampler.name": "mala", "final_step_fraction": 0.5}))


def test_temperature_protocol_and_landscape_are_each_models_own():
  # Two models of one group with different Langevin steps and noises: each is read at its
  # own temperature 2 step / noise^2 (the toy study read every model at model 0's).
  configs = [tiny_toy_config(**{"sampler.step_size": s, "sampler.noise_std": n})
             for s, n in ((0.05, 0.1), (0.02, 0.3))]
  group = runner.Runner(spec.from_config(configs[0]), None, num_models=2)
  hp = group.hparams(configs)
  states = group.init(hp)
  temperatures = [group.temperature(runner.unstack(hp, i)) for i in range(2)]
  np.testing.assert_allclose(temperatures, [2 * 0.05 / 0.1 ** 2, 2 * 0.02 / 0.3 ** 2],
                             rtol=1e-6)
  protocols = [group.sampling_protocol(runner.unstack(hp, i), 20) for i in range(2)]
  assert "(step 0.05, noise 0.1)" in protocols[0]
  assert "(step 0.02, noise 0.3)" in protocols[1]
  # The landscape of model 1 as a member equals the landscape of model 1 alone.
  alone = runner.Runner(spec.from_config(configs[1]), None)
  hp1 = runner.unstack(alone.hparams([configs[1]]), 0)
  state1 = runner.unstack(states, 1)
  samples = np.zeros((50, 2), np.float32)
  member = group.landscape(state1, runner.unstack(hp, 1), 1, samples=samples)
  single = alone.landscape(state1, hp1, 1, samples=samples)
  np.testing.assert_allclose(member.kl_true_model, single.kl_true_model, rtol=1e-6)
  other = group.landscape(state1, runner.unstack(hp, 0), 1, samples=samples)
  assert abs(other.kl_true_model - single.kl_true_model) > 0.01
