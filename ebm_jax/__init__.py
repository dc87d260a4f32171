"""ebm_jax: training and studying energy-based models by MCMC-based maximum likelihood."""

from ebm_jax import buffers
from ebm_jax import inits
from ebm_jax import losses
from ebm_jax import models
from ebm_jax import samplers
from ebm_jax.buffers import PersistentBank, ReplayBuffer
from ebm_jax.losses import contrastive_loss, generator_loss
from ebm_jax.models import get_model, make_energy_fn, update_spectral_state
from ebm_jax.samplers import (ChainInfo, ChainState, Sampler, gradient_descent, hmc, langevin,
                              mala, optax_sampler, run_chain, run_chain_thinned)

__version__ = "0.1.0"
