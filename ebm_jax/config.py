"""Every config key with its default, the checks a resolved config passes before anything is
compiled, recipe loading and dotted keys.

:func:`get_config` is the reference for every key (``configs/default.py`` re-exports it, so an
installed package validates configs without the repository). Every problem raises
:class:`ConfigError` with one line naming the key and what is allowed. Choice lists (samplers,
chain starts, models, datasets, optimizers) come from the registries that implement them.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
import types
from typing import Any, Callable

import ml_collections
from ml_collections.config_flags import config_path

from ebm_jax.core import chain_starts
from ebm_jax import data as data_lib
from ebm_jax.core import models
from ebm_jax.core import samplers
from ebm_jax.core import objectives
from ebm_jax.core import optimizers
from ebm_jax import errors

BANK_DTYPES = ("float32", "bfloat16")


class ConfigError(errors.Error, ValueError):
  """A config key or value is invalid (one-line message)."""


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0                          # PRNG seed of initialisation, data draws and chains
  c.num_train_steps = 2000            # parameter updates of the energy model
  c.train_time_budget_s = 0.0         # also end the run after this much wall-clock (0 = none)
  c.batch_size = 100                  # data images and chains per update
  c.log_every_steps = 50              # metrics.jsonl row, image grids and plots every N steps
  c.checkpoint_every_steps = 500      # Orbax checkpoint every N steps (and at the end)
  c.keep_checkpoints = 3              # how many recent checkpoints to keep
  c.divergence_threshold = 0.0        # stop when |loss| exceeds this (0 = only non-finite; thesis 1e11)
  c.checkpoint_dir = ""               # "" = <workdir>/checkpoints; or e.g. gs://bucket/run/checkpoints
  c.num_final_samples = 1000          # samples written to samples.npz at the end
  c.final_num_steps = 0               # K of the chains that make samples.npz, evaluations and
                                      # toy KDEs (0 = the training K)
  c.final_step_fraction = 1.0         # those chains' (and long runs') Langevin step size x f and
                                      # noise x sqrt(f): the same target density, less
                                      # discretisation bias
  c.num_grid_images = 64              # images per PNG grid
  c.tensorboard = True                # also TensorBoard events in the workdir (tensorboardX)

  c.ema = ml_collections.ConfigDict()
  c.ema.decay = 0.0                   # EMA of the energy parameters for samples, evaluation, long
                                      # runs, landscapes and sample.py (0 = off; DRL/CDRL 0.9999)

  c.data = ml_collections.ConfigDict()
  c.data.name = "mnist"               # a name of ebm_jax.data.DATASETS: mnist | fashion_mnist | cifar10 | oxford_flowers102 | gmm | rings
  c.data.dir = ""                     # raw dataset files; "" = $EBM_DATA_DIR or ~/.cache/ebm_jax/data
  c.data.image_size = 32              # 32 (bilinear resize from 28, as ebm-anatomy) or 28 (native)
  c.data.noise_std = 0.0              # data epsilon: Gaussian noise added to every data batch
  c.data.classes = ()                 # keep only these class labels, e.g. (3,) or (0, 1); () = all
  c.data.toy_sd = 0.15                # toy densities: sd of each GMM mode / ring width
  c.data.toy_radius = 1.0             # toy densities: GMM radius / spacing of the rings

  c.model = ml_collections.ConfigDict()
  c.model.name = "vanilla"            # toy_mlp | vanilla | nonlocal | thesis
  c.model.n_f = 32                    # base number of filters / hidden units
  c.model.leak = 0.05                 # leaky-ReLU slope (anatomy 0.05, short-run 0.2)
  c.model.activation = "leaky_relu"   # leaky_relu (the seeds) | silu (IGEBM's Swish)
  c.model.spectral_norm = False       # spectral normalisation of every conv / dense layer
  c.model.conv_impl = "auto"          # auto | xla | patches (im2col; auto = patches on CPU)
  c.model.compute_dtype = "float32"   # float32 | bfloat16 (network math; params stay float32)

  c.sampler = ml_collections.ConfigDict()
  c.sampler.name = "langevin"         # langevin | gradient_descent | momentum_sgd | adam | mala | hmc
  c.sampler.num_steps = 20            # K: sampler steps per parameter update
  c.sampler.step_size = 1.0           # gradient multiplier (anatomy: 1 on its scaled energy)
  c.sampler.noise_std = 0.01          # noise sd per step (0 = noiseless; thesis with_noise: 1e-2)
  c.sampler.noise_divide = 1.0        # divide the noise *variance* by this (thesis noise_divide)
  c.sampler.clip_x = False            # clip chain positions to the data range [-1, 1] each step
  c.sampler.max_grad_norm = 0.0       # clip each sample's energy-gradient norm (0 = off)
  c.sampler.momentum = 0.9            # momentum_sgd: thesis's sgd_beta (m = b m + (1-b) g)
  c.sampler.adam_beta1 = 0.5          # adam sampler: beta1 (thesis default 0.5)
  c.sampler.adam_beta2 = 0.999        # adam sampler: beta2 (thesis default 0.999)
  c.sampler.hmc_leapfrog_steps = 5    # hmc: leapfrog steps per proposal
  c.sampler.unroll = 1                # lax.scan unroll of the chain (0 = fully; CPU speed knob)

  c.init = ml_collections.ConfigDict()
  c.init.name = "uniform"             # uniform | gaussian | data | persistent | replay | generator
  c.init.scale = 1.0                  # noise starts and bank / buffer init: uniform half-width or gaussian sd
  c.init.start_noise_std = 0.0        # noise sd added to data / bank / buffer starts (thesis: data_epsilon)
  c.init.bank_size = 10000            # persistent bank / replay buffer size (anatomy: one per image)
  c.init.reinit_prob = 0.05           # replay: probability a start is fresh noise
  c.init.bank_dtype = "float32"       # bank storage: float32 | bfloat16 (halves its memory)

  c.objective = ml_collections.ConfigDict()
  c.objective.name = "ml"             # ml (maximum likelihood) | coopnets (init.name = "generator")
                                      # | recovery_likelihood (DRL, Gao et al. 2021; see drl)

  c.drl = ml_collections.ConfigDict()  # recovery likelihood (objective.name = "recovery_likelihood")
  c.drl.num_levels = 6                # T noise levels (DRL: 6); K per level is sampler.num_steps
  c.drl.schedule = "linear"           # linear (DDPM's betas, as DRL) | cosine (Nichol & Dhariwal)
  c.drl.beta_start = 1e-4             # the 1,000-step beta schedule the T levels are cut from
  c.drl.beta_end = 0.02
  c.drl.b_square = 2e-4               # level t's energy is f(y, t) / (b^2 c_t^2 sigma_{t+1}^2) and its
                                      # Langevin step that s_t^2 (DRL's mcmc_step_size_b_square)

  c.generator = ml_collections.ConfigDict()   # CoopNets' generator (objective.name = "coopnets")
  c.generator.z_dim = 50              # latent dimension (thesis code: z_size 100)
  c.generator.n_f = 128               # width: 4 n_f, 2 n_f, n_f channels (512/256/128)
  c.generator.leak = 0.01             # leaky-ReLU slope (torch's default, as the thesis code)
  c.generator.sigma = 0.3             # sigma_gen of the generator loss and of G1
  c.generator.langevin_steps = 0      # G1: Langevin steps on z (thesis langevin_step_num_gen: 0)
  c.generator.langevin_step_size = 0.1  # G1: delta (langevin_step_size_gen; CoopNets: 0.1)
  c.generator.langevin_noise = False  # G1: add delta * noise (thesis: with_noise)
  c.generator.learning_rate = 1e-4    # generator Adam lr (thesis lr_gen)
  c.generator.beta1 = 0.5             # generator Adam beta1 (thesis beta1_gen)
  c.generator.beta2 = 0.999           # generator Adam beta2

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"           # sgd | adam
  c.optimizer.learning_rate = 1e-4    # initial learning rate
  c.optimizer.lr_min = 0.0            # floor of the exponential decay
  c.optimizer.lr_decay = 1.0          # multiply the learning rate by this every step (1 = constant)
  c.optimizer.beta1 = 0.9             # adam beta1 (sgd: momentum, 0 = plain SGD as anatomy)
  c.optimizer.beta2 = 0.999           # adam beta2
  c.optimizer.weight_decay = 0.0      # decoupled weight decay, as AdamW: params x (1 - lr wd) per step
  c.optimizer.l2_penalty = 0.0        # L2 penalty: l2 x params added to the gradient before the
                                      # optimizer (torch's Adam(weight_decay=), the thesis code's)
  c.optimizer.grad_clip = 0.0         # clip the parameter gradient's global norm (0 = off)

  c.longrun = ml_collections.ConfigDict()
  c.longrun.every_steps = 0           # long-run chains every N updates (0 = off)
  c.longrun.num_steps = 2000          # sampler steps per long run (ebm-anatomy: 100,000)
  c.longrun.init = "data"             # uniform | gaussian | data | persistent | replay (anatomy: data)
  c.longrun.num_chains = 64           # chains per long run
  c.longrun.at_end = False            # the convergence check at the end: long runs from data and noise, scored

  c.likelihood = ml_collections.ConfigDict()   # log Z and test log-likelihood by AIS (ebm_jax.eval.likelihood)
  c.likelihood.at_end = False         # measure it when the run finishes (likelihood.json)
  c.likelihood.base = "gaussian"      # gaussian (fitted to the data) | uniform (the box [-1, 1]^D)
  c.likelihood.transition = "mala"    # mala | hmc (blackjax)
  c.likelihood.num_chains = 128       # AIS chains (vmapped)
  c.likelihood.num_distributions = 1000  # intermediate densities (sigmoid schedule)
  c.likelihood.steps_per_distribution = 1  # transitions at each
  c.likelihood.step_size = 0.01       # initial MALA h / HMC step, adapted per distribution
  c.likelihood.hmc_leapfrog_steps = 5
  c.likelihood.repeats = 3            # independent AIS runs (their spread is reported)
  c.likelihood.test_examples = 1000   # test points: fresh toy samples or the test split's first N
  c.likelihood.grid_res = 1000        # toys: grid points per axis of the exact log Z
  c.likelihood.temperature = 0.0      # c of exp(-c E): 0 = the training sampler's (1 where it has
                                      # none, e.g. noiseless descent); a study's noiseless cells
                                      # use their noisy counterparts' (study.likelihood)

  c.diagnostics = ml_collections.ConfigDict()
  c.diagnostics.figures_every_secs = 60  # refresh the plots/ figures at most this often (and at the end)
  # False: no matplotlib figures in plots/ (metrics, grids and the landscapes' KL are still
  # written); each figure costs about a second, per cell of a many-cell sweep.
  c.diagnostics.figures = True
  c.diagnostics.window = 2000         # recent steps in the d_s_t / r_t correlations (anatomy: 2000)
  c.diagnostics.max_lag = 15          # largest lag of the correlation plots (anatomy: 15)
  c.diagnostics.landscape_every_steps = 500  # toy densities: landscape figure + KL every N steps
  c.diagnostics.landscape_res = 200   # grid points per axis of the toy landscape
  c.diagnostics.kde_bandwidth = 0.1   # toy KDE bandwidth factor (anatomy: 0.1 gmm, 0.075 rings)
  c.diagnostics.kde_samples = 2000    # short-run samples in the toy KDE (anatomy: 10,000)

  c.eval = ml_collections.ConfigDict()
  c.eval.at_end = False               # image runs: score samples.npz (classifier FID/KID/IS/coverage)
  c.eval.every_steps = 0              # image runs: also score num_final_samples every N steps (0 = off)

  c.stop = ml_collections.ConfigDict()   # ending a run early, at a quality plateau
  c.stop.plateau_patience = 0         # end after N evaluations without improvement (0 = off)
  c.stop.plateau_min_improvement = 0.02  # an improvement: quality below (1 - this) x the best so far

  c.recovery = ml_collections.ConfigDict()   # what a rejected (diverging) update leads to
  c.recovery.max_retries = 3          # rewinds to the last checkpoint, new chain keys, lr x lr_factor (0 = stop)
  c.recovery.lr_factor = 0.5          # learning-rate multiplier of each recovery
  c.recovery.runaway_factor = 1000.0  # runaway: |energy| or r_t above this x its baseline
                                      # median (0 = off)
  c.recovery.runaway_window = 100     # the baseline median is over N updates ...
  c.recovery.runaway_start = 100      # ... after the first M (initialisation's transient)

  c.parallel = ml_collections.ConfigDict()
  c.parallel.num_devices = 0          # devices of the data-parallel mesh (0 = every device, all hosts)
  c.parallel.cpu_devices = 0          # CPU only: split the host into N XLA devices (train.py, before jax starts)
  c.parallel.distributed = "auto"     # jax.distributed.initialize(): auto (multi-host launchers) | on | off

  c.loss = ml_collections.ConfigDict()
  c.loss.scale = 1.0                  # loss multiplier (anatomy: 2 / eps^2 with step_size 1)
  c.loss.l2_energy = 0.0              # alpha of alpha * (mean(E(data)^2) + mean(E(samples)^2)), per sample
  return c


# ----------------------------------------------------------------------------- recipes and keys


def load_module(path: str, what: str = "recipe"):
  """Executes a recipe or sweep file. Recipes import their siblings as ``configs.<name>``: in a
  checkout the file's folder's parent goes on ``sys.path``; the recipes an installed package
  ships (``ebm_jax/recipes``) are that ``configs`` package themselves."""
  if not os.path.exists(path):
    raise ConfigError(f"{what} {path} not found")
  spec = importlib.util.spec_from_file_location(f"ebm_jax_{what}_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(spec)
  folder = os.path.dirname(os.path.abspath(path))
  if folder == os.path.join(os.path.dirname(os.path.abspath(__file__)), "recipes"):
    if "configs" not in sys.modules:
      package = types.ModuleType("configs")
      package.__path__ = [folder]
      sys.modules["configs"] = package
  elif os.path.dirname(folder) not in sys.path:
    sys.path.insert(0, os.path.dirname(folder))
  spec.loader.exec_module(module)
  return module


def recipe_path(name: str) -> str:
  """A recipe's file: a path as given, or a bare name (``toy_gmm``) from the recipes shipped
  with the package (``configs/`` of a checkout, ``ebm_jax/recipes`` of an installed wheel)."""
  if name.endswith(".py") or os.sep in name:
    return name
  package = os.path.dirname(os.path.abspath(__file__))
  for folder in (os.path.join(package, "recipes"),
                 os.path.join(os.path.dirname(package), "configs")):
    if os.path.exists(os.path.join(folder, name + ".py")):
      return os.path.join(folder, name + ".py")
  raise ConfigError(f"recipe {name!r} not found: give a recipe file (configs/<name>.py) or the "
                    "name of a shipped recipe")


def parse_overrides(items) -> dict:
  """``["key=value", ...]`` (the ``--config.key=value`` arguments) -> ``{key: value}``, each
  value read as its default's type: the text itself for a string key (``data.dir=2024`` stays
  a path), true / false (or 1 / 0) for a switch, else a Python literal (``1e-3``, ``(3, 4)``),
  or the text, which :func:`set_value` then refuses in one line."""
  defaults = get_config()
  out = {}
  for item in items:
    key, sep, text = item.partition("=")
    if not sep or not key:
      raise ConfigError(f"--config.{item}: expected --config.<key>=<value>")
    default = get_value(defaults, key)
    if isinstance(default, str):
      out[key] = text
    elif isinstance(default, bool) and text.lower() in ("true", "false", "1", "0"):
      out[key] = text.lower() in ("true", "1")
    else:
      try:
        out[key] = ast.literal_eval(text)
      except (ValueError, SyntaxError):
        out[key] = text
  return out


def load_recipe(spec: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """``configs/x.py[:variant]`` (or a shipped recipe's name, ``x[:variant]``) -> its config, with
  ``overrides`` (``{dotted key: value}``, e.g. from :func:`parse_overrides`) applied."""
  name, _, variant = spec.partition(":")
  path = recipe_path(name)
  module = load_module(path, "recipe")
  try:
    config = module.get_config(variant) if variant else module.get_config()
  except ValueError as e:
    raise ConfigError(f"{path}: {e}") from e
  for key, value in (overrides or {}).items():
    set_value(config, key, value)
  return config


def get_value(config, key: str):
  """The value at dotted ``key`` (e.g. ``"sampler.step_size"``)."""
  try:
    return config_path.get_value(key, config)
  except (KeyError, AttributeError) as e:
    raise ConfigError(f"config.{key}: unknown config key (see ebm_jax/config.py)") from e


def set_value(config, key: str, value) -> None:
  """Sets dotted ``key``, with the type of its default (an int where a float is expected is
  converted; a list becomes a tuple)."""
  get_value(config, key)
  try:
    config_path.set_value(key, config, tuple(value) if isinstance(value, list) else value)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.{key}={value!r}: {' '.join(str(e).split())}") from e


def objective_before_its_key(init_name: str) -> str:
  """The objective ``init.name`` chose before ``objective.name`` existed: CoopNets with the
  generator start, maximum likelihood otherwise (old runs' configs and run ids read by it)."""
  return "coopnets" if init_name == "generator" else "ml"


def from_dict(values: dict) -> ml_collections.ConfigDict:
  """A config from its ``to_dict()`` / ``config.json`` form."""
  config = ml_collections.ConfigDict(values)
  config.data.classes = tuple(config.data.classes)
  return config


def from_saved_run(values: dict, log=print) -> ml_collections.ConfigDict:
  """The config of a finished run's ``config.json``, validated. Keys added to the library after
  the run was made take their defaults (named in one ``log`` line), so older runs stay
  sampleable and scoreable; unknown keys and bad values are still errors."""
  config = from_dict(values)
  with config.unlocked():
    added = _fill_missing(config, get_config())
  if added:
    log(f"config.json predates keys {', '.join(added)}: using their defaults")
  if "optimizer.l2_penalty" in added and config.optimizer.weight_decay:
    # Before l2_penalty existed, weight_decay was added to the gradient before the optimizer:
    # the run keeps the treatment it trained with (the decoupled form is weight_decay now).
    config.optimizer.l2_penalty = config.optimizer.weight_decay
    config.optimizer.weight_decay = 0.0
    log(f"config.json predates optimizer.l2_penalty: its optimizer.weight_decay "
        f"{config.optimizer.l2_penalty:g} was the L2 form and is read as optimizer.l2_penalty")
  if "objective.name" in added and objective_before_its_key(config.init.name) == "coopnets":
    config.objective.name = "coopnets"
    log("config.json predates objective.name: its init.name 'generator' was CoopNets and is "
        "read as objective.name 'coopnets'")
  validate(config)
  return config


def _fill_missing(config, defaults, prefix="") -> list[str]:
  """Copies into ``config`` every key of ``defaults`` it lacks; returns their dotted names."""
  added = []
  for key, default in defaults.items():
    if key not in config:
      config[key] = default
      added += (list(_flatten(default, f"{prefix}{key}."))
                if isinstance(default, ml_collections.ConfigDict) else [f"{prefix}{key}"])
    elif isinstance(default, ml_collections.ConfigDict):
      added += _fill_missing(config[key], default, f"{prefix}{key}.")
  return added


# ----------------------------------------------------------------------------- validation


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
  if chain_starts.STARTS[config.init.name].has_store:
    sizes["init.bank_size"] = config.init.bank_size
  for key, size in sizes.items():
    _check(size % num_devices == 0, key,
           f"a multiple of the {num_devices} devices (or set parallel.num_devices)", size)


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError on the first unknown key, wrong type or bad value."""
  flat = _flatten(config)
  reference = _flatten(get_config())
  for key, value in flat.items():
    if key not in reference:
      raise ConfigError(f"config.{key}: unknown key (see ebm_jax/config.py for every key)")
    default = reference[key]
    _check(_type_ok(value, default), key, f"type {type(default).__name__}", value)
  for key in reference:
    if key not in flat:
      raise ConfigError(f"config.{key}: missing (recipes must start from ebm_jax.config.get_config())")

  c = config
  sampler_names, start_names = tuple(samplers.SAMPLERS), tuple(chain_starts.STARTS)
  optimizer_names = tuple(optimizers.OPTIMIZERS)
  positive = lambda v: v > 0
  non_negative = lambda v: v >= 0
  unit = lambda v: 0 <= v < 1
  rules: list[tuple[str, Callable[[Any], bool], str]] = [
      ("num_train_steps", positive, "a positive int"),
      ("train_time_budget_s", non_negative, "seconds >= 0 (0 = no wall-clock budget)"),
      ("batch_size", positive, "a positive int"),
      ("log_every_steps", positive, "a positive int"),
      ("checkpoint_every_steps", positive, "a positive int"),
      ("keep_checkpoints", positive, "a positive int"),
      ("num_final_samples", non_negative, "a non-negative int"),
      ("final_num_steps", non_negative, "an int >= 0 (0 = the training sampler's K)"),
      ("final_step_fraction", lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
      ("num_grid_images", positive, "a positive int"),
      ("ema.decay", unit, "a decay in [0, 1) (0 = no EMA)"),
      ("objective.name", lambda v: v in objectives.OBJECTIVES, f"one of {list(objectives.OBJECTIVES)}"),
      ("data.name", lambda v: v in data_lib.DATASETS, f"one of {data_lib.names()}"),
      ("data.image_size", lambda v: v in models.IMAGE_SIZES, f"one of {models.IMAGE_SIZES}"),
      ("data.noise_std", non_negative, "a number >= 0"),
      ("data.classes", lambda v: all(isinstance(k, int) for k in v), "a tuple of int labels"),
      ("data.toy_sd", positive, "a number > 0"),
      ("data.toy_radius", positive, "a number > 0"),
      ("model.name", lambda v: v in models.MODELS, f"one of {tuple(models.MODELS)}"),
      ("model.n_f", positive, "a positive int"),
      ("model.leak", unit, "a slope in [0, 1)"),
      ("model.activation", lambda v: v in models.ACTIVATIONS,
       f"one of {tuple(models.ACTIVATIONS)}"),
      ("model.conv_impl", lambda v: v in models.CONV_IMPLS, f"one of {models.CONV_IMPLS}"),
      ("model.compute_dtype", lambda v: v in models.COMPUTE_DTYPES,
       f"one of {models.COMPUTE_DTYPES}"),
      ("sampler.name", lambda v: v in sampler_names, f"one of {sampler_names}"),
      ("sampler.num_steps", positive, "a positive int"),
      ("sampler.step_size", positive, "a number > 0"),
      ("sampler.noise_std", non_negative, "a number >= 0"),
      ("sampler.max_grad_norm", non_negative, "a number >= 0 (0 = off)"),
      ("sampler.momentum", unit, "a number in [0, 1)"),
      ("sampler.adam_beta1", unit, "a number in [0, 1)"),
      ("sampler.adam_beta2", unit, "a number in [0, 1)"),
      ("sampler.hmc_leapfrog_steps", positive, "a positive int"),
      ("sampler.unroll", non_negative, "an int >= 0 (0 = fully unrolled)"),
      ("init.name", lambda v: v in start_names, f"one of {start_names}"),
      ("init.scale", positive, "a number > 0"),
      ("init.start_noise_std", non_negative, "a number >= 0"),
      ("sampler.noise_divide", positive, "a number > 0"),
      ("divergence_threshold", non_negative, "a number >= 0 (0 = off)"),
      ("drl.num_levels", positive, "a positive int"),
      ("drl.schedule", lambda v: v in objectives.SCHEDULES, f"one of {objectives.SCHEDULES}"),
      ("drl.beta_start", lambda v: 0 < v < 1, "a number in (0, 1)"),
      ("drl.beta_end", lambda v: 0 < v < 1, "a number in (0, 1)"),
      ("drl.b_square", positive, "a number > 0"),
      ("likelihood.base", lambda v: v in ("gaussian", "uniform"), "one of gaussian, uniform"),
      ("likelihood.transition", lambda v: v in ("mala", "hmc"), "one of mala, hmc"),
      ("likelihood.num_chains", lambda v: v >= 2, "an int >= 2"),
      ("likelihood.num_distributions", positive, "a positive int"),
      ("likelihood.steps_per_distribution", positive, "a positive int"),
      ("likelihood.step_size", positive, "a number > 0"),
      ("likelihood.hmc_leapfrog_steps", positive, "a positive int"),
      ("likelihood.repeats", positive, "a positive int"),
      ("likelihood.test_examples", lambda v: v >= 2, "an int >= 2"),
      ("likelihood.grid_res", lambda v: v >= 10, "an int >= 10"),
      ("likelihood.temperature", non_negative, "a number >= 0 (0 = the sampler's)"),
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
      ("optimizer.name", lambda v: v in optimizer_names, f"one of {optimizer_names}"),
      ("optimizer.learning_rate", positive, "a number > 0"),
      ("optimizer.lr_min", non_negative, "a number >= 0"),
      ("optimizer.lr_decay", lambda v: 0 < v <= 1, "a factor in (0, 1]"),
      ("optimizer.beta1", unit, "a number in [0, 1)"),
      ("optimizer.beta2", unit, "a number in [0, 1)"),
      ("optimizer.weight_decay", non_negative, "a number >= 0"),
      ("optimizer.l2_penalty", non_negative, "a number >= 0"),
      ("optimizer.grad_clip", non_negative, "a number >= 0 (0 = off)"),
      ("longrun.every_steps", non_negative, "an int >= 0 (0 = off)"),
      ("longrun.num_steps", positive, "a positive int"),
      ("longrun.init", lambda v: v in start_names, f"one of {start_names}"),
      ("longrun.num_chains", positive, "a positive int"),
      ("diagnostics.window", lambda v: v >= 3, "an int >= 3"),
      ("diagnostics.figures_every_secs", non_negative, "a number of seconds >= 0"),
      ("diagnostics.max_lag", positive, "a positive int"),
      ("diagnostics.landscape_every_steps", non_negative, "an int >= 0 (0 = off)"),
      ("diagnostics.landscape_res", lambda v: v >= 10, "an int >= 10"),
      ("diagnostics.kde_bandwidth", positive, "a number > 0"),
      ("diagnostics.kde_samples", lambda v: v >= 10, "an int >= 10"),
      ("eval.every_steps", non_negative, "an int >= 0 (0 = off)"),
      ("stop.plateau_patience", non_negative, "an int >= 0 (0 = off)"),
      ("stop.plateau_min_improvement", lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
      ("parallel.num_devices", non_negative, "an int >= 0 (0 = all devices)"),
      ("parallel.cpu_devices", non_negative, "an int >= 0 (0 or 1 = one CPU device)"),
      ("parallel.distributed", lambda v: v in ("auto", "on", "off"), "one of auto, on, off"),
      ("loss.scale", positive, "a number > 0"),
      ("recovery.max_retries", non_negative, "an int >= 0 (0 = stop at the first divergence)"),
      ("recovery.lr_factor", lambda v: 0 < v <= 1, "a factor in (0, 1]"),
      ("recovery.runaway_factor", lambda v: v == 0 or v > 1, "0 (off) or a factor > 1"),
      ("recovery.runaway_window", positive, "a positive int"),
      ("recovery.runaway_start", non_negative, "an int >= 0"),
      ("loss.l2_energy", non_negative, "a number >= 0"),
  ]
  for key, rule, expected in rules:
    _check(rule(flat[key]), key, expected, flat[key])

  # CoopNets' chains start from its generator's proposals and only there (before objective.name
  # existed, init.name = "generator" alone chose CoopNets).
  if c.init.name == "generator":
    _check(c.objective.name == "coopnets", "objective.name", "'coopnets' with init.name = "
           "'generator' (the generator's proposals are CoopNets' chain start)", c.objective.name)
  elif c.objective.name == "coopnets":
    _check(False, "init.name", "'generator' for objective.name = 'coopnets'", c.init.name)
  # A uniform base covers only the box [-1, 1]^D: right for a sampler that clips its chains
  # there, an undercount of Z (and an overstated likelihood) for one that does not.
  _check(c.likelihood.base == "gaussian" or c.sampler.clip_x, "likelihood.base",
         "'gaussian' unless sampler.clip_x (a uniform base covers only the box [-1, 1]^D)",
         c.likelihood.base)
  if c.objective.name == "recovery_likelihood":
    # Its chains are unadjusted Langevin at each level's own step (the sampler section is level
    # 0's), and sampling starts from the top level's Gaussian noise.
    _check(c.sampler.name == "langevin", "sampler.name", "'langevin' for objective.name = "
           "'recovery_likelihood' (its per-level chains)", c.sampler.name)
    _check(c.init.name == "gaussian", "init.name", "'gaussian' for objective.name = "
           "'recovery_likelihood' (x_T ~ N(0, init.scale^2))", c.init.name)
    _check(c.drl.beta_start < c.drl.beta_end, "drl.beta_end",
           f"above drl.beta_start ({c.drl.beta_start})", c.drl.beta_end)
  toy = data_lib.is_toy(c.data.name)
  _check((c.model.name == "toy_mlp") == toy, "model.name",
         "'toy_mlp' for the toy densities and an image net for images", c.model.name)
  if toy:
    _check(not c.data.classes, "data.classes", "() for toy densities", c.data.classes)
  else:
    sizes = data_lib.get(c.data.name).image_sizes
    _check(c.data.image_size in sizes, "data.image_size",
           f"one of {list(sizes)} for {c.data.name}", c.data.image_size)
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
  if chain_starts.STARTS[c.longrun.init].has_store:
    _check(c.longrun.init == c.init.name, "longrun.init",
           f"a noise or data start, or init.name ({c.init.name!r}) whose store exists",
           c.longrun.init)
  if c.longrun.every_steps and chain_starts.STARTS[c.longrun.init].has_store:
    _check(c.longrun.num_chains <= c.init.bank_size, "longrun.num_chains",
           f"at most init.bank_size ({c.init.bank_size}) for a long run from the "
           f"{c.longrun.init} store", c.longrun.num_chains)
  if c.eval.at_end or c.eval.every_steps:
    _check(c.num_final_samples > 0, "num_final_samples",
           "> 0 with eval.at_end or eval.every_steps (they score that many samples)",
           c.num_final_samples)
  if chain_starts.STARTS[c.init.name].has_store:
    _check(c.init.bank_size >= c.batch_size, "init.bank_size",
           f"at least batch_size ({c.batch_size}) for init.name={c.init.name!r}",
           c.init.bank_size)
  # Langevin's stationary density exp(-2 step E / noise^2) is unchanged by step x f, noise x
  # sqrt(f); the other samplers' targets (or their lack of one) are not.
  if c.final_step_fraction != 1:
    _check(c.sampler.name == "langevin", "final_step_fraction",
           f"1 for sampler {c.sampler.name!r} (fractions keep only Langevin's target)",
           c.final_step_fraction)
  spec = samplers.SAMPLERS[c.sampler.name]
  if not spec.clip_options:
    for key in ("clip_x", "max_grad_norm"):
      _check(not c.sampler[key], f"sampler.{key}",
             f"off for sampler {c.sampler.name!r} (its Metropolis correction ignores it)",
             c.sampler[key])
