"""CoopNets (Xie et al., AAAI 2018) on MNIST: a generator proposes chain starts, the energy's
sampler revises them, both networks learn from the revisions (MCMC teaching).

Variants:
  (none)   The CPU MNIST recipe (``configs/mnist.py``: vanilla ConvNet n_f 16 with SiLU at
           28x28, K = 20 Langevin revisions of step 1 and noise 0.01, Adam 2e-3 annealed, EMA
           0.995 of the energy's weights, 17 minutes of training) with the chains started
           from a generator (n_f 16, z_dim 50, Adam 1e-3) instead of a replay buffer, and
           samples.npz made by the training chain itself (K = 20 revisions of fresh
           proposals). samples.npz holds the revised samples (``x``) and the generator's
           proposals they started from (``proposals``); both are scored.
  thesis   the thesis code's generator-init settings at 32x32: vanilla descriptor n_f 64, leak
           0.2; K = 100 SGD revisions with step 1 and no noise; Adam 1e-4 for both nets with
           beta1 0.5; data noise 0.03; batch 100; 10,000 updates (for a GPU).
"""

from configs import default
from configs import mnist

VARIANTS = ("thesis",)   # besides the default


def _generator(c, *, n_f: int, learning_rate: float):
  c.objective.name = "coopnets"
  c.init.name = "generator"
  c.generator.n_f = n_f
  c.generator.z_dim = 50
  c.generator.learning_rate = learning_rate
  c.generator.beta1 = 0.5                 # thesis: 0.5 with generator init
  c.generator.sigma = 0.3
  return c


def get_config(variant=None):
  if variant is None:
    c = _generator(mnist.get_config(), n_f=16, learning_rate=1e-3)
    # The K the energy was trained with revises the proposals best. At 1,424 updates (EMA
    # weights, 1,000 chains from fresh proposals, classifier FID / confident fraction):
    # K 20: 5.40 / 0.825; 30: 10.9 / 0.863; 40: 21.4 / 0.874; 60 (the replay recipe's final K):
    # 53.4 / 0.902; 120: 113 / 0.909. Longer chains over-sharpen the digits, more confident
    # but further from the data.
    c.final_num_steps = 0
    return c
  if variant != "thesis":
    raise ValueError(f"configs/mnist_coopnets.py: unknown variant {variant!r}; expected "
                     "'thesis' or none")
  c = _generator(default.get_config(), n_f=128, learning_rate=1e-4)
  c.data.name = "mnist"
  c.data.image_size = 32
  c.data.noise_std = 0.03               # data_epsilon
  c.model.name = "vanilla"
  c.model.n_f = 64
  c.model.leak = 0.2
  c.optimizer.name = "adam"
  c.optimizer.beta1 = 0.5
  c.optimizer.learning_rate = 1e-4
  c.sampler.name = "momentum_sgd"       # minimizer sgd, sgd_beta 0
  c.sampler.momentum = 0.0
  c.sampler.num_steps = 100
  c.sampler.step_size = 1.0
  c.sampler.noise_std = 0.0             # with_noise 'no'
  c.batch_size = 100
  c.num_train_steps = 10000
  c.num_final_samples = 10000           # test_size
  c.log_every_steps = 200
  c.checkpoint_every_steps = 1000
  c.divergence_threshold = 1e11
  return c
