"""Samples a trained run's checkpoint with any registered sampler, for as long as asked.

The library side of ``sample.py``. Every sampler targets the density the run's training sampler
targets, ``exp(-c E)`` (``c = 2 step_size / noise_std^2`` of a Langevin run, ebm-anatomy's
``2 / eps^2``): Metropolis-adjusted samplers (MALA, HMC) run on ``c E`` so they test the trained
sampler rather than a differently tempered model. A training sampler with no stationary density
(noiseless, momentum or Adam updates) gives ``c = 1``, and the summary says so.

Writes, under ``out`` (default ``<workdir>/sampling/<sampler>_<init>_<num_steps>``):
``samples.npz`` (key ``x``, the contract's form), ``samples.png``, ``traces.npz`` and
``traces.png`` (per-step mean energy, gradient norm and acceptance rate, averaged over batches),
``summary.json`` and, for toy densities, ``landscape.png`` with KL(true || model) and
KL(true * K || KDE_K of the samples) (the proper score) beside KL(true || KDE). An earlier
output in ``out`` is set aside, never overwritten.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax.core import chain_starts
from ebm_jax.eval import diagnostics
from ebm_jax.run import plotting
from ebm_jax.run import reporting
from ebm_jax.run import rundir
from ebm_jax.run import runner as runner_lib
from ebm_jax.core import samplers
from ebm_jax.core import chain_runner as sampling

TRAINED = "trained"     # the run's own sampler / init
SAMPLER_CHOICES = (TRAINED, *samplers.SAMPLERS)
INIT_CHOICES = (TRAINED, *chain_starts.STARTS)
OUTPUTS = ("samples.npz", "traces.npz", "samples.png", "traces.png", "summary.json",
           "landscape.png")


def sample_checkpoint(workdir: str, *, step: int | None = None, num_samples: int = 1000,
                      sampler: str = TRAINED, num_steps: int | None = None, init: str = TRAINED,
                      step_size: float | None = None, noise_std: float | None = None,
                      adapt_steps: int = 500, batch_size: int | None = None,
                      chunk_steps: int = 1000, seed: int = 0, out: str | None = None,
                      progress: bool = True) -> dict:
  """Draws ``num_samples`` from the checkpoint of ``workdir``; returns the summary it writes.

  ``noise_std`` is the per-step noise sd (default: the run's, after ``noise_divide``);
  ``step_size`` defaults to the run's, or for a different sampler to its registry default.
  MALA / HMC adapt the step size to their target acceptance over ``adapt_steps`` warm-up steps
  (0: keep ``step_size``).
  """
  spec, runner, state, hp = runner_lib.load_run(workdir, step)
  sc = spec.sampler
  name = sc.name if sampler == TRAINED else sampler
  init = spec.init.name if init == TRAINED else init
  if name not in samplers.SAMPLERS:
    raise ValueError(f"--sampler: expected one of {(TRAINED, *samplers.SAMPLERS)}, got "
                     f"{sampler!r}")
  if init not in chain_starts.STARTS:
    raise ValueError(f"--init: expected one of {INIT_CHOICES}, got {init!r}")
  entry = samplers.SAMPLERS[name]
  used = sc.replace(name=name)
  num_steps = num_steps or sc.num_steps
  batch_size = batch_size or spec.batch_size
  # The run's own step and noise are its per-model values (its HParams), never the spec's.
  trained_step, trained_noise = float(hp.step_size), float(hp.noise_std)
  noise = samplers.effective_noise_std(sc, trained_noise) if noise_std is None else noise_std
  if step_size is None:
    step_size = (entry.default_step(noise) if entry.default_step and name != sc.name
                 else trained_step)
  trained_c = samplers.temperature(sc, trained_step, trained_noise)
  scale = 1.0 if trained_c is None else float(trained_c)
  adjusted = entry.target_acceptance is not None
  energy = ((lambda variables, x: scale * runner.comps.energy(variables, x)) if adjusted
            else runner.comps.energy)
  chains = sampling.ChainRunner(lambda p: entry.build(used, p, noise), energy,
                                chunk_steps=min(chunk_steps, num_steps))
  adapter = (sampling.StepSizeAdapter(lambda s: entry.build(used, s, noise), energy, adapt_steps,
                                      entry.target_acceptance)
             if adjusted and adapt_steps else None)
  starts = runner.starts_fn(init, batch_size)
  variables = runner.eval_variables(state)
  key = jax.random.PRNGKey(seed)
  out = out or os.path.join(workdir, "sampling", f"{name}_{init}_{num_steps}")
  stamp = time.strftime("%Y%m%d-%H%M%S")
  for output in OUTPUTS:
    rundir.set_aside(os.path.join(out, output), f"before_{stamp}")

  batches, traces, adapted = [], [], []
  num_batches = -(-num_samples // batch_size)
  for b in range(num_batches):
    k_start, k_adapt, k_chain = jax.random.split(jax.random.fold_in(key, b), 3)
    x0 = starts(state, hp, runner.images, k_start)
    used_step = step_size
    if adapter is not None:
      used_step, x0 = adapter.adapt(k_adapt, variables, x0, step_size)
      adapted.append(used_step)
    run = chains.run(k_chain, variables, jnp.float32(used_step), x0, num_steps,
                     progress=progress, desc=f"batch {b + 1}/{num_batches}")
    batches.append(run.positions.astype(np.float32))
    traces.append(run)

  x = np.concatenate(batches)[:num_samples]
  trace = {k: np.mean([getattr(t, k) for t in traces], axis=0)
           for k in ("energy", "grad_norm", "acceptance_rate")}
  rundir.write_npz(os.path.join(out, "samples.npz"), x=x)
  rundir.write_npz(os.path.join(out, "traces.npz"), **trace)
  toy = runner.toy
  reporting.save_samples(os.path.join(out, "samples.png"), x[:2000] if toy else x,
                         f"{name}, {num_steps} steps", toy.plot_limit if toy else None,
                         spec.num_grid_images)
  plotting.save_chain_trace(os.path.join(out, "traces.png"),
                            {"mean energy": trace["energy"],
                             "mean gradient norm": trace["grad_norm"],
                             "acceptance rate": trace["acceptance_rate"]},
                            f"{name} from {init}, checkpoint step {int(state.step)}")
  summary = {
      "workdir": os.path.abspath(workdir), "checkpoint_step": int(state.step),
      "sampler": name, "init": init, "num_steps": num_steps, "num_samples": int(len(x)),
      "step_size": float(np.mean(adapted)) if adapted else float(step_size),
      "noise_std": float(noise), "adapted": bool(adapted), "temperature_scale": scale,
      "training_sampler_density": ("none: read at temperature 1" if trained_c is None
                                   else f"exp(-{scale:.6g} E)"),
      "acceptance_rate": float(np.mean(trace["acceptance_rate"])),
      "energy_start": float(trace["energy"][0]),
      "energy_end": float(np.mean([t.final_energy for t in traces])),
      "num_nonfinite": int(sum(t.num_nonfinite for t in traces)),
  }
  if toy is not None:
    landscape = diagnostics.toy_landscape(
        toy.log_density, runner.energy_fn(state), toy.plot_limit, scale, x,
        spec.diagnostics.landscape_res, spec.diagnostics.kde_bandwidth)
    plotting.save_toy_landscape(os.path.join(out, "landscape.png"), landscape,
                                f"{name}, {num_steps} steps")
    summary.update(kl_true_model=landscape.kl_true_model, kl_true_kde=landscape.kl_true_kde,
                   kl_smoothed=landscape.kl_smoothed)
  rundir.write_json(os.path.join(out, "summary.json"), summary)
  return summary
