"""ebm-anatomy's 8-mode GMM: toy MLP, persistent bank, Langevin eps 0.125, SGD scaled by eps^2/2.

Variants:
  (none)   CPU-sized: 4,000 updates of K = 100 steps with Adam (lr 1e-3), about 2 minutes on
           2 cores; with SGD at the paper's rate the rings need far more updates than that.
  paper    ebm-anatomy's gmm_convergent.json: 200,000 updates of K = 500 steps, SGD.
"""

from configs import common
from configs import default

EPS = 0.125

VARIANTS = ("paper",)   # besides the default (no variant)


def get_config(variant=None):
  c = default.get_config()
  c.data.name = "gmm"
  c.model.name = "toy_mlp"
  c.model.n_f = 32
  c.model.leak = 0.05
  common.anatomy_langevin(c, EPS, lr=0.1)
  c.init.name = "persistent"
  c.init.bank_size = 10000
  c.batch_size = 100
  if variant == "paper":
    c.num_train_steps = 200000
    c.sampler.num_steps = 500
    c.log_every_steps = 100
    c.checkpoint_every_steps = 5000
  elif variant is None:
    c.optimizer.name = "adam"
    c.optimizer.beta1 = 0.9
    c.optimizer.learning_rate = 1e-3
    c.optimizer.lr_min = 1e-3
    c.num_train_steps = 4000
    c.sampler.num_steps = 100
    c.log_every_steps = 100
    c.checkpoint_every_steps = 1000
  else:
    raise ValueError(f"configs/toy_gmm.py: unknown variant {variant!r}; expected 'paper' or none")
  c.num_final_samples = 2000
  return c
