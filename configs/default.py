"""Every config key, with its default and a one-line comment: ``ebm_jax/config.py``.

Recipes start from ``default.get_config()`` and override it; ``--config.sampler.num_steps=60``
overrides any key on the command line. The defaults live in the package so an installed
``ebm_jax`` validates a config without this repository.
"""

from ebm_jax.config import get_config  # noqa: F401  (re-exported for the recipes)
