"""Runs a hyperparameter study and writes its report.

    python sweep.py --config=configs/toy_gmm.py --sweep=sweeps/thesis_claims_toy.py \
        --workdir=runs/study

Every cell of the sweep is an ordinary run under ``<workdir>/cells/<cell>``; cells that differ
only in vmappable values (seeds, learning rates, step sizes, noise scales, ...) train together
as one vmapped group. Rerunning the command skips finished (and diverged) cells and resumes
interrupted ones. At the end ``<workdir>`` holds ``results.csv``, ``plots/`` and ``report.md``.

    --cells=a,b         train only these cells (e.g. to resume or extend one alone)
    --report_only       rebuild results.csv, plots and report.md from what has run
    --set key=value     override a config key in every cell (repeatable)
"""

import ast
import os
import sys

from absl import app
from absl import flags
from absl import logging

from ebm_jax import cli

_CONFIG = flags.DEFINE_string(
    "config", None, "Base recipe for grids that name none, e.g. configs/toy_gmm.py[:variant].")
_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file, e.g. sweeps/thesis_claims_toy.py[:gpu].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Study directory (default runs/study-<sweep>).")
_CELLS = flags.DEFINE_list("cells", [], "Train only these cells.")
_MAX_MODELS = flags.DEFINE_integer("max_models", 0,
                                   "Largest vmapped group (0 = no limit; memory knob).")
_SET = flags.DEFINE_multi_string("set", [], "key=value override applied to every cell.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only rebuild the report.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", None, "CPU only: split the host into N devices (default: the largest "
    "parallel.cpu_devices of the cells' recipes).")
flags.mark_flags_as_required(["sweep"])


def parse_overrides(items):
  out = {}
  for item in items:
    key, sep, text = item.partition("=")
    if not sep:
      raise ValueError(f"--set {item!r}: expected key=value")
    try:
      out[key] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      out[key] = text
  return out


def run(name: str, workdir: str) -> None:
  from ebm_jax import study_report
  from ebm_jax import sweep as sweep_lib   # imports jax, but starts no backend
  sweep = sweep_lib.load_sweep(_SWEEP.value)
  cells = sweep_lib.expand(sweep, _CONFIG.value, workdir, parse_overrides(_SET.value))
  devices = (_CPU_DEVICES.value if _CPU_DEVICES.value is not None
             else max(c.config.parallel.cpu_devices for c in cells))
  cli.start_devices(devices)   # before the first jax.devices() call
  os.makedirs(workdir, exist_ok=True)
  log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
  if not _REPORT_ONLY.value:
    sweep_lib.train_cells(cells, only=_CELLS.value, max_models=_MAX_MODELS.value, log=log)
  log(f"report: {study_report.write_report(sweep, cells, workdir, title=f'Study {name}')}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  name = os.path.splitext(os.path.basename(_SWEEP.value.partition(":")[0]))[0]
  cli.call(run, name, _WORKDIR.value or os.path.join("runs", f"study-{name}"), code=2)


if __name__ == "__main__":
  app.run(main)
