"""The typed static spec: every static key once, no per-model key at all."""

import dataclasses

import pytest

from ebm_jax import config as config_lib
from ebm_jax import hparams, spec
from testutil import tiny_toy_config


def _flat_keys(c, prefix=""):
  keys = []
  for key, value in c.items():
    if hasattr(value, "items"):
      keys += _flat_keys(value, f"{prefix}{key}.")
    else:
      keys.append(f"{prefix}{key}")
  return keys


def test_the_spec_holds_every_config_key_except_the_per_model_ones():
  every = set(_flat_keys(config_lib.get_config()))
  assert set(spec.fields()) == every - set(hparams.VMAPPABLE_KEYS)
  assert set(hparams.VMAPPABLE_KEYS) <= every


def test_values_come_through_typed_and_frozen():
  s = spec.from_config(tiny_toy_config(**{"data.classes": [3], "sampler.num_steps": 7}))
  assert s.sampler.num_steps == 7 and s.data.classes == (3,) and s.model.name == "toy_mlp"
  assert hash(s) == hash(spec.from_config(tiny_toy_config(**{"data.classes": (3,),
                                                             "sampler.num_steps": 7})))
  with pytest.raises(dataclasses.FrozenInstanceError):
    s.sampler.num_steps = 3


@pytest.mark.parametrize("key", hparams.VMAPPABLE_KEYS)
def test_a_per_model_value_cannot_be_read_from_the_spec(key):
  s = spec.from_config(tiny_toy_config())
  field = {v: k for k, v in hparams.CONFIG_KEYS.items()}[key]
  *sections, name = key.split(".")
  section = s
  for part in sections:
    section = getattr(section, part)
  with pytest.raises(spec.PerModelValueError,
                     match=rf"^{key} is a per-model value: read it from the model's HParams "
                           rf"\(hp\.{field}\), not from the static spec$"):
    getattr(section, name)
  # Not an AttributeError, so getattr(section, name, default) cannot hide the mistake either.
  with pytest.raises(spec.PerModelValueError):
    getattr(section, name, None)


def test_an_unknown_field_is_an_attribute_error():
  with pytest.raises(AttributeError, match="Sampler has no field 'stepsize'"):
    _ = spec.from_config(tiny_toy_config()).sampler.stepsize


def test_cells_of_a_group_share_a_spec_and_differ_only_in_hparams():
  a = tiny_toy_config(**{"sampler.step_size": 0.05, "seed": 0})
  b = tiny_toy_config(**{"sampler.step_size": 0.5, "seed": 3})
  assert spec.from_config(a) == spec.from_config(b)
  assert float(hparams.from_config(b).step_size) == 0.5
  c = tiny_toy_config(**{"sampler.num_steps": 9})
  assert spec.difference(spec.from_config(a), spec.from_config(c)) == ["sampler.num_steps"]


def test_final_sampler_has_the_final_chains_k():
  s = spec.from_config(tiny_toy_config(**{"final_num_steps": 40}))
  assert s.final_sampler.num_steps == 40 and s.sampler.num_steps == 5
  assert spec.from_config(tiny_toy_config()).final_sampler.num_steps == 5


def test_the_module_examples_run():
  import doctest
  assert doctest.testmod(spec, raise_on_error=False).failed == 0
