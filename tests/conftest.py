"""Test-wide settings: CPU only, cheap compiles, and a compilation cache shared by the tests.

The tests' nets are tiny, so compiling dominates their time: XLA's optimisations are turned off
and compiled programs are cached on disk, so the many tests (and subprocesses) that compile the
same tiny train step compile it once.
"""
import os
import tempfile

_CACHE = os.path.join(tempfile.gettempdir(), "ebm_jax_test_compilation_cache")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")   # inherited by subprocesses
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
