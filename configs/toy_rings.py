"""ebm-anatomy's 4 rings: toy MLP, persistent bank, Langevin eps 0.125, SGD scaled by eps^2/2.

Variants:
  (none)   CPU-sized: fewer updates and shorter chains.
  paper    ebm-anatomy's rings_convergent.json: 200,000 updates of K = 500 steps.
"""

from configs import toy_gmm

VARIANTS = ("paper",)   # besides the default (no variant)


def get_config(variant=None):
  c = toy_gmm.get_config(variant)
  c.data.name = "rings"
  if variant is None:
    # The rings reach radius 4.6; a bank started in [-1, 1] (ebm-anatomy) needs the paper's
    # 200,000 updates to diffuse out to them, so the CPU recipe starts it over the whole range.
    c.init.scale = 4.6
  return c
