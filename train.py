"""Trains an energy-based model: ``python train.py --config=configs/mnist.py [--workdir=DIR]``.

Rerunning the same command resumes from the run's latest checkpoint. Without ``--workdir`` the
run goes to ``runs/<recipe>[-<variant>]-<hash of its settings>``, so the same command always
finds its own run and a changed setting starts a new one.
"""

import os
import sys

from absl import app
from absl import logging
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Recipe file, e.g. configs/mnist.py or configs/mnist.py:paper.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default: runs/<recipe>-<hash>).")
flags.mark_flags_as_required(["config"])


def default_workdir(config_arg: str, config) -> str:
  from ebm_jax.train import run_id
  path, _, variant = config_arg.partition(":")
  name = os.path.splitext(os.path.basename(path))[0] + (f"-{variant}" if variant else "")
  return os.path.join("runs", f"{name}-{run_id(config)}")


def parse_flags(argv):
  """absl flag parsing, with an unknown ``--config.<key>`` reported in one line."""
  try:
    return flags.FLAGS(argv)
  except AttributeError as e:   # ml_collections: an override names a key the config lacks
    key = next((a.split("=")[0] for a in argv[1:] if a.startswith("--config.")
                and str(e).strip("'\"") in a), str(e))
    print(f"error: {key}: unknown config key (see configs/default.py)", file=sys.stderr)
    sys.exit(2)
  except flags.Error as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # keep Orbax's INFO lines out of the progress output
  config = _CONFIG.value
  # Both must happen before jax starts its backends (the first jax.devices() call).
  from ebm_jax import parallel
  parallel.set_cpu_devices(config.parallel.cpu_devices)
  parallel.maybe_initialize_distributed(config.parallel.distributed)
  from ebm_jax import checkpointing, config_validation, data, train
  workdir = _WORKDIR.value or default_workdir(
      config_flags.get_config_filename(flags.FLAGS["config"]), config)
  try:
    train.train_and_evaluate(config, workdir)
  except (config_validation.ConfigError, data.DataError, checkpointing.CheckpointError,
          train.TrainingDiverged) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
