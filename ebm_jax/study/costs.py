"""What one update of each static setting of a study costs, measured in one interleaved run.

A study's cells train by updates (a deterministic budget); its equal-wall-clock comparisons
(claim 3's time to a quality target, the report's equal-wall-clock table) read time as
``updates x seconds per update`` of the cell's setting, with the seconds measured here: one
model of each static setting (K, spectral norm, ...: the group signature) alone, every setting
timed in turn within each repeat, medians over repeats. A group's own clock is not used: it
depends on what else the machine did while that group ran, and on the group's size.

``python -m ebm_jax.study.costs --sweep=sweeps/x.py --workdir=runs/study-x`` writes
``<workdir>/costs.json``; ``sweep.py`` measures it before its report when it is missing.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Sequence

from ebm_jax.run import rundir
from ebm_jax.study import sweep as sweep_lib

COSTS = "costs.json"


def _stepper(cell: sweep_lib.Cell, images, updates: int) -> Callable[[], None]:
  """A callable that runs ``updates`` updates of one model of ``cell``'s setting and waits for
  them (compiled and warmed up once here)."""
  import jax

  from ebm_jax.run import runner as runner_lib
  from ebm_jax import spec as spec_lib
  run = runner_lib.Runner(spec_lib.from_config(cell.config), images)
  hp = run.hparams([cell.config])
  states = [run.init(hp)]

  def advance() -> None:
    state, metrics = states[0], None
    for _ in range(updates):
      state, metrics, _ = run.step(state, hp, run.images, run.all_active)
    jax.block_until_ready(metrics)
    states[0] = state

  advance()
  return advance


def measure(cells: Sequence[sweep_lib.Cell], *, repeats: int = 5, updates: int = 10,
            log: Callable[[str], None] = print) -> dict:
  """Seconds per update of one model of each static setting among ``cells``, trained alone
  (the cost of the setting itself, not of the vmapped group it happened to train in), on the
  machine this runs on: run it where the cells trained."""
  if repeats < 1 or updates < 1:
    raise ValueError(f"study_costs: repeats and updates must be >= 1, got {repeats}, {updates}")
  from ebm_jax.study import leaderboard
  from ebm_jax.run import runner as runner_lib
  from ebm_jax import spec as spec_lib
  settings: dict[str, sweep_lib.Cell] = {}
  for cell in cells:
    settings.setdefault(sweep_lib.group_signature(cell.config), cell)
  images: dict = {}
  steppers = {}
  for signature, cell in settings.items():
    data = spec_lib.from_config(cell.config).data
    key = (data.name, data.image_size, tuple(data.classes), data.dir)
    if key not in images:
      images[key] = runner_lib.load_training_images(spec_lib.from_config(cell.config), log)
    steppers[signature] = _stepper(cell, images[key], updates)
  times: dict[str, list[float]] = {signature: [] for signature in settings}
  for _ in range(repeats):          # interleaved: every setting once per repeat
    for signature, advance in steppers.items():
      start = time.perf_counter()
      advance()
      times[signature].append((time.perf_counter() - start) / updates)
  costs = {"machine": leaderboard.machine(), "repeats": repeats, "updates_per_repeat": updates,
           "settings": {s: {"cell": settings[s].name,
                            "seconds_per_update": statistics.median(times[s])}
                        for s in settings}}
  for s, entry in costs["settings"].items():
    log(f"cost per update of {entry['cell']}'s setting: {entry['seconds_per_update']:.4g} s")
  return costs


def write(workdir: str, costs: dict) -> str:
  """``<workdir>/costs.json``; an earlier one is set aside, never overwritten."""
  path = os.path.join(workdir, COSTS)
  rundir.set_aside(path, time.strftime("before_%Y%m%d-%H%M%S"))
  rundir.write_json(path, costs)
  return path


def read(workdir: str) -> dict | None:
  return rundir.read_json(os.path.join(workdir, COSTS))


def seconds_per_update(costs: dict | None, config) -> float | None:
  """The measured cost of ``config``'s setting, or None (no costs, or not measured)."""
  if not costs:
    return None
  entry = costs["settings"].get(sweep_lib.group_signature(config))
  return None if entry is None else float(entry["seconds_per_update"])


def run_command(flags) -> None:
  sweep = sweep_lib.load_sweep(flags.sweep)
  cells = sweep_lib.expand(sweep, flags.config, flags.workdir)
  path = write(flags.workdir, measure(cells, repeats=flags.repeats, updates=flags.updates))
  print(f"wrote {path}")


def main(argv) -> None:
  from absl import flags

  from ebm_jax import cli
  del argv
  cli.call(run_command, flags.FLAGS)


if __name__ == "__main__":
  from absl import app
  from absl import flags
  flags.DEFINE_string("sweep", None, "The study's sweep file (path[:variant]).")
  flags.DEFINE_string("config", None, "Base recipe of grids that name none.")
  flags.DEFINE_string("workdir", None, "The study directory (costs.json goes there).")
  flags.DEFINE_integer("repeats", 5, "Interleaved repeats (the median is kept).")
  flags.DEFINE_integer("updates", 10, "Updates per timed repeat.")
  flags.mark_flags_as_required(["sweep", "workdir"])
  app.run(main)
