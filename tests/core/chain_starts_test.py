"""Chain starts by name: every registry entry draws a batch; stores hold chains."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax.core import chain_starts
from ebm_jax import hparams
from testutil import tiny_toy_config

NO_GENERATOR = [n for n in chain_starts.STARTS if n != "generator"]


@pytest.mark.parametrize("name", NO_GENERATOR)
def test_every_start_draws_a_batch_and_only_stores_keep_state(name):
  config = tiny_toy_config(**{"init.scale": 0.5})
  hp = hparams.from_config(config)
  start = chain_starts.make(name, config.init, (2,))
  store = start.init_store(jax.random.key(0), hp)
  assert (store is not None) == chain_starts.STARTS[name].has_store
  state = type("State", (), {"chain_store": store})()
  data = jnp.full((16, 2), 0.25)
  x, ctx = start.draw(state, jax.random.key(1), data, hp)
  chex.assert_shape(x, (16, 2))
  if name == "data":
    np.testing.assert_array_equal(x, data)        # start_noise_std 0: the data themselves
  if name in ("uniform", "persistent", "replay"):
    assert float(jnp.max(jnp.abs(x))) <= 0.5       # init.scale bounds noise and fresh banks
  if store is not None:
    new = start.update(store, ctx, x + 1.0, True)
    chex.assert_trees_all_equal(start.update(store, ctx, x + 1.0, False), store)
    assert not np.array_equal(np.asarray(jax.tree.leaves(new)[0]),
                              np.asarray(jax.tree.leaves(store)[0]))


def test_the_generator_start_needs_an_objective_generator():
  with pytest.raises(ValueError, match="needs the CoopNets objective's generator"):
    chain_starts.make("generator", tiny_toy_config().init, (28, 28, 1))
