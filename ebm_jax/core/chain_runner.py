"""Long chains from a trained model: chunked runs with per-step traces, and step-size
adaptation of Metropolis-adjusted samplers (blackjax's dual averaging), each compiled once.

Used by the training loop's long-run diagnostics and by ``sample.py``. A long run is a Python
loop over jitted chunks of ``lax.scan``: memory holds one chunk's per-step scalars and the
current positions, never the trajectory, so 100,000-step runs fit anywhere.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax.core import parallel
from ebm_jax.core import samplers

Array = jax.Array

class LongRun(NamedTuple):
  positions: np.ndarray        # final positions [batch, ...]
  energy: np.ndarray           # [num_steps] mean energy at each step's start
  grad_norm: np.ndarray        # [num_steps] mean per-sample gradient norm
  acceptance_rate: np.ndarray  # [num_steps] mean acceptance probability (1 if unadjusted)
  num_nonfinite: int           # samples with a non-finite energy at the end
  final_energy: float          # mean energy of the final positions


class ChainRunner:
  """Long chains of one sampler in jitted chunks of ``lax.scan``, compiled once and reused.

  ``build(sampler_params) -> Sampler`` makes the kernel from a pytree of its (array) parameters,
  e.g. ``(step_size, noise_std)``; ``model_energy(variables, x)`` is the network's energy. The
  variables, sampler parameters and positions are arguments of the compiled chunk, so every
  batch, checkpoint and adapted step size reuses one program (at most two: a full chunk and
  the remainder).
  """

  def __init__(self, build: Callable[[Any], samplers.Sampler], model_energy: Callable, *,
               chunk_steps: int = 1000):
    if chunk_steps < 1:
      raise ValueError(f"ChainRunner: chunk_steps must be positive, got {chunk_steps}")
    self.chunk_steps = chunk_steps

    def init(variables, sampler_params, x):
      return build(sampler_params).init(x, functools.partial(model_energy, variables))

    def chunk(key, variables, sampler_params, state, steps):
      energy_fn = functools.partial(model_energy, variables)
      return samplers.run_chain(key, build(sampler_params).step, state, energy_fn, steps)

    self.init = jax.jit(init)
    self.chunk = jax.jit(chunk, static_argnums=4)

  def run(self, key: Array, variables: Any, sampler_params: Any, x0: Array, num_steps: int, *,
          progress: bool = False, desc: str = "long run") -> LongRun:
    """``num_steps`` of the sampler from ``x0``; memory holds one chunk's per-step means."""
    if num_steps < 1:
      raise ValueError(f"long run: num_steps must be positive, got {num_steps}")
    state = self.init(variables, sampler_params, x0)
    size = min(self.chunk_steps, num_steps)
    sizes = [size] * (num_steps // size) + ([num_steps % size] if num_steps % size else [])
    traces = []
    iterator = range(len(sizes))
    if progress:
      from tqdm import tqdm
      iterator = tqdm(iterator, desc=desc, unit="chunk", dynamic_ncols=True)
    for i in iterator:
      state, info = self.chunk(jax.random.fold_in(key, i), variables, sampler_params, state,
                               sizes[i])
      traces.append(jax.tree.map(parallel.fetch, info))
    cat = lambda name: np.concatenate([np.asarray(getattr(t, name)) for t in traces])  # noqa: E731
    energy = parallel.fetch(state.energy)
    return LongRun(parallel.fetch(state.position), cat("energy"), cat("grad_norm"),
                   cat("acceptance_rate"), int(np.sum(~np.isfinite(energy))),
                   float(np.mean(energy)))


class StepSizeAdapter:
  """Tunes one step size shared by a batch of chains to a target mean acceptance rate, by
  blackjax's dual averaging (Hoffman & Gelman 2014), compiled once.

  ``build(step_size) -> Sampler`` (e.g. ``samplers.mala``); :meth:`adapt` runs ``num_steps``
  warm-up steps and returns the averaged step size and the warmed-up positions.
  """

  def __init__(self, build: Callable[[Array], samplers.Sampler], model_energy: Callable,
               num_steps: int, target: float):
    from blackjax.adaptation.step_size import dual_averaging_adaptation  # lazy, as in samplers
    da_init, da_update, da_final = dual_averaging_adaptation(target)

    def warmup(key, variables, x0, initial_step_size):
      energy_fn = functools.partial(model_energy, variables)
      state = build(initial_step_size).init(x0, energy_fn)

      def body(carry, k):
        state, da = carry
        state, info = build(jnp.exp(da.log_step_size)).step(k, state, energy_fn)
        return (state, da_update(da, jnp.mean(info.acceptance_rate))), None

      (state, da), _ = jax.lax.scan(body, (state, da_init(initial_step_size)),
                                    jax.random.split(key, num_steps))
      return da_final(da), state.position

    self.warmup = jax.jit(warmup)

  def adapt(self, key: Array, variables: Any, x0: Array,
            initial_step_size: float) -> tuple[float, Array]:
    step_size, positions = self.warmup(key, variables, x0, jnp.float32(initial_step_size))
    return float(step_size), positions
