"""Runs a hyperparameter study and writes its report.

    python sweep.py --config=configs/toy_gmm.py --sweep=sweeps/thesis_claims_toy.py \
        --workdir=runs/study

Every cell of the sweep is an ordinary run under ``<workdir>/cells/<cell>``; cells that differ
only in vmappable values (seeds, learning rates, step sizes, noise scales, ...) train together
as one vmapped group. Rerunning the command skips finished (and diverged) cells and resumes
interrupted ones. At the end ``<workdir>`` holds ``results.csv``, ``plots/`` and ``report.md``.

    --cells=a,b         train only these cells (e.g. to resume or extend one alone)
    --report_only       rebuild results.csv, plots and report.md from what has run
    --config.key=value  override a config key in every cell (repeatable)

An adaptive search (Optuna ask-and-tell; the journal file in the workdir may be shared by any
number of such processes, here or on other machines)::

    python sweep.py --search=sweeps/search_toy.py --workdir=runs/search-toy

A study's groups as Slurm array jobs (submitit), one group per task, into a shared workdir;
``--launcher=local`` runs the same tasks as local processes::

    python sweep.py --sweep=sweeps/thesis_claims_toy.py --workdir=/shared/study-toy \
        --launcher=slurm --slurm_partition=gpu --timeout_min=120 --gpus_per_node=1 --wait
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

from ebm_jax import cli
from ebm_jax.core import parallel

_CONFIG = flags.DEFINE_string(
    "config", None, "Base recipe for grids that name none, e.g. configs/toy_gmm.py[:variant].")
_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file, e.g. sweeps/thesis_claims_toy.py[:gpu].")
_SEARCH = flags.DEFINE_string("search", None, "Search file (Optuna), e.g. sweeps/search_toy.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Study directory (default runs/study-<sweep>).")
_CELLS = flags.DEFINE_list("cells", [], "Train only these cells.")
_MAX_MODELS = flags.DEFINE_integer("max_models", 0,
                                   "Largest vmapped group (0 = no limit; memory knob).")
_SET = flags.DEFINE_multi_string("set", [], "Replaced by --config.<key>=<value> (fails naming it).")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only rebuild the report.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", None, "CPU only: split the host into N devices (default: the largest "
    "parallel.cpu_devices of the cells' recipes).")
_LAUNCHER = flags.DEFINE_enum("launcher", "none", ["none", "slurm", "local"],
                              "Submit the groups as submitit jobs instead of training here.")
_SLURM_PARTITION = flags.DEFINE_string("slurm_partition", None, "--launcher=slurm: partition.")
_TIMEOUT_MIN = flags.DEFINE_integer("timeout_min", 60, "--launcher: minutes per task.")
_CPUS_PER_TASK = flags.DEFINE_integer("cpus_per_task", None, "--launcher: CPUs per task.")
_GPUS_PER_NODE = flags.DEFINE_integer("gpus_per_node", None, "--launcher: GPUs per task.")
_ARRAY_PARALLELISM = flags.DEFINE_integer("slurm_array_parallelism", None,
                                          "--launcher=slurm: tasks running at once.")
_WAIT = flags.DEFINE_bool("wait", False, "--launcher: wait for the tasks, then write the report.")
flags.mark_flags_as_mutual_exclusive(["sweep", "search"], required=True)



def launcher_parameters() -> dict:
  params = {"timeout_min": _TIMEOUT_MIN.value, "cpus_per_task": _CPUS_PER_TASK.value,
            "gpus_per_node": _GPUS_PER_NODE.value}
  if _LAUNCHER.value == "slurm":
    params.update(slurm_partition=_SLURM_PARTITION.value,
                  slurm_array_parallelism=_ARRAY_PARALLELISM.value)
  return {k: v for k, v in params.items() if v is not None}


def run_study(name: str, workdir: str) -> None:
  from ebm_jax import config as config_lib
  from ebm_jax.study import costs as study_costs
  from ebm_jax.study import report as study_report
  from ebm_jax.study import sweep as sweep_lib  # imports jax, but starts no backend
  sweep = sweep_lib.load_sweep(_SWEEP.value)
  if _SET.value:
    raise ValueError(f"--set {_SET.value[0]} is now --config.{_SET.value[0]} (the override "
                     "syntax of every command)")
  overrides = config_lib.parse_overrides(cli.config_overrides())
  cells = sweep_lib.expand(sweep, _CONFIG.value, workdir, overrides)
  os.makedirs(workdir, exist_ok=True)
  log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
  if _LAUNCHER.value != "none" and not _REPORT_ONLY.value:
    from ebm_jax.study import launch  # lazy: submitit only on this path
    jobs = launch.launch(_SWEEP.value, _CONFIG.value, workdir, overrides,
                         cluster=_LAUNCHER.value, max_models=_MAX_MODELS.value,
                         parameters=launcher_parameters(), log=log)
    if not _WAIT.value:
      log("the report: the same command with --report_only once the jobs have ended")
      return
    for job in jobs:
      job.result()      # raises the task's error, if one failed
  else:
    devices = (_CPU_DEVICES.value if _CPU_DEVICES.value is not None
               else max(c.config.parallel.cpu_devices for c in cells))
    parallel.start_devices(devices)   # before the first jax.devices() call
    if not _REPORT_ONLY.value:
      sweep_lib.train_cells(cells, only=_CELLS.value, max_models=_MAX_MODELS.value, log=log,
                            shuffle_seed=0 if sweep.shuffle_groups else None)
  costs, ran = study_costs.read(workdir), [c for c in cells if sweep_lib.read_status(c)]
  if ran and (costs is None or any(study_costs.seconds_per_update(costs, c.config) is None
                                   for c in ran)):
    # Missing, or measured for other settings (a changed sweep): measure every setting again,
    # in one interleaved run; the earlier file is set aside.
    study_costs.write(workdir, study_costs.measure(cells, log=log))
  log(f"report: {study_report.write_report(sweep, cells, workdir, title=f'Study {name}')}")


def run_search(workdir: str) -> None:
  from ebm_jax.study import search as search_lib
  if cli.config_overrides() or _SET.value:
    raise ValueError("--config.<key>=<value> overrides the cells of a sweep; a search's "
                     "settings are in its search file")
  search = search_lib.load_search(_SEARCH.value)
  log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
  if _REPORT_ONLY.value:
    study = search_lib.open_study(search, workdir)
    log(f"report: {search_lib.write_report(search, study, workdir)}")
    return
  parallel.start_devices(_CPU_DEVICES.value or 0)
  search_lib.run_search(search, workdir, log=log)
  log(f"report: {os.path.join(workdir, search_lib.REPORT)}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  spec = _SWEEP.value or _SEARCH.value
  name = os.path.splitext(os.path.basename(spec.partition(":")[0]))[0]
  kind = "study" if _SWEEP.value else "search"
  workdir = _WORKDIR.value or os.path.join("runs", f"{kind}-{name}")
  if _SWEEP.value:
    cli.call(run_study, name, workdir, code=2)
  else:
    cli.call(run_search, workdir, code=2)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags_with_config)
