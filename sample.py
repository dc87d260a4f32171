"""Samples from a trained run's checkpoint with any sampler, for as long as asked.

    python sample.py --workdir=runs/x --num_samples=1000 --sampler=mala --num_steps=10000 \
        --init=data

``--sampler``: ``trained`` (the run's own sampler and settings) or any registered sampler;
MALA and HMC (blackjax) adapt their step size to a target acceptance by dual averaging unless
``--adapt_steps=0``, and target the density the training sampler targets. See
``ebm_jax/run/from_checkpoint.py`` for what is written under ``--out``.
"""

import json

from absl import app
from absl import flags
from absl import logging

from ebm_jax.run import from_checkpoint as cs  # imports jax but starts no backend
from ebm_jax import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run directory.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1000, "Number of samples.")
_SAMPLER = flags.DEFINE_enum("sampler", cs.TRAINED, cs.SAMPLER_CHOICES, "Sampler.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", None, "Steps per chain (default: the run's K).")
_INIT = flags.DEFINE_enum("init", cs.TRAINED, cs.INIT_CHOICES,
                          "Chain starts (default: the run's init).")
_STEP_SIZE = flags.DEFINE_float("step_size", None, "Step size (default: the run's, or the "
                                "sampler's default: MALA noise_std^2/2, HMC noise_std).")
_NOISE_STD = flags.DEFINE_float("noise_std", None, "Per-step noise sd (default: the run's).")
_ADAPT_STEPS = flags.DEFINE_integer("adapt_steps", 500, "MALA/HMC warm-up steps that adapt the "
                                    "step size (0: keep --step_size).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Chains per batch (default: the run's).")
_CHUNK_STEPS = flags.DEFINE_integer("chunk_steps", 1000, "Steps per jitted chunk.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  summary = cli.call(
      cs.sample_checkpoint, _WORKDIR.value, step=_STEP.value, num_samples=_NUM_SAMPLES.value,
      sampler=_SAMPLER.value, num_steps=_NUM_STEPS.value, init=_INIT.value,
      step_size=_STEP_SIZE.value, noise_std=_NOISE_STD.value, adapt_steps=_ADAPT_STEPS.value,
      batch_size=_BATCH_SIZE.value, chunk_steps=_CHUNK_STEPS.value, seed=_SEED.value,
      out=_OUT.value)
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  app.run(main)
