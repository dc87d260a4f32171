"""Recovery likelihood (DRL: Gao, Song, Poole, Wu & Kingma, ICLR 2021).

A sequence of T noise levels ``x_{t+1} = a_{t+1} x_t + sigma_{t+1} eps`` (cut from a 1,000-step
beta schedule; the top level is almost pure noise). One network ``f(y, t)`` (any energy network
of :data:`~ebm_jax.core.models.MODELS`, the level entering as one more input feature) defines the
marginal of each level, ``p(y_t) ∝ exp(-f(y_t, t) / b0_t)`` with ``y_t = a_{t+1} x_t``, and is
trained by the *conditional* likelihood of the cleaner ``y_t`` given the noisier ``x_{t+1}``::

    p(y_t | x_{t+1}) ∝ exp(-f(y_t, t) / b0_t - ||y_t - x_{t+1}||^2 / (2 sigma_{t+1}^2))

whose Gaussian term keeps the conditional close to unimodal, so K short Langevin steps started
at ``x_{t+1}`` mix. One update: a level per example, the data diffused to ``x_t`` and
``x_{t+1}``, K unadjusted Langevin steps of the conditional from ``x_{t+1}`` (step
``s_t^2 / 2``, noise ``s_t``, with ``s_t^2 = b0_t = b^2 c_t^2 sigma_{t+1}^2``, ``c_t^2 =
sigma_cum_t / sigma_cum_0``: DRL's per-level rule), and the loss
``mean_i (sigma_1 / sigma_{t_i+1}) (f(y_pos, t_i) - f(y_neg, t_i))``. The top level has no
Gaussian term (``x_T`` carries no information), so it learns ``p(y_{T-1})`` from noise starts.
Sampling runs the levels from ``x_T ~ N(0, init.scale^2)`` down to ``x_0``.

The model's density of the data is level 0's: ``E(x) = f(a_1 x, 0) / b0_0``, the energy every
evaluation reads (landscapes, long runs, log-likelihoods), at temperature 1: the sampler
section's ``step_size`` and ``noise_std`` are level 0's Langevin (``s_0^2 / 2`` and ``s_0``;
:func:`level0_langevin`), level t's are those x ``(s_t / s_0)^2`` and ``s_t / s_0``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax.core import losses
from ebm_jax.core import models
from ebm_jax.core import samplers
from ebm_jax.core.objectives import base
from ebm_jax.core.objectives import ml
from ebm_jax.hparams import HParams

Array = jax.Array

DIFFUSION_STEPS = 1000    # the fine schedule the levels are cut from (DRL's, after DDPM)


def _linear_betas(beta_start, beta_end):
  return np.linspace(beta_start, beta_end, DIFFUSION_STEPS, dtype=np.float64)


def _cosine_betas(beta_start, beta_end):
  # Nichol & Dhariwal (2021): alpha_bar(s) = cos^2(((s / S) + 0.008) / 1.008 * pi / 2); the
  # betas are clipped to [beta_start, 0.999] so the first level stays a small perturbation.
  s = np.arange(DIFFUSION_STEPS + 1, dtype=np.float64) / DIFFUSION_STEPS
  alpha_bar = np.cos((s + 0.008) / 1.008 * np.pi / 2) ** 2
  return np.clip(1 - alpha_bar[1:] / alpha_bar[:-1], beta_start, 0.999)


SCHEDULES = {"linear": _linear_betas, "cosine": _cosine_betas}


class Schedule(NamedTuple):
  """The T levels' constants (float32 numpy arrays, index t of ``[T + 1]`` arrays is level t)."""
  a: np.ndarray            # [T + 1] a_t: x_t = a_t x_{t-1} + sigma_t eps (a_0: data -> level 0)
  sigma: np.ndarray        # [T + 1] sigma_t
  a_cum: np.ndarray        # [T + 1] x_t = a_cum_t x_data + sigma_cum_t eps
  sigma_cum: np.ndarray    # [T + 1]
  a_prev: np.ndarray       # [T + 1] y_t = a_prev_{t+1} x_t (1 at the top: no rescaling there)
  recovery: np.ndarray     # [T + 1] 1 where x_{t+1} conditions level t (0 at the top)
  b0: np.ndarray           # [T] b^2 c_t^2 sigma_{t+1}^2: level t's energy scale and Langevin s_t^2
  weight: np.ndarray       # [T] the loss weight sigma_1 / sigma_{t+1}

  @property
  def num_levels(self) -> int:
    return len(self.b0)


def schedule(dc) -> Schedule:
  """The levels of a spec's ``drl`` section: the 1,000-step betas cut at T + 1 points (DRL's:
  steps 0, d, 2d, ..., (T - 1) d and 999, d = 1000 // (2 (T - 1))), each level's ``a`` the
  product of its steps' ``sqrt(1 - beta)``."""
  num = dc.num_levels
  betas = SCHEDULES[dc.schedule](dc.beta_start, dc.beta_end)
  sqrt_alphas = np.sqrt(1 - betas)
  spacing = DIFFUSION_STEPS // (2 * (num - 1)) if num > 1 else 0
  cuts = np.concatenate([np.arange(num) * spacing, [DIFFUSION_STEPS - 1]])
  a = np.asarray([np.prod(sqrt_alphas[: cuts[0] + 1])] +
                 [np.prod(sqrt_alphas[cuts[i - 1] + 1: cuts[i] + 1]) for i in range(1, num + 1)])
  sigma = np.sqrt(1 - a ** 2)
  a_cum = np.cumprod(a)
  sigma_cum = np.sqrt(1 - a_cum ** 2)
  a_prev = a.copy()
  a_prev[-1] = 1.0
  recovery = np.ones(num + 1)
  recovery[-1] = 0.0
  c_square = sigma_cum[:num] / sigma_cum[0]
  b0 = dc.b_square * c_square * sigma[1:] ** 2
  weight = sigma[1] / sigma[1:]
  f32 = lambda v: np.asarray(v, np.float32)   # noqa: E731
  return Schedule(*(f32(v) for v in (a, sigma, a_cum, sigma_cum, a_prev, recovery, b0, weight)))


def level0_langevin(dc) -> tuple[float, float]:
  """``(sampler.step_size, sampler.noise_std)`` of level 0's Langevin under DRL's rule:
  ``(s_0^2 / 2, s_0)`` with ``s_0^2 = b0_0`` (temperature 1)."""
  b0 = float(schedule(dc).b0[0])
  return b0 / 2, b0 ** 0.5


def _per_example(values: np.ndarray, t: Array, x: Array) -> Array:
  """``values[t]`` shaped to broadcast against ``x`` ``[batch, ...]``."""
  return jnp.asarray(values)[t].reshape((-1,) + (1,) * (x.ndim - 1))


class RecoveryLikelihood(ml.MaximumLikelihood):

  def __init__(self, spec, comps: base.Components):
    super().__init__(spec, comps)
    self.levels = schedule(spec.drl)
    self.network = models.with_compute_dtype(
        lambda variables, y, t: comps.module.apply(variables, y, t), spec.model.compute_dtype)

  @classmethod
  def components(cls, spec, data_source, mesh=None) -> base.Components:
    """The run's network wrapped to take the level; its energy is level 0's in data space."""
    comps = base.make_components(spec, data_source, mesh)
    module = models.LevelConditioned(comps.module, spec.drl.num_levels)
    levels = schedule(spec.drl)
    a1, b0 = float(levels.a_prev[1]), float(levels.b0[0])

    def energy(variables, x):
      models.check_input(module, x)
      return module.apply(variables, a1 * x) / b0

    return comps._replace(module=module,
                          energy=models.with_compute_dtype(energy, spec.model.compute_dtype))

  # --- the conditional chains

  def _level_chain(self, sc, hp: HParams, variables, key, x_next: Array, t: Array):
    """K Langevin steps of ``p(y_t | x_{t+1})`` from ``y = x_{t+1}`` (``t``: ``[batch]``
    levels). Returns ``(final ChainState, ChainInfo, initial ChainState)``."""
    lv = self.levels
    b0 = _per_example(lv.b0, t, x_next)
    rec = _per_example(lv.recovery[1:], t, x_next)
    inv_two_var = rec / (2 * _per_example(lv.sigma[1:], t, x_next) ** 2)

    def conditional_energy(y):
      f = self.network(variables, y, t)
      quad = jnp.sum((inv_two_var * jnp.square(y - x_next)).reshape(y.shape[0], -1), axis=1)
      return f / b0.reshape(-1) + quad

    ratio = jnp.sqrt(b0 / lv.b0[0])          # s_t / s_0
    sampler = samplers.build(sc, hp.step_size * ratio ** 2, hp.noise_std * ratio)
    init = sampler.init(x_next, conditional_energy)
    unroll = True if sc.unroll == 0 else sc.unroll
    final, info = samplers.run_chain(key, sampler.step, init, conditional_energy, sc.num_steps,
                                     unroll=unroll)
    return final, info, init

  def sample(self, sc, hp: HParams, variables, key: Array, starts: Array) -> Array:
    """The levels from ``x_T = starts`` down to ``x_0``: at each, K steps of its conditional
    from the level above, then ``x_t = y_t / a_{t+1}`` (one ``lax.scan`` over the levels)."""
    lv, n = self.levels, starts.shape[0]

    def level(x_next, inputs):
      t, k = inputs
      ts = jnp.full((n,), t, jnp.int32)
      final, _, _ = self._level_chain(sc, hp, variables, k, x_next, ts)
      return final.position / _per_example(lv.a_prev[1:], ts, x_next), None

    order = jnp.arange(lv.num_levels - 1, -1, -1, dtype=jnp.int32)
    x0, _ = jax.lax.scan(level, starts, (order, jax.random.split(key, lv.num_levels)))
    return x0

  def sampling_words(self, sc, hp: HParams) -> str:
    lv = self.levels
    return (f"recovery likelihood's {lv.num_levels} levels from x_T ~ N(0, "
            f"{float(hp.init_scale):g}^2) noise, K = {sc.num_steps} Langevin steps of each "
            f"level's conditional (level 0 step {float(hp.step_size):g}, noise "
            f"{float(hp.noise_std):g}; level t's x b0_t / b0_0, b0 = "
            f"{', '.join(f'{v:.3g}' for v in lv.b0)})")

  # --- the update

  def train_step(self, state: base.TrainState, hp: HParams, images, active=True):
    spec, comps, lv = self.spec, self.comps, self.levels
    (_, k_noise, k_chain, k_level), x_data, variables, model_state = self._begin(
        state, hp, images)
    n = x_data.shape[0]
    t = jax.random.randint(k_level, (n,), 0, lv.num_levels)
    k1, k2 = jax.random.split(k_noise)
    x_t = (_per_example(lv.a_cum, t, x_data) * x_data +
           _per_example(lv.sigma_cum, t, x_data) * jax.random.normal(k1, x_data.shape))
    x_next = (_per_example(lv.a[1:], t, x_data) * x_t +
              _per_example(lv.sigma[1:], t, x_data) * jax.random.normal(k2, x_data.shape))
    scale = _per_example(lv.a_prev[1:], t, x_data)
    final, info, init = self._level_chain(spec.sampler, hp, variables, k_chain, x_next, t)
    y_pos, y_neg = scale * x_t, jax.lax.stop_gradient(final.position)

    def loss_fn(params):
      network = functools.partial(self.network, {"params": params, **model_state})
      return recovery_loss(network, y_pos, y_neg, t, jnp.asarray(lv.weight),
                           scale=hp.loss_scale, l2_energy=hp.l2_energy)

    update = base.apply_loss(spec, comps, state, hp, loss_fn)
    ok = base.accept(spec.divergence_threshold, update, active)
    new_state = base.applied(spec.ema.decay, state, update, model_state, ok)
    samples = y_neg / scale
    return (base.constrain_state(new_state, comps.mesh),
            base.step_metrics(update, init, final, info, ok),
            {"data": x_data, "starts": x_next, "samples": samples})


def recovery_loss(network, y_pos: Array, y_neg: Array, t: Array, weight: Array, *,
                  scale=1.0, l2_energy=0.0) -> tuple[Array, losses.LossAux]:
  """DRL's loss ``scale * mean_i w_{t_i} (f(y_pos_i, t_i) - f(sg(y_neg_i), t_i))`` (``w``: the
  per-level weights) plus ``l2_energy`` x the mean squared network outputs; ``network(y, t)``
  is ``f`` with its parameters bound. One network call on data and samples together."""
  y_neg = jax.lax.stop_gradient(y_neg)
  n = y_pos.shape[0]
  f = network(jnp.concatenate([y_pos, y_neg]), jnp.concatenate([t, t]))
  f_pos, f_neg = f[:n], f[n:]
  d_s_t = scale * jnp.mean(weight[t] * (f_pos - f_neg))
  loss = d_s_t + l2_energy * (jnp.mean(jnp.square(f_pos)) + jnp.mean(jnp.square(f_neg)))
  return loss, losses.LossAux(d_s_t, jnp.mean(f_pos), jnp.mean(f_neg))
