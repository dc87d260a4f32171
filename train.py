"""Trains an energy-based model: ``python train.py --config=configs/mnist.py [--workdir=DIR]``.

Rerunning the same command resumes from the run's latest checkpoint. Without ``--workdir`` the
run goes to ``runs/<recipe>[-<variant>]-<hash of its settings>``, so the same command always
finds its own run and a changed setting starts a new one.
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from ebm_jax import cli
from ebm_jax.core import parallel

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Recipe file, e.g. configs/mnist.py or configs/mnist.py:paper.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default: runs/<recipe>-<hash>).")
flags.mark_flags_as_required(["config"])
parse_flags = cli.parse_flags_with_config


def default_workdir(config_arg: str, config) -> str:
  from ebm_jax.run.train import run_id
  path, _, variant = config_arg.partition(":")
  name = os.path.splitext(os.path.basename(path))[0] + (f"-{variant}" if variant else "")
  return os.path.join("runs", f"{name}-{run_id(config)}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)   # keep Orbax's INFO lines out of the progress output
  config = _CONFIG.value
  parallel.start_devices(config.parallel.cpu_devices, config.parallel.distributed)
  from ebm_jax.run import train
  workdir = _WORKDIR.value or default_workdir(
      config_flags.get_config_filename(flags.FLAGS["config"]), config)
  cli.call(train.train_and_evaluate, config, workdir)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
