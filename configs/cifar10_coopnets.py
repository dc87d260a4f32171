"""CoopNets on CIFAR-10 with the thesis code's generator-init settings (for a GPU): vanilla
descriptor n_f 64, leak 0.2; generator 512/256/128 channels, z 50; K = 100 SGD revisions, step
1, no noise; Adam 1e-4 / beta1 0.5 for both nets; data noise 0.03; batch 100; 10,000 updates."""

from configs import mnist_coopnets


def get_config():
  c = mnist_coopnets.get_config("thesis")
  c.data.name = "cifar10"
  return c
