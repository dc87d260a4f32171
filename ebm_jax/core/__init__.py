"""The maths of EBM training, pure functions over pytrees: energy networks (``models``), MCMC
kernels and chains (``samplers``), where chains start (``chain_starts``, over ``inits`` and the
``buffers`` that persist them), the losses, the optimizers, the train steps (``objectives``) and
how batches and chains are sharded over devices (``parallel``).

Nothing here reads files, parses configs beyond a typed spec, or knows about run directories:
``core`` imports only ``ebm_jax.hparams`` of the rest of ``ebm_jax`` (a contract checked in CI).
"""
