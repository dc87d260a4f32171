"""The typed static spec: a run's config resolved once, with every per-model value removed.

A config (``ml_collections.ConfigDict``) is the user's form: recipes, overrides, ``config.json``.
Everything that runs is built from two things resolved from it at the boundary
(:func:`from_config`):

- a :class:`Spec`, frozen and typed, one dataclass per config section (as VDM's
  ``VDMConfig(**config.model)``): shapes, names, K, switches, schedules: what every model of a
  vmapped group shares;
- :class:`~ebm_jax.hparams.HParams`, the vmappable scalars, one per model.

A vmappable key (:data:`~ebm_jax.hparams.VMAPPABLE_KEYS`) exists only in ``HParams``: reading it
from the spec raises :class:`PerModelValueError`, so host code cannot score every model of a
group at the first model's temperature::

    >>> from ebm_jax import config, spec
    >>> s = spec.from_config(config.get_config())
    >>> s.sampler.num_steps
    20
    >>> s.sampler.step_size  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ebm_jax.spec.PerModelValueError: sampler.step_size is a per-model value: read it from ...
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ebm_jax import hparams as hparams_lib


class PerModelValueError(TypeError):
  """A vmappable value was read from the static spec (one-line message naming the field)."""


# config key -> HParams field, for the error message.
_PER_MODEL = {key: field for field, key in hparams_lib.CONFIG_KEYS.items()}


class _Section:
  """A spec section: a removed (per-model) key raises :class:`PerModelValueError`."""
  KEY: ClassVar[str] = ""

  def __getattr__(self, name: str):
    # Only called for attributes the dataclass does not have.
    key = f"{self.KEY}.{name}" if self.KEY else name
    if key in _PER_MODEL:
      raise PerModelValueError(
          f"{key} is a per-model value: read it from the model's HParams "
          f"(hp.{_PER_MODEL[key]}), not from the static spec")
    raise AttributeError(f"{type(self).__name__} has no field {name!r}")

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)


_frozen = dataclasses.dataclass(frozen=True)


@_frozen
class Ema(_Section):
  KEY = "ema"
  decay: float


@_frozen
class Objective(_Section):
  KEY = "objective"
  name: str


@_frozen
class Drl(_Section):
  """Recovery likelihood's noise levels and step rule (``objective.name =
  "recovery_likelihood"``)."""
  KEY = "drl"
  num_levels: int
  schedule: str
  beta_start: float
  beta_end: float
  b_square: float


@_frozen
class Likelihood(_Section):
  """The AIS protocol of ``likelihood.json`` (:mod:`ebm_jax.eval.likelihood`)."""
  KEY = "likelihood"
  at_end: bool
  base: str
  transition: str
  num_chains: int
  num_distributions: int
  steps_per_distribution: int
  step_size: float
  hmc_leapfrog_steps: int
  repeats: int
  test_examples: int
  grid_res: int
  temperature: float


@_frozen
class Data(_Section):
  KEY = "data"
  name: str
  dir: str
  image_size: int
  noise_std: float
  classes: tuple
  toy_sd: float
  toy_radius: float


@_frozen
class Model(_Section):
  KEY = "model"
  name: str
  n_f: int
  leak: float
  activation: str
  spectral_norm: bool
  conv_impl: str
  compute_dtype: str


@_frozen
class Sampler(_Section):
  KEY = "sampler"
  name: str
  num_steps: int
  noise_divide: float
  clip_x: bool
  max_grad_norm: float
  momentum: float
  adam_beta1: float
  adam_beta2: float
  hmc_leapfrog_steps: int
  unroll: int


@_frozen
class Init(_Section):
  KEY = "init"
  name: str
  bank_size: int
  bank_dtype: str


@_frozen
class Generator(_Section):
  KEY = "generator"
  z_dim: int
  n_f: int
  leak: float
  sigma: float
  langevin_steps: int
  langevin_step_size: float
  langevin_noise: bool
  learning_rate: float
  beta1: float
  beta2: float


@_frozen
class Optimizer(_Section):
  KEY = "optimizer"
  name: str
  lr_decay: float
  beta1: float
  beta2: float
  weight_decay: float
  l2_penalty: float
  grad_clip: float


@_frozen
class LongRun(_Section):
  KEY = "longrun"
  every_steps: int
  num_steps: int
  init: str
  num_chains: int
  at_end: bool


@_frozen
class Diagnostics(_Section):
  KEY = "diagnostics"
  figures_every_secs: float
  figures: bool
  window: int
  max_lag: int
  landscape_every_steps: int
  landscape_res: int
  kde_bandwidth: float
  kde_samples: int


@_frozen
class Eval(_Section):
  KEY = "eval"
  at_end: bool
  every_steps: int


@_frozen
class Stop(_Section):
  KEY = "stop"
  plateau_patience: int
  plateau_min_improvement: float


@_frozen
class Recovery(_Section):
  KEY = "recovery"
  max_retries: int
  lr_factor: float
  runaway_factor: float
  runaway_window: int
  runaway_start: int


@_frozen
class Parallel(_Section):
  KEY = "parallel"
  num_devices: int
  cpu_devices: int
  distributed: str


@_frozen
class Loss(_Section):
  """Empty: ``loss.scale`` and ``loss.l2_energy`` are both per-model values."""
  KEY = "loss"


@_frozen
class Spec(_Section):
  """Every static setting of a run (``config`` minus the per-model values)."""
  num_train_steps: int
  train_time_budget_s: float
  batch_size: int
  log_every_steps: int
  checkpoint_every_steps: int
  keep_checkpoints: int
  divergence_threshold: float
  checkpoint_dir: str
  num_final_samples: int
  final_num_steps: int
  final_step_fraction: float
  num_grid_images: int
  tensorboard: bool
  ema: Ema
  objective: Objective
  drl: Drl
  data: Data
  model: Model
  sampler: Sampler
  init: Init
  generator: Generator
  optimizer: Optimizer
  longrun: LongRun
  diagnostics: Diagnostics
  likelihood: Likelihood
  eval: Eval
  stop: Stop
  recovery: Recovery
  parallel: Parallel
  loss: Loss

  @property
  def final_sampler(self) -> Sampler:
    """The sampler of the chains that make ``samples.npz``, evaluations and toy KDEs: the
    training sampler with ``final_num_steps`` steps (0 = the training K)."""
    return self.sampler.replace(num_steps=self.final_num_steps or self.sampler.num_steps)


def _build(cls, values):
  kwargs = {}
  for f in dataclasses.fields(cls):
    value = values[f.name]
    if isinstance(f.type, str) and f.type in _SECTIONS:
      value = _build(_SECTIONS[f.type], value)
    elif isinstance(value, list):
      value = tuple(value)
    kwargs[f.name] = value
  return cls(**kwargs)


_SECTIONS = {cls.__name__: cls for cls in (Ema, Objective, Drl, Likelihood, Data, Model, Sampler,
                                             Init, Generator, Optimizer, LongRun, Diagnostics,
                                             Eval, Stop, Recovery, Parallel, Loss)}


def from_config(config) -> Spec:
  """The static spec of a validated config (a ``ConfigDict`` or its ``to_dict()`` form)."""
  return _build(Spec, config)


def fields(spec_cls=Spec, prefix: str = "") -> list[str]:
  """Every dotted key the spec holds (the config's keys minus the per-model ones)."""
  out = []
  for f in dataclasses.fields(spec_cls):
    if isinstance(f.type, str) and f.type in _SECTIONS:
      out += fields(_SECTIONS[f.type], f"{prefix}{f.name}.")
    else:
      out.append(f"{prefix}{f.name}")
  return out


def difference(a: Spec, b: Spec) -> list[str]:
  """The dotted keys whose static values differ between two specs."""
  out = []
  for key in fields():
    va, vb = a, b
    for part in key.split("."):
      va, vb = getattr(va, part), getattr(vb, part)
    if va != vb:
      out.append(key)
  return out
