"""CoopNets (Xie et al., AAAI 2018) on MNIST: a generator proposes chain starts, the energy's
sampler revises them, both networks learn from the revisions (MCMC teaching).

Variants:
  (none)   CPU-sized: 28x28, small descriptor (vanilla, n_f 16) and generator (n_f 16), K = 20
           Langevin revisions per update.
  thesis   the thesis code's generator-init settings at 32x32: vanilla descriptor n_f 64, leak
           0.2; K = 100 SGD revisions with step 1 and no noise; Adam 1e-4 for both nets with
           beta1 0.5; data noise 0.03; batch 100; 10,000 updates (for a GPU).
"""

from configs import default

VARIANTS = ("thesis",)   # besides the default


def get_config(variant=None):
  c = default.get_config()
  c.data.name = "mnist"
  c.init.name = "generator"
  c.model.name = "vanilla"
  c.model.leak = 0.2
  c.optimizer.name = "adam"
  c.optimizer.beta1 = 0.5                 # thesis: 0.5 with generator init
  c.generator.beta1 = 0.5
  c.generator.sigma = 0.3
  if variant is None:
    c.data.image_size = 28
    c.data.noise_std = 0.03
    c.model.n_f = 16
    c.generator.n_f = 16
    c.generator.z_dim = 50
    c.sampler.name = "langevin"
    c.sampler.num_steps = 20
    c.sampler.step_size = 1.0
    c.sampler.noise_std = 0.01
    c.sampler.clip_x = True
    c.optimizer.learning_rate = 3e-4
    c.generator.learning_rate = 3e-4
    c.batch_size = 64
    c.num_train_steps = 1200
    c.log_every_steps = 50
    c.checkpoint_every_steps = 250
    c.parallel.cpu_devices = 2
  elif variant == "thesis":
    c.data.image_size = 32
    c.data.noise_std = 0.03               # data_epsilon
    c.model.n_f = 64
    c.generator.n_f = 128
    c.generator.z_dim = 50
    c.sampler.name = "momentum_sgd"       # minimizer sgd, sgd_beta 0
    c.sampler.momentum = 0.0
    c.sampler.num_steps = 100
    c.sampler.step_size = 1.0
    c.sampler.noise_std = 0.0             # with_noise 'no'
    c.optimizer.learning_rate = 1e-4
    c.generator.learning_rate = 1e-4
    c.batch_size = 100
    c.num_train_steps = 10000
    c.num_final_samples = 10000           # test_size
    c.log_every_steps = 200
    c.checkpoint_every_steps = 1000
    c.divergence_threshold = 1e11
  else:
    raise ValueError(f"configs/mnist_coopnets.py: unknown variant {variant!r}; expected "
                     "'thesis' or none")
  return c
