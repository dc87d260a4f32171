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
