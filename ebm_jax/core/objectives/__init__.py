"""Training objectives, one module each, sharing :mod:`ebm_jax.core.objectives.base`.

:data:`OBJECTIVES` maps ``objective.name`` to its :class:`~ebm_jax.core.objectives.base.Objective`:
``ml`` (maximum likelihood, :mod:`~ebm_jax.core.objectives.ml`), ``coopnets``
(:mod:`~ebm_jax.core.objectives.coopnets`) and ``recovery_likelihood`` (DRL,
:mod:`~ebm_jax.core.objectives.recovery_likelihood`). A new objective is one module and one
entry here; the config's validation and the CLI follow from the registry.
"""

from ebm_jax.core.objectives import base
from ebm_jax.core.objectives.coopnets import CoopNets
from ebm_jax.core.objectives.ml import MaximumLikelihood
from ebm_jax.core.objectives.recovery_likelihood import RecoveryLikelihood, SCHEDULES
from ebm_jax import _moved

OBJECTIVES = {"ml": MaximumLikelihood, "coopnets": CoopNets,
              "recovery_likelihood": RecoveryLikelihood}


def make_components(spec, data_source, mesh=None) -> base.Components:
  """The run's network, energy and optimizer, as its objective builds them."""
  return OBJECTIVES[spec.objective.name].components(spec, data_source, mesh)


def build(spec, comps: base.Components) -> base.Objective:
  """The objective ``spec.objective.name``, built on the run's components."""
  return OBJECTIVES[spec.objective.name](spec, comps)


def __getattr__(name: str):
  return _moved.attribute(__name__, name)     # a name that moved away, named in one line
