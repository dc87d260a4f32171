"""Config validation: every shipped recipe passes; every bad key or value fails in one line."""

import glob
import importlib.util
import os

import ml_collections
import pytest

from ebm_jax import config_validation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = sorted(p for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                 if os.path.basename(p) not in ("__init__.py", "common.py"))


def load_recipe(path, variant=None):
  spec = importlib.util.spec_from_file_location("recipe", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant) if variant else module.get_config()


def recipe_variants():
  for path in RECIPES:
    yield path, None
    spec = importlib.util.spec_from_file_location("recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for variant in getattr(module, "VARIANTS", ()):
      yield path, variant


@pytest.mark.parametrize("path, variant", list(recipe_variants()),
                         ids=lambda v: os.path.basename(v) if isinstance(v, str) else str(v))
def test_every_shipped_recipe_is_valid(path, variant):
  config_validation.validate(load_recipe(path, variant))


def default():
  return config_validation.default_config()


def with_change(key, value):
  c = ml_collections.ConfigDict(default().to_dict(), type_safe=False)
  section, _, leaf = key.rpartition(".")
  target = c
  for part in section.split(".") if section else []:
    target = target[part]
  target[leaf] = value
  return c


@pytest.mark.parametrize("key, value, match", [
    ("num_train_steps", -5, r"config.num_train_steps: expected a positive int, got -5"),
    ("num_train_steps", 2.5, r"config.num_train_steps: expected type int, got 2.5"),
    ("batch_size", 0, r"config.batch_size: expected a positive int"),
    ("sampler.step_size", 0.0, r"config.sampler.step_size: expected a number > 0"),
    ("sampler.name", "gibbs", r"config.sampler.name: expected one of \('langevin'"),
    ("init.name", "noise", r"config.init.name: expected one of"),
    ("model.name", "resnet", r"config.model.name: expected one of"),
    ("data.name", "svhn", r"config.data.name: expected one of"),
    ("data.image_size", 48, r"config.data.image_size: expected one of \(28, 32, 64\)"),
    ("optimizer.lr_decay", 1.5, r"config.optimizer.lr_decay: expected a factor in \(0, 1\]"),
    ("init.reinit_prob", 2.0, r"config.init.reinit_prob: expected a probability"),
    ("sampler.noise_std", -0.1, r"config.sampler.noise_std: expected a number >= 0"),
    ("model.spectral_norm", 1, r"config.model.spectral_norm: expected type bool, got 1"),
    ("data.classes", (1, "a"), r"config.data.classes: expected a tuple of int labels"),
    ("model.compute_dtype", "float16", r"config.model.compute_dtype: expected one of"),
])
def test_bad_values_fail_with_one_line_naming_the_key(key, value, match):
  with pytest.raises(config_validation.ConfigError, match=match) as err:
    config_validation.validate(with_change(key, value))
  assert "\n" not in str(err.value)


def test_unknown_and_missing_keys():
  c = default()
  c.sampler.num_step = 5          # a typo in a recipe adds a key
  with pytest.raises(config_validation.ConfigError, match=r"config.sampler.num_step: unknown key"):
    config_validation.validate(c)
  c = default()
  del c.loss["l2_energy"]
  with pytest.raises(config_validation.ConfigError, match=r"config.loss.l2_energy: missing"):
    config_validation.validate(c)


def test_cross_key_rules():
  c = default()
  c.init.name, c.init.bank_size, c.batch_size = "persistent", 50, 100
  with pytest.raises(config_validation.ConfigError, match=r"init.bank_size: expected at least "
                                                          r"batch_size \(100\)"):
    config_validation.validate(c)
  c = default()
  c.data.name = "gmm"               # toy data with an image net
  with pytest.raises(config_validation.ConfigError, match=r"config.model.name: expected "
                                                          r"'toy_mlp' for the toy densities"):
    config_validation.validate(c)
  c = default()
  c.optimizer.lr_min = 1.0
  with pytest.raises(config_validation.ConfigError, match=r"config.optimizer.lr_min"):
    config_validation.validate(c)
