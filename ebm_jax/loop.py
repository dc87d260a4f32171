"""The one host loop: M >= 1 stacked models through one jitted step, and their periodic work.

A single run is a group of one. Every update runs the runner's step on all models at once, then
calls the periodic actions the same way for each model still training (in the manner of CLU's
``periodic_actions``): record the step's metrics, long-run chains, the log step (metrics row,
grids, figures, toy landscape), evaluation, checkpoint; a progress bar follows the group. Each
model counts its own updates. A model whose update is rejected (non-finite, ``|loss|`` above
``divergence_threshold``, or energies running away from their early scale) recovers: back to
its last checkpoint with new chain keys and a smaller learning rate, up to
``recovery.max_retries`` times, while the others go on (a model that finished waits, masked out
of the step); after the last retry it keeps its last good state, checkpointed with grids of its
samples, and stops. A model that reaches ``num_train_steps`` is checkpointed, draws
``samples.npz`` and, when asked, is evaluated.

Nothing else in the package iterates over updates: ``train.train_and_evaluate`` (one run) and
the study engine (groups of cells) both call :func:`train`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax import chain_starts
from ebm_jax import checkpointing
from ebm_jax import config as config_lib
from ebm_jax import data as data_lib
from ebm_jax import hparams as hparams_lib
from ebm_jax import parallel
from ebm_jax import reporting
from ebm_jax import rundir
from ebm_jax import runner as runner_lib
from ebm_jax import writers


class TrainingDiverged(RuntimeError):
  """The loss or the parameters became non-finite (or the loss passed
  ``divergence_threshold``) at update ``step``."""

  def __init__(self, message: str, step: int):
    super().__init__(message)
    self.step = step


@dataclasses.dataclass(frozen=True)
class Run:
  """One model of a group: its resolved config and its run directory."""
  config: Any
  workdir: str


class Outcome(NamedTuple):
  status: str                  # "finished" | "diverged"
  step: int                    # the model's final (or last good) step
  diverged_at: int | None      # the update that was rejected
  steps_per_sec: float         # updates per second of the group, compilation and outputs excluded
  wall_time_s: float           # this call's wall time until the model ended
  recoveries: int = 0          # recoveries from divergence over the model's whole run
  cause: str = ""              # why the last rejected update was rejected, or why it stopped early

# fold_in tags of a recovered model's new base keys (step keys fold in step numbers < 2**31).
RECOVERY_STREAM = 2 ** 32 - 16


def every(n: int, step: int) -> bool:
  """True at every ``n``-th step (never when ``n`` is 0)."""
  return bool(n) and step % n == 0


class Model:
  """One model of the group as the actions see it."""

  def __init__(self, index: int, run: Run):
    self.index = index
    self.config = run.config
    self.workdir = run.workdir
    self.log = functools.partial(rundir.log_line, run.workdir)
    self.ckpt = checkpointing.Checkpointer(run.workdir, run.config.keep_checkpoints,
                                           run.config.checkpoint_dir)
    self.report: reporting.RunReporter | None = None    # from the step training resumes at
    self.step = 0                                        # updates applied to this model
    self.ended: Outcome | None = None
    self.metric = reporting.quality_metric(run.config)
    self.evaluations: list[tuple[int, dict]] = []        # (step, record) of every evaluation
    self.stop_reason = ""                                # set by an action: end at next update

  def measured(self, step: int, record: dict) -> None:
    """An evaluation's record (toy landscape KLs, image classifier metrics) at ``step``."""
    self.evaluations.append((step, record))

  @property
  def quality(self) -> list[tuple[int, float]]:
    """``(step, quality metric)`` at each evaluation that measured it."""
    return [(step, float(r[self.metric])) for step, r in self.evaluations
            if r.get(self.metric) is not None]


class Tick:
  """One update's results; per-model views are cut from the stacked arrays on demand."""

  def __init__(self, step: int, final: bool, states, hparams, metrics, batch_images):
    self.step, self.final = step, final
    self._states, self._hparams, self._batch_images = states, hparams, batch_images
    self.metrics = metrics
    self._cut: dict[int, Any] = {}

  def state(self, i: int):
    """Model ``i``'s state, cut once per update however many actions ask (a copy of its bank)."""
    if i not in self._cut:
      self._cut[i] = runner_lib.unstack(self._states, i)
    return self._cut[i]

  def hparams(self, i: int):
    return runner_lib.unstack(self._hparams, i)

  def row(self, i: int) -> dict:
    return {k: v[i] for k, v in self.metrics.items()}

  def batch_images(self, i: int) -> dict:
    return runner_lib.unstack(self._batch_images, i)


# ----------------------------------------------------------------------------- actions


class Record:
  """Every step: the metrics into the reporter's window and the per-step trace."""

  def __call__(self, tick: Tick, model: Model, runner) -> None:
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

  def __init__(self, config):
    self.every_steps = config.log_every_steps
    self.landscape_every = config.diagnostics.landscape_every_steps
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

  def __init__(self, config):
    self.patience = config.stop.plateau_patience
    self.min_improvement = config.stop.plateau_min_improvement
    self.seen: dict[int, int] = {}       # model -> evaluations judged so far

  def __call__(self, tick, model, runner) -> None:
    if (not self.patience or model.stop_reason
        or len(model.evaluations) == self.seen.get(model.index, 0)):
      return
    self.seen[model.index] = len(model.evaluations)
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
      model.ckpt.save(tick.step, tick.state(model.index))


def default_actions(config) -> list:
  """The periodic work of a run, in the order it happens at a step."""
  return [Record(), LongRun(config.longrun.every_steps), LogStep(config),
          Evaluate(config.eval.every_steps), PlateauStop(config),
          Checkpoint(config.checkpoint_every_steps)]


class ProgressBar:
  """The group's progress, with the first training model's latest logged row."""

  def __init__(self, config, start: int, num_models: int):
    from tqdm import tqdm
    self.bar = tqdm(total=config.num_train_steps, initial=start, unit="step", dynamic_ncols=True,
                    file=sys.stderr, disable=not rundir.is_writer(),
                    desc=f"{num_models} models" if num_models > 1 else None)

  def __call__(self, step: int, row: dict | None) -> None:
    self.bar.update(step - self.bar.n)
    if row is not None:
      self.bar.set_postfix(loss=f"{row['loss']:.3g}", d_s_t=f"{row['d_s_t']:.3g}",
                           r_t=f"{row['r_t']:.3g}", sps=f"{row['samples_per_sec']:.0f}")

  def close(self) -> None:
    self.bar.close()


# ----------------------------------------------------------------------------- outputs


def write_samples(runner, state, hp, path: str, log) -> str:
  """``num_final_samples`` of the model (training sampler and init) into ``path``; an earlier
  file there is set aside."""
  if chain_starts.STARTS[runner.config.init.name].learned:
    starts, x = runner.final_samples(state, hp, with_starts=True)
    arrays = {"x": x, "proposals": starts}
    starts_note = "; key proposals: the generator's proposals the chains started from"
  else:
    x = runner.final_samples(state, hp)
    arrays, starts_note = {"x": x}, ""
  rundir.set_aside(path, f"before_step_{int(state.step)}")
  rundir.write_npz(path, **arrays)
  log(f"wrote {x.shape[0]} samples to {path}: {runner.sampling_protocol(x.shape[0])}"
      f"{starts_note}")
  return path


def evaluate(model: Model, path: str, step: int) -> None:
  """Scores samples with the evaluation classifier into eval.json (image datasets)."""
  if not rundir.is_writer():
    return
  from ebm_jax import evaluation   # lazy: trains the classifier on first use
  record = evaluation.evaluate_run(model.workdir, path, log=model.log, step=step)
  model.measured(step, record)
  model.report.scalars(step, {f"{writers.EVAL_NAMESPACE}/{k}": v for k, v in record.items()})
  def scores(r):
    return ", ".join(f"{k} {r[k]:.4g}" for k in ("fid", "kid", "inception_score",
                                                  "class_entropy", "confident_fraction"))

  model.log(f"step {step}: eval {scores(record)}")
  if "proposals" in record:
    model.log(f"step {step}: eval of the generator's proposals {scores(record['proposals'])}")


def save_last_good(runner, model: Model, state, hp, step: int) -> None:
  """A diverged model's last good state: its checkpoint, and grids of its chains' starts and
  samples, so the run can be inspected and resumed with gentler settings."""
  model.ckpt.save(int(state.step), state)
  starts, samples = runner.sample_fn()(state, hp, runner.images, jax.random.PRNGKey(step))
  limit = runner.toy.plot_limit if runner.toy is not None else None
  if rundir.is_writer():
    for name, x in (("starts", starts), ("samples", samples)):
      reporting.save_samples(
          os.path.join(model.workdir, rundir.IMAGES,
                       f"diverged_last_good_{name}_{int(state.step):06d}.png"),
          parallel.fetch(x), f"last good {name}", limit, model.config.num_grid_images)


def divergence_message(workdir: str, outcome: Outcome) -> str:
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
  """Why the update in ``row`` ran away from the run's early scale (the median of each series'
  magnitude over its first ``runaway_window`` updates, from the run's own trace, so a resumed
  run judges the same way), or None. The default factor (1000) is two orders of magnitude
  above the growth of the shipped recipes' healthy runs (README, "Divergence")."""
  if not rc.runaway_factor or len(trace["step"]) < rc.runaway_window:
    return None
  for key in RUNAWAY_KEYS:
    early = float(np.median(np.abs(trace[key][:rc.runaway_window])))
    value = abs(float(row[key]))
    if value > rc.runaway_factor * max(early, 1e-12):
      return (f"runaway: |{key}| {value:.3g} is {value / max(early, 1e-12):.3g}x its early "
              f"median {early:.3g}")
  return None


def last_checkpointed(runner, hp, model: Model, state):
  """The model's last checkpointed state (its initial state when it has none)."""
  back = model.ckpt.restore(state, log=model.log) if model.ckpt.all_steps() else None
  return back if back is not None else runner_lib.unstack(runner.init(hp), model.index)


def recover(runner, states, hp, model: Model, state, rejected: int, cause: str):
  """A rejected update with retries left. The state it was rejected in already produced it
  (the update before was accepted on a loss that still looked fine), so the model goes back to
  its last checkpoint (its initial state if it has none), with a new key stream, so its chains
  start afresh, and its learning rate times ``recovery.lr_factor`` once more. Its files rewind
  with it (set aside, never deleted) and a recovery row goes into metrics.jsonl. Returns the
  stacked states with the model replaced."""
  rc, i = model.config.recovery, model.index
  k = int(state.recoveries) + 1
  back = last_checkpointed(runner, hp, model, state)
  new = back.replace(rng=jax.random.fold_in(back.rng, RECOVERY_STREAM - k),
                     recoveries=jnp.asarray(k, jnp.int32))
  model.step = int(new.step)
  model.report.close()
  model.report = reporting.RunReporter(model.config, model.workdir, model.step, runner.toy)
  model.report.event(model.step, {"event": "recovery", "recovery": k, "rejected_step": rejected,
                                  "cause": cause, "lr_scale": rc.lr_factor ** k})
  model.log(f"step {rejected}: update rejected ({cause}); recovery {k}/{rc.max_retries}: back "
            f"to step {model.step} with new chain keys and the learning rate "
            f"x{rc.lr_factor ** k:g}")
  return runner.replace(states, i, new)


def finish(runner, model: Model, state, hp) -> None:
  """The end of a model that trained to ``num_train_steps`` (or its wall-clock budget): its
  checkpoint, ``samples.npz`` and, when asked, their evaluation."""
  model.ckpt.save(int(state.step), state)
  model.log(f"finished {int(state.step)} steps; checkpoint in "
            f"{model.ckpt.directory}")
  if model.config.num_final_samples:
    path = write_samples(runner, state, hp, os.path.join(model.workdir, rundir.SAMPLES),
                         model.log)
    if model.config.eval.at_end or model.config.eval.every_steps:
      evaluate(model, path, int(state.step))
  if model.config.longrun.at_end:   # on every process: the chains are sharded
    from ebm_jax import convergence
    record = convergence.check(runner, state, hp, model.metric, model.log)
    convergence.write(model.workdir, record, model.log)


def _refuse_restart_over_history(run: Run) -> None:
  """A run that logged past its first checkpoint step but has no checkpoint to resume from
  (removed, unreadable, or another ``checkpoint_dir``) is not restarted from step 0 over its
  history: that would silently make a second run in the same files."""
  logged = reporting.logged_until(run.workdir)
  if logged >= run.config.checkpoint_every_steps:
    directory = checkpointing.checkpoint_directory(run.workdir, run.config.checkpoint_dir)
    raise checkpointing.CheckpointError(
        f"{run.workdir} holds metrics up to step {logged} but no checkpoint to resume from in "
        f"{directory}; nothing was changed. Point checkpoint_dir at the run's checkpoints, or "
        "train into a new --workdir to start fresh")


def _budget_spent(run: Run) -> bool:
  """Whether the run's metrics reached its ``train_time_budget_s`` (if it has one)."""
  budget = run.config.train_time_budget_s
  if not budget:
    return False
  rows, _ = reporting.read_metrics(os.path.join(run.workdir, rundir.METRICS))
  return bool(rows) and rows[-1]["wall_time"] >= budget


def _stopped_early(run: Run) -> bool:
  """Whether the run ended at a plateau (or was pruned): a ``stop`` event in its metrics."""
  rows, _ = reporting.read_metrics(os.path.join(run.workdir, rundir.METRICS), events=True)
  return any(r.get("event") == "stop" for r in rows)


def _already_finished(runs: Sequence[Run], start: int) -> bool:
  return (start >= runs[0].config.num_train_steps
          or all(_budget_spent(r) or _stopped_early(r) for r in runs)) and all(
      os.path.exists(os.path.join(r.workdir, rundir.SAMPLES)) for r in runs)


def _at_end(model: Model) -> bool:
  """A model ends at ``num_train_steps``, once its wall-clock budget is spent, or when an
  action asked it to stop (a quality plateau, a pruned search trial)."""
  budget = model.config.train_time_budget_s
  if model.step == model.config.num_train_steps:
    return True
  if model.stop_reason:
    model.log(f"step {model.step}: {model.stop_reason}; the run ends here")
    model.report.event(model.step, {"event": "stop", "reason": model.stop_reason})
    return True
  if budget and model.report.wall_time() >= budget:
    model.log(f"step {model.step}: the wall-clock budget of {budget:g} s is spent; the run "
              "ends here")
    return True
  return False


# ----------------------------------------------------------------------------- the loop


def train(runs: Sequence[Run], log: Callable[[str], None] | None = None,
          on_end: Callable[[int, Outcome], None] | None = None,
          actions: Sequence[Callable] | None = None):
  """Trains (or resumes) ``runs``, models of one static config that may differ only in
  :data:`~ebm_jax.hparams.VMAPPABLE_KEYS`, as one stacked group; writes each run directory.

  ``on_end(i, outcome)`` is called as soon as model ``i`` finishes or diverges. Returns
  ``(outcomes, states)``: one :class:`Outcome` per run and the stacked final states.
  """
  config = runs[0].config
  for run in runs:
    config_lib.validate(run.config)
    if (run.config.stop.plateau_patience and jax.process_count() > 1
        and not data_lib.is_toy(run.config.data.name)):
      # Image evaluations run on the main process only, so the others could not take part in
      # the decision; a toy's landscape KL is computed on every process alike.
      raise ValueError("stop.plateau_patience: not supported for image datasets on more than "
                       "one process; use train_time_budget_s or num_train_steps")
    os.makedirs(run.workdir, exist_ok=True)
  log = log or functools.partial(rundir.log_line, runs[0].workdir)
  t0 = time.perf_counter()
  images = runner_lib.load_training_images(config, log)
  runner = runner_lib.Runner(config, images, len(runs))
  hp = runner.hparams([r.config for r in runs])
  for run in runs:       # before anything is created in the run directories
    if not checkpointing.may_hold_checkpoints(run.workdir, run.config.checkpoint_dir):
      _refuse_restart_over_history(run)
  models = [Model(i, run) for i, run in enumerate(runs)]
  states, start = runner.restore([m.ckpt for m in models], runner.init(hp), log)
  if start == 0:        # e.g. every checkpoint there was unreadable and moved aside
    try:
      for run in runs:
        _refuse_restart_over_history(run)
    except checkpointing.CheckpointError:
      for model in models:
        model.ckpt.close()
      raise
  if start:
    log(f"resumed from checkpoint at step {start}")
  if _already_finished(runs, start):
    log(f"run already finished at step {start} (num_train_steps={config.num_train_steps}, "
        f"train_time_budget_s={config.train_time_budget_s:g}); nothing to do. Raise them to "
        "continue.")
    for model in models:
      model.ckpt.close()
    return [Outcome("finished", start, None, 0.0, 0.0) for _ in runs], states
  for model in models:
    rundir.write_config(model.workdir, model.config, start, model.log)
    model.report = reporting.RunReporter(model.config, model.workdir, start, runner.toy)
    model.step = start
    m = reporting.measurements(model.workdir, (model.metric,))   # the plateau's history
    model.evaluations = [(int(t), {model.metric: float(q)})
                         for t, q in zip(m["step"], m[model.metric]) if t <= start]
  actions = list(actions) if actions is not None else default_actions(config)
  log_step = next((a for a in actions if isinstance(a, LogStep)), None)
  varying = hparams_lib.varying_keys([r.config for r in runs])
  log(f"training {config.model.name} on {config.data.name} from step {start} to "
      f"{config.num_train_steps} (sampler {config.sampler.name}, K={config.sampler.num_steps}, "
      f"init {config.init.name}), {len(runs)} model(s)"
      + (f" varying {', '.join(varying)}" if varying else "")
      + f", on {jax.device_count()} {jax.default_backend()} device(s); workdir "
      f"{os.path.abspath(runs[0].workdir)}")

  def end(model: Model, outcome: Outcome) -> None:
    model.ended = outcome
    if on_end is not None:
      on_end(model.index, outcome)

  # Updates/s leave out the first update (compilation) and the time spent on outputs.
  bar = ProgressBar(config, start, len(runs))
  t_outputs, done, t_compiled = 0.0, 0, None

  def speed() -> float:
    return (done - 1) / (time.perf_counter() - t_compiled - t_outputs) if done > 1 else 0.0

  # Each model counts its own updates: one that recovers goes back to its last checkpoint and
  # trains on while the models that finished wait unchanged (masked out of the step).
  try:
    active, flags = runner.all_active, [True] * len(models)
    while not all(m.ended is not None for m in models):
      if flags != [m.ended is None for m in models]:    # a model ended: mask it out
        flags = [m.ended is None for m in models]
        active = runner.active(flags)
      states, metrics, batch_images = runner.step(states, hp, runner.images, active)
      metrics = jax.tree.map(parallel.fetch, metrics)
      done += 1
      t_step = time.perf_counter()
      t_compiled = t_compiled or t_step
      for model in models:
        if model.ended is not None:
          continue
        i = model.index
        row = {k: v[i] for k, v in metrics.items()}
        runaway = (runaway_cause(row, model.report.trace, model.config.recovery)
                   if metrics["finite"][i] else None)
        if not metrics["finite"][i] or runaway:
          model.report.flush(model.step)      # the metrics leading up to it come first
          state = runner_lib.unstack(states, i)
          cause = runaway or rejection_cause(row, model.config.divergence_threshold)
          if int(state.recoveries) < model.config.recovery.max_retries:
            states = recover(runner, states, hp, model, state, model.step + 1, cause)
            continue
          if runaway:   # the runaway update was applied: the last good state is checkpointed
            state = last_checkpointed(runner, hp, model, state).replace(
                recoveries=state.recoveries)
          save_last_good(runner, model, state, runner_lib.unstack(hp, i), model.step + 1)
          outcome = Outcome("diverged", int(state.step), model.step + 1, speed(),
                            time.perf_counter() - t0, int(state.recoveries), cause)
          model.log(divergence_message(model.workdir, outcome))
          end(model, outcome)
          continue
        model.step += 1
        tick = Tick(model.step, _at_end(model), states, hp, metrics, batch_images)
        for action in actions:
          action(tick, model, runner)
        if tick.final:
          state = tick.state(i)
          finish(runner, model, state, tick.hparams(i))
          end(model, Outcome("finished", int(state.step), None, speed(),
                             time.perf_counter() - t0, int(state.recoveries),
                             model.stop_reason))
      bar(min(m.step for m in models), log_step.last_row if log_step is not None else None)
      t_outputs += time.perf_counter() - t_step
  finally:
    bar.close()
    for model in models:
      if model.report is not None:
        model.report.close()
  for model in models:
    model.ckpt.close()
  log(f"{len(models)} model(s): {done} updates at {speed():.2f} updates/s (compilation and "
      f"outputs excluded), {sum(m.ended.status == 'diverged' for m in models)} diverged")
  return [m.ended for m in models], states
