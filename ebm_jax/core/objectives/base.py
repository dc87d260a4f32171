"""What every objective shares: the train state, the components, data
draws, the training sampler's chain, and the one energy update.

An objective is a step builder: ``train_step(state, hparams, images) -> (state, metrics,
batch_images)``, pure and unjitted (the runner jits and, for a group, vmaps it). It is built
from the static :class:`~ebm_jax.spec.Spec` (sections of it reach the traced code as static
Python values); every per-model value arrives in the :class:`~ebm_jax.hparams.HParams`
argument. Keys derive from
``fold_in(state.rng, state.step)``, so a resumed run replays the same steps bit for bit. A step
whose loss or new parameters are not finite (or whose ``|loss|`` passes
``divergence_threshold``) is not applied: the returned state is the old one and
``metrics["finite"]`` is 0.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from ebm_jax.core import chain_starts
from ebm_jax.core import losses
from ebm_jax.core import models
from ebm_jax.core import optimizers
from ebm_jax.core import parallel
from ebm_jax.core import samplers
from ebm_jax.hparams import HParams
from ebm_jax import _moved

Array = jax.Array

# fold_in tag of the initialisation key stream (step keys use the step number, < 2**31).
INIT_STREAM = 2 ** 32 - 1


@flax.struct.dataclass
class TrainState:
  step: Array                 # int32 scalar: number of updates applied
  params: Any                 # the energy network's trainable parameters
  ema_params: Any             # their moving average for samples and evaluation (None: ema off)
  model_state: Any            # other Flax collections (spectral-norm vectors), {} if none
  opt_state: Any              # Optax state (the learning rate in use is in its hyperparams)
  chain_store: Any            # PersistentBank | ReplayBuffer | None
  rng: Array                  # uint32[2] base key; step keys are fold_in(rng, step)
  recoveries: Array           # int32: recoveries from divergence (lr x recovery.lr_factor each)
  wall_time: Array            # float32: seconds of training so far, time lost to rewound
                              # updates included (set by the host loop at each checkpoint)


# ----------------------------------------------------------------------------- components


class Components(NamedTuple):
  """The static parts of a run, built once from its spec (see :mod:`ebm_jax.run.runner`)."""
  module: Any
  energy: models.EnergyFn
  optimizer: optax.GradientTransformation
  data: Any                   # ebm_jax.data.DataSource: sample_shape, draw(images, key, n), toy
  mesh: Any = None            # jax.sharding.Mesh with a "data" axis, or None (one device)


def make_components(spec, data_source, mesh=None) -> Components:
  """The network, energy and optimizer of a :class:`~ebm_jax.spec.Spec`, with the train step's
  ``data_source`` (its dataset's :meth:`~ebm_jax.data.DatasetSpec.make_source`)."""
  mc = spec.model
  module = models.get_model(mc.name, n_f=mc.n_f, leak=mc.leak, spectral_norm=mc.spectral_norm,
                            conv_impl=mc.conv_impl, activation=mc.activation)
  return Components(module, models.make_energy_fn(module, mc.compute_dtype),
                    optimizers.make_optimizer(spec.optimizer),
                    data_source, mesh)


# ----------------------------------------------------------------------------- step pieces


def draw_data(noise_std: float, comps: Components, images: Array, key: Array, n: int) -> Array:
  """``n`` data points, with Gaussian noise of sd ``noise_std`` (``data.noise_std``) added."""
  k_draw, k_noise = jax.random.split(key)
  x = parallel.constrain_batch(comps.data.draw(images, k_draw, n), comps.mesh)
  if noise_std:
    x = x + noise_std * jax.random.normal(k_noise, x.shape, x.dtype)
  return x


def run_sampler(sc, comps: Components, hp: HParams, variables, key: Array, starts: Array):
  """``sc.num_steps`` steps of the sampler ``sc`` (a spec's ``sampler`` section) from
  ``starts`` with ``hp``'s step size and noise. Returns ``(final ChainState, ChainInfo of the
  steps, initial ChainState)``."""
  sampler = samplers.build(sc, hp.step_size, hp.noise_std)
  energy_fn = functools.partial(comps.energy, variables)
  init = sampler.init(parallel.constrain_batch(starts, comps.mesh), energy_fn)
  unroll = True if sc.unroll == 0 else sc.unroll
  final, info = samplers.run_chain(key, sampler.step, init, energy_fn, sc.num_steps,
                                   unroll=unroll)
  return final, info, init


def all_finite(tree) -> Array:
  return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)] or
                             [True]))


def keep_if(ok: Array, new, old):
  """``new`` where ``ok``, else ``old``, leaf by leaf."""
  return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


class EnergyUpdate(NamedTuple):
  params: Any
  opt_state: Any
  loss: Array
  aux: losses.LossAux
  grads: Any
  lr: Array


def energy_update(spec, comps: Components, state: TrainState, hp: HParams, model_state,
                  x_data: Array, samples: Array) -> EnergyUpdate:
  """The maximum-likelihood update of the energy network from data and (fixed) samples."""

  def loss_fn(params):
    energy_fn = functools.partial(comps.energy, {"params": params, **model_state})
    return losses.contrastive_loss(energy_fn, x_data, samples, scale=hp.loss_scale,
                                   l2_energy=hp.l2_energy)

  return apply_loss(spec, comps, state, hp, loss_fn)


def apply_loss(spec, comps: Components, state: TrainState, hp: HParams,
               loss_fn) -> EnergyUpdate:
  """One Optax update of the energy parameters along ``loss_fn(params) -> (loss, LossAux)``,
  at the run's learning rate (schedule x ``recovery.lr_factor`` per recovery)."""
  (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  lr = (optimizers.learning_rate(spec.optimizer, hp, state.step)
        * jnp.float32(spec.recovery.lr_factor) ** state.recoveries)
  opt_state = state.opt_state._replace(
      hyperparams={**state.opt_state.hyperparams, "learning_rate": lr})
  updates, opt_state = comps.optimizer.update(grads, opt_state, state.params)
  return EnergyUpdate(optax.apply_updates(state.params, updates), opt_state, loss, aux, grads,
                      lr)


def accept(divergence_threshold: float, update: EnergyUpdate, active, *others) -> Array:
  """Whether an update is applied: the model is ``active`` (a model of a group that has
  finished waits for the others unchanged), its loss and parameters (and ``others``) are
  finite, and ``|loss|`` is within ``divergence_threshold`` when one is set."""
  ok = jnp.isfinite(update.loss) & all_finite(update.params) & active
  for tree in others:
    ok &= all_finite(tree)
  if divergence_threshold:
    ok &= jnp.abs(update.loss) <= divergence_threshold
  return ok


def ema_decay(decay: float, step: Array) -> Array:
  """The EMA's decay at ``step``: ``min(decay, (1 + t) / (10 + t))``, TensorFlow's
  ``ExponentialMovingAverage(num_updates=t)`` ramp, so the average of a short run forgets the
  random initialisation within tens of updates instead of ``1 / (1 - decay)``."""
  t = step.astype(jnp.float32)
  return jnp.minimum(jnp.float32(decay), (1 + t) / (10 + t))


def applied(decay: float, state, update: EnergyUpdate, model_state, ok: Array, **others):
  """``state`` after ``update`` where ``ok``, else unchanged: step, parameters, their EMA
  (``decay``: ``ema.decay``, 0 = none), spectral-norm state and optimizer state; ``others``
  (e.g. the bank, already written only where ``ok``) are set as given."""
  ema = state.ema_params
  if decay:
    ema = optax.incremental_update(update.params, ema, 1 - ema_decay(decay, state.step))
  changes = dict(params=update.params, ema_params=ema, model_state=model_state,
                 opt_state=update.opt_state)
  return state.replace(step=state.step + ok.astype(jnp.int32), **others,
                       **{k: keep_if(ok, v, getattr(state, k)) for k, v in changes.items()})


def step_metrics(update: EnergyUpdate, init, final, info, ok: Array) -> dict:
  return {
      "loss": update.loss, "d_s_t": update.aux.d_s_t,
      "energy_data": update.aux.energy_data, "energy_samples": update.aux.energy_samples,
      **samplers.chain_summary(init, final, info),
      "param_grad_norm": optax.tree.norm(update.grads), "lr": update.lr,
      "finite": ok.astype(jnp.float32),
  }


def constrain_state(state, mesh):
  if mesh is None:
    return state
  return jax.lax.with_sharding_constraint(state, parallel.state_shardings(state, mesh))


class Objective:
  """A training objective: its chain starts, its initial state and its pure train step.

  Subclasses (:mod:`ebm_jax.core.objectives.ml`, :mod:`ebm_jax.core.objectives.coopnets`) are
  built once per run from the static :class:`~ebm_jax.spec.Spec` and its :class:`Components`.
  """

  def __init__(self, spec, comps: Components):
    self.spec = spec
    self.comps = comps

  @classmethod
  def components(cls, spec, data_source, mesh=None) -> Components:
    """The run's network, energy and optimizer (an objective whose network differs, e.g. one
    conditioned on a noise level, overrides this)."""
    return make_components(spec, data_source, mesh)

  def sample(self, sc, hp: HParams, variables, key: Array, starts: Array) -> Array:
    """Samples of the model from chain ``starts``: ``sc.num_steps`` steps of the sampler ``sc``
    (the final chains, evaluations and toy KDEs draw through this)."""
    return run_sampler(sc, self.comps, hp, variables, key, starts)[0].position

  def sampling_words(self, sc, hp: HParams) -> str | None:
    """How :meth:`sample` differs from "K steps of the sampler from the starts", in words
    (None: it does not)."""
    return None

  def chain_start(self, name: str, *, train: bool = False) -> chain_starts.ChainStart:
    """The chain start ``name`` (``train``: as the train step draws it, where that differs)."""
    return chain_starts.make(name, self.spec.init, self.comps.data.sample_shape)

  def init_state(self, hp: HParams) -> TrainState:
    raise NotImplementedError

  def train_step(self, state, hp: HParams, images: Array, active=True):
    raise NotImplementedError

  def _init_train_state(self, hp: HParams, k_params, k_store) -> TrainState:
    example = jnp.zeros((1, *self.comps.data.sample_shape), jnp.float32)
    variables = models.init_variables(self.comps.module, k_params, example)
    params = variables.pop("params")
    start = self.chain_start(self.spec.init.name)
    ema = jax.tree.map(jnp.copy, params) if self.spec.ema.decay else None
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, ema_params=ema,
                      model_state=variables,
                      opt_state=self.comps.optimizer.init(params),
                      chain_store=start.init_store(k_store, hp), rng=init_rng(hp),
                      recoveries=jnp.zeros((), jnp.int32), wall_time=jnp.zeros((), jnp.float32))


def init_rng(hp: HParams) -> Array:
  return jax.random.PRNGKey(hp.seed)


def init_keys(hp: HParams, num: int):
  return jax.random.split(jax.random.fold_in(init_rng(hp), INIT_STREAM), num)


def __getattr__(name: str):
  return _moved.attribute(__name__, name)     # a name that moved away, named in one line
