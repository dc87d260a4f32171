"""ebm-anatomy's 8-mode GMM: toy MLP, persistent bank, Langevin eps 0.125, SGD scaled by eps^2/2.

Variants:
  (none)   CPU-sized: 4,000 updates of K = 20 Langevin steps of noise 0.045 with Adam (lr
           5.2e-4), the best trial of the Optuna search ``sweeps/search_toy.py`` on the proper
           score (docs/study/README.md), an EMA of the weights (decay 0.99) for samples and
           evaluation, which come from 200-step chains of the bank at a quarter of the
           training step; about a minute on 2 cores. With SGD at the paper's rate the rings
           need far more updates than that.
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
    # The search's best on the proper score (24 trials of 1,500 updates): K 20, Adam 5.2e-4,
    # Langevin noise 0.045 (a sharper target, exp(-988 E), than eps 0.125's exp(-128 E)). At
    # 4,000 updates KL(true * K || KDE_K of 10,000) 0.0131 (seed 0; exact samples 0.0050) in
    # 58 s, where the previous default (noise 0.125, lr 3.1e-4) ends at 0.0282 in 60 s and K 100
    # at lr 1e-3 at 0.0226 in 95 s (AMD Zen 3, 2 cores; docs/runs/toy-gmm*-2026-12-07). The
    # energy's own density at that temperature is further from the truth, KL(true || model)
    # 0.29 against 0.09: the recipe is tuned for its samples.
    c.optimizer.learning_rate = 5.24e-4
    c.optimizer.lr_min = 5.24e-4
    c.sampler.noise_std = 0.045
    c.num_train_steps = 4000
    c.sampler.num_steps = 20
    # An EMA of the weights samples and is evaluated (KL(true || KDE) 0.034 against 0.073 with
    # the raw weights', measured before the proper score; docs/leaderboard.md).
    c.ema.decay = 0.99
    # samples.npz and the landscapes' KDEs: 200 steps from the bank at a quarter of the
    # training step (noise halved; the same target density, exp(-988 E) at noise 0.045). The
    # training step's discretisation bias blurs the rings: KL(true || KDE) 0.122 with K = 100
    # at the training step, 0.123 / 0.125 with 300 / 1,000 steps, 0.089 at a quarter step
    # (floor 0.099).
    c.final_num_steps = 200
    c.final_step_fraction = 0.25
    c.log_every_steps = 100
    c.checkpoint_every_steps = 1000
    c.diagnostics.landscape_every_steps = 1000
  else:
    raise ValueError(f"configs/toy_gmm.py: unknown variant {variant!r}; expected 'paper' or none")
  # Quality: KL(true * K || KDE_K) of 10,000 samples (ebm-anatomy's count), read against what
  # as many exact samples score, in every landscape row.
  c.diagnostics.kde_samples = 10000
  c.num_final_samples = 10000
  return c
