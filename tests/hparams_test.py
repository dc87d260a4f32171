"""HParams: the vmappable values of a config as a pytree, built in one place."""

import numpy as np

from ebm_jax import config, hparams
from testutil import tiny_toy_config


def test_fields_are_exactly_the_vmappable_keys_with_their_values():
  c = tiny_toy_config(**{"seed": 3, "optimizer.learning_rate": 2e-3, "init.reinit_prob": 0.5})
  hp = hparams.from_config(c)
  assert set(vars(hp)) == set(hparams.CONFIG_KEYS)
  for field, key in hparams.CONFIG_KEYS.items():
    value = getattr(hp, field)
    assert value.shape == () and float(value) == np.float32(config.get_value(c, key))
  assert hp.seed.dtype == np.int32 and hp.learning_rate.dtype == np.float32


def test_stacking_and_the_keys_that_vary():
  a, b = tiny_toy_config(), tiny_toy_config(**{"seed": 1, "sampler.step_size": 0.1})
  stacked = hparams.stack([hparams.from_config(a), hparams.from_config(b)])
  np.testing.assert_array_equal(stacked.seed, [0, 1])
  np.testing.assert_allclose(stacked.step_size, [0.05, 0.1])
  assert stacked.loss_scale.shape == (2,)
  assert hparams.varying_keys([a, b]) == ["seed", "sampler.step_size"]
  assert hparams.varying_keys([a, a]) == []
