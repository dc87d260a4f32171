"""Losses of MCMC-based maximum-likelihood learning.

The gradient of the negative log-likelihood of ``p(x) ∝ exp(-E(x))`` is
``E_data[grad E] - E_model[grad E]``; with the model expectation estimated by MCMC samples
this is the gradient of the *contrastive* loss ``mean E(data) - mean E(samples)``, with the
samples held fixed (``stop_gradient``). Weight decay belongs to the Optax chain
(``optax.add_decayed_weights``), not here.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class LossAux(NamedTuple):
  d_s_t: Array            # scale * (mean E(data) - mean E(samples)): anatomy's diagnostic
  energy_data: Array      # mean energy of the data batch
  energy_samples: Array   # mean energy of the samples


def contrastive_loss(energy_fn: Callable[[Array], Array], data: Array, samples: Array, *,
                     scale=1.0, l2_energy=0.0) -> tuple[Array, LossAux]:
  """Maximum-likelihood (contrastive) loss with optional scaling and L2 energy penalty.

  ``loss = scale * (mean E(data) - mean E(sg(samples))) + l2_energy * (mean(E(data)**2) +
  mean(E(samples)**2))``: the penalty is per sample (IGEBM, ICD), so energies of +100 and -100
  in one batch cost as much as two of +100. Data and samples go through the network as one
  batch.

  Args:
    energy_fn: batch energy function (its variables bound; differentiate the caller w.r.t.
      them).
    data: data batch ``[B, ...]``.
    samples: MCMC samples ``[B', ...]``; gradients never flow into them.
    scale: loss scale (ebm-anatomy uses ``2/eps**2`` with ``step_size = 1``).
    l2_energy: weight of the L2 energy regulariser (keeps energies near 0).

  Returns:
    ``(loss, LossAux)``.
  """
  samples = jax.lax.stop_gradient(samples)
  if data.shape[1:] != samples.shape[1:]:
    raise ValueError(f"contrastive_loss: data {data.shape} and samples {samples.shape} must "
                     "have the same per-sample shape")
  energies = energy_fn(jnp.concatenate([data, samples.astype(data.dtype)], axis=0))
  e_data = jnp.mean(energies[:data.shape[0]])
  e_samples = jnp.mean(energies[data.shape[0]:])
  d_s_t = scale * (e_data - e_samples)
  squares = jnp.square(energies)
  loss = d_s_t + l2_energy * (jnp.mean(squares[:data.shape[0]]) +
                              jnp.mean(squares[data.shape[0]:]))
  return loss, LossAux(d_s_t, e_data, e_samples)


def generator_loss(revised: Array, generated: Array, sigma) -> Array:
  """CoopNets generator loss ``1/(2 sigma^2) ||x_revised - G(z)||^2``, summed over pixels and
  averaged over the batch; ``revised`` is held fixed."""
  diff = jax.lax.stop_gradient(revised) - generated
  return jnp.mean(jnp.sum(jnp.square(diff.reshape(diff.shape[0], -1)), axis=1)) / (2 * sigma ** 2)
