"""Maximum likelihood with MCMC samples (ebm-anatomy, short-run MCMC, the thesis code).

One update: draw a data batch -> advance the spectral-norm power iteration -> draw chain starts
(noise, data, persistent bank, replay buffer) -> K sampler steps (``lax.scan``) -> contrastive
loss on the ``stop_gradient``-ed samples -> Optax update -> write the chains back to the bank /
buffer. A rejected update (see :mod:`ebm_jax.core.objectives.base`) leaves the whole state as it
was, the bank or buffer included.
"""

from __future__ import annotations

import jax

from ebm_jax.core import models
from ebm_jax.hparams import HParams
from ebm_jax.core.objectives import base


class MaximumLikelihood(base.Objective):

  def init_state(self, hp: HParams) -> base.TrainState:
    k_params, k_store = base.init_keys(hp, 2)
    return self._init_train_state(hp, k_params, k_store)

  def _begin(self, state, hp: HParams, images):
    """The keys, data batch and spectral-norm-advanced variables of one update."""
    key = jax.random.fold_in(state.rng, state.step)
    keys = jax.random.split(key, 4)     # data, starts, chain, CoopNets' latent Langevin
    x_data = base.draw_data(self.spec.data.noise_std, self.comps, images, keys[0],
                            self.spec.batch_size)
    # The power iteration advances once per update, before sampling; chains only read it.
    variables = models.update_spectral_state(
        self.comps.module, {"params": state.params, **state.model_state}, x_data)
    model_state = {k: v for k, v in variables.items() if k != "params"}
    return keys, x_data, variables, model_state

  def train_step(self, state: base.TrainState, hp: HParams, images, active=True):
    spec, comps = self.spec, self.comps
    (_, k_start, k_chain, _), x_data, variables, model_state = self._begin(state, hp, images)
    start = self.chain_start(spec.init.name, train=True)
    starts, ctx = start.draw(state, k_start, x_data, hp)
    final, info, init = base.run_sampler(spec.sampler, comps, hp, variables, k_chain, starts)
    samples = jax.lax.stop_gradient(final.position)
    update = base.energy_update(spec, comps, state, hp, model_state, x_data, samples)
    ok = base.accept(spec.divergence_threshold, update, active)
    # A rejected update leaves the bank or buffer exactly as it was: the last good state.
    chain_store = start.update(state.chain_store, ctx, samples, ok)
    new_state = base.applied(spec.ema.decay, state, update, model_state, ok,
                             chain_store=chain_store)
    return (base.constrain_state(new_state, comps.mesh),
            base.step_metrics(update, init, final, info, ok),
            {"data": x_data, "starts": starts, "samples": samples})
