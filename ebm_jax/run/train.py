"""Training one run: ``train_and_evaluate(config, workdir)``, a group of one in the one loop.

Rerunning it on the same ``workdir`` resumes from the latest checkpoint and replays the same
steps bit for bit; a finished run is left as it is. The pieces live in :mod:`ebm_jax.run.loop`
(the host loop and its periodic actions), :mod:`ebm_jax.run.runner` (components and jitted
functions) and :mod:`ebm_jax.core.objectives` (the train steps).

The command line (``python train.py`` in a checkout, ``python -m ebm_jax.run.train`` or
``ebm-jax-train`` where the package is installed)::

    python train.py --config=configs/mnist.py [--workdir=DIR] [--config.<key>=<value> ...]
    ebm-jax-train --config=toy_gmm            # a shipped recipe by name, from any directory

Rerunning the same command resumes from the run's latest checkpoint. Without ``--workdir`` the
run goes to ``runs/<recipe>[-<variant>]-<hash of its settings>``, so the same command always
finds its own run and a changed setting starts a new one.
"""

from __future__ import annotations

import hashlib
import json
import os

import ml_collections

from ebm_jax import cli
from ebm_jax import config as config_lib
from ebm_jax.core import parallel
from ebm_jax.run import loop
from ebm_jax.run import recovery
from ebm_jax.run import runner
from ebm_jax import _moved

_IGNORED_IN_RUN_ID = ("num_train_steps", "log_every_steps", "checkpoint_every_steps",
                      "keep_checkpoints", "num_final_samples", "num_grid_images",
                      "likelihood")   # how a finished model is measured, not what it is


def run_id(config) -> str:
  """A short hash of the settings that define a run (not its length or logging)."""
  c = config.to_dict()
  for key in _IGNORED_IN_RUN_ID:
    c.pop(key, None)
  # objective.name arrived after runs were named: where it is what init.name chose before it
  # existed, the id stays what it was, so the same command still finds its run.
  implied = config_lib.objective_before_its_key(c["init"]["name"])
  if c.get("objective", {}).get("name") == implied and len(c["objective"]) == 1:
    c.pop("objective")
  if c.get("objective", {}).get("name") != "recovery_likelihood":
    c.pop("drl", None)    # arrived with recovery likelihood; other runs keep their ids
  return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:8]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains (or resumes) the run in ``workdir`` and writes the contract's outputs there.

  Returns the final train state; raises :class:`~ebm_jax.run.loop.TrainingDiverged` (after
  keeping the last good state) when an update is rejected.
  """
  (outcome,), states = loop.train([loop.Run(config, workdir)])
  if outcome.status == "diverged":
    raise loop.TrainingDiverged(recovery.divergence_message(workdir, outcome), outcome.diverged_at)
  return runner.unstack(states, 0)


# ----------------------------------------------------------------------------- command line


def default_workdir(recipe: str, config) -> str:
  path, _, variant = recipe.partition(":")
  name = os.path.splitext(os.path.basename(path))[0] + (f"-{variant}" if variant else "")
  return os.path.join("runs", f"{name}-{run_id(config)}")


def _run(argv) -> None:
  from absl import flags
  from absl import logging
  del argv
  logging.set_verbosity(logging.WARNING)   # keep Orbax's INFO lines out of the progress output
  recipe = flags.FLAGS.config
  overrides = cli.call(config_lib.parse_overrides, cli.config_overrides(), code=2)
  config = cli.call(config_lib.load_recipe, recipe, overrides, code=2)
  parallel.start_devices(config.parallel.cpu_devices, config.parallel.distributed)
  workdir = flags.FLAGS.workdir or default_workdir(recipe, config)
  cli.call(train_and_evaluate, config, workdir)


def main(argv=None) -> None:
  """The command line; its flags are defined here, so importing the library defines none."""
  from absl import app
  from absl import flags
  flags.DEFINE_string(
      "config", None, "Recipe: a file (configs/mnist.py, configs/mnist.py:paper) or a shipped "
      "recipe's name (mnist, mnist:paper); --config.<key>=<value> overrides any of its keys.")
  flags.DEFINE_string("workdir", None, "Run directory (default: runs/<recipe>-<hash>).")
  flags.mark_flags_as_required(["config"])
  app.run(_run, argv=argv, flags_parser=cli.parse_flags_with_config)


if __name__ == "__main__":
  main()


def __getattr__(name: str):
  return _moved.attribute(__name__, name)     # a name that moved away, named in one line
