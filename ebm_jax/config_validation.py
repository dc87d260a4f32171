"""Checks a resolved config before anything is compiled: keys, types and values.

Every problem raises :class:`ConfigError` with one line naming the key and what is allowed.
The reference for keys and types is ``configs/default.py``.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Callable

import ml_collections

from ebm_jax import data as data_lib
from ebm_jax import models

SAMPLER_NAMES = ("langevin", "gradient_descent", "momentum_sgd", "adam", "mala", "hmc")
INIT_NAMES = ("uniform", "gaussian", "data", "persistent", "replay", "generator")
STORE_INITS = ("persistent", "replay")
OPTIMIZER_NAMES = ("sgd", "adam")
BANK_DTYPES = ("float32", "bfloat16")

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               "configs", "default.py")


class ConfigError(ValueError):
  """A config key or value is invalid (one-line message)."""


def default_config() -> ml_collections.ConfigDict:
  """``configs/default.py:get_config()``, the reference for every key."""
  spec = importlib.util.spec_from_file_location("ebm_jax_default_config", _DEFAULT_CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _flatten(config, prefix="") -> dict[str, Any]:
  out = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(_flatten(value, name + "."))
    else:
      out[name] = value
  return out


def _type_ok(value, default) -> bool:
  if isinstance(default, bool):
    return isinstance(value, bool)
  if isinstance(default, float):
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if isinstance(default, int):
    return isinstance(value, int) and not isinstance(value, bool)
  if isinstance(default, tuple):
    return isinstance(value, (tuple, list))
  return isinstance(value, type(default))


def _check(ok: bool, key: str, expected: str, value) -> None:
  if not ok:
    raise ConfigError(f"config.{key}: expected {expected}, got {value!r}")


def validate_for_devices(config, num_devices: int) -> None:
  """Sizes that are split across devices must be multiples of their number."""
  sizes = {"batch_size": config.batch_size, "longrun.num_chains": config.longrun.num_chains}
  if config.init.name in STORE_INITS:
    sizes["init.bank_size"] = config.init.bank_size
  for key, size in sizes.items():
    _check(size % num_devices == 0, key,
           f"a multiple of the {num_devices} devices (or set parallel.num_devices)", size)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError on the first unknown key, wrong type or bad value."""
  flat = _flatten(config)
  reference = _flatten(default_config())
  for key, value in flat.items():
    if key not in reference:
      raise ConfigError(f"config.{key}: unknown key (see configs/default.py for every key)")
    default = reference[key]
    _check(_type_ok(value, default), key, f"type {type(default).__name__}", value)
  for key in reference:
    if key not in flat:
      raise ConfigError(f"config.{key}: missing (recipes must start from configs/default.py)")

  c = config
  positive = lambda v: v > 0
  non_negative = lambda v: v >= 0
  unit = lambda v: 0 <= v < 1
  rules: list[tuple[str, Callable[[Any], bool], str]] = [
      ("num_train_steps", positive, "a positive int"),
      ("batch_size", positive, "a positive int"),
      ("log_every_steps", positive, "a positive int"),
      ("checkpoint_every_steps", positive, "a positive int"),
      ("keep_checkpoints", positive, "a positive int"),
      ("num_final_samples", non_negative, "a non-negative int"),
      ("num_grid_images", positive, "a positive int"),
      ("data.name", lambda v: v in data_lib.DATASET_NAMES, f"one of {data_lib.DATASET_NAMES}"),
      ("data.image_size", lambda v: v in models.IMAGE_SIZES, f"one of {models.IMAGE_SIZES}"),
      ("data.noise_std", non_negative, "a number >= 0"),
      ("data.classes", lambda v: all(isinstance(k, int) for k in v), "a tuple of int labels"),
      ("data.toy_sd", positive, "a number > 0"),
      ("data.toy_radius", positive, "a number > 0"),
      ("model.name", lambda v: v in models.MODELS, f"one of {tuple(models.MODELS)}"),
      ("model.n_f", positive, "a positive int"),
      ("model.leak", unit, "a slope in [0, 1)"),
      ("model.conv_impl", lambda v: v in models.CONV_IMPLS, f"one of {models.CONV_IMPLS}"),
      ("model.compute_dtype", lambda v: v in models.COMPUTE_DTYPES,
       f"one of {models.COMPUTE_DTYPES}"),
      ("sampler.name", lambda v: v in SAMPLER_NAMES, f"one of {SAMPLER_NAMES}"),
      ("sampler.num_steps", positive, "a positive int"),
      ("sampler.step_size", positive, "a number > 0"),
      ("sampler.noise_std", non_negative, "a number >= 0"),
      ("sampler.max_grad_norm", non_negative, "a number >= 0 (0 = off)"),
      ("sampler.momentum", unit, "a number in [0, 1)"),
      ("sampler.adam_beta1", unit, "a number in [0, 1)"),
      ("sampler.adam_beta2", unit, "a number in [0, 1)"),
      ("sampler.hmc_leapfrog_steps", positive, "a positive int"),
      ("sampler.unroll", non_negative, "an int >= 0 (0 = fully unrolled)"),
      ("init.name", lambda v: v in INIT_NAMES, f"one of {INIT_NAMES}"),
      ("init.scale", positive, "a number > 0"),
      ("init.start_noise_std", non_negative, "a number >= 0"),
      ("sampler.noise_divide", positive, "a number > 0"),
      ("divergence_threshold", non_negative, "a number >= 0 (0 = off)"),
      ("generator.z_dim", positive, "a positive int"),
      ("generator.n_f", positive, "a positive int"),
      ("generator.leak", unit, "a slope in [0, 1)"),
      ("generator.sigma", positive, "a number > 0"),
      ("generator.langevin_steps", non_negative, "an int >= 0"),
      ("generator.langevin_step_size", positive, "a number > 0"),
      ("generator.learning_rate", positive, "a number > 0"),
      ("generator.beta1", unit, "a number in [0, 1)"),
      ("generator.beta2", unit, "a number in [0, 1)"),
      ("init.bank_size", positive, "a positive int"),
      ("init.reinit_prob", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
      ("init.bank_dtype", lambda v: v in BANK_DTYPES, f"one of {BANK_DTYPES}"),
      ("optimizer.name", lambda v: v in OPTIMIZER_NAMES, f"one of {OPTIMIZER_NAMES}"),
      ("optimizer.learning_rate", positive, "a number > 0"),
      ("optimizer.lr_min", non_negative, "a number >= 0"),
      ("optimizer.lr_decay", lambda v: 0 < v <= 1, "a factor in (0, 1]"),
      ("optimizer.beta1", unit, "a number in [0, 1)"),
      ("optimizer.beta2", unit, "a number in [0, 1)"),
      ("optimizer.weight_decay", non_negative, "a number >= 0"),
      ("optimizer.grad_clip", non_negative, "a number >= 0 (0 = off)"),
      ("longrun.every_steps", non_negative, "an int >= 0 (0 = off)"),
      ("longrun.num_steps", positive, "a positive int"),
      ("longrun.init", lambda v: v in INIT_NAMES, f"one of {INIT_NAMES}"),
      ("longrun.num_chains", positive, "a positive int"),
      ("diagnostics.window", lambda v: v >= 3, "an int >= 3"),
      ("diagnostics.figures_every_secs", non_negative, "a number of seconds >= 0"),
      ("diagnostics.max_lag", positive, "a positive int"),
      ("diagnostics.landscape_every_steps", non_negative, "an int >= 0 (0 = off)"),
      ("diagnostics.landscape_res", lambda v: v >= 10, "an int >= 10"),
      ("diagnostics.kde_bandwidth", positive, "a number > 0"),
      ("diagnostics.kde_samples", lambda v: v >= 10, "an int >= 10"),
      ("eval.every_steps", non_negative, "an int >= 0 (0 = off)"),
      ("parallel.num_devices", non_negative, "an int >= 0 (0 = all devices)"),
      ("parallel.cpu_devices", non_negative, "an int >= 0 (0 or 1 = one CPU device)"),
      ("parallel.distributed", lambda v: v in ("auto", "on", "off"), "one of auto, on, off"),
      ("loss.scale", positive, "a number > 0"),
      ("loss.l2_energy", non_negative, "a number >= 0"),
  ]
  for key, rule, expected in rules:
    _check(rule(flat[key]), key, expected, flat[key])

  toy = data_lib.is_toy(c.data.name)
  _check((c.model.name == "toy_mlp") == toy, "model.name",
         "'toy_mlp' for the toy densities and an image net for images", c.model.name)
  if toy:
    _check(not c.data.classes, "data.classes", "() for toy densities", c.data.classes)
  elif c.data.name == "cifar10":
    _check(c.data.image_size == 32, "data.image_size", "32 for cifar10", c.data.image_size)
  elif c.data.name == "oxford_flowers102":
    _check(c.data.image_size in (32, 64), "data.image_size", "32 or 64 for oxford_flowers102",
           c.data.image_size)
  _check(c.optimizer.lr_min <= c.optimizer.learning_rate, "optimizer.lr_min",
         f"at most optimizer.learning_rate ({c.optimizer.learning_rate})", c.optimizer.lr_min)
  if toy:
    _check(c.init.name != "generator", "init.name", "not 'generator' for toy densities (the "
           "generator is an image network)", c.init.name)
    _check(c.longrun.init != "generator", "longrun.init", "not 'generator' for toy densities",
           c.longrun.init)
    _check(not (c.eval.at_end or c.eval.every_steps), "eval.at_end",
           "False for toy densities (their KL metrics are in metrics.jsonl)", c.eval.at_end)
  if c.longrun.init == "generator":
    _check(c.init.name == "generator", "longrun.init",
           "'generator' only when init.name is 'generator'", c.longrun.init)
  if c.longrun.init in STORE_INITS:
    _check(c.longrun.init == c.init.name, "longrun.init",
           f"a noise or data start, or init.name ({c.init.name!r}) whose store exists",
           c.longrun.init)
  if c.init.name in STORE_INITS:
    _check(c.init.bank_size >= c.batch_size, "init.bank_size",
           f"at least batch_size ({c.batch_size}) for init.name={c.init.name!r}",
           c.init.bank_size)
