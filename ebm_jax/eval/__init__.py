"""Measuring samples and models: classifier-feature metrics (``metrics``), the Inception port
(``inception``), toy densities' scores and landscapes and the chain diagnostics (``diagnostics``),
and the long-run convergence check (``convergence``).

It sits below ``run`` because a run evaluates itself while it trains; what reads or writes a run
directory lives in ``ebm_jax.run``.
"""
