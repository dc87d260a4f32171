"""Adaptive studies: Optuna's ask-and-tell on top of the study engine's vmapped groups.

A search file (``sweeps/*.py`` defining ``get_search(variant)``) returns a :class:`Search`: a
base recipe, fixed overrides, and a space of config keys to search. Each round asks Optuna for
``trials_per_group`` trials, turns each into a cell (``<workdir>/cells/trial-0007``, an ordinary
run directory), trains the cells as vmapped groups in the one loop (trials that differ only in
vmappable values share one compiled step) and tells Optuna each cell's final quality
(``reporting.quality_metric``: KL(true * K || KDE_K) on toys, the classifier FID on
images). A cell that diverges is told as failed. A search may tell another number of the
evaluations instead (``Search.objective``, e.g. the confident fraction, with ``maximize``).
At every intermediate evaluation each trial reports that value, and Optuna's median pruner
may end it early (the cell finishes where it stands and is told as pruned).

The study lives in a journal file (``<workdir>/journal.log``, Optuna's ``JournalFileBackend``)
that any number of processes, on one machine or on machines sharing the directory, append to
under a file lock: start the same command several times and they share the trials, each asking
for its own (trial numbers, and so cell names, are never reused). A round stops asking once the
journal holds ``num_trials`` trials, so concurrent workers may overshoot by at most
``trials_per_group - 1`` each.

A worker that dies (killed, out of memory, a lost node) leaves its trials RUNNING in the journal,
and Optuna's journal storage has no heartbeat of its own. So the worker training a trial touches
``<cell>/heartbeat`` every ``stale_after_s / 6`` seconds, and every worker, before asking for new
trials, adopts RUNNING trials whose heartbeat is older than ``stale_after_s``: the first to
create ``<cell>/adopted-<heartbeat time>`` (an exclusive create, so exactly one wins) rebuilds
the trial's cell from its journalled values, resumes it from its checkpoints and tells the result.
An adopter that dies in turn leaves a newer stale heartbeat, and the trial is adopted again.

    python sweep.py --search=sweeps/search_toy.py --workdir=runs/search-toy
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import threading
import time
from typing import Callable, Sequence

import ml_collections

from ebm_jax import config as config_lib
from ebm_jax import data as data_lib
from ebm_jax.run import reporting
from ebm_jax.run import rundir
from ebm_jax.study import sweep as sweep_lib

JOURNAL = "journal.log"
REPORT = "search.md"
HEARTBEAT = "heartbeat"
# What a search may tell Optuna: the evaluation records' numbers (evaluation.score_samples for
# images, the landscape rows' KLs for toys).
OBJECTIVES = ("fid", "kid", "inception_score", "class_entropy", "class_coverage",
              "confident_fraction", "min_class_fraction", "kl_smoothed", "kl_true_kde",
              "kl_true_model")


@dataclasses.dataclass(frozen=True)
class Float:
  """A real value in ``[low, high]``, searched on a log scale when ``log``."""
  low: float
  high: float
  log: bool = False


@dataclasses.dataclass(frozen=True)
class Choice:
  """One of ``values`` (a static value such as K makes its own vmapped groups)."""
  values: tuple


@dataclasses.dataclass(frozen=True)
class Search:
  """An adaptive study.

  Attributes:
    name: the Optuna study's name in the journal.
    base: recipe file (``configs/x.py[:variant]``) or a config.
    space: config key -> :class:`Float` or :class:`Choice`.
    fixed: overrides of every trial, applied before the searched values.
    num_trials: trials the journal should hold when the search is done.
    trials_per_group: trials asked for, and trained, at once.
    prune: let Optuna's median pruner end hopeless trials at intermediate evaluations.
    description: a paragraph for the top of ``search.md``.
    objective: the evaluation number told to Optuna (one of :data:`OBJECTIVES`); empty: the
      run's quality metric (KL(true * K || KDE_K) on toys, the classifier FID on images).
    maximize: higher ``objective`` is better (e.g. ``confident_fraction``).
    stale_after_s: a RUNNING trial whose heartbeat is older than this is an orphan of a dead
      worker and is adopted; longer than any pause of a live worker (its heartbeat is a
      thread, so compiles and evaluations do not pause it), plus the clock skew between
      machines sharing the workdir.
    recovery: what a trial does at a rejected update, as a study's cell
      (:data:`~ebm_jax.study.sweep.RECOVERY_POLICIES`: ``"stop"`` ends it, told as failed;
      ``"new_keys"`` recovers with new chain keys at the same learning rate).
  """
  name: str
  base: str | ml_collections.ConfigDict
  space: dict
  fixed: dict = dataclasses.field(default_factory=dict)
  num_trials: int = 16
  trials_per_group: int = 4
  prune: bool = True
  description: str = ""
  objective: str = ""
  maximize: bool = False
  stale_after_s: float = 900.0
  recovery: str = "stop"


def load_search(spec: str) -> Search:
  """``sweeps/x.py`` or ``sweeps/x.py:variant`` -> its :class:`Search`."""
  search = sweep_lib.load_spec(spec, "get_search", Search, "search.Search")
  validate(search)
  return search


def validate(search: Search) -> None:
  """One-line errors for a space that names unknown keys or empty ranges."""
  reference = config_lib.get_config()
  if search.num_trials < 1 or search.trials_per_group < 1:
    raise sweep_lib.SweepError("num_trials and trials_per_group must be positive")
  if search.objective and search.objective not in OBJECTIVES:
    raise sweep_lib.SweepError(f"objective {search.objective!r} is not an evaluation number; "
                               f"expected one of {', '.join(OBJECTIVES)}")
  if search.maximize and not search.objective:
    raise sweep_lib.SweepError("maximize needs an objective: the default quality metric is "
                               "lower-is-better")
  if not search.stale_after_s > 0:
    raise sweep_lib.SweepError(f"stale_after_s must be positive, got {search.stale_after_s}")
  for key in {**search.fixed, **search.space}:
    try:
      config_lib.get_value(reference, key)
    except config_lib.ConfigError as e:
      raise sweep_lib.SweepError(str(e)) from e
  for key, dist in search.space.items():
    if isinstance(dist, Float):
      if not dist.low < dist.high or (dist.log and dist.low <= 0):
        raise sweep_lib.SweepError(f"{key}: Float needs low < high (and low > 0 on a log scale)")
    elif isinstance(dist, Choice):
      if not dist.values:
        raise sweep_lib.SweepError(f"{key}: Choice needs at least one value")
    else:
      raise sweep_lib.SweepError(f"{key}: expected search.Float or search.Choice, got "
                                 f"{type(dist).__name__}")


def open_study(search: Search, workdir: str, seed: int | None = None):
  """The search's Optuna study in ``<workdir>/journal.log`` (created on first use)."""
  import optuna          # lazy: only the search path needs it
  from optuna.storages import JournalStorage
  from optuna.storages.journal import JournalFileBackend
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  os.makedirs(workdir, exist_ok=True)
  storage = JournalStorage(JournalFileBackend(os.path.join(workdir, JOURNAL)))
  pruner = (optuna.pruners.MedianPruner(n_startup_trials=search.trials_per_group,
                                        n_warmup_steps=0) if search.prune
            else optuna.pruners.NopPruner())
  return optuna.create_study(study_name=search.name, storage=storage, load_if_exists=True,
                             direction="maximize" if search.maximize else "minimize",
                             pruner=pruner,
                             sampler=optuna.samplers.TPESampler(seed=seed))


def suggest(trial, search: Search) -> dict:
  """The trial's values of the searched keys."""
  values = {}
  for key, dist in search.space.items():
    if isinstance(dist, Float):
      values[key] = trial.suggest_float(key, dist.low, dist.high, log=dist.log)
    else:
      values[key] = trial.suggest_categorical(key, list(dist.values))
  return values


def trial_cell(search: Search, number: int, values: dict, workdir: str) -> sweep_lib.Cell:
  """Trial ``number``'s cell: the base recipe, the fixed overrides, then the trial's values."""
  base = (search.base if isinstance(search.base, ml_collections.ConfigDict)
          else config_lib.load_recipe(search.base))
  config = config_lib.from_dict(base.to_dict())
  name = f"trial-{number:04d}"
  try:
    policy = sweep_lib.RECOVERY_POLICIES.get(search.recovery)
    if policy is None:
      raise config_lib.ConfigError(f"Search.recovery: expected one of "
                                   f"{tuple(sweep_lib.RECOVERY_POLICIES)}, got "
                                   f"{search.recovery!r}")
    for key, value in {**policy, **search.fixed, **values}.items():
      config_lib.set_value(config, key, value)
    if not data_lib.is_toy(config.data.name):
      config.eval.at_end = True          # the told value is the final samples' FID
    config_lib.validate(config)
  except config_lib.ConfigError as e:
    raise sweep_lib.SweepError(f"{name}: {e}") from e
  return sweep_lib.Cell(name, search.name, dict(values), config,
                        os.path.join(workdir, "cells", name))


class ReportToTrial:
  """A loop action: every new evaluation of a model is reported to its trial (its
  ``objective``, default the model's quality metric), and a trial the pruner gives up on ends
  at the next update. After a recovery rewound the model, its evaluations of the new
  trajectory replace the discarded ones at the same steps (:func:`report`)."""

  def __init__(self, trials: Sequence, objective: str = ""):
    self.trials, self.objective = list(trials), objective

  def __call__(self, tick, model, runner) -> None:
    if model.stop_reason:
      return
    key = self.objective or model.metric
    new = [(step, float(r[key])) for step, r in model.unseen(self) if r.get(key) is not None]
    if not new:
      return
    trial = self.trials[model.index]
    for step, value in new:
      report(trial, value, step)
    # A rewound model is judged once it is back where it was: until then the pruner would read
    # the last step reported, a value of the discarded trajectory.
    if step >= max(_reported(trial), default=0) and trial.should_prune():
      model.stop_reason = f"pruned by the search at step {step} ({key} {value:.4g})"


def _reported(trial) -> dict:
  """The intermediate values an Optuna trial holds ({} for a stand-in without that record)."""
  frozen = getattr(trial, "_cached_frozen_trial", None)
  return {} if frozen is None else frozen.intermediate_values


def report(trial, value: float, step: int) -> None:
  """``trial.report``, except that a value at a step already reported replaces it: Optuna
  ignores a second report of a step, so a model rewound by a recovery would be judged by the
  pruner on the trajectory it discarded. (A discarded step the model does not reach again
  keeps its value, and :class:`ReportToTrial` does not ask the pruner until the model is past
  it; Optuna's storage can overwrite an intermediate value but not remove it.)"""
  reported = _reported(trial)
  if step not in reported:
    trial.report(value, step)
  elif reported[step] != value:
    trial.storage.set_trial_intermediate_value(trial._trial_id, step, value)  # noqa: SLF001
    reported[step] = value


def final_quality(cell: sweep_lib.Cell, objective: str = "") -> float | None:
  """The cell's last measured ``objective`` (default its quality metric; None when it has
  none)."""
  metric = objective or reporting.quality_metric(cell.config)
  values = reporting.measurements(cell.workdir, (metric,))[metric]
  return float(values[-1]) if len(values) and math.isfinite(values[-1]) else None


def train_trials(cells: Sequence[sweep_lib.Cell], trials: Sequence,
                 log: Callable[[str], None], objective: str = "") -> list[tuple[str, float | None]]:
  """Trains the trials' cells in vmapped groups; returns (state, value) per cell: "complete",
  "pruned" or "fail" (diverged, or no quality measured). ``value`` is the last ``objective``
  (default the quality metric)."""
  by_name = dict(zip((c.name for c in cells), trials))
  for group in sweep_lib.split_by_checkpoint(sweep_lib.group_cells(cells)):
    report = ReportToTrial([by_name[c.name] for c in group], objective)
    sweep_lib.train_group(group, log, extra_actions=[report])
  results = []
  for cell in cells:
    status = sweep_lib.read_status(cell) or {}
    value = final_quality(cell, objective)
    if status.get("status") != "finished" or value is None:
      results.append(("fail", None))
    elif str(status.get("stopped_early", "")).startswith("pruned"):
      results.append(("pruned", value))
    else:
      results.append(("complete", value))
  return results


@contextlib.contextmanager
def heartbeat(cells: Sequence[sweep_lib.Cell], every_s: float):
  """Touches each cell's heartbeat file now and every ``every_s`` seconds until the block ends
  (a daemon thread, so a long compile or evaluation does not look like a dead worker)."""
  paths = []
  for cell in cells:
    os.makedirs(cell.workdir, exist_ok=True)
    paths.append(os.path.join(cell.workdir, HEARTBEAT))

  def touch():
    for path in paths:
      with open(path, "a"):
        pass
      os.utime(path)

  touch()
  done = threading.Event()

  def beat():
    while not done.wait(every_s):
      touch()

  thread = threading.Thread(target=beat, name="search-heartbeat", daemon=True)
  thread.start()
  try:
    yield
  finally:
    done.set()
    thread.join()


def last_sign_of_life(trial, workdir: str) -> float:
  """When the worker of a RUNNING trial last showed it was alive: its cell's heartbeat, or the
  trial's start when it died before making one."""
  path = os.path.join(workdir, "cells", f"trial-{trial.number:04d}", HEARTBEAT)
  try:
    return os.path.getmtime(path)
  except FileNotFoundError:
    return trial.datetime_start.timestamp()


def adopt_orphans(search: Search, study, workdir: str, log: Callable[[str], None]):
  """RUNNING trials of dead workers (heartbeat older than ``stale_after_s``) that this worker
  claimed, as ``(trial, cell)`` pairs; claiming is an exclusive create, so one worker wins."""
  import optuna
  adopted = []
  running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
  for frozen in running:
    alive = last_sign_of_life(frozen, workdir)
    if time.time() - alive < search.stale_after_s:
      continue
    values = {k: frozen.params[k] for k in search.space if k in frozen.params}
    try:
      cell = trial_cell(search, frozen.number, values, workdir)
    except sweep_lib.SweepError:
      continue        # its worker would have told it failed; ask() never leaves one running
    os.makedirs(cell.workdir, exist_ok=True)
    try:
      os.close(os.open(os.path.join(cell.workdir, f"adopted-{int(alive)}"),
                       os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
      continue        # another worker adopted it first
    # A Trial handle on the journalled trial, so the adopter reports and prunes as its owner.
    trial = optuna.trial.Trial(study, frozen._trial_id)
    log(f"trial {frozen.number}: adopted (its worker's heartbeat stopped "
        f"{time.time() - alive:.0f} s ago); resuming {cell.workdir}")
    adopted.append((trial, cell))
  return adopted


TrainFn = Callable[[Sequence[sweep_lib.Cell], Sequence, Callable[[str], None]],
                   list[tuple[str, float | None]]]


def run_search(search: Search, workdir: str, *, train: TrainFn | None = None,
               seed: int | None = None, log: Callable[[str], None] = print):
  """Asks, trains and tells rounds of ``trials_per_group`` trials until the journal holds
  ``num_trials``; returns the Optuna study. ``train`` replaces the training (tests pass a
  synthetic objective)."""
  import optuna
  if train is None:
    train = functools.partial(train_trials, objective=search.objective)
  study = open_study(search, workdir, seed)
  states = {"complete": optuna.trial.TrialState.COMPLETE,
            "pruned": optuna.trial.TrialState.PRUNED, "fail": optuna.trial.TrialState.FAIL}
  while True:
    # Orphans first (they count towards num_trials already); they train as a round of their
    # own, since they resume from checkpoints and fresh trials start from none.
    adopted = adopt_orphans(search, study, workdir, log)
    trials, cells = [t for t, _ in adopted], [c for _, c in adopted]
    remaining = search.num_trials - len(study.get_trials(deepcopy=False))
    if not adopted:
      if remaining <= 0:
        break
      for trial in [study.ask() for _ in range(min(search.trials_per_group, remaining))]:
        try:
          cells.append(trial_cell(search, trial.number, suggest(trial, search), workdir))
          trials.append(trial)
        except sweep_lib.SweepError as e:    # e.g. a sampled lr below the recipe's lr_min
          study.tell(trial, None, state=states["fail"])
          log(f"trial {trial.number}: fail, invalid config ({e})")
    if not trials:
      continue
    log(f"trials {', '.join(str(t.number) for t in trials)}: "
        + "; ".join(sweep_lib.short_name(c.overrides) for c in cells))
    with heartbeat(cells, search.stale_after_s / 6):
      results = train(cells, trials, log)
    for trial, cell, (state, value) in zip(trials, cells, results):
      study.tell(trial, value if state == "complete" else None, state=states[state])
      if state == "pruned":     # Optuna keeps a pruned trial's last reported value
        log(f"trial {trial.number}: pruned at {value:.4g}")
      else:
        log(f"trial {trial.number}: {state}" + (f" {value:.4g}" if value is not None else ""))
  write_report(search, study, workdir)
  return study


def write_report(search: Search, study, workdir: str) -> str:
  """``search.md``: every trial of the journal by quality, and the best one's values."""
  import optuna
  trials = study.get_trials(deepcopy=False)
  done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
  keys = list(search.space)
  told = f"`{search.objective}`" if search.objective else "the runs' quality metric"
  lines = [f"# Search `{search.name}`", ""]
  if search.description:
    lines += [search.description, ""]
  counts = {s.name.lower(): sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
  lines += [f"{len(trials)} trials in `{JOURNAL}`: " + ", ".join(
      f"{n} {name}" for name, n in counts.items() if n) + ". Each is a run directory "
      f"`cells/trial-NNNN/`; the value is {told}, {'higher' if search.maximize else 'lower'} "
      "is better.", ""]
  if done:
    best = (max if search.maximize else min)(done, key=lambda t: t.value)
    lines += [f"Best: trial {best.number}, value {best.value:.4g}, with " + ", ".join(
        f"`{k}={sweep_lib.format_value(best.params[k])}`" for k in keys if k in best.params)
        + ".", ""]
  lines += ["| trial | state | value | " + " | ".join(keys) + " |",
            "|---|---|---|" + "---|" * len(keys)]
  sign = -1 if search.maximize else 1
  order = sorted(trials, key=lambda t: (t.value is None,
                                        sign * t.value if t.value is not None else 0))
  for t in order:
    value = f"{t.value:.4g}" if t.value is not None else "-"
    lines.append(f"| {t.number} | {t.state.name.lower()} | {value} | " + " | ".join(
        sweep_lib.format_value(t.params[k]) if k in t.params else "-" for k in keys) + " |")
  path = os.path.join(workdir, REPORT)
  rundir.write_text(path, "\n".join(lines) + "\n")
  return path
