"""Training one run: ``train_and_evaluate(config, workdir)``, a group of one in the one loop.

Rerunning it on the same ``workdir`` resumes from the latest checkpoint and replays the same
steps bit for bit; a finished run is left as it is. The pieces live in :mod:`ebm_jax.run.loop`
(the host loop and its periodic actions), :mod:`ebm_jax.run.runner` (components and jitted
functions) and :mod:`ebm_jax.core.objectives` (the train steps).
"""

from __future__ import annotations

import hashlib
import json

import ml_collections

from ebm_jax.run import loop
from ebm_jax.run import runner

TrainingDiverged = loop.TrainingDiverged

_IGNORED_IN_RUN_ID = ("num_train_steps", "log_every_steps", "checkpoint_every_steps",
                      "keep_checkpoints", "num_final_samples", "num_grid_images")


def run_id(config) -> str:
  """A short hash of the settings that define a run (not its length or logging)."""
  c = config.to_dict()
  for key in _IGNORED_IN_RUN_ID:
    c.pop(key, None)
  # objective.name arrived after runs were named: where it is what init.name chose before it
  # existed, the id stays what it was, so the same command still finds its run.
  implied = "coopnets" if c["init"]["name"] == "generator" else "ml"
  if c.get("objective", {}).get("name") == implied and len(c["objective"]) == 1:
    c.pop("objective")
  return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:8]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains (or resumes) the run in ``workdir`` and writes the contract's outputs there.

  Returns the final train state; raises :class:`TrainingDiverged` (after keeping the last good
  state) when an update is rejected.
  """
  (outcome,), states = loop.train([loop.Run(config, workdir)])
  if outcome.status == "diverged":
    raise TrainingDiverged(loop.divergence_message(workdir, outcome), outcome.diverged_at)
  return runner.unstack(states, 0)
