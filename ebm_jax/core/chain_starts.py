"""Where chains start, by name: noise, data, a persistent bank, a replay buffer, a generator.

Each registry entry of :data:`STARTS` builds a :class:`ChainStart` from the static
``config.init`` and the sample shape: ``init_store`` makes its state (a bank or buffer, or None),
``draw`` the starts of one batch and ``update`` writes the chains' end points back. The
vmappable values (``init_scale``, ``reinit_prob``, ``start_noise_std``) come from the
:class:`~ebm_jax.hparams.HParams` passed at each call, never from the config. The leaves are in
:mod:`ebm_jax.core.inits` and :mod:`ebm_jax.core.buffers`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from ebm_jax.core import buffers
from ebm_jax.core import inits

Array = jax.Array


class ChainStart(NamedTuple):
  """How chains start. ``draw`` returns the starts and what ``update`` needs to write back."""
  init_store: Callable[[Array, Any], Any]                        # (key, hparams) -> store | None
  draw: Callable[[Any, Array, Array, Any], tuple[Array, Any]]    # (state, key, data, hparams)
  update: Callable[..., Any]      # (store, ctx, samples, accept) -> store; unchanged if not accept


def _stored(store) -> Array:
  return store.samples


class StartSpec(NamedTuple):
  """A registry entry: ``make(ic, sample_shape, propose) -> ChainStart``; ``store`` names the
  chains it keeps between updates in the train state's ``chain_store`` ("bank", "buffer"; ""
  when it keeps none) and ``chains(store)`` returns them, ``[size, *sample_shape]`` (what
  samples and evaluations continue); ``learned`` when the starts are a trained model's
  proposals (CoopNets' generator), scored beside the samples they start. Every array of a
  store with a leading axis is sharded along it over the data devices."""
  make: Callable[..., ChainStart]
  store: str = ""
  chains: Callable[[Any], Array] | None = None
  learned: bool = False

  @property
  def has_store(self) -> bool:
    return bool(self.store)


def _no_store(key, hp):
  return None


def _keep(store, ctx, samples, accept):
  return store


def _with_noise(key, x, hp):
  # The thesis adds data_epsilon noise to data and persistent-bank starts.
  return inits.data_init(key, x, noise_std=hp.start_noise_std)


def _noise(name):
  def make(ic, sample_shape, propose=None):
    def draw(state, key, x, hp):
      return inits.noise_init(name, key, x.shape, scale=hp.init_scale), None
    return ChainStart(_no_store, draw, _keep)
  return make


def _data(ic, sample_shape, propose=None):
  def draw(state, key, x, hp):
    return _with_noise(key, x, hp), None
  return ChainStart(_no_store, draw, _keep)


def _persistent(ic, sample_shape, propose=None):
  def init_store(key, hp):
    return buffers.init_persistent_bank(key, ic.bank_size, sample_shape, scale=hp.init_scale,
                                        dtype=jnp.dtype(ic.bank_dtype))

  def draw(state, key, x, hp):
    k_draw, k_noise = jax.random.split(key)
    starts, indices = buffers.bank_draw(state.chain_store, k_draw, x.shape[0])
    return _with_noise(k_noise, starts, hp), indices

  return ChainStart(init_store, draw, buffers.bank_write)


def _replay(ic, sample_shape, propose=None):
  def init_store(key, hp):
    return buffers.init_replay_buffer(key, ic.bank_size, sample_shape, scale=hp.init_scale,
                                      dtype=jnp.dtype(ic.bank_dtype))

  def draw(state, key, x, hp):
    k_draw, k_noise = jax.random.split(key)
    starts, _ = buffers.replay_draw(state.chain_store, k_draw, x.shape[0],
                                    reinit_prob=hp.reinit_prob, scale=hp.init_scale)
    return _with_noise(k_noise, starts, hp), None

  def update(buffer, ctx, samples, accept):
    return buffers.replay_push(buffer, samples, accept)

  return ChainStart(init_store, draw, update)


def _generator(ic, sample_shape, propose=None):
  """CoopNets' start: ``propose(key, state, n) -> (x0, z)`` from the objective's generator (in
  training mode for the train step, with its running batch-norm statistics otherwise)."""
  if propose is None:
    raise ValueError("init.name='generator' needs the CoopNets objective's generator")

  def draw(state, key, x, hp):
    return propose(key, state, x.shape[0])

  return ChainStart(_no_store, draw, _keep)


STARTS: dict[str, StartSpec] = {
    "uniform": StartSpec(_noise("uniform")),
    "gaussian": StartSpec(_noise("gaussian")),
    "data": StartSpec(_data),
    "persistent": StartSpec(_persistent, store="bank", chains=_stored),
    "replay": StartSpec(_replay, store="buffer", chains=_stored),
    "generator": StartSpec(_generator, learned=True),
}


def make(name: str, ic, sample_shape: tuple, propose=None) -> ChainStart:
  """The chain start ``name`` with ``ic`` (``config.init``)'s static settings."""
  return STARTS[name].make(ic, sample_shape, propose)
