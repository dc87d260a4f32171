"""The optimizers of the energy network: a registry of update rules (:data:`OPTIMIZERS`) inside
one Optax chain whose learning rate is injected, and ebm-anatomy's decaying schedule.

A new rule is one function ``(optimizer config) -> optax.GradientTransformation`` and one entry
in :data:`OPTIMIZERS`; ``optimizer.name`` and its validation follow from the registry.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from ebm_jax.hparams import HParams

Array = jax.Array


def _sgd(oc):
  return optax.trace(decay=oc.beta1) if oc.beta1 else optax.identity()


def _adam(oc):
  return optax.scale_by_adam(b1=oc.beta1, b2=oc.beta2)


OPTIMIZERS: dict[str, Callable[[Any], optax.GradientTransformation]] = {
    "sgd": _sgd,     # ebm-anatomy: plain SGD (beta1 = momentum, 0 = none)
    "adam": _adam,
}


def make_optimizer(oc) -> optax.GradientTransformation:
  """[clip] -> [L2 penalty] -> SGD(+momentum) | Adam -> [decoupled weight decay] -> -lr, with
  the learning rate injected (``optax.inject_hyperparams``): the step sets it from the
  hyper-parameters, so one optimizer serves every model of a group.

  ``oc.l2_penalty`` adds ``l2 * params`` to the gradient before the optimizer (torch's
  ``Adam(weight_decay=)``, the thesis code's); ``oc.weight_decay`` is decoupled from the
  gradient statistics, as AdamW (``optax.adamw``'s order): each step also moves the parameters
  by ``-lr * wd * params``.
  """

  def chain(learning_rate):
    parts = []
    if oc.grad_clip:
      parts.append(optax.clip_by_global_norm(oc.grad_clip))
    if oc.l2_penalty:
      parts.append(optax.add_decayed_weights(oc.l2_penalty))
    parts.append(OPTIMIZERS[oc.name](oc))
    if oc.weight_decay:
      parts.append(optax.add_decayed_weights(oc.weight_decay))
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*parts)

  return optax.inject_hyperparams(chain)(learning_rate=0.0)


def learning_rate(oc, hp: HParams, step: Array) -> Array:
  """ebm-anatomy's schedule: ``learning_rate`` times ``lr_decay`` per step, never below
  ``lr_min``."""
  if oc.lr_decay == 1.0:
    return jnp.asarray(hp.learning_rate, jnp.float32)
  return optax.exponential_decay(hp.learning_rate, transition_steps=1, decay_rate=oc.lr_decay,
                                 end_value=hp.lr_min)(step)
