"""The periodic work of the loop, one small action per kind (CLU's ``periodic_actions``): each is
called as ``action(tick, model, runner)`` for every model still training at every update, so
every periodic feature works in a study's groups as in a single run. Also what a model writes
outside the actions' schedule (its checkpoint with its clock, ``samples.npz``, its evaluation),
which the loop and the recovery call as well.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import jax
import numpy as np

from ebm_jax.core import chain_starts
from ebm_jax.run import rundir
from ebm_jax.run import writers


def every(n: int, step: int) -> bool:
  """True at every ``n``-th step (never when ``n`` is 0)."""
  return bool(n) and step % n == 0


class Record:
  """Every step: the metrics into the reporter's window and the per-step trace."""

  def __call__(self, tick, model, runner) -> None:
    model.report.record(tick.step, tick.row(model.index))


class LongRun:
  """ebm-anatomy's long-run chains every ``longrun.every_steps``."""

  def __init__(self, every_steps: int):
    self.every_steps = every_steps

  def __call__(self, tick, model, runner) -> None:
    if every(self.every_steps, tick.step):
      i = model.index
      model.report.long_run(tick.step, runner.long_run(tick.state(i), tick.hparams(i), tick.step))


class LogStep:
  """Every ``log_every_steps`` and at the last step: the metrics row, grids and figures; on toy
  densities at landscape steps (and the last) the landscape with its KL metrics."""

  def __init__(self, spec):
    self.every_steps = spec.log_every_steps
    self.landscape_every = spec.diagnostics.landscape_every_steps
    self.last_row: dict | None = None

  def __call__(self, tick, model, runner) -> None:
    if not (tick.final or every(self.every_steps, tick.step)):
      return
    i, extra = model.index, {}
    if runner.toy is not None and (tick.final or every(self.landscape_every, tick.step)):
      extra = model.report.landscape(
          tick.step, runner.landscape(tick.state(i), tick.hparams(i), tick.step))
      model.measured(tick.step, extra)
    self.last_row = model.report.log_step(tick.step, tick.batch_images(i), extra,
                                          final=tick.final)


class Evaluate:
  """Every ``eval.every_steps`` before the last: ``num_final_samples`` scored into eval.json
  (the last step's evaluation belongs to the end of the run)."""

  def __init__(self, every_steps: int):
    self.every_steps = every_steps

  def __call__(self, tick, model, runner) -> None:
    if every(self.every_steps, tick.step) and not tick.final:
      i = model.index
      path = os.path.join(model.workdir, rundir.EVAL_SAMPLES, f"samples_{tick.step:06d}.npz")
      write_samples(runner, tick.state(i), tick.hparams(i), path, model.log)
      evaluate(model, path, tick.step)


def plateaued(quality: Sequence[tuple[int, float]], patience: int,
              min_improvement: float) -> bool:
  """Whether the last ``patience`` evaluations all failed to improve on the best before them
  by the fraction ``min_improvement``."""
  if not patience or len(quality) <= patience:
    return False
  best_before = min(q for _, q in quality[:-patience])
  return min(q for _, q in quality[-patience:]) > (1 - min_improvement) * best_before


class PlateauStop:
  """Ends the model at the update after its quality stopped improving
  (``stop.plateau_patience`` evaluations without a ``stop.plateau_min_improvement`` gain)."""

  def __init__(self, spec):
    self.patience = spec.stop.plateau_patience
    self.min_improvement = spec.stop.plateau_min_improvement

  def __call__(self, tick, model, runner) -> None:
    if not self.patience or model.stop_reason or not model.unseen(self):
      return
    quality = model.quality          # derived from the records: once per new evaluation
    if plateaued(quality, self.patience, self.min_improvement):
      best = min(q for _, q in quality)
      model.stop_reason = (f"quality plateau: {model.metric} {quality[-1][1]:.4g} after "
                           f"{self.patience} evaluations without a "
                           f"{self.min_improvement:.0%} gain on the best {best:.4g}")


class Checkpoint:
  """Every ``checkpoint_every_steps``."""

  def __init__(self, every_steps: int):
    self.every_steps = every_steps

  def __call__(self, tick, model, runner) -> None:
    if every(self.every_steps, tick.step):
      save_checkpoint(model, tick.state(model.index))


def default_actions(spec) -> list:
  """The periodic work of a run (a :class:`~ebm_jax.spec.Spec`'s), in the order it happens at
  a step."""
  return [Record(), LongRun(spec.longrun.every_steps), LogStep(spec),
          Evaluate(spec.eval.every_steps), PlateauStop(spec),
          Checkpoint(spec.checkpoint_every_steps)]


class ProgressBar:
  """The group's progress, with the first training model's latest logged row."""

  def __init__(self, spec, start: int, num_models: int):
    from tqdm import tqdm
    self.bar = tqdm(total=spec.num_train_steps, initial=start, unit="step", dynamic_ncols=True,
                    file=sys.stderr, disable=not rundir.is_writer(),
                    desc=f"{num_models} models" if num_models > 1 else None)

  def __call__(self, step: int, row: dict | None) -> None:
    self.bar.update(step - self.bar.n)
    if row is not None:
      self.bar.set_postfix(loss=f"{row['loss']:.3g}", d_s_t=f"{row['d_s_t']:.3g}",
                           r_t=f"{row['r_t']:.3g}", sps=f"{row['samples_per_sec']:.0f}")

  def close(self) -> None:
    self.bar.close()


def set_clock(like: jax.Array, seconds) -> jax.Array:
  """``seconds`` (one model's or a group's) placed as ``like``, a state's wall_time, is: on
  several processes a checkpointed array must be a global one (a jitted computation would
  return this scalar host-local)."""
  return jax.device_put(np.asarray(seconds, np.float32).reshape(like.shape), like.sharding)


def clock(model) -> np.ndarray:
  """The model's cumulative wall-clock in seconds (time lost to rewound updates included), the
  same on every process (process 0's)."""
  seconds = np.float32(model.report.wall_time())
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    seconds = np.float32(multihost_utils.broadcast_one_to_all(seconds))
  return seconds


def save_checkpoint(model, state) -> None:
  """Checkpoints ``state`` with the model's cumulative wall-clock, so a resumed run goes on
  counting from it; a step saved already (a finished run found again) is left as it is."""
  if int(state.step) in model.ckpt.all_steps():
    return
  model.final_clock = clock(model)
  model.ckpt.save(int(state.step), state.replace(
      wall_time=set_clock(state.wall_time, model.final_clock)))


def write_samples(runner, state, hp, path: str, log) -> str:
  """``num_final_samples`` of the model with ``hp`` (its final chains from the training init)
  into ``path``, with the ``step`` they were drawn at; an earlier file there is set aside."""
  step = int(state.step)
  if chain_starts.STARTS[runner.spec.init.name].learned:
    starts, x = runner.final_samples(state, hp, with_starts=True)
    arrays = {"x": x, "proposals": starts}
    starts_note = "; key proposals: the generator's proposals the chains started from"
  else:
    x = runner.final_samples(state, hp)
    arrays, starts_note = {"x": x}, ""
  rundir.set_aside(path, f"before_step_{step}")
  rundir.write_npz(path, **arrays, step=np.asarray(step, np.int64))
  log(f"wrote {x.shape[0]} samples to {path}: {runner.sampling_protocol(hp, x.shape[0])}"
      f"{starts_note}")
  return path


def samples_step(path: str) -> int | None:
  """The training step the samples in ``path`` were drawn at; None when there is no file; -1
  for a file written before samples carried their step (taken as the run's last)."""
  if not os.path.exists(path):
    return None
  with np.load(path) as f:
    return int(f["step"]) if "step" in f.files else -1


def evaluate(model, path: str, step: int) -> None:
  """Scores samples with the evaluation classifier into eval.json (image datasets)."""
  if not rundir.is_writer():
    return
  from ebm_jax.run import evaluate as evaluate_lib  # lazy: the classifier stack on first use
  record = evaluate_lib.evaluate_run(model.workdir, path, log=model.log, step=step)
  model.measured(step, record)
  model.report.scalars(step, {f"{writers.EVAL_NAMESPACE}/{k}": v for k, v in record.items()})
  def scores(r):
    return ", ".join(f"{k} {r[k]:.4g}" for k in ("fid", "kid", "inception_score",
                                                  "class_entropy", "confident_fraction"))

  model.log(f"step {step}: eval {scores(record)}")
  if "proposals" in record:
    model.log(f"step {step}: eval of the generator's proposals {scores(record['proposals'])}")


def evaluated(workdir: str, path: str, step: int) -> bool:
  """Whether eval.json holds a record of the samples file ``path`` drawn at ``step`` (by name:
  a run directory may have moved)."""
  records = rundir.read_json(os.path.join(workdir, rundir.EVAL)) or []
  name = os.path.basename(path)
  return any(r.get("step") == step and os.path.basename(str(r.get("samples"))) == name
             for r in records)


def agreed(flag: bool) -> bool:
  """``flag`` as process 0 decided it: decisions read from files only process 0 writes (a run
  directory local to each host) must be the same on every process, or a sharded draw that one
  process skips leaves the others waiting."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils
  return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag, np.int32)))


def rewind_evaluations(workdir: str, step: int) -> None:
  """Cuts eval.json back to the records of steps up to ``step`` (a recovery or resume went
  back to it); the file as it was is set aside whole, never deleted."""
  path = os.path.join(workdir, rundir.EVAL)
  records = rundir.read_json(path) or []
  kept = [r for r in records if r.get("step") is None or r["step"] <= step]
  if len(kept) < len(records):
    until = max(r["step"] for r in records if r.get("step") is not None)
    rundir.set_aside(path, f"until_step_{until}")
    rundir.write_json(path, kept)
