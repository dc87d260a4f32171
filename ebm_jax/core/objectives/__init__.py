"""Training objectives, one module each, sharing :mod:`ebm_jax.core.objectives.base`.

:data:`OBJECTIVES` maps a name to its :class:`~ebm_jax.core.objectives.base.Objective`; a config
selects one by :func:`name_of` (CoopNets with ``init.name = "generator"``, else maximum
likelihood). A new objective (recovery likelihood, say) is one module and one entry here.
"""

from ebm_jax.core.objectives import base
from ebm_jax.core.objectives.coopnets import CoopNets
from ebm_jax.core.objectives.ml import MaximumLikelihood

OBJECTIVES = {"ml": MaximumLikelihood, "coopnets": CoopNets}


def name_of(spec) -> str:
  return "coopnets" if spec.init.name == "generator" else "ml"


def build(spec, comps: base.Components) -> base.Objective:
  """The objective of a :class:`~ebm_jax.spec.Spec`, built on its components."""
  return OBJECTIVES[name_of(spec)](spec, comps)
