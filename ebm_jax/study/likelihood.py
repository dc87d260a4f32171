"""Log-likelihoods of finished runs, or of every finished cell of a study:
``python -m ebm_jax.likelihood --workdir=<run>[,<run>]`` or ``--sweep=<sweep file>
--study=<study dir>``; each record goes to ``<run>/likelihood.json`` (protocol beside the
numbers; :mod:`ebm_jax.eval.likelihood`). ``--config.likelihood.<key>=<value>`` changes the
protocol (chains, distributions, repeats, transition, base). A study's noiseless cells are
measured at the temperature of their grid's noisy level (:func:`matched_temperature`).
"""

from __future__ import annotations

import functools
from typing import Callable

from ebm_jax import cli
from ebm_jax import config as config_lib
from ebm_jax.core import samplers
from ebm_jax.eval import likelihood
from ebm_jax.run import rundir
from ebm_jax.run import runner as runner_lib
from ebm_jax.study import sweep as sweep_lib


def measure_run(workdir: str, overrides: dict | None = None,
                log: Callable[[str], None] = print) -> dict:
  """The likelihood of a finished run's latest checkpoint, written to its ``likelihood.json``."""
  spec, runner, state, hp = runner_lib.load_run(workdir, overrides=overrides)
  record = likelihood.measure(runner, state, hp, spec.likelihood, log)
  likelihood.write(workdir, record, functools.partial(rundir.log_line, workdir))
  return record


def matched_temperature(cell, cells) -> float | None:
  """A noiseless cell's energy has no temperature of its own; it is measured at its grid's
  noisiest Langevin level with its own step size (the temperature its noisy counterparts are
  measured at), so a pair's log-likelihoods describe the same family exp(-c E). None for a cell
  whose sampler has a temperature (or a grid without a noisy level)."""
  sc = cell.config.sampler
  if samplers.temperature(sc, sc.step_size, sc.noise_std) is not None:
    return None
  noisy = [c.config.sampler.noise_std for c in cells
           if c.grid == cell.grid and c.config.sampler.noise_std > 0]
  return samplers.temperature(sc, sc.step_size, max(noisy)) if noisy else None


def run_command(args, overrides: dict) -> None:
  """``python -m ebm_jax.likelihood``: the runs named, or a study's finished cells."""
  bad = [k for k in overrides if not k.startswith("likelihood.")]
  if bad:
    raise config_lib.ConfigError(f"--config.{bad[0]}: only likelihood.* keys change a "
                                 "measurement (the model is the run's)")
  jobs = [(w, overrides) for w in args.workdir]
  if args.sweep:
    todo = sweep_lib.finished_cells(args.sweep, args.study,
                                    lambda c: args.redo or likelihood.read(c.workdir) is None)
    cells = sweep_lib.expand(sweep_lib.load_sweep(args.sweep), None, args.study)  # every level
    for c in todo:
      c_matched = matched_temperature(c, cells)
      jobs.append((c.workdir, {**({"likelihood.temperature": c_matched} if c_matched else {}),
                               **overrides}))
  if not jobs:
    raise ValueError("nothing to measure: give --workdir=run[,run] or --sweep with --study")
  for i, (workdir, job_overrides) in enumerate(jobs):
    print(f"[{i + 1}/{len(jobs)}] {workdir}", flush=True)
    measure_run(workdir, job_overrides)


def _define_flags() -> None:
  """Defined only when run as a program, so importing the library defines no flags."""
  from absl import flags
  flags.DEFINE_list("workdir", [], "Finished runs to measure.")
  flags.DEFINE_string("sweep", None, "Measure every finished cell of this sweep file ...")
  flags.DEFINE_string("study", None, "... in this study directory.")
  flags.DEFINE_bool("redo", False, "Measure cells that already have a likelihood.json again.")


def main(argv) -> None:
  from absl import flags
  del argv
  cli.call(lambda: run_command(flags.FLAGS, config_lib.parse_overrides(cli.config_overrides())))


if __name__ == "__main__":
  from absl import app
  _define_flags()
  app.run(main, flags_parser=cli.parse_flags_with_config)
