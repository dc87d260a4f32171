"""Recovery likelihood (DRL, Gao et al. 2021) on ebm-anatomy's toy densities.

Variants:
  (none)   the 8-mode GMM: the toy MLP with the noise level as a third input, T = 6 levels of
           DRL's linear schedule, K = 30 Langevin steps of each level's conditional at DRL's
           per-level step rule (b^2 = 2e-4), Adam 2e-4, EMA 0.99; 4,000 updates, the GMM's CPU
           budget. Samples run the six levels down from N(0, 1) noise.
  rings    the same on the 4 rings.
"""

from configs import common
from configs import default

VARIANTS = ("rings",)   # besides the default (no variant)


def get_config(variant=None):
  if variant not in (None, "rings"):
    raise ValueError(f"configs/toy_drl.py: unknown variant {variant!r}; expected 'rings' or "
                     "none")
  c = default.get_config()
  c.data.name = "rings" if variant == "rings" else "gmm"
  c.model.name = "toy_mlp"
  c.model.n_f = 32
  c.model.leak = 0.05
  common.recovery_likelihood(c)   # T 6, K 30 per level, b^2 2e-4 (DRL's)
  c.optimizer.name = "adam"
  # GMM, 4,000 updates, proper KL (exact samples 0.0050): Adam 1e-3 0.149, 5e-4 0.101, 2e-4
  # 0.067, 1e-4 0.079; K 100 at 1e-3 0.139; b^2 1e-3 at 2e-4 0.077; T 3 at 1e-3 0.449 (seed 0,
  # one core each, AMD EPYC Zen 3).
  c.optimizer.learning_rate = 2e-4
  c.optimizer.lr_min = 2e-4
  c.optimizer.beta1 = 0.9
  c.ema.decay = 0.99
  c.batch_size = 100
  c.num_train_steps = 4000
  c.log_every_steps = 100
  c.checkpoint_every_steps = 1000
  c.diagnostics.landscape_every_steps = 1000
  if variant == "rings":
    c.diagnostics.kde_bandwidth = 0.075     # ebm-anatomy's for the rings
  c.diagnostics.kde_samples = 10000
  c.num_final_samples = 10000
  return c
