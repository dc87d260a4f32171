"""Rejected updates and runaways, and how a model recovers from them: back to its last
checkpoint with new chain keys and a smaller learning rate, everything after the checkpoint
rewound with it (files set aside, never deleted), or, after the last retry, its last good state
kept for inspection.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax.core import parallel
from ebm_jax.run import actions
from ebm_jax.run import reporting
from ebm_jax.run import rundir
from ebm_jax.run import runner as runner_lib


# fold_in tags of a recovered model's new base keys (step keys fold in step numbers < 2**31).
RECOVERY_STREAM = 2 ** 32 - 16


def save_last_good(runner, model, state, hp, step: int) -> None:
  """A diverged model's last good state: its checkpoint, and grids of its chains' starts and
  samples, so the run can be inspected and resumed with gentler settings."""
  actions.save_checkpoint(model, state)
  starts, samples = runner.sample_fn()(state, hp, runner.images, jax.random.PRNGKey(step))
  limit = runner.toy.plot_limit if runner.toy is not None else None
  if rundir.is_writer():
    for name, x in (("starts", starts), ("samples", samples)):
      reporting.save_samples(
          os.path.join(model.workdir, rundir.IMAGES,
                       f"diverged_last_good_{name}_{int(state.step):06d}.png"),
          parallel.fetch(x), f"last good {name}", limit, model.spec.num_grid_images)


def divergence_message(workdir: str, outcome) -> str:
  after = f" after {outcome.recoveries} recoveries" if outcome.recoveries else ""
  return (f"training diverged at step {outcome.diverged_at}{after} ({outcome.cause}); the last "
          f"good state (step {outcome.step}) is checkpointed and its samples are in "
          f"{os.path.join(workdir, rundir.IMAGES)}. Lower optimizer.learning_rate or "
          "sampler.step_size, or add loss.l2_energy / model.spectral_norm")


def rejection_cause(row: dict, threshold: float) -> str:
  loss = float(row["loss"])
  if not np.isfinite(loss):
    return "non-finite loss"
  if threshold and abs(loss) > threshold:
    return f"|loss| {abs(loss):.3g} above divergence_threshold {threshold:g}"
  return "non-finite parameters"


# Series whose growth by orders of magnitude marks a runaway (ebm-anatomy's exploding
# energies: d_s_t can still cross 0 while both energies run off).
RUNAWAY_KEYS = ("energy_data", "energy_end", "r_t")


def runaway_cause(row: dict, trace: dict, rc) -> str | None:
  """Why the update in ``row`` ran away from the run's scale (the median of each series'
  magnitude over ``runaway_window`` updates after the first ``runaway_start``, which leave
  initialisation's transient out; from the run's own trace, so a resumed run judges the same
  way), or None. Healthy shipped recipes grow at most 8x over that baseline (toy rings' r_t;
  the GMM recipe 1.2x, its former default 1.9x; MNIST 1.0x over 600 updates), so the default
  factor 1000 leaves a margin of 125x (docs/running.md, "Divergence recovers by itself")."""
  start, end = rc.runaway_start, rc.runaway_start + rc.runaway_window
  if not rc.runaway_factor or len(trace["step"]) < end:
    return None
  for key in RUNAWAY_KEYS:
    base = float(np.median(np.abs(trace[key][start:end])))
    value = abs(float(row[key]))
    if value > rc.runaway_factor * max(base, 1e-12):
      return (f"runaway: |{key}| {value:.3g} is {value / max(base, 1e-12):.3g}x its median "
              f"{base:.3g} over updates {start + 1}-{end}")
  return None


def last_checkpointed(runner, hp, model, state):
  """The model's last checkpointed state (its initial state when it has none)."""
  back = model.ckpt.restore(state, log=model.log) if model.ckpt.all_steps() else None
  return back if back is not None else runner_lib.unstack(runner.init(hp), model.index)


def recover(runner, states, hp, model, state, rejected: int, cause: str):
  """A rejected update with retries left. The state it was rejected in already produced it
  (the update before was accepted on a loss that still looked fine), so the model goes back to
  its last checkpoint (its initial state if it has none), with a new key stream, so its chains
  start afresh, and its learning rate times ``recovery.lr_factor`` once more. Everything that
  followed the checkpoint rewinds with it: the files (set aside, never deleted), the
  evaluations, the quality curve and what the plateau stop and a search's pruning were told.
  The wall-clock does not rewind: the lost updates cost time, so a budget and time-to-target
  count them. A recovery row goes into metrics.jsonl. Returns the stacked states with the
  model replaced."""
  rc, i = model.spec.recovery, model.index
  k = int(state.recoveries) + 1
  wall = actions.clock(model)
  back = last_checkpointed(runner, hp, model, state)
  new = back.replace(rng=jax.random.fold_in(back.rng, RECOVERY_STREAM - k),
                     recoveries=jnp.asarray(k, jnp.int32),
                     wall_time=actions.set_clock(back.wall_time, wall))
  model.step = int(new.step)
  model.rewind(model.step)
  actions.rewind_evaluations(model.workdir, model.step)
  model.report.close()
  model.report = reporting.RunReporter(model.spec, model.workdir, model.step, runner.toy,
                                       wall_offset=float(wall))
  model.report.event(model.step, {"event": "recovery", "recovery": k, "rejected_step": rejected,
                                  "cause": cause, "lr_scale": rc.lr_factor ** k,
                                  "wall_time": float(wall)})
  model.log(f"step {rejected}: update rejected ({cause}); recovery {k}/{rc.max_retries}: back "
            f"to step {model.step} with new chain keys and the learning rate "
            f"x{rc.lr_factor ** k:g}")
  return runner.replace(states, i, new)
