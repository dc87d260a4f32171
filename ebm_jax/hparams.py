"""The vmappable hyper-parameters: scalars that change neither a shape nor Python control flow.

:class:`HParams` is a pytree built from a config in one place (:func:`from_config`) and passed to
the train step as an argument, ``train_step(state, hparams, images)``; everything else in a
config (shapes, names, K, switches) is static and read once, outside the trace. A group of
models that differ only in these values shares one compiled step, vmapped over stacked
``(state, hparams)`` (:func:`stack`); a single run is a group of one.
"""

from __future__ import annotations

from typing import Sequence

import flax
import jax
import numpy as np
from ml_collections.config_flags import config_path

Array = jax.Array


@flax.struct.dataclass
class HParams:
  seed: Array              # int32: PRNG seed of initialisation, data draws and chains
  learning_rate: Array     # optimizer.learning_rate
  lr_min: Array            # optimizer.lr_min: floor of the learning-rate decay
  step_size: Array         # sampler.step_size
  noise_std: Array         # sampler.noise_std (before noise_divide)
  loss_scale: Array        # loss.scale
  l2_energy: Array         # loss.l2_energy
  init_scale: Array        # init.scale: noise starts and bank / buffer init
  reinit_prob: Array       # init.reinit_prob: replay-buffer restarts from noise
  start_noise_std: Array   # init.start_noise_std: noise added to data / bank / buffer starts


# Field -> the config key it comes from; the keys a study may vary within one vmapped group.
CONFIG_KEYS = {
    "seed": "seed",
    "learning_rate": "optimizer.learning_rate",
    "lr_min": "optimizer.lr_min",
    "step_size": "sampler.step_size",
    "noise_std": "sampler.noise_std",
    "loss_scale": "loss.scale",
    "l2_energy": "loss.l2_energy",
    "init_scale": "init.scale",
    "reinit_prob": "init.reinit_prob",
    "start_noise_std": "init.start_noise_std",
}
VMAPPABLE_KEYS = tuple(CONFIG_KEYS.values())
_DTYPES = {"seed": np.int32}


def from_config(config) -> HParams:
  """The config's vmappable values as 0-d arrays (host numpy; int32 seed, float32 others)."""
  return HParams(**{field: np.asarray(config_path.get_value(key, config),
                                      _DTYPES.get(field, np.float32))
                     for field, key in CONFIG_KEYS.items()})


def varying_keys(configs: Sequence) -> list[str]:
  """The vmappable config keys whose values differ between ``configs``."""
  return [key for key in VMAPPABLE_KEYS
          if len({repr(config_path.get_value(key, c)) for c in configs}) > 1]


def stack(hparams: Sequence[HParams]) -> HParams:
  """``M`` models' hyper-parameters along a leading model axis."""
  return jax.tree.map(lambda *xs: np.stack(xs), *hparams)
