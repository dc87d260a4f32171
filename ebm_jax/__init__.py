"""ebm_jax: training and studying energy-based models by MCMC-based maximum likelihood.

The layers, each a package that imports only those below it (checked in CI by import-linter)::

  ebm_jax.study    many runs: sweeps, searches, statistics, the report, the leaderboard
  ebm_jax.run      one run or a vmapped group: runner, loop, checkpoints, the run directory
  ebm_jax.eval     measuring samples and models: metrics, Inception, diagnostics, convergence,
                   log-likelihoods (AIS)
  ebm_jax.config   defaults and validation -> ebm_jax.spec (static) + ebm_jax.hparams (vmappable)
  ebm_jax.data     the DATASETS registry: loading, fetching, toy densities
  ebm_jax.files    atomic writes, process 0 only
  ebm_jax.core     the maths: models, samplers, chain starts, losses, optimizers, objectives
  ebm_jax.cli, ebm_jax.hparams, ebm_jax.errors    used by every layer above them

The public API is what this module exports. A recipe, changed and trained:

>>> import ebm_jax
>>> config = ebm_jax.load_recipe("toy_gmm")      # or a file: configs/toy_gmm.py[:variant]
>>> config.sampler.num_steps, config.objective.name
(20, 'ml')
>>> sorted(ebm_jax.OBJECTIVES)
['coopnets', 'ml', 'recovery_likelihood']
>>> "langevin" in ebm_jax.SAMPLERS and "persistent" in ebm_jax.STARTS
True
>>> ebm_jax.DATASETS["mnist"].image_shape, ebm_jax.DATASETS["gmm"].is_toy
((28, 28, 1), True)

``ebm_jax.train_and_evaluate(config, workdir)`` trains it (``python train.py`` does the same),
``ebm_jax.sample_checkpoint(workdir)`` draws from a saved run, ``ebm_jax.load_run(workdir)``
rebuilds one, and ``ebm_jax.Sweep`` / ``Grid`` / ``Search`` describe studies. The kernels run on
their own, on any energy function:

>>> import jax, jax.numpy as jnp
>>> energy_fn = lambda x: 0.5 * jnp.sum(x ** 2, axis=-1)   # exp(-E): a standard Gaussian
>>> sampler = ebm_jax.langevin(step_size=0.05, noise_std=0.1 ** 0.5)   # ULA, eps^2 / 2 and eps
>>> state = sampler.init(jnp.zeros((4000, 1)), energy_fn)
>>> state, info = ebm_jax.run_chain(jax.random.key(0), sampler.step, state, energy_fn, 500)
>>> round(float(jnp.var(state.position)), 1)    # ULA's stationary variance: 1 / (1 - h / 2)
1.0

Its log normaliser by annealed importance sampling, against the closed form log sqrt(2 pi):

>>> base = ebm_jax.gaussian_base(jnp.zeros((2, 1)), min_sd=2.0)   # N(0, 2^2)
>>> est = ebm_jax.ais(energy_fn, base, jax.random.key(1), num_chains=500, num_distributions=50)
>>> abs(est.log_z - 0.9189) < 3 * est.log_z_se, est.ess > 400
(True, True)
"""

from __future__ import annotations

import importlib

from ebm_jax import _moved
_moved.install()

__version__ = "0.1.0"

# name -> the module that defines it; imported on first use, so `import ebm_jax` stays light.
_API = {
    # configs
    "get_config": "ebm_jax.config", "load_recipe": "ebm_jax.config",
    "ConfigError": "ebm_jax.config", "Spec": "ebm_jax.spec", "HParams": "ebm_jax.hparams",
    # registries: one entry per choice, every CLI and validation list follows from them
    "MODELS": "ebm_jax.core.models", "SAMPLERS": "ebm_jax.core.samplers",
    "STARTS": "ebm_jax.core.chain_starts", "OPTIMIZERS": "ebm_jax.core.optimizers",
    "OBJECTIVES": "ebm_jax.core.objectives", "DATASETS": "ebm_jax.data",
    # the maths
    "make_energy_fn": "ebm_jax.core.models", "get_model": "ebm_jax.core.models",
    "langevin": "ebm_jax.core.samplers", "mala": "ebm_jax.core.samplers",
    "hmc": "ebm_jax.core.samplers", "run_chain": "ebm_jax.core.samplers",
    "ChainState": "ebm_jax.core.samplers", "Sampler": "ebm_jax.core.samplers",
    "SamplerSpec": "ebm_jax.core.samplers", "register_sampler": "ebm_jax.core.samplers",
    "energy_and_grad": "ebm_jax.core.samplers", "step_info": "ebm_jax.core.samplers",
    "PersistentBank": "ebm_jax.core.buffers", "ReplayBuffer": "ebm_jax.core.buffers",
    "contrastive_loss": "ebm_jax.core.losses",
    "ais": "ebm_jax.eval.likelihood", "reverse_ais": "ebm_jax.eval.likelihood",
    "gaussian_base": "ebm_jax.eval.likelihood", "grid_log_z": "ebm_jax.eval.likelihood",
    # runs
    "train_and_evaluate": "ebm_jax.run.train", "TrainingDiverged": "ebm_jax.run.loop",
    "load_run": "ebm_jax.run.runner", "sample_checkpoint": "ebm_jax.run.from_checkpoint",
    "read_metrics": "ebm_jax.run.reporting",
    # studies
    "Sweep": "ebm_jax.study.sweep", "Grid": "ebm_jax.study.sweep",
    "Search": "ebm_jax.study.search",
}
__all__ = sorted(_API)


# Public names that differ from their module's.
_RENAMED = {"register_sampler": "register"}


def __getattr__(name: str):
  if name not in _API:
    raise AttributeError(f"module 'ebm_jax' has no attribute {name!r}")
  value = getattr(importlib.import_module(_API[name]), _RENAMED.get(name, name))
  globals()[name] = value
  return value


def __dir__():
  return sorted(set(globals()) | set(_API))
