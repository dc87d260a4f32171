"""Hyperparameter studies: grids of config overrides, trained as vmapped groups of models.

A study is data: a sweep file (``sweeps/*.py``) whose ``get_sweep(variant)`` returns a
:class:`Sweep`, a list of :class:`Grid`s of config overrides on a base recipe. Every cell of a
grid is an ordinary run with its own workdir (``<study>/cells/<cell>``) and the usual outputs
(config.json, metrics.jsonl, diagnostics.npz, checkpoints, samples.npz, plots, eval.json), so
``sample.py``, ``python -m ebm_jax.evaluation score`` and ``sweep.py --cells=<cell>`` work on
any one cell alone.

Cells whose configs differ only in :data:`VMAPPABLE_KEYS` (values that change neither shapes nor
Python control flow) form one group and train together: their ``TrainState``s are stacked along
a leading model axis and one jitted ``jax.vmap`` of the ordinary train step updates all of
them, so M models cost one compile and one dispatch per update. The step already keeps a model's
last good state when its update is non-finite, so a model that diverges freezes while the
others go on; the group records where it diverged. Groups of one cell run through
:func:`ebm_jax.train.train_and_evaluate` unchanged.

Example::

    from ebm_jax.sweep import Grid, Sweep
    def get_sweep(variant=None):
      return Sweep(grids=[Grid("gmm", {"sampler.num_steps": (5, 20, 100),
                                       "optimizer.learning_rate": (1e-4, 1e-3)})],
                   roles={"K": "sampler.num_steps", "lr": "optimizer.learning_rate"})
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import itertools
import json
import os
import sys
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ebm_jax import checkpointing
from ebm_jax import config_validation
from ebm_jax import reporting
from ebm_jax import train

# Keys a group may vary between its models: each enters the train step only as an array value
# (never a shape, a Python branch or a static argument), so it can be a traced, vmapped scalar.
# The optimizer's learning rates qualify because schedules are built from them arithmetically.
VMAPPABLE_KEYS = (
    "seed",
    "optimizer.learning_rate", "optimizer.lr_min",
    "sampler.step_size", "sampler.noise_std",
    "loss.scale", "loss.l2_energy",
    "init.scale", "init.reinit_prob", "init.start_noise_std",
)
_INT_KEYS = ("seed",)

# Short names of common keys in cell names.
_ABBREVIATIONS = {
    "sampler.num_steps": "K", "optimizer.learning_rate": "lr", "sampler.noise_std": "noise",
    "model.spectral_norm": "sn", "sampler.step_size": "step", "model.n_f": "nf",
    "sampler.name": "sampler", "init.name": "init", "data.name": "data",
    "loss.l2_energy": "l2", "init.reinit_prob": "reinit", "optimizer.name": "opt",
}

STATUS_FILE = "sweep_cell.json"


class SweepError(ValueError):
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
  """
  grids: Sequence[Grid]
  roles: dict = dataclasses.field(default_factory=dict)
  description: str = ""


@dataclasses.dataclass(frozen=True)
class Cell:
  name: str
  grid: str
  overrides: dict            # swept key -> value
  config: ml_collections.ConfigDict
  workdir: str


# ----------------------------------------------------------------------------- loading


def _load_module(path: str, what: str):
  if not os.path.exists(path):
    raise SweepError(f"{what} {path} not found")
  spec = importlib.util.spec_from_file_location(f"ebm_jax_{what}_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(spec)
  root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  if root not in sys.path:   # recipes import ``configs.common``
    sys.path.insert(0, root)
  spec.loader.exec_module(module)
  return module


def load_recipe(spec: str) -> ml_collections.ConfigDict:
  """``configs/x.py`` or ``configs/x.py:variant`` -> its config."""
  path, _, variant = spec.partition(":")
  module = _load_module(path, "recipe")
  return module.get_config(variant) if variant else module.get_config()


def load_sweep(spec: str) -> Sweep:
  """``sweeps/x.py`` or ``sweeps/x.py:variant`` -> its :class:`Sweep`."""
  path, _, variant = spec.partition(":")
  module = _load_module(path, "sweep")
  if not hasattr(module, "get_sweep"):
    raise SweepError(f"{path} defines no get_sweep(variant=None)")
  try:
    sweep = module.get_sweep(variant or None)
  except ValueError as e:
    raise SweepError(f"{path}: {e}") from e
  if not isinstance(sweep, Sweep):
    raise SweepError(f"{path}: get_sweep() returned {type(sweep).__name__}, not sweep.Sweep")
  return sweep


# ----------------------------------------------------------------------------- cells


def get_key(config, key: str):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def set_key(config, key: str, value) -> None:
  *parents, leaf = key.split(".")
  node = config
  for part in parents:
    if part not in node:
      raise SweepError(f"{key}: unknown config key (see configs/default.py)")
    node = node[part]
  if leaf not in node:
    raise SweepError(f"{key}: unknown config key (see configs/default.py)")
  default = node[leaf]
  if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  try:
    node[leaf] = tuple(value) if isinstance(value, list) else value
  except TypeError as e:
    raise SweepError(f"{key}={value!r}: {type(default).__name__} expected ({e})") from e


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
  for grid in sweep.grids:
    if grid.name in grid_names:
      raise SweepError(f"two grids are named {grid.name!r}; grid names must be unique")
    grid_names.add(grid.name)
    spec = grid.base if grid.base is not None else base_spec
    if not spec:
      raise SweepError(f"grid {grid.name!r} names no base recipe and no --config was given")
    base = spec if isinstance(spec, ml_collections.ConfigDict) else load_recipe(spec)
    if not grid.axes:
      raise SweepError(f"grid {grid.name!r} has no axes")
    for key, values in grid.axes.items():
      if not isinstance(values, (tuple, list)) or not values:
        raise SweepError(f"grid {grid.name!r}: {key} needs a non-empty tuple of values")
    keys = list(grid.axes)
    for values in itertools.product(*(grid.axes[k] for k in keys)):
      overrides = dict(zip(keys, values))
      config = ml_collections.ConfigDict(base.to_dict())
      for key, value in {**grid.fixed, **overrides, **(extra_overrides or {})}.items():
        set_key(config, key, value)
      config.data.classes = tuple(config.data.classes)
      name = cell_name(grid.name, overrides)
      try:
        config_validation.validate(config)
      except config_validation.ConfigError as e:
        raise SweepError(f"cell {name}: {e}") from e
      if name in seen:
        raise SweepError(f"two cells are named {name}; give the grids different names")
      seen[name] = True
      cells.append(Cell(name, grid.name, overrides, config,
                        os.path.join(workdir, "cells", name)))
  return cells


def _group_signature(config) -> str:
  c = json.loads(json.dumps(config.to_dict(), default=str))
  for key in VMAPPABLE_KEYS:
    *parents, leaf = key.split(".")
    node = c
    for part in parents:
      node = node[part]
    node.pop(leaf)
  return hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()[:12]


def group_cells(cells: Sequence[Cell], max_models: int = 0) -> list[list[Cell]]:
  """Splits cells into groups that can share one vmapped train step (same config up to
  :data:`VMAPPABLE_KEYS`), in first-appearance order; ``max_models`` > 0 caps a group's size."""
  groups: dict[str, list[Cell]] = {}
  for cell in cells:
    groups.setdefault(_group_signature(cell.config), []).append(cell)
  out = []
  for members in groups.values():
    step = max_models if max_models > 0 else len(members)
    out += [members[i:i + step] for i in range(0, len(members), step)]
  return out


def varying_keys(cells: Sequence[Cell]) -> list[str]:
  return [k for k in VMAPPABLE_KEYS
          if len({repr(get_key(c.config, k)) for c in cells}) > 1]


def with_values(config, values: dict) -> ml_collections.ConfigDict:
  """A copy of ``config`` with ``values`` (key -> possibly traced scalar) substituted."""
  out = ml_collections.ConfigDict(config.to_dict(), type_safe=False)
  for key, value in values.items():
    *parents, leaf = key.split(".")
    node = out
    for part in parents:
      node = node[part]
    node[leaf] = value
  out.data.classes = tuple(out.data.classes)
  return out


# ----------------------------------------------------------------------------- status files


def read_status(cell: Cell) -> dict | None:
  path = os.path.join(cell.workdir, STATUS_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_status(cell: Cell, **fields) -> None:
  os.makedirs(cell.workdir, exist_ok=True)
  record = {"cell": cell.name, "grid": cell.grid,
            "overrides": {k: v for k, v in cell.overrides.items()}, **fields}
  path = os.path.join(cell.workdir, STATUS_FILE)
  with open(path + ".tmp", "w") as f:
    json.dump(record, f, indent=2, default=str)
  os.replace(path + ".tmp", path)


# ----------------------------------------------------------------------------- training


class GroupStep:
  """The jitted, vmapped init and train step of a group of models.

  ``hparams`` maps each varying key to a ``[M]`` array; model ``i`` is the ordinary run of
  ``config`` with ``hparams[k][i]`` substituted, built by the same ``make_components`` /
  ``init_state`` / ``make_train_step`` as a single run.
  """

  def __init__(self, config, images: np.ndarray | None, keys: Sequence[str]):
    self.config = config
    self.keys = list(keys) or ["seed"]   # vmap needs one batched input, also for M = 1

    def build(h):
      cfg = with_values(config, h)
      return cfg, train.make_components(cfg, images)

    def init_one(h):
      cfg, comps = build(h)
      return train.init_state(cfg, comps)

    def step_one(h, state, images_dev):
      cfg, comps = build(h)
      return train.make_train_step(cfg, comps)(state, images_dev)

    self.init = jax.jit(jax.vmap(init_one))
    self.step = jax.jit(jax.vmap(step_one, in_axes=(0, 0, None)), donate_argnums=1)

  def hparams(self, configs: Sequence[Any]) -> dict:
    return {k: np.asarray([get_key(c, k) for c in configs],
                          np.int32 if k in _INT_KEYS else np.float32) for k in self.keys}


def model_mesh(num_models: int):
  """A mesh whose ``models`` axis shards the group's models over the devices when their
  number divides evenly (e.g. two CPU devices); None otherwise."""
  devices = jax.devices()
  if len(devices) < 2 or num_models % len(devices):
    return None
  return jax.sharding.Mesh(np.asarray(devices), ("models",))


def unstack(tree, i: int):
  return jax.tree.map(lambda a: a[i], tree)


def stack(trees: Sequence[Any]):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _restore_group(cells, ckpts, template_states, log) -> tuple[Any, int]:
  """The group's states at the newest checkpoint step all its cells hold (0: fresh)."""
  steps = [set(c.all_steps()) for c in ckpts]
  if not any(steps):
    return template_states, 0
  common = set.intersection(*steps)
  if not common:
    raise checkpointing.CheckpointError(
        "the cells of group " + ", ".join(c.name for c in cells) + " hold checkpoints of "
        "different steps; resume them one by one with sweep.py --cells=<cell>")
  step = max(common)
  restored = [ckpt.restore(unstack(template_states, i), step=step, log=log)
              for i, ckpt in enumerate(ckpts)]
  return stack(restored), step


def train_group(cells: Sequence[Cell], log: Callable[[str], None]) -> None:
  """Trains a group of cells as one vmapped stack of models, writing each cell's outputs."""
  config = cells[0].config
  m = len(cells)
  logs = [functools.partial(reporting.log_line, c.workdir) for c in cells]
  for cell in cells:
    os.makedirs(cell.workdir, exist_ok=True)
  images = train.load_training_images(config, log)
  mesh = model_mesh(m)
  images_dev = train.place_dataset(images, mesh)    # replicated: every model draws from all
  comps = [train.make_components(c.config, images) for c in cells]
  group = GroupStep(config, images, varying_keys(cells))
  hparams = group.hparams([c.config for c in cells])
  sharding = None
  if mesh is not None:
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("models"))
    hparams = jax.device_put(hparams, sharding)
  ckpts = [checkpointing.Checkpointer(c.workdir, c.config.keep_checkpoints,
                                      c.config.checkpoint_dir) for c in cells]
  states, start = _restore_group(cells, ckpts, group.init(hparams), log)
  for cell, cell_log in zip(cells, logs):
    reporting.write_config(cell.workdir, cell.config, start, cell_log)
  if sharding is not None:
    states = jax.device_put(states, sharding)
  reports = [reporting.RunReporter(c.config, c.workdir, start, comps[i].data.toy)
             for i, c in enumerate(cells)]
  log(f"group of {m} models ({', '.join(group.keys)} vmapped): " + ", ".join(
      c.name for c in cells) + f"; from step {start} to {config.num_train_steps}")
  diverged: dict[int, int] = {}
  # steps/s leaves out the first step (compilation) and the time spent writing outputs
  # (figures, landscapes, checkpoints).
  t0, t_outputs, done_steps, t_compiled = time.perf_counter(), 0.0, 0, None
  for step in range(start + 1, config.num_train_steps + 1):
    states, metrics, batch_images = group.step(hparams, states, images_dev)
    metrics = jax.device_get(metrics)
    done_steps += 1
    t_step = time.perf_counter()
    if t_compiled is None:
      t_compiled = t_step
    for i, cell in enumerate(cells):
      if i in diverged:
        continue
      row = {k: v[i] for k, v in metrics.items()}
      if not row["finite"]:
        diverged[i] = step
        state_i = unstack(states, i)
        train.save_last_good(cell.config, comps[i], state_i, images_dev, cell.workdir,
                             ckpts[i], step)
        write_status(cell, status="diverged", diverged_at_step=step,
                     last_good_step=int(state_i.step), models_in_group=m)
        logs[i](f"diverged at step {step} (non-finite loss or parameters, or |loss| above "
                f"divergence_threshold); last good state (step {int(state_i.step)}) "
                "checkpointed; the other models of its group go on")
        continue
      reports[i].record(step, row)
      final = step == config.num_train_steps
      if final or train.every(config.log_every_steps, step):
        train.log_progress(cell.config, comps[i], reports[i], unstack(states, i), images_dev,
                           step, unstack(batch_images, i))
      if train.every(config.checkpoint_every_steps, step):
        ckpts[i].save(step, unstack(states, i))
    t_outputs += time.perf_counter() - t_step
  elapsed = time.perf_counter() - t0
  training = (time.perf_counter() - t_compiled - t_outputs) if t_compiled else 0.0
  steps_per_sec = (done_steps - 1) / training if training > 0 else 0.0
  for i, cell in enumerate(cells):
    if i in diverged:
      ckpts[i].close()
      continue
    state_i = unstack(states, i)
    ckpts[i].save(int(state_i.step), state_i)
    train.finish_run(cell.config, comps[i], state_i, images_dev, cell.workdir, logs[i])
    ckpts[i].close()
    write_status(cell, status="finished", final_step=int(state_i.step), models_in_group=m,
                 group_wall_time_s=elapsed, group_steps_per_sec=steps_per_sec)
  log(f"group done: {done_steps} steps in {elapsed:.1f} s ({steps_per_sec:.2f} steps/s for "
      f"{m} models, compilation and outputs excluded), {len(diverged)} diverged")


def train_single(cell: Cell, log: Callable[[str], None]) -> None:
  """A group of one: the ordinary training run."""
  t0 = time.perf_counter()
  try:
    state = train.train_and_evaluate(cell.config, cell.workdir)
  except train.TrainingDiverged as e:
    write_status(cell, status="diverged", diverged_at_step=e.step, models_in_group=1)
    log(f"{cell.name}: diverged at step {e.step}")
    return
  write_status(cell, status="finished", final_step=int(state.step), models_in_group=1,
               group_wall_time_s=time.perf_counter() - t0)


def run_sweep(sweep: Sweep, base_spec: str | None, workdir: str, *,
              extra_overrides: dict | None = None, only: Sequence[str] = (),
              max_models: int = 0, log: Callable[[str], None] = print) -> list[Cell]:
  """Trains every unfinished cell (finished and diverged ones are skipped) and returns all."""
  cells = expand(sweep, base_spec, workdir, extra_overrides)
  train_cells(cells, only=only, max_models=max_models, log=log)
  return cells


def train_cells(cells: Sequence[Cell], *, only: Sequence[str] = (), max_models: int = 0,
                log: Callable[[str], None] = print) -> None:
  """Trains the unfinished ``cells`` (those named in ``only``, if given) in vmapped groups."""
  if only:
    unknown = set(only) - {c.name for c in cells}
    if unknown:
      raise SweepError(f"--cells names unknown cells: {', '.join(sorted(unknown))}")
  todo = [c for c in cells if (not only or c.name in only) and read_status(c) is None]
  groups = group_cells(todo, max_models)
  done = sum(read_status(c) is not None for c in cells)
  log(f"{len(cells)} cells, {done} already done; {len(todo)} to train now in "
      f"{len(groups)} group(s) of sizes {[len(g) for g in groups]}")
  for i, members in enumerate(groups):
    log(f"group {i + 1}/{len(groups)}")
    if len(members) == 1:
      train_single(members[0], log)
    else:
      train_group(members, log)
