"""ebm-anatomy's 4 rings: toy MLP, persistent bank, Langevin eps 0.125, SGD scaled by eps^2/2.

Variants:
  (none)   CPU-sized: the GMM's CPU recipe (Adam, EMA 0.99, final chains at a quarter step) at
           K = 100 and Adam 1e-3, with the bank started over the rings' whole range and
           ebm-anatomy's KDE bandwidth for rings. With the final chains' smaller step the
           GMM's n_f 32 is enough (KL(true || KDE) 0.092 in 79 s, against 0.091 in 170 s with
           n_f 64; floor 0.099).
  paper    ebm-anatomy's rings_convergent.json: 200,000 updates of K = 500 steps.
"""

from configs import toy_gmm

VARIANTS = ("paper",)   # besides the default (no variant)


def get_config(variant=None):
  c = toy_gmm.get_config(variant)
  c.data.name = "rings"
  c.diagnostics.kde_bandwidth = 0.075     # ebm-anatomy's for the rings (0.1 for the GMM)
  if variant is None:
    # The rings reach radius 4.6; a bank started in [-1, 1] (ebm-anatomy) needs the paper's
    # 200,000 updates to diffuse out to them, so the CPU recipe starts it over the whole range.
    c.init.scale = 4.6
    # Not the GMM's searched K 20 at Adam 3.1e-4: on the rings that ends at KL 0.277 after 4,000
    # updates (floor 0.099), K 100 at 1e-3 at 0.089-0.104.
    c.sampler.num_steps = 100
    c.optimizer.learning_rate = 1e-3
    c.optimizer.lr_min = 1e-3
    # ebm-anatomy's eps 0.125, set here: the GMM's searched noise (0.045) is not the rings'
    # (inherited by mistake after the search, it ended the rings at KL 0.093, floor 0.013).
    c.sampler.noise_std = 0.125
  return c
