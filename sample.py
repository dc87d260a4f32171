"""Samples from a trained run's checkpoint with any sampler, for as long as asked.

    python sample.py --workdir=runs/x --num_samples=1000 --sampler=mala --num_steps=10000 --init=data

Samplers: ``trained`` (the run's own sampler and settings), ``langevin``, ``gradient_descent``,
``mala`` and ``hmc`` (blackjax, step size adapted to a target acceptance rate by dual averaging
unless ``--adapt_steps=0``). Every sampler targets the density the run's training sampler targets,
``exp(-c E)`` with ``c = 2 step_size / noise_std^2`` of a Langevin run (ebm-anatomy: 2 / eps^2),
so MH-adjusted chains test the trained sampler rather than a differently tempered model.

Writes, under ``--out`` (default ``<workdir>/sampling/<sampler>_<init>_<num_steps>``):
``samples.npz`` (key ``x``, the contract's form), ``samples.png``, ``traces.npz`` and
``traces.png`` (per-step mean energy, gradient norm and acceptance rate, averaged over batches),
``summary.json`` and, for toy densities, ``landscape.png`` with KL(true || model) and
KL(true || KDE of the samples).
"""

import functools
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1000, "Number of samples.")
_SAMPLER = flags.DEFINE_enum("sampler", "trained",
                             ["trained", "langevin", "gradient_descent", "mala", "hmc"],
                             "Sampler.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", None, "Steps per chain (default: the run's K).")
_INIT = flags.DEFINE_enum("init", "trained",
                          ["trained", "uniform", "gaussian", "data", "persistent", "replay",
                           "generator"],
                          "Chain starts (default: the run's init).")
_STEP_SIZE = flags.DEFINE_float("step_size", None,
                                "Step size (default: the run's; MALA noise_std^2/2, HMC noise_std).")
_NOISE_STD = flags.DEFINE_float("noise_std", None, "Langevin noise (default: the run's).")
_ADAPT_STEPS = flags.DEFINE_integer("adapt_steps", 500, "MALA/HMC warm-up steps that adapt the "
                                    "step size (0: keep --step_size).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Chains per batch (default: the run's).")
_CHUNK_STEPS = flags.DEFINE_integer("chunk_steps", 1000, "Steps per jitted chunk.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
flags.mark_flags_as_required(["workdir"])


def sample_run(workdir, *, step=None, num_samples=1000, sampler="trained", num_steps=None,
               init="trained", step_size=None, noise_std=None, adapt_steps=500, batch_size=None,
               chunk_steps=1000, seed=0, out=None, progress=True) -> dict:
  """Library entry of the sampler CLI; returns the summary it writes."""
  import jax
  import numpy as np
  from ebm_jax import diagnostics, plotting, reporting, samplers, sampling, train

  config, comps, state, images_dev = train.load_run(workdir, step)
  sc = config.sampler
  init = config.init.name if init == "trained" else init
  num_steps = num_steps or sc.num_steps
  batch_size = batch_size or config.batch_size
  scale = train.sampler_temperature_scale(config)
  energy = comps.energy if sampler in ("trained", "langevin", "gradient_descent") else (
      lambda variables, x: scale * comps.energy(variables, x))
  noise = train.sampler_noise_std(sc) if noise_std is None else noise_std
  clip = dict(clip_range=(-1.0, 1.0) if sc.clip_x else None,
              max_grad_norm=sc.max_grad_norm or None)
  builders = {
      "trained": lambda s: comps.sampler,
      "langevin": lambda s: samplers.langevin(s, noise, **clip),
      "gradient_descent": lambda s: samplers.gradient_descent(s, **clip),
      "mala": samplers.mala,
      "hmc": lambda s: samplers.hmc(s, sc.hmc_leapfrog_steps),
  }
  default_step = {"mala": noise ** 2 / 2 if noise else 1e-4, "hmc": noise or 1e-2}
  step_size = step_size or default_step.get(sampler, sc.step_size)
  variables = {"params": state.params, **state.model_state}
  starts = train.make_start_fn(config, comps, init)
  key = jax.random.PRNGKey(seed)
  out = out or os.path.join(workdir, "sampling", f"{sampler}_{init}_{num_steps}")
  os.makedirs(out, exist_ok=True)

  batches, traces, adapted = [], [], []
  num_batches = -(-num_samples // batch_size)
  for b in range(num_batches):
    k_start, k_adapt, k_chain = jax.random.split(jax.random.fold_in(key, b), 3)
    x0 = starts(state, images_dev, k_start, batch_size)
    used_step = step_size
    if sampler in sampling.TARGET_ACCEPTANCE and adapt_steps:
      used_step, x0 = sampling.adapt_step_size(
          k_adapt, builders[sampler], energy, variables, x0, step_size, adapt_steps,
          sampling.TARGET_ACCEPTANCE[sampler])
      adapted.append(used_step)
    run = sampling.long_run(k_chain, builders[sampler](used_step), energy, variables, x0,
                            num_steps, chunk_steps=min(chunk_steps, num_steps),
                            progress=progress, desc=f"batch {b + 1}/{num_batches}")
    batches.append(run.positions.astype(np.float32))
    traces.append(run)

  x = np.concatenate(batches)[:num_samples]
  mean_trace = lambda name: np.mean([getattr(t, name) for t in traces], axis=0)
  trace = {k: mean_trace(k) for k in ("energy", "grad_norm", "acceptance_rate")}
  reporting.write_npz(os.path.join(out, "samples.npz"), x=x)
  reporting.write_npz(os.path.join(out, "traces.npz"), **trace)
  toy = comps.data.toy
  reporting.save_samples(os.path.join(out, "samples.png"), x[:2000] if toy else x,
                         f"{sampler}, {num_steps} steps", toy.plot_limit if toy else None,
                         config.num_grid_images)
  plotting.save_chain_trace(os.path.join(out, "traces.png"),
                            {"mean energy": trace["energy"],
                             "mean gradient norm": trace["grad_norm"],
                             "acceptance rate": trace["acceptance_rate"]},
                            f"{sampler} from {init}, checkpoint step {int(state.step)}")
  summary = {
      "workdir": os.path.abspath(workdir), "checkpoint_step": int(state.step),
      "sampler": sampler, "init": init, "num_steps": num_steps, "num_samples": int(len(x)),
      "step_size": float(np.mean(adapted)) if adapted else float(step_size),
      "adapted": bool(adapted), "temperature_scale": scale,
      "acceptance_rate": float(np.mean(trace["acceptance_rate"])),
      "energy_start": float(trace["energy"][0]),
      "energy_end": float(np.mean([t.final_energy for t in traces])),
      "num_nonfinite": int(sum(t.num_nonfinite for t in traces)),
  }
  if toy is not None:
    energy_fn = functools.partial(comps.energy, variables)
    landscape = diagnostics.toy_landscape(
        toy.log_density, energy_fn, toy.plot_limit, scale, x, config.diagnostics.landscape_res,
        config.diagnostics.kde_bandwidth)
    plotting.save_toy_landscape(os.path.join(out, "landscape.png"), landscape,
                                f"{sampler}, {num_steps} steps")
    summary.update(kl_true_model=landscape.kl_true_model, kl_true_kde=landscape.kl_true_kde)
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from ebm_jax import checkpointing, config_validation, data
  try:
    summary = sample_run(
        _WORKDIR.value, step=_STEP.value, num_samples=_NUM_SAMPLES.value,
        sampler=_SAMPLER.value, num_steps=_NUM_STEPS.value, init=_INIT.value,
        step_size=_STEP_SIZE.value, noise_std=_NOISE_STD.value, adapt_steps=_ADAPT_STEPS.value,
        batch_size=_BATCH_SIZE.value, chunk_steps=_CHUNK_STEPS.value, seed=_SEED.value,
        out=_OUT.value)
  except (config_validation.ConfigError, data.DataError, checkpointing.CheckpointError,
          ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  app.run(main)
