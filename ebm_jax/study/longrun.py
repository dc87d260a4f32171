"""The long-run convergence check (:mod:`ebm_jax.eval.convergence`) on finished runs, or on every
finished cell of a study: ``python -m ebm_jax.study.longrun --workdir=<run>[,<run>]`` or
``--sweep=<sweep file> --study=<study dir>``; each record goes to ``<run>/longrun.json``.
"""

from __future__ import annotations

import functools
from typing import Callable

from ebm_jax import cli
from ebm_jax.eval import convergence
from ebm_jax.run import reporting
from ebm_jax.run import rundir
from ebm_jax.run import runner as runner_lib
from ebm_jax.study import sweep as sweep_lib


def check_run(workdir: str, *, num_steps: int | None = None, num_chains: int | None = None,
              log: Callable[[str], None] = print) -> dict:
  """The check on a finished run's latest checkpoint."""
  overrides = {**({"longrun.num_steps": num_steps} if num_steps else {}),
               **({"longrun.num_chains": num_chains} if num_chains else {})}
  spec, runner, state, hp = runner_lib.load_run(workdir, overrides=overrides)
  record = convergence.check(runner, state, hp, reporting.quality_metric(spec), log)
  convergence.write(workdir, record, functools.partial(rundir.log_line, workdir))
  return record


def run_command(args) -> None:
  """``python -m ebm_jax.study.longrun``: the runs named, or a study's finished cells."""
  workdirs = list(args.workdir)
  if args.sweep:
    workdirs += [c.workdir for c in sweep_lib.finished_cells(
        args.sweep, args.study, lambda c: args.redo or convergence.read(c.workdir) is None)]
  if not workdirs:
    raise ValueError("nothing to check: give --workdir=run[,run] or --sweep with --study")
  for i, workdir in enumerate(workdirs):
    print(f"[{i + 1}/{len(workdirs)}] {workdir}", flush=True)
    check_run(workdir, num_steps=args.num_steps, num_chains=args.num_chains)


def _define_flags() -> None:
  """Defined only when run as a program, so importing the library defines no flags."""
  from absl import flags
  flags.DEFINE_list("workdir", [], "Finished runs to check.")
  flags.DEFINE_string("sweep", None, "Check every finished cell of this sweep file ...")
  flags.DEFINE_string("study", None, "... in this study directory.")
  flags.DEFINE_bool("redo", False, "Check cells that already have a longrun.json again.")
  flags.DEFINE_integer("num_steps", None, "Override longrun.num_steps.")
  flags.DEFINE_integer("num_chains", None, "Override longrun.num_chains.")


def main(argv) -> None:
  from absl import flags
  del argv
  cli.call(run_command, flags.FLAGS)


if __name__ == "__main__":
  from absl import app
  _define_flags()
  app.run(main)
