"""Config defaults, validation, recipe loading and dotted keys: every shipped recipe passes,
every bad key or value fails in one line, every registry name is accepted."""

import os

import ml_collections
import pytest

from ebm_jax import data
from ebm_jax.core import chain_starts, models, objectives, samplers
from ebm_jax import config
from ebm_jax.core import optimizers
from testutil import ROOT, shipped_specs


@pytest.mark.parametrize("spec", list(shipped_specs("configs", "get_config")),
                         ids=os.path.basename)
def test_every_shipped_recipe_is_valid(spec):
  config.validate(config.load_recipe(spec))


def default():
  return config.get_config()


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
  with pytest.raises(config.ConfigError, match=match) as err:
    config.validate(with_change(key, value))
  assert "\n" not in str(err.value)


def test_unknown_and_missing_keys():
  c = default()
  c.sampler.num_step = 5          # a typo in a recipe adds a key
  with pytest.raises(config.ConfigError, match=r"config.sampler.num_step: unknown key"):
    config.validate(c)
  c = default()
  del c.loss["l2_energy"]
  with pytest.raises(config.ConfigError, match=r"config.loss.l2_energy: missing"):
    config.validate(c)


def test_cross_key_rules():
  c = default()
  c.init.name, c.init.bank_size, c.batch_size = "persistent", 50, 100
  with pytest.raises(config.ConfigError, match=r"init.bank_size: expected at least "
                                                          r"batch_size \(100\)"):
    config.validate(c)
  c = default()
  c.data.name = "gmm"               # toy data with an image net
  with pytest.raises(config.ConfigError, match=r"config.model.name: expected "
                                                          r"'toy_mlp' for the toy densities"):
    config.validate(c)
  c = default()
  c.optimizer.lr_min = 1.0
  with pytest.raises(config.ConfigError, match=r"config.optimizer.lr_min"):
    config.validate(c)


def test_the_sampler_registry_decides_which_clip_options_apply():
  for name, spec in samplers.SAMPLERS.items():
    c = default()
    c.sampler.name, c.sampler.clip_x = name, True
    if spec.clip_options:
      config.validate(c)
    else:
      with pytest.raises(config.ConfigError, match=rf"config.sampler.clip_x: expected off for "
                                                   rf"sampler '{name}'"):
        config.validate(c)


@pytest.mark.parametrize("registry, key", [
    (samplers.SAMPLERS, "sampler.name"), (chain_starts.STARTS, "init.name"),
    (models.MODELS, "model.name"), (optimizers.OPTIMIZERS, "optimizer.name"),
    (objectives.OBJECTIVES, "objective.name"), (data.DATASETS, "data.name")])
def test_every_registry_name_is_accepted(registry, key):
  for name in registry:
    c = default()
    config.set_value(c, key, name)
    if key == "model.name" and name == "toy_mlp" or key == "data.name" and data.is_toy(name):
      c.data.name, c.model.name = (name if key == "data.name" else "gmm"), "toy_mlp"
    if name in ("generator", "coopnets"):     # CoopNets' objective and its chain start go together
      c.init.name, c.objective.name = "generator", "coopnets"
    if name == "recovery_likelihood":         # DRL's samples start from Gaussian noise
      c.init.name = "gaussian"
    if key == "data.name" and name == "cifar10":
      c.data.image_size = 32
    config.validate(c)


def test_the_objective_is_named_and_coopnets_needs_its_generator_start():
  c = default()
  c.init.name = "generator"        # before objective.name existed, this alone chose CoopNets
  with pytest.raises(config.ConfigError, match=r"config.objective.name: expected 'coopnets' with "
                                               r"init.name = 'generator'"):
    config.validate(c)
  c.init.name, c.objective.name = "uniform", "coopnets"
  with pytest.raises(config.ConfigError, match=r"config.init.name: expected 'generator' for "
                                               r"objective.name = 'coopnets'"):
    config.validate(c)
  c.objective.name = "drl"
  with pytest.raises(config.ConfigError, match=r"config.objective.name: expected one of "
                                               r"\['ml', 'coopnets', 'recovery_likelihood'\]"):
    config.validate(c)


def test_a_dataset_allows_the_image_sizes_its_spec_names():
  c = default()
  c.data.name, c.data.image_size = "cifar10", 28
  with pytest.raises(config.ConfigError, match=r"config.data.image_size: expected one of \[32\] "
                                               r"for cifar10"):
    config.validate(c)


def test_recipes_load_with_variants_and_bad_variants_fail_in_one_line():
  mnist = os.path.join(ROOT, "configs", "mnist.py")
  assert config.load_recipe(mnist).model.n_f == 16
  assert config.load_recipe(mnist + ":paper").sampler.num_steps == 500
  with pytest.raises(config.ConfigError, match="unknown variant 'nope'"):
    config.load_recipe(mnist + ":nope")
  with pytest.raises(config.ConfigError, match="recipe configs/none.py not found"):
    config.load_recipe("configs/none.py")


def test_dotted_keys_get_and_set_with_the_defaults_types():
  c = default()
  config.set_value(c, "optimizer.learning_rate", 1)       # an int where a float is expected
  assert isinstance(config.get_value(c, "optimizer.learning_rate"), float)
  config.set_value(c, "data.classes", [3, 4])
  assert c.data.classes == (3, 4)
  with pytest.raises(config.ConfigError, match="sampler.nope: unknown config key"):
    config.set_value(c, "sampler.nope", 1)
  with pytest.raises(config.ConfigError, match="sampler.num_steps='many'"):
    config.set_value(c, "sampler.num_steps", "many")


def test_settings_that_would_fail_mid_training_fail_before_it():
  c = default()
  c.init.name, c.init.bank_size, c.batch_size = "persistent", 100, 100
  c.longrun.every_steps, c.longrun.init, c.longrun.num_chains = 10, "persistent", 200
  with pytest.raises(config.ConfigError, match=r"config.longrun.num_chains: expected at most "
                                               r"init.bank_size \(100\)"):
    config.validate(c)
  c = default()
  c.num_final_samples, c.eval.every_steps = 0, 100
  with pytest.raises(config.ConfigError, match=r"config.num_final_samples: expected > 0 with "
                                               r"eval.at_end or eval.every_steps"):
    config.validate(c)


def test_a_saved_run_from_before_a_new_key_loads_with_its_default():
  saved = config.get_config().to_dict()
  del saved["tensorboard"], saved["ema"]["decay"]
  lines = []
  loaded = config.from_saved_run(saved, lines.append)
  assert loaded.tensorboard == config.get_config().tensorboard
  assert loaded.ema.decay == config.get_config().ema.decay
  assert lines == ["config.json predates keys ema.decay, tensorboard: using their defaults"]
  saved["not_a_key"] = 1
  with pytest.raises(config.ConfigError, match="not_a_key: unknown key"):
    config.from_saved_run(saved, lines.append)


def test_a_saved_coopnets_run_from_before_objective_name_is_still_coopnets():
  # init.name 'generator' alone chose CoopNets before objective.name existed: its runs must
  # still load (sample.py, evaluation, long runs) as CoopNets, not fail as 'ml'.
  saved = config.load_recipe(os.path.join(ROOT, "configs", "mnist_coopnets.py")).to_dict()
  del saved["objective"]
  lines = []
  loaded = config.from_saved_run(saved, lines.append)
  assert loaded.objective.name == "coopnets"
  assert lines[-1] == ("config.json predates objective.name: its init.name 'generator' was "
                       "CoopNets and is read as objective.name 'coopnets'")
  saved = config.load_recipe(os.path.join(ROOT, "configs", "mnist.py")).to_dict()
  del saved["objective"]
  assert config.from_saved_run(saved, lines.append).objective.name == "ml"


def test_a_saved_run_from_before_l2_penalty_keeps_its_l2_weight_decay():
  # weight_decay was the L2 form before optimizer.l2_penalty existed; read as decoupled, an old
  # run would change the treatment it trained with.
  saved = config.get_config().to_dict()
  saved["optimizer"]["weight_decay"] = 1e-4
  del saved["optimizer"]["l2_penalty"]
  lines = []
  loaded = config.from_saved_run(saved, lines.append)
  assert loaded.optimizer.l2_penalty == 1e-4 and loaded.optimizer.weight_decay == 0.0
  assert lines[-1] == ("config.json predates optimizer.l2_penalty: its optimizer.weight_decay "
                       "0.0001 was the L2 form and is read as optimizer.l2_penalty")
  current = config.get_config().to_dict()
  current["optimizer"]["weight_decay"] = 1e-4       # a current run: decoupled, as written
  assert config.from_saved_run(current, lines.append).optimizer.weight_decay == 1e-4


def test_the_toy_recipes_sample_at_their_own_noise():
  # The rings recipe builds on the GMM's, whose searched Langevin noise (0.045) is tuned for
  # the GMM; the rings keep ebm-anatomy's eps 0.125 (inheriting 0.045 left them at KL 0.093
  # against a floor of 0.013 after 4,000 updates).
  gmm, rings = config.load_recipe("configs/toy_gmm.py"), config.load_recipe("configs/toy_rings.py")
  assert (gmm.sampler.num_steps, gmm.sampler.noise_std) == (20, 0.045)
  assert (rings.sampler.num_steps, rings.optimizer.learning_rate,
          rings.sampler.noise_std) == (100, 1e-3, 0.125)


def test_command_line_overrides_take_their_defaults_types():
  parsed = config.parse_overrides(["data.dir=2024", "tensorboard=false", "ema.decay=0.99",
                                   "data.classes=(3, 4)", "sampler.name=mala", "seed=7"])
  assert parsed == {"data.dir": "2024", "tensorboard": False, "ema.decay": 0.99,
                    "data.classes": (3, 4), "sampler.name": "mala", "seed": 7}
  assert isinstance(parsed["data.dir"], str)          # a path that looks like a number
  with pytest.raises(config.ConfigError, match=r"config.sampler.nope: unknown config key"):
    config.parse_overrides(["sampler.nope=1"])
  with pytest.raises(config.ConfigError, match=r"--config.seed: expected --config.<key>=<value>"):
    config.parse_overrides(["seed"])
