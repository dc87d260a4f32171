"""The thesis's claims on MNIST, replicated and budget-matched.

    python sweep.py --sweep=sweeps/thesis_claims_mnist.py --workdir=runs/study-mnist

Default: the CPU MNIST recipe (``configs/mnist.py``: vanilla ConvNet n_f 16 with SiLU at
28x28, replay buffer, Adam 2e-3 annealed, EMA 0.995 of the weights, 60-step chains for the
samples), K in {5, 20 (the recipe's)} x sampler noise in {0 (noiseless gradient descent), 0.01
(the recipe's Langevin)}, 3 seeds each: 12 cells, each seed in vmapped groups of its own (K
changes the compiled step, so a group is one seed's two noise levels). Every cell trains
1,000 updates (budgeted by updates: the same on any machine; equal-wall-clock comparisons use
each setting's cost per update measured in one interleaved run), with the classifier FID /
confident fraction of 1,000 samples every 250 updates and at the end, then ebm-anatomy's
long-run check (200 steps from data and from noise, 256 chains, scored against 256 short-run
samples; FID of 256 samples is biased up, alike for the three). A cell that diverges or runs
away ends there, counted unstable. Learning rate and spectral norm are not swept here (claim 2
is "not tested"; see ``quality``).

``quality``: batch 32 (which reaches the recipe's FID with about two thirds of its compute,
``docs/leaderboard.md``), K x noise x learning rate in {1e-3, 2e-3}, 3 seeds: 24 cells of
500 updates, evaluated at 250 and 500, then the same long-run check. Sized to run in about
1.5 h on two CPU cores beside another study (at 1,000 updates a K 20 group of 4 took about 37
min there, 2.8 h in all); the recipe's FID needs about 3,000 updates at this batch, so this
compares settings early in training, and the report states the quality they reach. Its earlier form
(3,000 updates, no learning-rate axis, seeds sharing a group, recovery at half the learning
rate) is ``docs/study/history/mnist_quality/`` (2 h 11 min on AMD Zen 4).

``full``: K in {5, 10, 25} x lr in {6e-4, 2e-3} x noise x spectral norm, 3 seeds, 3,000
updates per cell.

``gpu``: ebm-anatomy's MNIST recipe at paper scale (NonlocalNet, persistent bank, SGD in its
eps-parametrisation), K in {10, 50, 200, 500} x lr x noise x spectral norm, 20,000 updates.
"""

from ebm_jax.study.sweep import Grid, Sweep

ROLES = {"K": "sampler.num_steps", "lr": "optimizer.learning_rate",
         "noise": "sampler.noise_std", "sn": "model.spectral_norm"}
VARIANTS = ("quality", "full", "gpu")   # besides the default (no variant)
UPDATES_QUALITY = 500


def _cpu_fixed(updates: int) -> dict:
  return {
      "num_train_steps": updates, "train_time_budget_s": 0.0,
      "optimizer.lr_decay": 0.1 ** (1 / 4000), "log_every_steps": 50,
      "checkpoint_every_steps": 250, "eval.every_steps": 250, "eval.at_end": True,
      "num_final_samples": 1000, "diagnostics.figures_every_secs": 10**9,
      "longrun.at_end": True, "longrun.num_steps": 200, "longrun.num_chains": 256,
  }


def get_sweep(variant=None):
  seeds = (0, 1, 2)
  if variant is None:
    axes = {"sampler.num_steps": (5, 20), "sampler.noise_std": (0.0, 0.01)}
    grid = Grid("mnist", axes, base="configs/mnist.py", fixed=_cpu_fixed(1000))
    description = (
        "MNIST 28x28, the CPU recipe (vanilla ConvNet n_f 16, SiLU, replay buffer of 10,000 "
        "with 1% fresh uniform starts, Langevin step 1 with noise 0.01 or none, chains clipped "
        "to [-1, 1], data noise 0.03, Adam 2e-3 (beta1 0.5) annealed 10x over 4,000 updates, "
        "EMA 0.995 of the weights for the samples, 60-step chains, batch 64); every cell "
        "trains 1,000 updates. Quality: classifier-feature FID of 1,000 samples (real training "
        "images: 5.7).")
  elif variant == "quality":
    axes = {"sampler.num_steps": (5, 20), "optimizer.learning_rate": (1e-3, 2e-3),
            "sampler.noise_std": (0.0, 0.01)}
    fixed = {**_cpu_fixed(UPDATES_QUALITY), "batch_size": 32, "log_every_steps": 100}
    grid = Grid("mnist", axes, base="configs/mnist.py", fixed=fixed)
    description = (
        "MNIST 28x28, the CPU recipe as in the default study but with batch 32, a "
        "learning-rate axis (1e-3 and the recipe's 2e-3, so claim 2 is tested) and trained to "
        f"a stated end, {UPDATES_QUALITY:,} updates per cell (K 5 cells spend about a quarter "
        "of the K 20 cells' compute; the report's equal-time and equal-gradient tables compare "
        "them at equal cost). Quality: classifier-feature FID of 1,000 samples every 250 updates "
        "(real training images: 5.7).")
  elif variant == "full":
    axes = {
        "sampler.num_steps": (5, 10, 25),
        "optimizer.learning_rate": (6e-4, 2e-3),
        "sampler.noise_std": (0.0, 0.01),
        "model.spectral_norm": (False, True),
    }
    grid = Grid("mnist", axes, base="configs/mnist.py", fixed=_cpu_fixed(3000))
    description = "MNIST 28x28, the CPU recipe, the full grid of the four claims."
  elif variant == "gpu":
    eps = 7.5e-3
    axes = {
        "sampler.num_steps": (10, 50, 200, 500),
        "optimizer.learning_rate": tuple(lr * eps ** 2 / 2 for lr in (1e-3, 1e-2, 1e-1)),
        "sampler.noise_std": (0.0, eps),
        "model.spectral_norm": (False, True),
    }
    fixed = {"num_train_steps": 20000, "optimizer.lr_min": 0.0, "log_every_steps": 500,
             "checkpoint_every_steps": 2000, "num_final_samples": 5000, "eval.at_end": True,
             "eval.every_steps": 2000, "longrun.at_end": True, "longrun.num_steps": 10000,
             "longrun.num_chains": 5000}
    grid = Grid("mnist", axes, base="configs/mnist.py:paper", fixed=fixed)
    description = ("MNIST 32x32 at ebm-anatomy's scale (NonlocalNet n_f 32, persistent bank "
                   "of 60,000, SGD with learning rates in its eps^2/2 units), 20,000 updates.")
  else:
    raise ValueError(f"unknown variant {variant!r}; expected 'quality', 'full', 'gpu' or "
                     "none")
  return Sweep(grids=[grid], roles=ROLES, description=description, seeds=seeds)
