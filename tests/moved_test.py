"""The flat module paths of ebm_jax 0.1 keep working: the same module objects as the layered
ones, a DeprecationWarning naming the new path, and ``python -m`` of an old command runs it."""

import os
import re
import subprocess
import sys
import warnings

import pytest

import ebm_jax
from ebm_jax import _moved

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_an_old_path_imports_the_new_module_itself(old):
  import importlib
  new = importlib.import_module("ebm_jax." + _moved.MOVED[old])
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    sys.modules.pop(f"ebm_jax.{old}", None)
    module = importlib.import_module(f"ebm_jax.{old}")
  assert module is new        # one object: a registry entry or a patched function is shared
  assert new.__spec__.name == "ebm_jax." + _moved.MOVED[old]     # its own spec, kept
  assert any(f"ebm_jax.{old} moved to ebm_jax.{_moved.MOVED[old]}" in str(w.message)
             for w in caught)


def test_a_submodule_of_a_moved_package_is_the_new_one():
  from ebm_jax.core.objectives import base
  import ebm_jax.objectives.base as old_base
  assert old_base is base


def test_an_old_command_runs_the_new_one_and_says_so():
  result = subprocess.run([sys.executable, "-m", "ebm_jax.convergence", "--workdir=/nonexistent"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert lines[0] == "note: python -m ebm_jax.convergence is now python -m ebm_jax.study.longrun"
  assert lines[-1] == ("error: /nonexistent/config.json not found: /nonexistent is not a "
                       "training run")


def test_the_public_api_resolves_every_name():
  for name in ebm_jax.__all__:
    assert getattr(ebm_jax, name) is not None, name
  with pytest.raises(AttributeError, match="no attribute 'nope'"):
    getattr(ebm_jax, "nope")


@pytest.mark.parametrize("module, name, where", [
    ("ebm_jax.run.loop", "write_samples", "ebm_jax.run.actions"),
    ("ebm_jax.run.loop", "runaway_cause", "ebm_jax.run.recovery"),
    ("ebm_jax.eval.metrics", "evaluate_run", "ebm_jax.run.evaluate"),
    ("ebm_jax.core.objectives.base", "OPTIMIZERS", "ebm_jax.core.optimizers"),
    ("ebm_jax.study.report", "CLAIMS", "ebm_jax.study.claims"),
    ("ebm_jax.data", "DATASET_NAMES", "ebm_jax.data (names())"),
])
def test_a_name_that_moved_to_another_module_fails_naming_its_place(module, name, where):
  import importlib
  mod = importlib.import_module(module)
  with pytest.raises(AttributeError, match=rf"^{module}\.{name} moved to {re.escape(where)}$"):
    getattr(mod, name)
  new = importlib.import_module(where.split(" ")[0])
  assert hasattr(new, name if "(" not in where else "names")
  with pytest.raises(AttributeError, match=rf"module '{module}' has no attribute 'nope'"):
    getattr(mod, "nope")
