"""The objectives' shared update: the EMA of the energy parameters and rejected updates."""

import jax
import numpy as np
import pytest

from ebm_jax.run import runner
from ebm_jax import spec
from ebm_jax.core import optimizers
from ebm_jax.core.objectives import base
from testutil import make_step, tiny_toy_config


def test_ema_follows_the_ramped_recurrence_of_the_raw_parameters():
  decay = 0.9
  _, state, step = make_step(tiny_toy_config(**{"ema.decay": decay}))
  jax.tree.map(np.testing.assert_array_equal, state.ema_params, state.params)
  expected = jax.tree.map(np.asarray, state.params)
  for t in range(6):
    state, _, _ = step(state, None)
    d = min(decay, (1 + t) / (10 + t))          # TF's num_updates ramp: 0.1, 0.18, ...
    expected = jax.tree.map(lambda e, p: d * e + (1 - d) * np.asarray(p), expected,
                            state.params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               state.ema_params, expected)
  # Not the raw parameters: the average lags them.
  assert not np.allclose(jax.tree.leaves(state.ema_params)[0], jax.tree.leaves(state.params)[0])


def test_ema_decay_ramp():
  np.testing.assert_allclose([float(base.ema_decay(0.999, np.int32(t))) for t in (0, 10, 10**6)],
                             [0.1, 11 / 20, 0.999], rtol=1e-6)


def test_no_ema_keeps_no_copy():
  _, state, step = make_step(tiny_toy_config())
  state, _, _ = step(state, None)
  assert state.ema_params is None


def test_a_rejected_update_leaves_the_ema_unchanged():
  # |loss| > 1e-12 always: every update is rejected.
  _, state, step = make_step(tiny_toy_config(**{"ema.decay": 0.5,
                                                "divergence_threshold": 1e-12}))
  before = jax.tree.map(np.asarray, state.ema_params)
  state, metrics, _ = step(state, None)
  assert float(metrics["finite"]) == 0 and int(state.step) == 0
  jax.tree.map(np.testing.assert_array_equal, state.ema_params, before)


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_samples_and_energies_use_the_ema_weights_when_on(decay):
  config = tiny_toy_config(**{"ema.decay": decay})
  run = runner.Runner(spec.from_config(config), None)
  hp = run.hparams([config])
  states = run.init(hp)
  for _ in range(4):
    states, _, _ = run.step(states, hp, run.images, run.all_active)
  state = runner.unstack(states, 0)
  used = run.eval_variables(state)["params"]
  expected = state.params if decay == 0 else state.ema_params
  jax.tree.map(np.testing.assert_array_equal, used, expected)
  x = np.zeros((3, 2), np.float32)
  raw = run._energy({"params": state.params, **state.model_state}, x)
  assert np.allclose(run.energy_fn(state)(x), raw) == (decay == 0)


def _one_update(**oc):
  """One update of parameters 2.0 by zero gradients, at learning rate 0.1."""
  import optax
  from ebm_jax import config as config_lib
  c = config_lib.get_config()
  for key, value in oc.items():
    c.optimizer[key] = value
  optimizer = optimizers.make_optimizer(spec.from_config(c).optimizer)
  params = {"w": np.full((3,), 2.0, np.float32)}
  state = optimizer.init(params)
  state.hyperparams["learning_rate"] = np.float32(0.1)
  updates, _ = optimizer.update({"w": np.zeros((3,), np.float32)}, state, params)
  return np.asarray(optax.apply_updates(params, updates)["w"])


def test_weight_decay_is_decoupled_as_adamw_and_l2_penalty_goes_through_adam():
  # Zero gradients: AdamW moves the parameters by lr * wd * p (0.1 * 0.01 * 2 = 0.002), as
  # optax.adamw does; an L2 penalty is a gradient of wd * p that Adam normalises to about
  # lr * sign(p) = 0.1, whatever its size.
  np.testing.assert_allclose(_one_update(name="adam", weight_decay=0.01), 2.0 - 0.002, rtol=1e-6)
  np.testing.assert_allclose(_one_update(name="adam", l2_penalty=0.01), 2.0 - 0.1, rtol=1e-4)
  np.testing.assert_allclose(_one_update(name="adam"), 2.0)
  # Plain SGD: the two forms coincide (lr * wd * p).
  np.testing.assert_allclose(_one_update(name="sgd", beta1=0.0, weight_decay=0.01), 1.998,
                             rtol=1e-6)
  np.testing.assert_allclose(_one_update(name="sgd", beta1=0.0, l2_penalty=0.01), 1.998,
                             rtol=1e-6)
