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
and ``python -m ebm_jax.study.longrun --workdir=<run>`` on any finished run (or every cell of a
study) afterwards.
"""

from __future__ import annotations

import os
from typing import Callable

import jax
import numpy as np

from ebm_jax import files
from ebm_jax import _moved

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
  if not files.is_writer():
    return
  files.write_json(os.path.join(workdir, RECORD), record)
  m = record["metric"]
  log(f"long-run check at step {record['step']} ({record['num_steps']} steps, "
      f"{record['num_chains']} chains): {m} short-run {record['short_run']:.4g}, from data "
      f"{record['from_data'][m]:.4g}, from noise {record['from_noise'][m]:.4g}: "
      f"{record['verdict']}")


def read(workdir: str) -> dict | None:
  return files.read_json(os.path.join(workdir, RECORD))


def __getattr__(name: str):
  return _moved.attribute(__name__, name)     # a name that moved away, named in one line
