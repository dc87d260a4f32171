"""Fashion-MNIST with the MNIST recipes' settings (the CPU default, or ``:paper``)."""

from configs import mnist

VARIANTS = ("paper",)   # besides the default (no variant)


def get_config(variant=None):
  c = mnist.get_config(variant)
  c.data.name = "fashion_mnist"
  return c
