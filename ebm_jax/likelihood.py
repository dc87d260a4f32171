"""``python -m ebm_jax.likelihood --workdir=runs/x``: log Z and the test log-likelihood of a
finished run by annealed importance sampling, into ``runs/x/likelihood.json``. The command lives
in :mod:`ebm_jax.study.likelihood`, the estimators in :mod:`ebm_jax.eval.likelihood`."""

if __name__ == "__main__":
  from absl import app

  from ebm_jax import cli
  from ebm_jax.study import likelihood

  likelihood._define_flags()
  app.run(likelihood.main, flags_parser=cli.parse_flags_with_config)
