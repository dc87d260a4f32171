"""Hyperparameter studies: grids of config overrides, trained as vmapped groups of models.

A study is data: a sweep file (``sweeps/*.py``) whose ``get_sweep(variant)`` returns a
:class:`Sweep`, a list of :class:`Grid`s of config overrides on a base recipe. Every cell of a
grid is an ordinary run with its own workdir (``<study>/cells/<cell>``) and the usual outputs
(config.json, metrics.jsonl, diagnostics.npz, checkpoints, samples.npz, plots, eval.json), so
``sample.py``, ``python -m ebm_jax.run.evaluate score`` and ``sweep.py --cells=<cell>`` work on
any one cell alone.

Cells whose configs differ only in :data:`VMAPPABLE_KEYS` (values that change neither shapes nor
Python control flow) form one group and train together: their ``TrainState``s are stacked along
a leading model axis and one jitted ``jax.vmap`` of the ordinary train step updates all of
them, so M models cost one compile and one dispatch per update. Groups of any size, one cell
included, train in the one loop (:func:`ebm_jax.run.loop.train`), with every periodic output of a
single run; a model that diverges keeps its last good state while the others go on, and its
cell records where it diverged.

Example::

    from ebm_jax.study.sweep import Grid, Sweep
    def get_sweep(variant=None):
      return Sweep(grids=[Grid("gmm", {"sampler.num_steps": (5, 20, 100),
                                       "optimizer.learning_rate": (1e-4, 1e-3)})],
                   roles={"K": "sampler.num_steps", "lr": "optimizer.learning_rate"})
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from typing import Callable, Sequence

import ml_collections

from ebm_jax.run import actions as actions_lib
from ebm_jax.run import checkpointing
from ebm_jax import config as config_lib
from ebm_jax import hparams
from ebm_jax.run import loop
from ebm_jax.run import rundir
from ebm_jax import spec as spec_lib
from ebm_jax.hparams import VMAPPABLE_KEYS
from ebm_jax import errors

# Short names of common keys in cell names.
_ABBREVIATIONS = {
    "sampler.num_steps": "K", "optimizer.learning_rate": "lr", "sampler.noise_std": "noise",
    "model.spectral_norm": "sn", "sampler.step_size": "step", "model.n_f": "nf",
    "sampler.name": "sampler", "init.name": "init", "data.name": "data",
    "loss.l2_energy": "l2", "init.reinit_prob": "reinit", "optimizer.name": "opt",
}
# The replicate axis: cells that differ only in it are one *setting*, and the report averages
# over it (with intervals) instead of treating it as a factor.
SEED_KEY = "seed"

STATUS_FILE = "sweep_cell.json"

# What a study's cell does when an update is rejected (diverged or ran away). A single run
# recovers at a smaller learning rate (recovery.lr_factor); in a study that would change the
# treatment the study compares (a recovered K 5 cell trains on at half the K 20 cells' lr), so a
# cell either ends there, counted as unstable, or recovers with new chain keys only.
RECOVERY_POLICIES = {
    "stop": {"recovery.max_retries": 0},      # ends as "diverged at step N"
    "new_keys": {"recovery.lr_factor": 1.0},  # back to its checkpoint, new chains, same lr
}


class SweepError(errors.Error, ValueError):
  """A sweep file or its cells are invalid (one-line message)."""


@dataclasses.dataclass(frozen=True)
class Grid:
  """The cartesian product of ``axes`` (config key -> values) on a base recipe.

  Attributes:
    name: prefix of the cell names (e.g. the dataset), unique within a sweep.
    axes: swept keys and their values, in the order cells are named and heat maps laid out.
    base: recipe file (``configs/x.py`` or ``configs/x.py:variant``) or a config; ``None`` =
      the ``--config`` given to ``sweep.py``.
    fixed: overrides applied to every cell before the swept values.
  """
  name: str
  axes: dict
  base: str | ml_collections.ConfigDict | None = None
  fixed: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Sweep:
  """A study: its grids, and which swept keys play which role in the report.

  Attributes:
    grids: the grids; cells of all grids share the study directory.
    roles: report roles -> config keys: ``K`` (sampler steps), ``lr`` (learning rate),
      ``sn`` (spectral norm), ``noise`` (sampler noise; 0 = noiseless gradient descent).
    description: a paragraph for the top of ``report.md``.
    seeds: replicates of every setting (the ``seed`` key, appended as the last axis of every
      grid; vmappable, so a setting's replicates train in one group). ``()``: one replicate
      with the recipe's seed, and cell names without a seed part.
    recovery: a :data:`RECOVERY_POLICIES` name: ``"stop"`` (a rejected update ends the cell
      as diverged) or ``"new_keys"`` (it recovers with new chain keys, its learning rate
      unchanged); a grid's ``fixed`` or axes may still set ``recovery.*`` themselves.
    replicate_groups: each seed's cells train in vmapped groups of their own, so a replicate
      is a whole group (its compiled program, its turn on the machine), not a model beside its
      siblings; the report's intervals over seeds then carry the group-to-group variance.
      False: a setting's seeds share a group (cheaper; the seeds are then not independent).
    shuffle_groups: groups train in a seeded random order, so machine load over time does not
      line up with a factor.
  """
  grids: Sequence[Grid]
  roles: dict = dataclasses.field(default_factory=dict)
  description: str = ""
  seeds: Sequence[int] = ()
  recovery: str = "stop"
  replicate_groups: bool = True
  shuffle_groups: bool = True


@dataclasses.dataclass(frozen=True)
class Cell:
  name: str
  grid: str
  overrides: dict            # swept key -> value (the seed included, when replicated)
  config: ml_collections.ConfigDict
  workdir: str
  group_key: str = ""        # cells with different keys never share a group (a replicate)

  @property
  def setting(self) -> str:
    """The cell's name without its seed: the replicates of one setting share it."""
    factors = {k: v for k, v in self.overrides.items() if k != SEED_KEY}
    return cell_name(self.grid, factors) if factors else self.grid

  @property
  def factors(self) -> dict:
    return {k: v for k, v in self.overrides.items() if k != SEED_KEY}


# ----------------------------------------------------------------------------- loading


def load_spec(spec: str, getter: str, kind: type, kind_name: str):
  """``path.py`` or ``path.py:variant`` -> what its ``getter(variant)`` returns, checked to be a
  ``kind`` (a sweep file's ``get_sweep``, a search file's ``get_search``)."""
  path, _, variant = spec.partition(":")
  try:
    module = config_lib.load_module(path, getter.removeprefix("get_"))
  except config_lib.ConfigError as e:
    raise SweepError(str(e)) from e
  if not hasattr(module, getter):
    raise SweepError(f"{path} defines no {getter}(variant=None)")
  try:
    value = getattr(module, getter)(variant or None)
  except ValueError as e:
    raise SweepError(f"{path}: {e}") from e
  if not isinstance(value, kind):
    raise SweepError(f"{path}: {getter}() returned {type(value).__name__}, not {kind_name}")
  return value


def load_sweep(spec: str) -> Sweep:
  """``sweeps/x.py`` or ``sweeps/x.py:variant`` -> its :class:`Sweep`."""
  return load_spec(spec, "get_sweep", Sweep, "sweep.Sweep")


# ----------------------------------------------------------------------------- cells


def format_value(value) -> str:
  if isinstance(value, bool):
    return "on" if value else "off"
  if isinstance(value, float):
    return f"{value:g}"
  return str(value)


def short_name(values: dict) -> str:
  """``{"sampler.num_steps": 5, "model.spectral_norm": True}`` -> ``"K5-snon"``."""
  return "-".join(f"{_ABBREVIATIONS.get(k, k.split('.')[-1])}{format_value(v)}"
                  for k, v in values.items())


def cell_name(grid: str, overrides: dict) -> str:
  return f"{grid}-{short_name(overrides)}".replace("/", "_").replace(" ", "")


def expand(sweep: Sweep, base_spec: str | None, workdir: str,
           extra_overrides: dict | None = None) -> list[Cell]:
  """Every cell of every grid, validated. ``extra_overrides`` apply to all cells (command line)."""
  cells, seen, grid_names = [], {}, set()
  reference = config_lib.get_config()
  if sweep.recovery not in RECOVERY_POLICIES:
    raise SweepError(f"Sweep.recovery: expected one of {tuple(RECOVERY_POLICIES)}, got "
                     f"{sweep.recovery!r}")
  policy = RECOVERY_POLICIES[sweep.recovery]
  for key in extra_overrides or {}:   # overrides of every cell: named once, not per cell
    try:
      config_lib.get_value(reference, key)
    except config_lib.ConfigError as e:
      raise SweepError(str(e)) from e
  for grid in sweep.grids:
    if grid.name in grid_names:
      raise SweepError(f"two grids are named {grid.name!r}; grid names must be unique")
    grid_names.add(grid.name)
    spec = grid.base if grid.base is not None else base_spec
    if not spec:
      raise SweepError(f"grid {grid.name!r} names no base recipe and no --config was given")
    try:
      base = (spec if isinstance(spec, ml_collections.ConfigDict)
              else config_lib.load_recipe(spec))
    except config_lib.ConfigError as e:
      raise SweepError(str(e)) from e
    if not grid.axes:
      raise SweepError(f"grid {grid.name!r} has no axes")
    for key, values in grid.axes.items():
      if not isinstance(values, (tuple, list)) or not values:
        raise SweepError(f"grid {grid.name!r}: {key} needs a non-empty tuple of values")
    if sweep.seeds and SEED_KEY in grid.axes:
      raise SweepError(f"grid {grid.name!r} sweeps 'seed' and the sweep has seeds=; use one")
    axes = {**grid.axes, **({SEED_KEY: tuple(sweep.seeds)} if sweep.seeds else {})}
    keys = list(axes)
    for values in itertools.product(*(axes[k] for k in keys)):
      overrides = dict(zip(keys, values))
      config = config_lib.from_dict(base.to_dict())
      name = cell_name(grid.name, overrides)
      try:
        for key, value in {**policy, **grid.fixed, **overrides,
                           **(extra_overrides or {})}.items():
          config_lib.set_value(config, key, value)
        config_lib.validate(config)
      except config_lib.ConfigError as e:
        raise SweepError(f"cell {name}: {e}") from e
      if name in seen:
        raise SweepError(f"two cells are named {name}; give the grids different names")
      seen[name] = True
      group_key = (f"seed{overrides[SEED_KEY]}" if sweep.replicate_groups
                   and SEED_KEY in overrides else "")
      cells.append(Cell(name, grid.name, overrides, config,
                        os.path.join(workdir, "cells", name), group_key))
  return cells


def group_signature(config) -> str:
  """A hash of the config with every vmappable value set to its default."""
  c, reference = config.copy_and_resolve_references(), config_lib.get_config()
  for key in VMAPPABLE_KEYS:
    config_lib.set_value(c, key, config_lib.get_value(reference, key))
  text = json.dumps(c.to_dict(), sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:12]


def group_cells(cells: Sequence[Cell], max_models: int = 0,
                shuffle_seed: int | None = None) -> list[list[Cell]]:
  """Splits cells into groups that can share one vmapped train step (same config up to
  :data:`VMAPPABLE_KEYS`, same ``group_key``), in first-appearance order or, with
  ``shuffle_seed``, a random order drawn from it; ``max_models`` > 0 caps a group's size."""
  groups: dict[tuple, list[Cell]] = {}
  for cell in cells:
    groups.setdefault((group_signature(cell.config), cell.group_key), []).append(cell)
  out = []
  for members in groups.values():
    step = max_models if max_models > 0 else len(members)
    out += [members[i:i + step] for i in range(0, len(members), step)]
  if shuffle_seed is not None:
    import random
    random.Random(shuffle_seed).shuffle(out)
  return out


def split_by_checkpoint(groups: Sequence[Sequence[Cell]]) -> list[list[Cell]]:
  """Splits groups so that the models of each resume from the same step (a stacked group
  restores one common step): fresh cells hold no checkpoint, an interrupted cell or a search's
  adopted orphan its own."""
  out = []
  for group in groups:
    by_step: dict = {}
    for cell in group:
      step = None
      if checkpointing.may_hold_checkpoints(cell.workdir, cell.config.checkpoint_dir):
        with checkpointing.Checkpointer(cell.workdir, cell.config.keep_checkpoints,
                                        cell.config.checkpoint_dir) as ckpt:
          step = ckpt.latest_step()
      by_step.setdefault(step, []).append(cell)
    out.extend(by_step.values())
  return out


def varying_keys(cells: Sequence[Cell]) -> list[str]:
  return hparams.varying_keys([c.config for c in cells])


# ----------------------------------------------------------------------------- status files


def read_status(cell: Cell) -> dict | None:
  return rundir.read_json(os.path.join(cell.workdir, STATUS_FILE))


def finished_cells(sweep_spec: str, study: str | None, needs) -> list[Cell]:
  """The finished cells of the sweep file ``sweep_spec`` in the study directory ``study`` for
  which ``needs(cell)`` is true (e.g. no record yet): what an afterwards command measures."""
  if not study:
    raise ValueError("--sweep needs --study (the study directory)")
  cells = expand(load_sweep(sweep_spec), None, study)
  return [c for c in cells if (read_status(c) or {}).get("status") == "finished" and needs(c)]


def write_status(cell: Cell, **fields) -> None:
  record = {"cell": cell.name, "grid": cell.grid, "overrides": dict(cell.overrides), **fields}
  rundir.write_json(os.path.join(cell.workdir, STATUS_FILE), record)


# ----------------------------------------------------------------------------- training


def train_group(cells: Sequence[Cell], log: Callable[[str], None],
                extra_actions: Sequence[Callable] = ()) -> None:
  """Trains a group of cells (one or more) as one stacked group in the one loop, writing each
  cell's run outputs and, as each model ends, its status file. ``extra_actions`` run after the
  default periodic actions at every update (e.g. a search's pruning)."""
  m = len(cells)

  def on_end(i: int, outcome: loop.Outcome) -> None:
    if outcome.status == "diverged":
      write_status(cells[i], status="diverged", diverged_at_step=outcome.diverged_at,
                   last_good_step=outcome.step, models_in_group=m,
                   recoveries=outcome.recoveries, train_time_s=outcome.train_time_s)
      log(f"{cells[i].name}: diverged at step {outcome.diverged_at}")
    else:
      write_status(cells[i], status="finished", final_step=outcome.step, models_in_group=m,
                   recoveries=outcome.recoveries, group_wall_time_s=outcome.wall_time_s,
                   train_time_s=outcome.train_time_s,
                   group_steps_per_sec=outcome.steps_per_sec, stopped_early=outcome.cause)

  varying = ", ".join(varying_keys(cells)) or "no key"
  log(f"group of {m} model{'s' if m > 1 else ''} ({varying} vmapped): "
      + ", ".join(c.name for c in cells))
  actions = (actions_lib.default_actions(spec_lib.from_config(cells[0].config))
             + list(extra_actions))
  loop.train([loop.Run(c.config, c.workdir) for c in cells], log=log, on_end=on_end,
             actions=actions)


def run_sweep(sweep: Sweep, base_spec: str | None, workdir: str, *,
              extra_overrides: dict | None = None, only: Sequence[str] = (),
              max_models: int = 0, log: Callable[[str], None] = print) -> list[Cell]:
  """Trains every unfinished cell (finished and diverged ones are skipped) and returns all."""
  cells = expand(sweep, base_spec, workdir, extra_overrides)
  train_cells(cells, only=only, max_models=max_models, log=log,
              shuffle_seed=0 if sweep.shuffle_groups else None)
  return cells


def train_cells(cells: Sequence[Cell], *, only: Sequence[str] = (), max_models: int = 0,
                log: Callable[[str], None] = print, shuffle_seed: int | None = None) -> None:
  """Trains the unfinished ``cells`` (those named in ``only``, if given) in vmapped groups (in
  a random order drawn from ``shuffle_seed``, if given)."""
  if only:
    unknown = set(only) - {c.name for c in cells}
    if unknown:
      raise SweepError(f"--cells names unknown cells: {', '.join(sorted(unknown))}")
  todo = [c for c in cells if (not only or c.name in only) and read_status(c) is None]
  groups = split_by_checkpoint(group_cells(todo, max_models, shuffle_seed))
  done = sum(read_status(c) is not None for c in cells)
  log(f"{len(cells)} cells, {done} already done; {len(todo)} to train now in "
      f"{len(groups)} group(s) of sizes {[len(g) for g in groups]}")
  for i, members in enumerate(groups):
    log(f"group {i + 1}/{len(groups)}")
    train_group(members, log)
