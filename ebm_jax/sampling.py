"""Long chains from a trained model: chunked runs with per-step traces, and step-size
adaptation of Metropolis-adjusted samplers (blackjax's dual averaging).

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

from ebm_jax import parallel
from ebm_jax import samplers

Array = jax.Array

# blackjax's defaults: MALA's optimal acceptance is 0.574 (Roberts & Rosenthal); HMC's ~0.65.
TARGET_ACCEPTANCE = {"mala": 0.574, "hmc": 0.65}


class LongRun(NamedTuple):
  positions: np.ndarray        # final positions [batch, ...]
  energy: np.ndarray           # [num_steps] mean energy at each step's start
  grad_norm: np.ndarray        # [num_steps] mean per-sample gradient norm
  acceptance_rate: np.ndarray  # [num_steps] mean acceptance probability (1 if unadjusted)
  num_nonfinite: int           # samples with a non-finite energy at the end
  final_energy: float          # mean energy of the final positions


def long_run(key: Array, sampler: samplers.Sampler, model_energy: Callable, variables: Any,
             x0: Array, num_steps: int, *, chunk_steps: int = 1000, progress: bool = False,
             desc: str = "long run") -> LongRun:
  """Runs ``num_steps`` of ``sampler`` from ``x0`` in jitted chunks of ``chunk_steps``.

  ``model_energy(variables, x)`` is the network's energy; ``variables`` are passed as an argument
  so every chunk reuses one compiled program.
  """
  if num_steps < 1:
    raise ValueError(f"long_run: num_steps must be positive, got {num_steps}")

  @functools.partial(jax.jit, static_argnums=3)
  def chunk(key, variables, state, steps):
    energy_fn = functools.partial(model_energy, variables)
    return samplers.run_chain(key, sampler.step, state, energy_fn, steps)

  init = jax.jit(lambda variables, x: sampler.init(x, functools.partial(model_energy,
                                                                         variables)))
  state = init(variables, x0)
  sizes = [chunk_steps] * (num_steps // chunk_steps)
  if num_steps % chunk_steps:
    sizes.append(num_steps % chunk_steps)
  traces = []
  iterator = range(len(sizes))
  if progress:
    from tqdm import tqdm
    iterator = tqdm(iterator, desc=desc, unit="chunk", dynamic_ncols=True)
  for i in iterator:
    state, info = chunk(jax.random.fold_in(key, i), variables, state, sizes[i])
    traces.append(jax.tree.map(parallel.fetch, info))
  cat = lambda name: np.concatenate([np.asarray(getattr(t, name)) for t in traces])
  energy = parallel.fetch(state.energy)
  return LongRun(parallel.fetch(state.position), cat("energy"), cat("grad_norm"),
                 cat("acceptance_rate"), int(np.sum(~np.isfinite(energy))),
                 float(np.mean(energy)))


def adapt_step_size(key: Array, build: Callable[[Array], samplers.Sampler],
                    model_energy: Callable, variables: Any, x0: Array, initial_step_size: float,
                    num_steps: int, target: float) -> tuple[float, Array]:
  """Tunes one step size shared by a batch of chains to a target mean acceptance rate.

  ``build(step_size)`` makes the sampler (e.g. ``samplers.mala``). Runs ``num_steps`` warm-up
  steps under blackjax's dual-averaging adaptation (Hoffman & Gelman 2014) and returns the
  averaged step size and the warmed-up positions.
  """
  from blackjax.adaptation.step_size import dual_averaging_adaptation  # lazy, as in samplers
  da_init, da_update, da_final = dual_averaging_adaptation(target)

  @jax.jit
  def warmup(key, variables, x0):
    energy_fn = functools.partial(model_energy, variables)
    state = build(initial_step_size).init(x0, energy_fn)

    def body(carry, k):
      state, da = carry
      state, info = build(jnp.exp(da.log_step_size)).step(k, state, energy_fn)
      return (state, da_update(da, jnp.mean(info.acceptance_rate))), None

    (state, da), _ = jax.lax.scan(body, (state, da_init(initial_step_size)),
                                  jax.random.split(key, num_steps))
    return da_final(da), state.position

  step_size, positions = warmup(key, variables, x0)
  return float(step_size), positions
