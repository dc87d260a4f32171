"""Recovery likelihood (DRL, Gao et al. 2021) on MNIST, CPU-sized.

The CPU default of ``configs/mnist.py`` (vanilla ConvNet n_f 16 with SiLU at 28x28, Adam 2e-3
annealed, EMA 0.995, batch 64, 17 minutes of training, FID every 500 updates and at the end),
trained by recovery likelihood instead of contrastive divergence with a replay buffer: T = 6
noise levels of DRL's linear schedule, the level entering the network as one more input
channel, K = 30 Langevin steps of each level's conditional at DRL's per-level step (b^2 =
2e-4), data diffused per example to a random level. Samples run the six levels from N(0, 1)
noise (180 network gradients per sample).
"""

from configs import common
from configs import default


def get_config(variant=None):
  if variant is not None:
    raise ValueError(f"configs/mnist_drl.py: unknown variant {variant!r}; it has none (the "
                     "paper's settings are configs/cifar10_drl.py:paper)")
  c = default.get_config()
  c.data.name = "mnist"
  c.data.image_size = 28
  c.model.name = "vanilla"
  c.model.n_f = 16
  c.model.leak = 0.2
  c.model.activation = "silu"
  common.recovery_likelihood(c)   # T 6, K 30 per level, b^2 2e-4 (DRL's)
  # configs/mnist.py's optimizer, so the two recipes differ in the objective and its chains
  # only (network, optimizer, EMA, batch and budget are the same).
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 2e-3
  c.optimizer.lr_decay = 0.1 ** (1 / 4000)
  c.optimizer.lr_min = 2e-4
  c.optimizer.beta1 = 0.5
  c.ema.decay = 0.995
  c.batch_size = 64
  c.num_train_steps = 4500
  c.train_time_budget_s = 1020.0     # configs/mnist.py's budget
  c.eval.every_steps = 500
  c.eval.at_end = True
  c.parallel.cpu_devices = 2
  c.log_every_steps = 50
  c.checkpoint_every_steps = 250
  return c
