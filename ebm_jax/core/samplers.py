"""Sampler kernels and the chain runner, blackjax-shaped and pure.

A sampler is a pair of pure functions (a :class:`Sampler`)::

    state = sampler.init(position, energy_fn)
    state, info = sampler.step(key, state, energy_fn)

``energy_fn(x) -> [batch]`` is the energy of a *batch* of positions (low = likely; bind the
network's variables first, e.g. ``functools.partial(model_energy, variables)`` or, to pass it
through ``jax.jit`` without retracing, ``jax.tree_util.Partial(model_energy, variables)``).
Samples of a batch are independent chains: the energy is summed over the batch before
differentiation, which gives every sample its own gradient because the networks have no
cross-sample terms.

Every kernel's state is a :class:`ChainState` (position, energy, energy gradient and, for
Optax-driven kernels, the optimizer state) and every ``info`` a :class:`ChainInfo` with, *per
sample*, the energy and gradient norm of the position the step started from, the acceptance
probability (1 for unadjusted kernels) and whether the new energy is not finite.
:func:`run_chain` stacks these over the steps and only then averages over the batch
(:func:`batch_mean_info`), so its info is ``[num_steps]`` (the mean of ``info.grad_norm`` over a
chain is ebm-anatomy's ``r_t``). Reducing after the loop rather than in every step matters when
the batch is sharded: a per-step mean is a cross-device all-reduce inside the loop, which slowed
a toy chain on two CPU devices several-fold (benchmarks/README.md).

Hyper-parameters (step sizes, noise scales) may be Python floats or traced arrays, so the same
kernel can be vmapped over a grid of settings.

Step-size conventions:

* :func:`langevin`: ``x <- x - step_size * grad E(x) + noise_std * xi``. The unadjusted
  Langevin algorithm for the temperature-1 target ``exp(-E)`` has ``step_size = eps**2/2,
  noise_std = eps`` (:func:`ula_params`). ebm-anatomy instead runs ``step_size = 1,
  noise_std = eps`` on a network ``f = (eps**2/2) E`` and scales its loss by ``2/eps**2``
  (``loss.scale``, set by ``configs/common.py``'s ``anatomy_langevin``); both describe the
  same chain.
* :func:`mala` and :func:`hmc` wrap blackjax, whose MALA proposal is
  ``x + h grad log p + sqrt(2h) xi``: ``h = eps**2/2`` again.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array
BatchEnergyFn = Callable[[Array], Array]


class ChainState(NamedTuple):
  """State of a batch of chains."""
  position: Array           # [batch, ...]
  energy: Array             # [batch]
  energy_grad: Array        # [batch, ...], grad of E at `position`
  opt_state: Any = ()       # Optax state of optimizer-driven kernels, else ()


class ChainInfo(NamedTuple):
  """Per-step diagnostics: ``[batch]`` from a kernel, ``[num_steps]`` batch means from
  :func:`run_chain` (see :func:`batch_mean_info`)."""
  energy: Array             # energy at the step's starting position
  grad_norm: Array          # L2 norm of grad E at the starting position
  acceptance_rate: Array    # Metropolis acceptance probability (1 if unadjusted)
  num_nonfinite: Array      # 1 where the new energy is NaN or inf (a count once reduced)


Kernel = Callable[[Array, ChainState, BatchEnergyFn], "tuple[ChainState, ChainInfo]"]


class Sampler(NamedTuple):
  init: Callable[[Array, BatchEnergyFn], ChainState]
  step: Kernel


# ----------------------------------------------------------------------------- helpers


def ula_params(eps):
  """``(step_size, noise_std)`` of unadjusted Langevin for ``exp(-E)``: ``(eps**2/2, eps)``."""
  return eps ** 2 / 2, eps


def _check_position(where: str, position) -> None:
  if not hasattr(position, "dtype") or not jnp.issubdtype(position.dtype, jnp.floating):
    raise ValueError(f"{where}: position must be a float array [batch, ...], "
                     f"got {getattr(position, 'dtype', type(position).__name__)}")
  if position.ndim < 2:
    raise ValueError(f"{where}: position must have a batch axis and at least one data axis "
                     f"[batch, ...], got shape {tuple(position.shape)}")


def energy_and_grad(energy_fn: BatchEnergyFn, x: Array) -> tuple[Array, Array]:
  """Per-sample energies ``[batch]`` and their input gradients, in one backward pass."""

  def total(x):
    e = energy_fn(x)
    if e.shape != x.shape[:1]:
      raise ValueError(f"energy_fn must return one energy per sample, shape {x.shape[:1]}, "
                       f"got {e.shape}")
    return e.sum(), e

  (_, e), g = jax.value_and_grad(total, has_aux=True)(x)
  return e, g


def per_sample_norm(g: Array) -> Array:
  return jnp.sqrt(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1))


def clip_per_sample_norm(g: Array, max_norm) -> Array:
  """Rescales each sample's gradient to L2 norm at most ``max_norm``."""
  norm = per_sample_norm(g)
  factor = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
  return g * factor.reshape((-1,) + (1,) * (g.ndim - 1))


def step_info(state: ChainState, new_energy: Array, acceptance_rate=None) -> ChainInfo:
  """Per-sample info of one step from ``state`` (no reduction over the batch: see the module
  docstring); a new kernel returns it beside its new state."""
  if acceptance_rate is None:
    acceptance_rate = jnp.ones_like(state.energy, jnp.float32)
  return ChainInfo(
      energy=state.energy,
      grad_norm=per_sample_norm(state.energy_grad),
      acceptance_rate=acceptance_rate.astype(jnp.float32),
      num_nonfinite=(~jnp.isfinite(new_energy)).astype(jnp.int32))


def batch_mean_info(info: ChainInfo) -> ChainInfo:
  """Reduces per-sample info over its last (batch) axis: means, and a count of non-finite
  energies."""
  return ChainInfo(energy=jnp.mean(info.energy, axis=-1),
                   grad_norm=jnp.mean(info.grad_norm, axis=-1),
                   acceptance_rate=jnp.mean(info.acceptance_rate, axis=-1),
                   num_nonfinite=jnp.sum(info.num_nonfinite, axis=-1))


def _make_init(name: str, opt_init=None):
  def init(position: Array, energy_fn: BatchEnergyFn) -> ChainState:
    _check_position(f"{name}.init", position)
    e, g = energy_and_grad(energy_fn, position)
    return ChainState(position, e, g, opt_init(position) if opt_init else ())
  return init


def _postprocess(x, clip_range):
  if clip_range is None:
    return x
  return jnp.clip(x, clip_range[0], clip_range[1])


def _prepare_grad(g, max_grad_norm):
  return g if max_grad_norm is None else clip_per_sample_norm(g, max_grad_norm)


def _add_noise(key, x, noise_std):
  # A literal zero skips the random draw altogether (noiseless descent is deterministic).
  if isinstance(noise_std, (int, float)) and noise_std == 0:
    return x
  return x + noise_std * jax.random.normal(key, x.shape, x.dtype)


# ----------------------------------------------------------------------------- kernels


def langevin(step_size, noise_std, *, clip_range=None, max_grad_norm=None) -> Sampler:
  """Langevin dynamics with separate step-size and noise knobs.

  ``x <- clip(x - step_size * clipgrad(grad E(x)) + noise_std * xi)``.

  Args:
    step_size: multiplier of the energy gradient (anatomy: 1; exact ULA: ``eps**2/2``).
    noise_std: standard deviation of the Gaussian noise added each step (0: noiseless).
    clip_range: optional ``(low, high)``: clip positions to the data range after each step.
    max_grad_norm: optional bound on each sample's gradient L2 norm before the update.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from ebm_jax.core import samplers
    >>> energy_fn = lambda x: 0.5 * jnp.sum(x ** 2, axis=1)
    >>> sampler = samplers.langevin(*samplers.ula_params(0.5))
    >>> state = sampler.init(jnp.zeros((4, 2)), energy_fn)
    >>> state, info = samplers.run_chain(jax.random.key(0), sampler.step, state, energy_fn, 10)
    >>> info.energy.shape
    (10,)
  """

  def step(key, state: ChainState, energy_fn):
    g = _prepare_grad(state.energy_grad, max_grad_norm)
    x = _add_noise(key, state.position - step_size * g, noise_std)
    x = _postprocess(x, clip_range)
    e, g_new = energy_and_grad(energy_fn, x)
    return ChainState(x, e, g_new, state.opt_state), step_info(state, e)

  return Sampler(_make_init("langevin"), step)


def gradient_descent(step_size, *, clip_range=None, max_grad_norm=None) -> Sampler:
  """Noiseless gradient descent on the energy (the thesis's "no proper MCMC" sampler)."""
  return langevin(step_size, 0.0, clip_range=clip_range, max_grad_norm=max_grad_norm)


def optax_sampler(optimizer: optax.GradientTransformation, noise_std=0.0, *,
                  clip_range=None, max_grad_norm=None) -> Sampler:
  """Sample updates driven by any Optax transformation, plus optional Gaussian noise.

  The optimizer *minimises* the energy (ascent on the thesis's score); its state, one entry per
  coordinate of the batch, lives in ``ChainState.opt_state``. Element-wise optimizers (SGD,
  momentum, Adam, ...) keep the chains of a batch independent.

  Example:
    >>> sampler = optax_sampler(optax.adam(1e-2, b1=0.5), noise_std=1e-2)
  """

  def step(key, state: ChainState, energy_fn):
    g = _prepare_grad(state.energy_grad, max_grad_norm)
    updates, opt_state = optimizer.update(g, state.opt_state, state.position)
    x = _add_noise(key, optax.apply_updates(state.position, updates), noise_std)
    x = _postprocess(x, clip_range)
    e, g_new = energy_and_grad(energy_fn, x)
    return ChainState(x, e, g_new, opt_state), step_info(state, e)

  return Sampler(_make_init("optax_sampler", optimizer.init), step)


class ThesisMomentumState(NamedTuple):
  momentum: Any
  count: Array


def thesis_momentum_sgd(step_size, beta) -> optax.GradientTransformation:
  """The thesis's sample optimizer: ``m_1 = g_1``, ``m_t = beta m_{t-1} + (1 - beta) g_t``,
  ``x <- x - step_size m_t`` (descent on E = ascent on the thesis's score).

  (Optax's ``sgd(momentum=...)`` accumulates ``m <- beta m + g``, and ``ema`` starts from 0.)
  """

  def init(params):
    return ThesisMomentumState(jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.int32))

  def update(grads, state, params=None):
    del params
    first = state.count == 0
    m = jax.tree.map(lambda g, m: jnp.where(first, g, beta * m + (1 - beta) * g), grads,
                     state.momentum)
    return (jax.tree.map(lambda m: -step_size * m, m),
            ThesisMomentumState(m, state.count + 1))

  return optax.GradientTransformation(init, update)


def thesis_adam(step_size, b1=0.5, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
  """The thesis's Adam sample optimizer (defaults beta1 0.5, beta2 0.999, eps 1e-8)."""
  return optax.adam(step_size, b1=b1, b2=b2, eps=eps)


def _single_logdensity(energy_fn):
  """log p of one unbatched position, from a batched energy."""
  return lambda x: -energy_fn(x[None])[0]


def _from_blackjax(bj_state, opt_state=()):
  return ChainState(bj_state.position, -bj_state.logdensity, -bj_state.logdensity_grad,
                    opt_state)


def _vmapped_blackjax_step(bj_kernel, bj_state_cls, kernel_args: Callable[[ChainState], dict]):
  """A batch kernel from a blackjax kernel, vmapped over samples (independent accept/reject)."""

  def step(key, state: ChainState, energy_fn):
    logdensity = _single_logdensity(energy_fn)
    bj_state = bj_state_cls(state.position, -state.energy, -state.energy_grad)
    keys = jax.random.split(key, state.position.shape[0])
    args = kernel_args(state)
    new, info = jax.vmap(lambda k, s: bj_kernel(k, s, logdensity, **args))(keys, bj_state)
    new_state = _from_blackjax(new, state.opt_state)
    return new_state, step_info(state, new_state.energy, info.acceptance_rate)

  return step


def mala(step_size) -> Sampler:
  """Metropolis-adjusted Langevin (blackjax), one independent chain per sample.

  ``step_size`` is blackjax's ``h`` (proposal ``x - h grad E + sqrt(2h) xi``): ``eps**2/2``.
  """
  import blackjax   # lazy: importing blackjax starts jax's backends (see parallel.py)
  step = _vmapped_blackjax_step(blackjax.mala.build_kernel(), blackjax.mcmc.mala.MALAState,
                                lambda state: {"step_size": step_size})
  return Sampler(_make_init("mala"), step)


def hmc(step_size, num_integration_steps: int, inverse_mass_matrix=None) -> Sampler:
  """Hamiltonian Monte Carlo (blackjax), one independent chain per sample.

  Args:
    step_size: leapfrog step size.
    num_integration_steps: leapfrog steps per proposal (static).
    inverse_mass_matrix: diagonal of the inverse mass matrix over the flattened sample
      (defaults to ones).
  """
  import blackjax   # lazy: importing blackjax starts jax's backends (see parallel.py)

  def kernel_args(state):
    dim = state.position[0].size
    imm = jnp.ones(dim) if inverse_mass_matrix is None else inverse_mass_matrix
    return {"step_size": step_size, "inverse_mass_matrix": imm,
            "num_integration_steps": num_integration_steps}

  step = _vmapped_blackjax_step(blackjax.hmc.build_kernel(), blackjax.mcmc.hmc.HMCState,
                                kernel_args)
  return Sampler(_make_init("hmc"), step)


# ----------------------------------------------------------------------------- chains


def run_chain(key: Array, kernel: Kernel, init_state: ChainState, energy_fn: BatchEnergyFn,
              num_steps: int, *, unroll: int | bool = 1) -> tuple[ChainState, ChainInfo]:
  """Runs ``num_steps`` of ``kernel`` as one ``lax.scan``.

  Returns the final state and the per-step :class:`ChainInfo` averaged over the batch,
  ``[num_steps]``. The per-sample info is stacked inside the loop (``[num_steps, batch]``, four
  numbers per sample and step) and reduced after it, so no step waits on the other devices.
  ``unroll`` is passed to ``lax.scan`` (``True`` unrolls fully; see benchmarks/README.md for
  when that pays on a CPU).
  """
  if not isinstance(num_steps, int) or num_steps < 1:
    raise ValueError(f"run_chain: num_steps must be a positive int, got {num_steps!r}")
  keys = jax.random.split(key, num_steps)
  state, info = jax.lax.scan(lambda s, k: kernel(k, s, energy_fn), init_state, keys,
                             unroll=unroll)
  return state, batch_mean_info(info)


def run_chain_thinned(key: Array, kernel: Kernel, init_state: ChainState,
                      energy_fn: BatchEnergyFn, num_steps: int, keep_every: int, *,
                      unroll: int | bool = 1) -> tuple[ChainState, ChainInfo, Array]:
  """Like :func:`run_chain`, also returning every ``keep_every``-th position.

  Only ``num_steps // keep_every`` positions are held (``[num_kept, batch, ...]``), so long
  runs do not keep their trajectory in memory.
  """
  if not isinstance(keep_every, int) or keep_every < 1 or num_steps % keep_every:
    raise ValueError(f"run_chain_thinned: keep_every must be a positive int dividing "
                     f"num_steps={num_steps}, got {keep_every!r}")

  def block(state, block_key):
    state, info = run_chain(block_key, kernel, state, energy_fn, keep_every, unroll=unroll)
    return state, (state.position, info)

  keys = jax.random.split(key, num_steps // keep_every)
  state, (positions, info) = jax.lax.scan(block, init_state, keys)
  info = jax.tree.map(lambda a: a.reshape((num_steps,) + a.shape[2:]), info)
  return state, info, positions


def chain_summary(init_state: ChainState, final_state: ChainState,
                  info: ChainInfo) -> dict[str, Array]:
  """The thesis's / anatomy's chain diagnostics from one run of :func:`run_chain`."""
  return {
      "energy_start": jnp.mean(init_state.energy),
      "energy_end": jnp.mean(final_state.energy),
      "grad_norm_start": jnp.mean(per_sample_norm(init_state.energy_grad)),
      "grad_norm_end": jnp.mean(per_sample_norm(final_state.energy_grad)),
      "r_t": jnp.mean(info.grad_norm),
      "acceptance_rate": jnp.mean(info.acceptance_rate),
      "num_nonfinite": info.num_nonfinite[-1],
  }


# ----------------------------------------------------------------------------- the registry


def _langevin_temperature(step_size, noise_std):
  # x - s grad E + sigma xi is the Euler step of dx = -s grad E dt + sigma dW, whose stationary
  # density is exp(-(2 s / sigma^2) E) (ebm-anatomy: 2 / eps^2 with s = 1).
  return 2.0 * step_size / noise_std ** 2 if noise_std else None


class SamplerSpec(NamedTuple):
  """A sampler's registry entry: how to build it from a config and what it targets.

  Attributes:
    build: ``(sc, step_size, noise_std) -> Sampler``; ``sc`` is the static ``config.sampler``
      (names, counts, clip switches), ``step_size`` and ``noise_std`` (after ``noise_divide``)
      may be traced arrays, so one compiled step serves a vmapped group of settings.
    temperature: ``(step_size, noise_std) -> c`` such that the chain's stationary density is
      ``exp(-c E)``, or None when it has none (noiseless or preconditioned updates).
    target_acceptance: the Metropolis acceptance rate a step-size adaptation aims for (None for
      unadjusted kernels).
    default_step: ``noise_std -> step size`` used when sampling a run whose training sampler
      differs (None: the run's own ``sampler.step_size``).
    clip_options: whether ``sampler.clip_x`` and ``sampler.max_grad_norm`` apply.
  """
  build: Callable[..., Sampler]
  temperature: Callable[[Any, Any], Any]
  target_acceptance: float | None = None
  default_step: Callable[[float], float] | None = None
  clip_options: bool = True


def _clip_kwargs(sc) -> dict:
  return dict(clip_range=(-1.0, 1.0) if sc.clip_x else None,
              max_grad_norm=sc.max_grad_norm or None)


_NO_DENSITY = lambda step_size, noise_std: None   # noqa: E731

# blackjax's defaults: MALA's optimal acceptance is 0.574 (Roberts & Rosenthal); HMC's ~0.65.
SAMPLERS: dict[str, SamplerSpec] = {
    "langevin": SamplerSpec(
        lambda sc, s, noise: langevin(s, noise, **_clip_kwargs(sc)), _langevin_temperature),
    "gradient_descent": SamplerSpec(
        lambda sc, s, noise: gradient_descent(s, **_clip_kwargs(sc)), _NO_DENSITY),
    # The thesis's sample optimizers, with optional noise: momentum and Adam's preconditioning
    # change the update, so neither chain targets exp(-c E).
    "momentum_sgd": SamplerSpec(
        lambda sc, s, noise: optax_sampler(thesis_momentum_sgd(s, sc.momentum), noise,
                                           **_clip_kwargs(sc)), _NO_DENSITY),
    "adam": SamplerSpec(
        lambda sc, s, noise: optax_sampler(thesis_adam(s, sc.adam_beta1, sc.adam_beta2), noise,
                                           **_clip_kwargs(sc)), _NO_DENSITY),
    "mala": SamplerSpec(lambda sc, s, noise: mala(s), lambda s, noise: 1.0, 0.574,
                        lambda noise: noise ** 2 / 2 if noise else 1e-4, clip_options=False),
    "hmc": SamplerSpec(lambda sc, s, noise: hmc(s, sc.hmc_leapfrog_steps), lambda s, noise: 1.0,
                       0.65, lambda noise: noise or 1e-2, clip_options=False),
}


def register(name: str, spec: SamplerSpec) -> SamplerSpec:
  """Adds a sampler to the registry, so ``sampler.name``, ``sample.py --sampler`` and every
  validation rule accept it (e.g. a kernel written in a notebook). Names are taken once."""
  if name in SAMPLERS:
    raise ValueError(f"sampler {name!r} is registered already")
  SAMPLERS[name] = spec
  return spec


def effective_noise_std(sc, noise_std):
  """The noise sd per step: ``noise_std`` (a model's ``HParams.noise_std``) with its variance
  divided by ``sc.noise_divide`` (the thesis's knob)."""
  return noise_std / sc.noise_divide ** 0.5


def build(sc, step_size, noise_std) -> Sampler:
  """The sampler ``sc.name`` with ``sc``'s static settings and a model's (possibly traced) step
  size and noise sd (before ``noise_divide``): the per-model values come from its
  :class:`~ebm_jax.hparams.HParams`, never from the static spec."""
  return SAMPLERS[sc.name].build(sc, step_size, effective_noise_std(sc, noise_std))


def temperature(sc, step_size, noise_std):
  """``c`` such that the sampler ``sc.name`` with a model's ``step_size`` and ``noise_std``
  (before ``noise_divide``) targets ``exp(-c E)``; None when it has no stationary density."""
  return SAMPLERS[sc.name].temperature(step_size, effective_noise_std(sc, noise_std))
