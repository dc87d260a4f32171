"""MNIST.

Variants:
  (none)   The CPU default: a small vanilla ConvNet at 28x28 with short Langevin chains from a
           replay buffer, sized so that this project's 2-core CPU reaches recognisable digits of
           all ten classes in under 20 minutes (see the README for the measured time).
  paper    ebm-anatomy's MNIST settings (config_locker/mnist_convergent.json), for a GPU:
           NonlocalNet, persistent bank of one chain per image, Langevin eps 7.5e-3 with
           K = 500, data noise 1.5e-2, SGD lr 1e-2 scaled by eps^2/2, batch 100.
"""

from configs import common
from configs import default

PAPER_EPS = 7.5e-3

VARIANTS = ("paper",)   # besides the default (no variant)


def get_config(variant=None):
  c = default.get_config()
  c.data.name = "mnist"
  if variant is None:
    c.data.image_size = 28
    c.data.noise_std = 0.03
    c.model.name = "vanilla"
    c.model.n_f = 16
    c.model.leak = 0.2
    c.sampler.name = "langevin"
    c.sampler.num_steps = 20
    c.sampler.step_size = 1.0
    c.sampler.noise_std = 0.01
    c.sampler.clip_x = True
    c.init.name = "replay"
    c.init.bank_size = 10000
    c.init.reinit_prob = 0.05
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 3e-4
    c.optimizer.beta1 = 0.5
    c.batch_size = 64
    c.num_train_steps = 1200
    c.parallel.cpu_devices = 2      # on a CPU: two single-threaded devices, the batch split
    c.eval.at_end = True            # FID / KID / IS / coverage of samples.npz into eval.json
    c.log_every_steps = 50
    c.checkpoint_every_steps = 250
  elif variant == "paper":
    c.data.image_size = 32
    c.data.noise_std = 1.5e-2
    c.model.name = "nonlocal"
    c.model.n_f = 32
    c.model.leak = 0.05
    common.anatomy_langevin(c, PAPER_EPS, lr=1e-2)
    c.sampler.num_steps = 500
    c.init.name = "persistent"
    c.init.bank_size = 60000
    c.batch_size = 100
    c.num_train_steps = 100000
    c.log_every_steps = 100
    c.checkpoint_every_steps = 5000
  else:
    raise ValueError(f"configs/mnist.py: unknown variant {variant!r}; expected 'paper' or none")
  return c
