"""Trains an energy-based model: ``python train.py --config=configs/mnist.py [--workdir=DIR]``.

Rerunning the same command resumes from the run's latest checkpoint; ``--config.<key>=<value>``
overrides a recipe's key. The command is :func:`ebm_jax.run.train.main` (also
``python -m ebm_jax.run.train`` and ``ebm-jax-train`` where the package is installed).
"""

from ebm_jax.run import train

if __name__ == "__main__":
  train.main()
