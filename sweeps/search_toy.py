"""An adaptive search on the 8-mode GMM: Optuna's TPE over the vmappable knobs the thesis
asks about, with K as a choice.

    python sweep.py --search=sweeps/search_toy.py --workdir=runs/search-toy

Searched: Adam learning rate in [1e-4, 3e-2] (log), Langevin noise in [0, 0.2] (0 =
noiseless gradient descent), K in {5, 20, 100}. 24 trials asked 6 at a time (trials of one K
share a vmapped group), 1,500 updates each on ``configs/toy_gmm.py``, evaluated every 500
updates (KL(true * K || KDE_K of 2,000 samples), the proper score); Optuna's median pruner
ends trials worse than the median of the finished ones at the same update. The journal
(``journal.log``) may be shared: start the command in several processes or on several
machines over one directory.

``quick``: 4 trials of 200 updates (a smoke test).
"""

from ebm_jax.study.search import Choice, Float, Search

VARIANTS = ("quick",)   # besides the default (no variant)


def get_search(variant=None):
  if variant not in (None, "quick"):
    raise ValueError(f"unknown variant {variant!r}; expected 'quick' or none")
  quick = variant == "quick"
  return Search(
      name="gmm-search",
      base="configs/toy_gmm.py",
      space={"optimizer.learning_rate": Float(1e-4, 3e-2, log=True),
             "sampler.noise_std": Float(0.0, 0.2),
             "sampler.num_steps": Choice((5, 20, 100))},
      fixed={"num_train_steps": 200 if quick else 1500, "optimizer.lr_min": 0.0,
             "log_every_steps": 100 if quick else 250,
             "checkpoint_every_steps": 500,
             "diagnostics.landscape_every_steps": 100 if quick else 500,
             "diagnostics.figures_every_secs": 10**9, "diagnostics.kde_samples": 2000,
             "num_final_samples": 2000},
      num_trials=4 if quick else 24, trials_per_group=2 if quick else 6,
      description="The GMM's CPU recipe (toy MLP n_f 32, persistent bank, Adam, EMA 0.99), "
                  "searching learning rate, Langevin noise and K.")
