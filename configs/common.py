"""Settings shared by several recipes."""


def anatomy_langevin(c, eps: float, lr: float, lr_min: float | None = None) -> None:
  """ebm-anatomy's parametrisation of Langevin learning with noise ``eps``.

  Its chains run ``x <- x - grad f + eps xi`` (step size 1 on a network ``f = (eps^2/2) E``),
  its loss is scaled by ``2/eps^2`` and its SGD learning rates by ``eps^2/2`` ("invariant
  tuning": the parameter update does not depend on eps).
  """
  c.sampler.name = "langevin"
  c.sampler.step_size = 1.0
  c.sampler.noise_std = eps
  c.loss.scale = 2 / eps ** 2
  c.optimizer.name = "sgd"
  c.optimizer.beta1 = 0.0
  c.optimizer.learning_rate = lr * eps ** 2 / 2
  c.optimizer.lr_min = (lr if lr_min is None else lr_min) * eps ** 2 / 2


def recovery_likelihood(c, num_levels: int = 6, num_steps: int = 30,
                        b_square: float = 2e-4) -> None:
  """Recovery likelihood (DRL, Gao et al. 2021) with its published chains: ``num_levels`` noise
  levels of its linear schedule, ``num_steps`` Langevin steps of each level's conditional at
  its per-level step rule (``b_square``), samples from N(0, 1) noise down the levels. The
  sampler section holds level 0's Langevin (temperature 1); the levels' own follow from it."""
  from ebm_jax.core.objectives import recovery_likelihood as drl
  c.objective.name = "recovery_likelihood"
  c.drl.num_levels = num_levels
  c.drl.b_square = b_square
  c.init.name = "gaussian"          # x_T ~ N(0, 1)
  c.init.scale = 1.0
  c.sampler.name = "langevin"
  c.sampler.num_steps = num_steps
  c.sampler.step_size, c.sampler.noise_std = drl.level0_langevin(c.drl)
