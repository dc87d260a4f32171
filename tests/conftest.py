"""Test-wide settings: CPU-only, and cheap compiles (the tests' nets are tiny)."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

# Compile time dominates these tests, not run time.
jax.config.update("jax_disable_most_optimizations", True)
