"""Convergent or not: ebm-anatomy's long-run check of a trained model, scored.

ebm-anatomy separates models whose short-run samples are good because the *sampler* learned to
make them in K steps (non-convergent: run the chains longer and the samples leave the data)
from models that learned a valid density (convergent: long-run chains from data and from noise
stay near the data). The check runs ``longrun.num_steps`` of the training sampler with the
evaluation weights from data and from noise (``longrun.num_chains`` chains each), scores the
final positions with the run's quality metric (KL(true * K || KDE_K) on toys, the classifier FID on
images), and compares them with as many short-run samples of the same model (the chain of
``samples.npz``):

- *convergent*: both long-run scores within ``FACTOR`` of the short-run score (or better);
- *non-mixing*: from data within the factor, from noise not (the chains keep the data's modes
  but do not reach them from noise in ``num_steps``);
- *non-convergent*: from data worse than the factor (the density's modes are not the data's).

The record goes to ``<workdir>/longrun.json``; ``longrun.at_end`` runs it when a run finishes,
and ``python -m ebm_jax.eval.convergence --workdir=<run>`` on any finished run (or every cell of a
study) afterwards.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import jax
import numpy as np

from ebm_jax.run import rundir

FACTOR = 2.0
RECORD = "longrun.json"
STARTS = {"from_data": "data", "from_noise": "uniform"}
SHORT_RUN_STREAM = 2 ** 32 - 32      # fold_in tag of the short-run samples' key


def score(runner, state, hp, x: np.ndarray, log: Callable[[str], None]) -> dict:
  """The quality metric and its companions for positions ``x`` of the model with ``hp``."""
  if runner.toy is not None:
    landscape = runner.landscape(state, hp, 0, samples=np.asarray(x))
    return {"kl_smoothed": landscape.kl_smoothed,
            "kl_smoothed_floor": landscape.kl_smoothed_floor,
            "kl_true_kde": landscape.kl_true_kde, "kl_kde_floor": landscape.kl_kde_floor}
  if not np.all(np.isfinite(x)):
    return {"fid": float("inf"), "nonfinite": int(np.sum(~np.isfinite(x).reshape(len(x), -1)
                                                         .all(axis=1)))}
  from ebm_jax.eval import metrics as evaluation  # lazy: trains the classifier on first use
  dc = runner.spec.data
  model, test = evaluation.load_feature_model(dc.name, dc.image_size, data_dir=dc.dir, log=log)
  scores = evaluation.score_samples(
      model, evaluation.reference_images(test, tuple(dc.classes)), np.asarray(x))
  return {k: scores[k] for k in ("fid", "confident_fraction", "min_class_fraction")}


def verdict(short_run: float, from_data: float, from_noise: float,
            factor: float = FACTOR) -> str:
  """The anatomy verdict from three scores of one metric (lower = better)."""
  if not np.isfinite(short_run) or short_run <= 0:
    return "unknown"
  if from_data <= factor * short_run and from_noise <= factor * short_run:
    return "convergent"
  if from_data <= factor * short_run:
    return "non-mixing"
  return "non-convergent"


def check(runner, state, hp, metric: str, log: Callable[[str], None]) -> dict:
  """Long runs from data and from noise on the model in ``state`` with its ``hp``, scored and
  judged against as many short-run samples (the chain of ``samples.npz``), so the three scores
  share their sample count (FID's and the KDE's bias depend on it)."""
  lc = runner.spec.longrun
  step = int(state.step)
  key = jax.random.fold_in(jax.random.fold_in(state.rng, SHORT_RUN_STREAM), step)
  short = score(runner, state, hp, runner.draw_samples(state, hp, key, lc.num_chains), log)
  record = {"step": step, "num_steps": lc.num_steps, "num_chains": lc.num_chains,
            "metric": metric, "short_run": short[metric], "short_run_scores": short,
            "factor": FACTOR}
  for name, init in STARTS.items():
    run = runner.long_run(state, hp, step, init=init)
    record[name] = {**score(runner, state, hp, run.positions, log),
                    "final_energy": run.final_energy, "nonfinite": run.num_nonfinite}
  record["verdict"] = verdict(record["short_run"], record["from_data"][metric],
                              record["from_noise"][metric])
  return record


def write(workdir: str, record: dict, log: Callable[[str], None]) -> None:
  if not rundir.is_writer():
    return
  rundir.write_json(os.path.join(workdir, RECORD), record)
  m = record["metric"]
  log(f"long-run check at step {record['step']} ({record['num_steps']} steps, "
      f"{record['num_chains']} chains): {m} short-run {record['short_run']:.4g}, from data "
      f"{record['from_data'][m]:.4g}, from noise {record['from_noise'][m]:.4g}: "
      f"{record['verdict']}")


def read(workdir: str) -> dict | None:
  return rundir.read_json(os.path.join(workdir, RECORD))


def check_run(workdir: str, *, num_steps: int | None = None, num_chains: int | None = None,
              log: Callable[[str], None] = print) -> dict:
  """The check on a finished run's latest checkpoint."""
  from ebm_jax.run import reporting
  from ebm_jax.run import runner as runner_lib
  overrides = {**({"longrun.num_steps": num_steps} if num_steps else {}),
               **({"longrun.num_chains": num_chains} if num_chains else {})}
  spec, runner, state, hp = runner_lib.load_run(workdir, overrides=overrides)
  record = check(runner, state, hp, reporting.quality_metric(spec), log)
  write(workdir, record, functools.partial(rundir.log_line, workdir))
  return record


def run_command(args) -> None:
  """``python -m ebm_jax.eval.convergence``: the runs named, or a study's finished cells."""
  from ebm_jax.study import sweep as sweep_lib
  workdirs = list(args.workdir)
  if args.sweep:
    if not args.study:
      raise ValueError("--sweep needs --study (the study directory)")
    cells = sweep_lib.expand(sweep_lib.load_sweep(args.sweep), None, args.study)
    workdirs += [c.workdir for c in cells if (sweep_lib.read_status(c) or {}).get("status")
                 == "finished" and (args.redo or read(c.workdir) is None)]
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
  from ebm_jax import cli
  del argv
  cli.call(run_command, flags.FLAGS)


if __name__ == "__main__":
  from absl import app
  _define_flags()
  app.run(main)
