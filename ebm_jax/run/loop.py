"""The one host loop: M >= 1 stacked models through one jitted step, and their periodic work.

A single run is a group of one. Every update runs the runner's step on all models at once, then
calls the periodic actions the same way for each model still training (in the manner of CLU's
``periodic_actions``): record the step's metrics, long-run chains, the log step (metrics row,
grids, figures, toy landscape), evaluation, checkpoint; a progress bar follows the group. Each
model counts its own updates. A model whose update is rejected (non-finite, ``|loss|`` above
``divergence_threshold``, or energies running away from their early scale) recovers: back to
its last checkpoint with new chain keys and a smaller learning rate, up to
``recovery.max_retries`` times, while the others go on (a model that finished waits, masked out
of the step); everything after the checkpoint rewinds with it (files, evaluations, the plateau
stop's and a search's view of them) except the wall-clock, which keeps counting. After the last
retry it keeps its last good state, checkpointed with grids of its samples, and stops. A model
that reaches ``num_train_steps`` is checkpointed, draws ``samples.npz`` and, when asked, is
evaluated; a model found finished when the call starts completes whatever of that it lacks.

Every model sees the group's static :class:`~ebm_jax.spec.Spec` and its own
:class:`~ebm_jax.hparams.HParams`; nothing here reads a per-model value of another model.

Nothing else in the package iterates over updates: ``train.train_and_evaluate`` (one run) and
the study engine (groups of cells) both call :func:`train`. The periodic actions and what a
model writes are in :mod:`ebm_jax.run.actions`; rejected updates, runaways and recovery in
:mod:`ebm_jax.run.recovery`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

from ebm_jax import config as config_lib
from ebm_jax import data as data_lib
from ebm_jax import errors
from ebm_jax import hparams as hparams_lib
from ebm_jax import spec as spec_lib
from ebm_jax.core import parallel
from ebm_jax.run import actions as actions_lib
from ebm_jax.run import checkpointing
from ebm_jax.run import recovery
from ebm_jax.run import reporting
from ebm_jax.run import rundir
from ebm_jax.run import runner as runner_lib
from ebm_jax import _moved


class TrainingDiverged(errors.Error, RuntimeError):
  """The loss or the parameters became non-finite (or the loss passed
  ``divergence_threshold``) at update ``step``."""

  def __init__(self, message: str, step: int):
    super().__init__(message)
    self.step = step


@dataclasses.dataclass(frozen=True)
class Run:
  """One model of a group: its config (validated and resolved into the spec and the model's
  hyper-parameters by :func:`train`) and its run directory."""
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
  train_time_s: float = 0.0    # the model's training seconds over all calls (its state's
                               # wall_time: time lost to rewound updates included)


class Model:
  """One model of the group as the actions see it: the static :class:`~ebm_jax.spec.Spec` it
  shares with the group and its run directory (its per-model values are the tick's
  ``hparams(i)``). Its config is kept only to write ``config.json``."""

  def __init__(self, index: int, run: Run, spec: spec_lib.Spec):
    self.index = index
    self.spec = spec
    self._config = run.config
    self.workdir = run.workdir
    self.log = functools.partial(rundir.log_line, run.workdir)
    self.ckpt = checkpointing.Checkpointer(run.workdir, spec.keep_checkpoints,
                                           spec.checkpoint_dir)
    self.report: reporting.RunReporter | None = None    # from the step training resumes at
    self.step = 0                                        # updates applied to this model
    self.ended: Outcome | None = None
    self.metric = reporting.quality_metric(spec)
    self.evaluations: list[tuple[int, dict]] = []        # (step, record) of every evaluation
    self._given: dict[Any, int] = {}                     # consumer -> evaluations it was given
    self.stop_reason = ""                                # set by an action: end at next update
    self.final_clock = np.float32(0)                     # its clock at its newest checkpoint

  def write_config(self, step: int) -> None:
    rundir.write_config(self.workdir, self._config, step, self.log)

  def measured(self, step: int, record: dict) -> None:
    """An evaluation's record (toy landscape KLs, image classifier metrics) at ``step``."""
    self.evaluations.append((step, record))

  def unseen(self, consumer) -> list[tuple[int, dict]]:
    """The evaluations ``consumer`` (an action) has not been given yet, each given once; after
    a rewind, the ones measured again are new."""
    n = self._given.get(consumer, 0)
    self._given[consumer] = len(self.evaluations)
    return self.evaluations[n:]

  def rewind(self, step: int) -> None:
    """Forgets the evaluations after ``step`` (a recovery or resume went back to it), for
    every consumer too: the plateau stop and a search's pruning judge the trajectory the model
    trains on, not the discarded one."""
    self.evaluations = [(t, r) for t, r in self.evaluations if t <= step]
    self._given = {c: min(n, len(self.evaluations)) for c, n in self._given.items()}

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


def finish(runner, model: Model, state, hp, *, trained: bool = True) -> None:
  """The end of a model that trained to ``num_train_steps`` (or its wall-clock budget, or an
  early stop): its checkpoint, ``samples.npz`` and, when asked, their evaluation and the
  long-run check. A model found finished (``trained`` False) keeps the outputs its step
  already has, so a run killed while finishing completes the rest when it is run again."""
  step = int(state.step)
  spec = model.spec
  actions_lib.save_checkpoint(model, state)
  model.log(f"finished {step} steps; checkpoint in {model.ckpt.directory}")
  if spec.num_final_samples:
    path = os.path.join(model.workdir, rundir.SAMPLES)
    # -1: samples written before they carried their step, current only for a finished run.
    current = (step,) if trained else (step, -1)
    if actions_lib.agreed(actions_lib.samples_step(path) not in current):
      actions_lib.write_samples(runner, state, hp, path, model.log)
    evaluated = actions_lib.evaluated(model.workdir, path, step)
    if (spec.eval.at_end or spec.eval.every_steps) and not evaluated:
      actions_lib.evaluate(model, path, step)     # process 0 only: the classifier reads the file
  if spec.longrun.at_end:   # on every process: the chains are sharded
    from ebm_jax.eval import convergence
    if actions_lib.agreed((convergence.read(model.workdir) or {}).get("step") != step):
      record = convergence.check(runner, state, hp, model.metric, model.log)
      convergence.write(model.workdir, record, model.log)
  if spec.likelihood.at_end:
    from ebm_jax.eval import likelihood
    if actions_lib.agreed((likelihood.read(model.workdir) or {}).get("step") != step):
      record = likelihood.measure(runner, state, hp, spec.likelihood, model.log)
      likelihood.write(model.workdir, record, model.log)


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


def _stop_reason(workdir: str, step: int) -> str | None:
  """Why the run ended early at ``step`` (a ``stop`` event there: a plateau, a pruned trial),
  or None."""
  rows, _ = reporting.read_metrics(os.path.join(workdir, rundir.METRICS), events=True)
  reasons = [r.get("reason", "") for r in rows if r.get("event") == "stop" and r["step"] == step]
  return reasons[-1] if reasons else None


def _done_reason(model: Model, state) -> str | None:
  """Why a restored model trains no more (it reached ``num_train_steps``, spent its
  wall-clock budget, or stopped early), or None. Such a model goes straight to finishing."""
  step, spec = int(state.step), model.spec
  if step >= spec.num_train_steps:
    return ""
  stopped = _stop_reason(model.workdir, step)
  if stopped is not None:
    return stopped
  budget = spec.train_time_budget_s
  if budget and step > 0:
    rows, _ = reporting.read_metrics(os.path.join(model.workdir, rundir.METRICS))
    logged = max((r["wall_time"] for r in rows if r["step"] <= step), default=0.0)
    if max(float(state.wall_time), logged) >= budget:
      return ""
  return None


def _done(model: Model, state) -> bool:
  """Whether the restored model is done (:func:`_done_reason`), as process 0 reads its files."""
  return actions_lib.agreed(_done_reason(model, state) is not None)


def _at_end(model: Model) -> bool:
  """A model ends at ``num_train_steps``, once its wall-clock budget is spent, or when an
  action asked it to stop (a quality plateau, a pruned search trial)."""
  budget = model.spec.train_time_budget_s
  if model.step == model.spec.num_train_steps:
    return True
  if model.stop_reason:
    model.log(f"step {model.step}: {model.stop_reason}; the run ends here")
    model.report.event(model.step, {"event": "stop", "reason": model.stop_reason})
    return True
  if budget and actions_lib.clock(model) >= budget:
    model.log(f"step {model.step}: the wall-clock budget of {budget:g} s is spent; the run "
              "ends here")
    return True
  return False


def _restore(runner, models: Sequence[Model], states, log):
  """Each model's newest checkpoint. A model that trains on resumes with the others at the
  newest step they all hold; one that has finished (:func:`_done_reason`) is restored at its
  own newest, so it can finish what its outputs lack. Returns the stacked states, each
  model's step and which models are done."""
  latest = [model.ckpt.restore(runner_lib.unstack(states, i), log=log)
            if model.ckpt.all_steps() else None for i, model in enumerate(models)]
  done = [s is not None and _done(m, s) for m, s in zip(models, latest)]
  training = [i for i in range(len(models)) if not done[i]]
  restored = list(latest)
  if len(training) > 1 and any(latest[i] is not None for i in training):
    common = set.intersection(*(set(models[i].ckpt.all_steps()) for i in training))
    if not common:
      raise checkpointing.CheckpointError(
          "the models of this group hold checkpoints of different steps; resume them one by "
          "one (sweep.py --cells=<cell>)")
    step = max(common)
    for i in training:
      if int(latest[i].step) != step:
        restored[i] = models[i].ckpt.restore(runner_lib.unstack(states, i), step=step, log=log)
        # Its later checkpoints belong to a trajectory it now retrains: a recovery must not
        # go back to them, nor a save skip their steps.
        models[i].ckpt.set_aside_after(step, log)
  restored = [r if r is not None else runner_lib.unstack(states, i)
              for i, r in enumerate(restored)]
  return runner.place(runner_lib.stack(restored)), [int(r.step) for r in restored], done


def train(runs: Sequence[Run], log: Callable[[str], None] | None = None,
          on_end: Callable[[int, Outcome], None] | None = None,
          actions: Sequence[Callable] | None = None):
  """Trains (or resumes) ``runs``, models of one static spec that may differ only in
  :data:`~ebm_jax.hparams.VMAPPABLE_KEYS`, as one stacked group; writes each run directory.

  ``on_end(i, outcome)`` is called as soon as model ``i`` finishes or diverges, also for a
  model that had finished training before this call (its missing outputs are written first).
  Returns ``(outcomes, states)``: one :class:`Outcome` per run and the stacked final states.
  """
  for run in runs:
    config_lib.validate(run.config)
  spec = spec_lib.from_config(runs[0].config)
  for run in runs[1:]:
    differ = spec_lib.difference(spec, spec_lib.from_config(run.config))
    if differ:
      raise ValueError(f"the runs of a group must share their static settings; {run.workdir} "
                       f"differs from {runs[0].workdir} in {', '.join(differ)}")
  if (spec.stop.plateau_patience and jax.process_count() > 1
      and not data_lib.is_toy(spec.data.name)):
    # Image evaluations run on the main process only, so the others could not take part in
    # the decision; a toy's landscape KL is computed on every process alike.
    raise ValueError("stop.plateau_patience: not supported for image datasets on more than "
                     "one process; use train_time_budget_s or num_train_steps")
  for run in runs:
    os.makedirs(run.workdir, exist_ok=True)
  log = log or functools.partial(rundir.log_line, runs[0].workdir)
  t0 = time.perf_counter()
  images = runner_lib.load_training_images(spec, log)
  runner = runner_lib.Runner(spec, images, len(runs))
  hp = runner.hparams([r.config for r in runs])
  for run in runs:       # before anything is created in the run directories
    if not checkpointing.may_hold_checkpoints(run.workdir, run.config.checkpoint_dir):
      _refuse_restart_over_history(run)
  models = [Model(i, run, spec) for i, run in enumerate(runs)]
  try:
    return _train(runner, models, runs, hp, log, on_end, actions, t0)
  finally:
    for model in models:
      if model.report is not None:
        model.report.close()
      model.ckpt.close()


def _train(runner, models, runs, hp, log, on_end, actions, t0):
  spec = runner.spec
  states, starts, done = _restore(runner, models, runner.init(hp), log)
  for run, start in zip(runs, starts):
    if start == 0:      # e.g. every checkpoint there was unreadable and moved aside
      _refuse_restart_over_history(run)
  training = [m for m in models if not done[m.index]]
  start = min((starts[m.index] for m in training), default=max(starts))
  if start:
    log(f"resumed from checkpoint at step {start}")

  def end(model: Model, outcome: Outcome) -> None:
    if outcome.status == "diverged":     # its time until the divergence, not its last save's
      model.final_clock = actions_lib.clock(model)
    model.ended = outcome._replace(train_time_s=float(model.final_clock))
    if on_end is not None:
      on_end(model.index, model.ended)

  for model in models:
    model.step = starts[model.index]
    model.final_clock = np.float32(runner_lib.unstack(states, model.index).wall_time)
    if not done[model.index]:    # a finished run keeps the config it finished with
      model.write_config(model.step)
    actions_lib.rewind_evaluations(model.workdir, model.step)
    wall = float(runner_lib.unstack(states, model.index).wall_time) or None
    model.report = reporting.RunReporter(spec, model.workdir, model.step, runner.toy,
                                         wall_offset=wall)
    m = reporting.measurements(model.workdir, (model.metric,))   # the plateau's history
    model.evaluations = [(int(t), {model.metric: float(q)})
                         for t, q in zip(m["step"], m[model.metric]) if t <= model.step]
  for model in models:
    if done[model.index]:
      # Trained before this call: finish what its outputs lack (a run killed between its
      # last checkpoint and samples.npz, or during its evaluation or long-run check).
      log(f"{model.workdir}: already finished at step {model.step} "
          f"(num_train_steps={spec.num_train_steps}, train_time_budget_s="
          f"{spec.train_time_budget_s:g}); completing its outputs. Raise them to continue.")
      state = runner_lib.unstack(states, model.index)
      finish(runner, model, state, runner_lib.unstack(hp, model.index), trained=False)
      end(model, Outcome("finished", model.step, None, 0.0, 0.0, int(state.recoveries),
                         _stop_reason(model.workdir, model.step) or ""))
  if not training:
    return [m.ended for m in models], _with_clocks(states, models)

  actions = list(actions) if actions is not None else actions_lib.default_actions(spec)
  log_step = next((a for a in actions if isinstance(a, actions_lib.LogStep)), None)
  varying = hparams_lib.varying_keys([r.config for r in runs])
  log(f"training {spec.model.name} on {spec.data.name} from step {start} to "
      f"{spec.num_train_steps} (sampler {spec.sampler.name}, K={spec.sampler.num_steps}, "
      f"init {spec.init.name}), {len(runs)} model(s)"
      + (f" varying {', '.join(varying)}" if varying else "")
      + f", on {jax.device_count()} {jax.default_backend()} device(s); workdir "
      f"{os.path.abspath(runs[0].workdir)}")

  # Updates/s leave out the first update (compilation) and the time spent on outputs.
  bar = actions_lib.ProgressBar(spec, start, len(runs))
  t_outputs, num_updates, t_compiled = 0.0, 0, None

  def speed() -> float:
    return ((num_updates - 1) / (time.perf_counter() - t_compiled - t_outputs)
            if num_updates > 1 else 0.0)

  # Each model counts its own updates: one that recovers goes back to its last checkpoint and
  # trains on while the models that finished wait unchanged (masked out of the step).
  try:
    active, flags = None, None
    while not all(m.ended is not None for m in models):
      if flags != [m.ended is None for m in models]:    # a model ended: mask it out
        flags = [m.ended is None for m in models]
        active = runner.active(flags)
      states, metrics, batch_images = runner.step(states, hp, runner.images, active)
      metrics = jax.tree.map(parallel.fetch, metrics)
      num_updates += 1
      t_step = time.perf_counter()
      t_compiled = t_compiled or t_step
      for model in models:
        if model.ended is not None:
          continue
        i = model.index
        row = {k: v[i] for k, v in metrics.items()}
        runaway = (recovery.runaway_cause(row, model.report.trace, model.spec.recovery)
                   if metrics["finite"][i] else None)
        if not metrics["finite"][i] or runaway:
          model.report.flush(model.step)      # the metrics leading up to it come first
          state = runner_lib.unstack(states, i)
          cause = runaway or recovery.rejection_cause(row, model.spec.divergence_threshold)
          if int(state.recoveries) < model.spec.recovery.max_retries:
            states = recovery.recover(runner, states, hp, model, state, model.step + 1, cause)
            continue
          if runaway:   # the runaway update was applied: the last good state is checkpointed
            state = recovery.last_checkpointed(runner, hp, model, state).replace(
                recoveries=state.recoveries)
          recovery.save_last_good(runner, model, state, runner_lib.unstack(hp, i), model.step + 1)
          outcome = Outcome("diverged", int(state.step), model.step + 1, speed(),
                            time.perf_counter() - t0, int(state.recoveries), cause)
          model.log(recovery.divergence_message(model.workdir, outcome))
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
      bar(min((m.step for m in models if m.ended is None), default=spec.num_train_steps),
          log_step.last_row if log_step is not None else None)
      t_outputs += time.perf_counter() - t_step
  finally:
    bar.close()
  log(f"{len(models)} model(s): {num_updates} updates at {speed():.2f} updates/s (compilation "
      f"and outputs excluded), {sum(m.ended.status == 'diverged' for m in models)} diverged")
  return [m.ended for m in models], _with_clocks(states, models)


def _with_clocks(states, models: Sequence[Model]):
  """The final stacked states with each model's wall-clock at its end."""
  seconds = np.asarray([m.final_clock for m in models], np.float32)
  return states.replace(wall_time=actions_lib.set_clock(states.wall_time, seconds))


def __getattr__(name: str):
  return _moved.attribute(__name__, name)     # a name that moved away, named in one line
