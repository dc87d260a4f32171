"""Recovery likelihood (DRL, Gao et al. 2021) on CIFAR-10 with the paper's settings, for a GPU.

Variants:
  paper    (also the default) T = 6 levels of the linear schedule (betas 1e-4 -> 0.02 over
           1,000 steps), K = 30 Langevin steps per level with b^2 = 2e-4, batch 64, Adam 1e-4
           (beta1 0.9), spectral normalisation, EMA 0.999 for samples, 400,000 updates.
           Differences from the paper: its network is a ResNet with a time embedding (ch 128,
           2 residual blocks per resolution); here the energy is the library's vanilla ConvNet
           at n_f 128 with the level as one more input channel, and the learning rate has no
           1,000-update warm-up (the optimizers here have none).
"""

from configs import common
from configs import default

VARIANTS = ("paper",)


def get_config(variant="paper"):
  if variant not in (None, "paper"):
    raise ValueError(f"configs/cifar10_drl.py: unknown variant {variant!r}; expected 'paper'")
  c = default.get_config()
  c.data.name = "cifar10"
  c.data.image_size = 32
  c.model.name = "vanilla"
  c.model.n_f = 128
  c.model.leak = 0.2
  c.model.spectral_norm = True
  common.recovery_likelihood(c)   # T 6, K 30 per level, b^2 2e-4 (DRL's)
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-4
  c.optimizer.lr_min = 1e-4
  c.optimizer.beta1 = 0.9
  c.ema.decay = 0.999
  c.batch_size = 64
  c.num_train_steps = 400000
  c.log_every_steps = 500
  c.checkpoint_every_steps = 10000
  c.eval.every_steps = 20000
  c.eval.at_end = True
  return c
