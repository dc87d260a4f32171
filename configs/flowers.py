"""Oxford Flowers 102 with ebm-anatomy's flowers_convergent.json settings (for a GPU):
NonlocalNet at 32x32, persistent bank of one chain per image (8,192), Langevin eps 7.5e-3 with
K = 500, data noise 1.5e-2, SGD lr 5e-2 decaying by 0.99995 per step to 5e-4 (both scaled by
eps^2/2), batch 100, 200,000 updates, long runs of 100,000 steps from data every 10,000.

Variant ``64``: the same at 64x64 (the thesis's flowers size).
"""

from configs import common
from configs import default

EPS = 7.5e-3
VARIANTS = ("64",)   # besides the default (32x32)


def get_config(variant=None):
  if variant not in (None, "64"):
    raise ValueError(f"configs/flowers.py: unknown variant {variant!r}; expected '64' or none")
  c = default.get_config()
  c.data.name = "oxford_flowers102"
  c.data.image_size = 64 if variant == "64" else 32
  c.data.noise_std = 1.5e-2
  c.model.name = "nonlocal"
  c.model.n_f = 32
  c.model.leak = 0.05
  common.anatomy_langevin(c, EPS, lr=5e-2, lr_min=5e-4)
  c.optimizer.lr_decay = 0.99995
  c.sampler.num_steps = 500
  c.init.name = "persistent"
  c.init.bank_size = 8192            # 8,189 images, rounded up to a multiple of 8 devices
  c.batch_size = 100
  c.num_train_steps = 200000
  c.log_every_steps = 100
  c.checkpoint_every_steps = 5000
  c.longrun.every_steps = 10000
  c.longrun.num_steps = 100000
  c.longrun.init = "data"
  c.longrun.num_chains = 64
  return c
