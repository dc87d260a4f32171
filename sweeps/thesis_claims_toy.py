"""The thesis's four claims on ebm-anatomy's toy densities (8-mode GMM and concentric rings).

    python sweep.py --sweep=sweeps/thesis_claims_toy.py --workdir=runs/study-toy

Per dataset: K in {5, 20, 100} x Adam learning rate in {1e-4, 1e-3, 1e-2} x sampler noise in
{0 (noiseless gradient descent), eps = 0.125 (Langevin)} x spectral norm off / on, each setting
with 3 seeds: 108 cells per dataset. Each seed trains in vmapped groups of its own (K and
spectral norm change the compiled step, so a group is one seed's 6 learning-rate x noise
settings), so a seed replicates a whole group; groups run in a seeded random order.

Budgeted by updates, 2,000 per cell (deterministic, the same on any machine); a cell that
diverges or runs away ends there, counted unstable (no recovery at a smaller learning rate).
Every cell is evaluated (KL(true * K || KDE_K of 2,000 samples), the proper score, from the one
loop's landscape step) every 500 updates, so the report compares settings at equal updates,
equal energy-gradient evaluations and equal wall-clock, the last as updates x each setting's
cost per update measured in one interleaved run (``costs.json``). At the end every cell gets
ebm-anatomy's long-run check (2,000 Langevin steps from data and from uniform noise, scored
like the short-run samples: convergent or not). The base recipes are the CPU toys
(``configs/toy_gmm.py``, ``configs/toy_rings.py``: Adam, EMA 0.99 of the weights for the
samples, persistent bank). Earlier runs (wall-clock budgets, seeds sharing a group):
``docs/study/history/toy/``.

``gmm``, ``rings``: one density of the default study (the same cells, so either reuses and
completes the other's finished cells in the same study directory).

``single_seed``: the training settings of the committed single-seed report before replicates
(1,500 updates, no EMA, n_f 32, one seed), for comparison; scored and stopped as studies are
now (the proper toy score; a rejected update ends the cell).
"""

from ebm_jax.study.sweep import Grid, Sweep

AXES = {
    "sampler.num_steps": (5, 20, 100),
    "optimizer.learning_rate": (1e-4, 1e-3, 1e-2),
    "sampler.noise_std": (0.0, 0.125),
    "model.spectral_norm": (False, True),
}
ROLES = {"K": "sampler.num_steps", "lr": "optimizer.learning_rate",
         "noise": "sampler.noise_std", "sn": "model.spectral_norm"}
UPDATES = 2000

VARIANTS = ("gmm", "rings", "single_seed")   # besides the default (no variant)
DATASETS = ("gmm", "rings")


def get_sweep(variant=None):
  datasets = DATASETS
  if variant in DATASETS:     # one density of the default study: the same cells, by name
    datasets, variant = (variant,), None
  if variant is None:
    fixed = {
        "num_train_steps": UPDATES,
        "train_time_budget_s": 0.0,
        "optimizer.lr_min": 0.0,             # unused: constant learning rate (lr_decay 1)
        "log_every_steps": 250,
        "checkpoint_every_steps": 1000,
        "diagnostics.landscape_every_steps": 500,
        "diagnostics.figures_every_secs": 10**9,   # per-cell figures at the end only
        "diagnostics.kde_samples": 2000,
        "num_final_samples": 2000,
        # The committed report's sampling: final chains of the training K at the training step
        # (the recipes' quarter-step final chains came later; they would judge the noiseless
        # cells' descent with a quarter of their step).
        "final_num_steps": 0,
        "final_step_fraction": 1.0,
        # ebm-anatomy's convergence check at the end: 2,000 steps from data and from noise.
        "longrun.at_end": True,
        "longrun.num_steps": 2000,
        "longrun.num_chains": 2000,
    }
    seeds = (0, 1, 2)
    description = (
        "Toy densities of ebm-anatomy (8-mode GMM, 4 concentric rings), the CPU toy recipes "
        "(toy MLP n_f 32 GMM / 64 rings, persistent bank of 10,000 chains, Langevin in "
        "ebm-anatomy's parametrisation: step 1 on the energy scaled by eps^2/2, loss scale "
        "2/eps^2; noise 0 turns it into noiseless gradient descent on the same energy; Adam, "
        f"EMA 0.99 of the weights for the samples, batch 100). Every cell trains {UPDATES:,} "
        "updates; quality KL(true * K || KDE_K of 2,000 samples), a proper score, every 500 "
        "updates.")
  elif variant == "single_seed":
    fixed = {
        "num_train_steps": 1500, "optimizer.lr_min": 0.0, "log_every_steps": 250,
        "checkpoint_every_steps": 500, "diagnostics.landscape_every_steps": 0,
        "diagnostics.figures_every_secs": 10**9, "num_final_samples": 2000,
        "diagnostics.kde_samples": 2000, "diagnostics.kde_bandwidth": 0.1, "ema.decay": 0.0,
        "model.n_f": 32,
    }
    seeds = ()
    description = ("The single-seed study (docs/study/history/single_seed/toy) before "
                   "replicates: toy MLP n_f 32, no EMA, 1,500 updates, KDE bandwidth 0.1 on "
                   "both densities.")
  else:
    raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS} or none")
  grids = {"gmm": Grid("gmm", AXES, base="configs/toy_gmm.py", fixed=fixed),
           "rings": Grid("rings", AXES, base="configs/toy_rings.py",
                         fixed={**fixed, "model.n_f": 64})}   # the rings recipe's n_f then
  return Sweep(grids=[grids[d] for d in datasets], roles=ROLES, description=description,
               seeds=seeds)
