"""Short-run MCMC (Nijkamp et al., NeurIPS 2019) on CIFAR-10, the paper's settings (for a GPU):
K = 100 Langevin steps from uniform noise, step 1, noise 1e-2, Adam 1e-4, data noise 3e-2,
vanilla ConvNet n_f 64, leak 0.2, batch 64, 100,000 updates.
"""

from configs import mnist_shortrun


def get_config():
  c = mnist_shortrun.get_config()
  c.data.name = "cifar10"
  return c
