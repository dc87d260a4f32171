"""Short-run MCMC (Nijkamp et al., NeurIPS 2019) on MNIST: K = 100 Langevin steps from uniform
noise, step 1 and noise 1e-2 on the score, Adam 1e-4, data noise 3e-2, vanilla ConvNet
(n_f 64, leak 0.2), batch 64. Their score f is our -E, so their ascent is our descent.

This is the paper's setting (100,000 updates): meant for a GPU.
"""

from configs import default


def get_config():
  c = default.get_config()
  c.data.name = "mnist"
  c.data.image_size = 32
  c.data.noise_std = 3e-2
  c.model.name = "vanilla"
  c.model.n_f = 64
  c.model.leak = 0.2
  c.sampler.name = "langevin"
  c.sampler.num_steps = 100
  c.sampler.step_size = 1.0
  c.sampler.noise_std = 1e-2
  c.init.name = "uniform"
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-4
  c.optimizer.beta1 = 0.9
  c.optimizer.beta2 = 0.999
  c.batch_size = 64
  c.num_train_steps = 100000
  c.log_every_steps = 100
  c.checkpoint_every_steps = 2000
  return c
