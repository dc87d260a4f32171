"""CoopNets (Xie et al., AAAI 2018): MCMC teaching of a generator by the energy model.

One update: the generator proposes chain starts (G0), the training sampler revises them (D1),
optionally Langevin on the latent z explains the revisions (G1), the energy learns from the
revisions by the shared maximum-likelihood update (D2), and the generator learns to reproduce
them (G2). Selected by ``objective.name = "coopnets"`` (with ``init.name = "generator"``, the
chain start that proposes from the generator); its settings are the spec's ``generator``
section.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from ebm_jax.core import chain_starts
from ebm_jax.core import losses
from ebm_jax.core import models
from ebm_jax.core import samplers
from ebm_jax.hparams import HParams
from ebm_jax.core.objectives import base
from ebm_jax.core.objectives import ml


class GeneratorState(NamedTuple):
  """CoopNets' generator: parameters, batch-norm statistics, its own optimizer state."""
  params: Any
  batch_stats: Any
  opt_state: Any


@flax.struct.dataclass
class CoopNetsState(base.TrainState):
  generator: GeneratorState = None


class CoopNets(ml.MaximumLikelihood):

  def __init__(self, spec, comps: base.Components):
    super().__init__(spec, comps)
    gc, shape = spec.generator, comps.data.sample_shape
    self.module = models.Generator(n_f=gc.n_f, channels=shape[-1], image_size=shape[0],
                                   leak=gc.leak)
    self.optimizer = optax.adam(gc.learning_rate, b1=gc.beta1, b2=gc.beta2)
    self.z_dim = gc.z_dim

  def _propose(self, key, g: GeneratorState, n: int, *, train: bool):
    """``(x0, z)``; in training mode also the updated batch statistics."""
    z = jax.random.normal(key, (n, self.z_dim))
    variables = {"params": g.params, "batch_stats": g.batch_stats}
    if train:
      x0, updates = self.module.apply(variables, z, train=True, mutable=["batch_stats"])
      return x0, z, updates["batch_stats"]
    return self.module.apply(variables, z, train=False), z

  def chain_start(self, name: str, *, train: bool = False) -> chain_starts.ChainStart:
    """``train``: the train step's starts (batch statistics of the batch, as the generator is
    taught); otherwise its running statistics (samples, evaluations, long runs)."""
    def propose(key, state, n):
      return self._propose(key, state.generator, n, train=train)[:2]
    return chain_starts.make(name, self.spec.init, self.comps.data.sample_shape, propose)

  def init_state(self, hp: HParams) -> CoopNetsState:
    k_params, k_store = base.init_keys(hp, 2)
    k_store, k_gen = jax.random.split(k_store)
    state = self._init_train_state(hp, k_params, k_store)
    g = jax.jit(self.module.init)(k_gen, jnp.zeros((1, self.z_dim)))
    generator = GeneratorState(g["params"], g["batch_stats"], self.optimizer.init(g["params"]))
    return CoopNetsState(**vars(state), generator=generator)

  def _explain_latents(self, g: GeneratorState, key, z, revised):
    """G1: Langevin on z so that G(z) explains the revised images:
    ``z <- z - (delta^2 / 2) grad[ ||x - G(z)||^2 / (2 sigma^2) + ||z||^2 / 2 ] + delta xi``."""
    gc = self.spec.generator
    variables = {"params": g.params, "batch_stats": g.batch_stats}

    def latent_energy(z):
      x = self.module.apply(variables, z, train=True, mutable=["batch_stats"])[0]
      recon = jnp.sum(jnp.square((revised - x).reshape(z.shape[0], -1)), axis=1)
      return recon / (2 * gc.sigma ** 2) + 0.5 * jnp.sum(jnp.square(z), axis=1)

    sampler = samplers.langevin(gc.langevin_step_size ** 2 / 2,
                                gc.langevin_step_size if gc.langevin_noise else 0.0)
    state, _ = samplers.run_chain(key, sampler.step, sampler.init(z, latent_energy),
                                  latent_energy, gc.langevin_steps)
    return jax.lax.stop_gradient(state.position)

  def _teach(self, g: GeneratorState, z, samples) -> tuple[GeneratorState, jax.Array]:
    """G2: one Adam step of the generator towards the revised samples."""

    def gen_loss_fn(params):
      x, upd = self.module.apply({"params": params, "batch_stats": g.batch_stats}, z,
                                 train=True, mutable=["batch_stats"])
      return losses.generator_loss(samples, x, self.spec.generator.sigma), upd["batch_stats"]

    (gen_loss, batch_stats), grads = jax.value_and_grad(gen_loss_fn, has_aux=True)(g.params)
    updates, opt_state = self.optimizer.update(grads, g.opt_state, g.params)
    return GeneratorState(optax.apply_updates(g.params, updates), batch_stats,
                          opt_state), gen_loss

  def train_step(self, state: CoopNetsState, hp: HParams, images, active=True):
    spec, comps = self.spec, self.comps
    (_, k_start, k_chain, k_latent), x_data, variables, model_state = self._begin(
        state, hp, images)
    g = state.generator
    starts, z = self.chain_start(spec.init.name, train=True).draw(state, k_start, x_data,
                                                                   hp)               # G0
    starts = jax.lax.stop_gradient(starts)
    final, info, init = base.run_sampler(spec.sampler, comps, hp, variables, k_chain,
                                         starts)                                       # D1
    samples = jax.lax.stop_gradient(final.position)
    update = base.energy_update(spec, comps, state, hp, model_state, x_data, samples)  # D2
    if spec.generator.langevin_steps:                                                # G1
      z = self._explain_latents(g, k_latent, z, samples)
    generator, gen_loss = self._teach(g, z, samples)                                   # G2
    ok = base.accept(spec.divergence_threshold, update, active, generator)
    new_state = base.applied(spec.ema.decay, state, update, model_state, ok,
                             generator=base.keep_if(ok, generator, g))
    recon = jnp.mean(jnp.sum(jnp.square((samples - starts).reshape(starts.shape[0], -1)), 1))
    metrics = {**base.step_metrics(update, init, final, info, ok), "gen_loss": gen_loss,
               "recon_loss": recon}
    return (base.constrain_state(new_state, comps.mesh), metrics,
            {"data": x_data, "starts": starts, "samples": samples})
