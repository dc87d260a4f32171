"""A study spread over many machines: its vmapped groups as submitit array jobs.

``sweep.py --launcher=slurm`` expands the sweep, keeps the cells no worker has finished (a
cell's ``sweep_cell.json`` is written when it ends, by whichever worker trained it) and submits
one task per vmapped group as one Slurm array job; every task trains its group into the shared
study directory, so the report (``sweep.py --report_only``) reads all of them. A task that
Slurm preempts or times out is requeued by submitit (:class:`GroupTask` is checkpointable) and
resumes from its cells' Orbax checkpoints; a task that was killed outright is resubmitted by
running the same command again, which skips finished cells and resumes the rest.
``--launcher=local`` runs the same tasks as local processes (submitit's local executor: the
tests' path, and a way to use several GPUs of one machine).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import submitit     # this module is imported only on the launcher path

from ebm_jax.core import parallel
from ebm_jax.study import sweep as sweep_lib


class GroupTask(submitit.helpers.Checkpointable):
  """One vmapped group of a study, trained by a submitit worker. On preemption or timeout
  submitit calls :meth:`checkpoint` and requeues the same call, which resumes the group's cells
  from their checkpoints; cells finished meanwhile (by any worker) are skipped."""

  def __init__(self, cwd: str):
    self.cwd = cwd           # the sweep file's recipes are paths relative to it

  def __call__(self, sweep_spec: str, base_spec: str | None, workdir: str, overrides: dict,
               names: Sequence[str]) -> list[str]:
    os.chdir(self.cwd)
    sweep = sweep_lib.load_sweep(sweep_spec)
    cells = [c for c in sweep_lib.expand(sweep, base_spec, workdir, overrides)
             if c.name in set(names)]
    todo = [c for c in cells if sweep_lib.read_status(c) is None]
    if not todo:
      return []
    parallel.start_devices(max(c.config.parallel.cpu_devices for c in todo))   # before jax starts
    sweep_lib.train_group(todo, log=lambda m: print(m, flush=True))
    return [c.name for c in todo]


def launch(sweep_spec: str, base_spec: str | None, workdir: str, overrides: dict | None = None,
           *, cluster: str = "slurm", folder: str | None = None, max_models: int = 0,
           parameters: dict | None = None, log: Callable[[str], None] = print) -> list:
  """Submits one task per vmapped group of unfinished cells; returns the submitit jobs.

  ``cluster``: ``slurm``, ``local`` or ``debug`` (submitit's executors). ``parameters`` go to
  ``executor.update_parameters`` (e.g. ``timeout_min``, ``slurm_partition``,
  ``cpus_per_task``, ``gpus_per_node``, ``slurm_array_parallelism``). Job logs and pickles
  live in ``folder`` (default ``<workdir>/submitit``)."""
  overrides = dict(overrides or {})
  workdir = os.path.abspath(workdir)
  sweep = sweep_lib.load_sweep(sweep_spec)
  cells = sweep_lib.expand(sweep, base_spec, workdir, overrides)
  todo = [c for c in cells if sweep_lib.read_status(c) is None]
  groups = sweep_lib.group_cells(todo, max_models)
  log(f"{len(cells)} cells, {len(cells) - len(todo)} already done; submitting {len(groups)} "
      f"group(s) to {cluster}")
  if not groups:
    return []
  executor = submitit.AutoExecutor(folder=folder or os.path.join(workdir, "submitit"),
                                   cluster=cluster)
  executor.update_parameters(name=f"ebm-{os.path.basename(workdir)}", **(parameters or {}))
  task = GroupTask(os.getcwd())
  with executor.batch():
    jobs = [executor.submit(task, sweep_spec, base_spec, workdir, overrides,
                            [c.name for c in group]) for group in groups]
  log("submitted: " + ", ".join(f"{j.job_id} ({len(g)} cells)" for j, g in zip(jobs, groups)))
  return jobs
