"""The thesis's four claims on MNIST.

    python sweep.py --sweep=sweeps/thesis_claims_mnist.py --workdir=runs/study-mnist

Default: the CPU MNIST recipe (vanilla ConvNet n_f 16 with SiLU at 28x28, replay buffer, Adam,
EMA weights for the samples) shortened to 300 updates of batch 32; K in {5, 10, 25} x learning
rate in {6e-4, 2e-3 (the recipe's)} x sampler noise in {0 (noiseless gradient descent), 0.01
(the recipe's Langevin)} x spectral norm off / on: 24 cells in 6 vmapped groups of 4 models.
Quality is the FID of 1,000 final samples in the evaluation classifier's features
(``eval.json``). The committed report (docs/study/mnist) ran on the recipe before issue 15
(leaky ReLU, Adam {3e-4, 3e-3}, no EMA); 300 updates are far from converged either way, so
these FIDs rank settings early in training rather than measure final quality.

``gpu``: ebm-anatomy's MNIST recipe at paper scale (NonlocalNet, persistent bank, SGD in its
eps-parametrisation), K in {10, 50, 200, 500} x lr x noise x spectral norm, 20,000 updates.
"""

from ebm_jax.sweep import Grid, Sweep

ROLES = {"K": "sampler.num_steps", "lr": "optimizer.learning_rate",
         "noise": "sampler.noise_std", "sn": "model.spectral_norm"}


def get_sweep(variant=None):
  if variant is None:
    axes = {
        "sampler.num_steps": (5, 10, 25),
        "optimizer.learning_rate": (6e-4, 2e-3),
        "sampler.noise_std": (0.0, 0.01),
        "model.spectral_norm": (False, True),
    }
    fixed = {
        "num_train_steps": 300, "batch_size": 32, "log_every_steps": 50,
        "checkpoint_every_steps": 100, "num_final_samples": 1000, "eval.at_end": True,
        "diagnostics.figures_every_secs": 10**9,
    }
    grid = Grid("mnist", axes, base="configs/mnist.py", fixed=fixed)
    description = (
        "MNIST 28x28, vanilla ConvNet n_f 16 (SiLU), replay buffer of 10,000 (1% fresh "
        "uniform starts), Langevin step 1 with noise 0.01 or none, chains clipped to [-1, 1], "
        "data noise 0.03, Adam (beta1 0.5), EMA 0.995 of the weights for the samples (60-step "
        "chains), batch 32, 300 updates per cell.")
  elif variant == "gpu":
    eps = 7.5e-3
    axes = {
        "sampler.num_steps": (10, 50, 200, 500),
        "optimizer.learning_rate": tuple(lr * eps ** 2 / 2 for lr in (1e-3, 1e-2, 1e-1)),
        "sampler.noise_std": (0.0, eps),
        "model.spectral_norm": (False, True),
    }
    fixed = {"num_train_steps": 20000, "optimizer.lr_min": 0.0, "log_every_steps": 500,
             "checkpoint_every_steps": 2000, "num_final_samples": 5000, "eval.at_end": True}
    grid = Grid("mnist", axes, base="configs/mnist.py:paper", fixed=fixed)
    description = ("MNIST 32x32 at ebm-anatomy's scale (NonlocalNet n_f 32, persistent bank "
                   "of 60,000, SGD with learning rates in its eps^2/2 units), 20,000 updates.")
  else:
    raise ValueError(f"unknown variant {variant!r}; expected 'gpu' or none")
  return Sweep(grids=[grid], roles=ROLES, description=description)
