"""Shared benchmark helpers: thread pinning, interleaved timing, medians.

Import this module (and call :func:`pin_threads`) before importing jax, so the XLA flags apply.
"""

import os
import statistics
import time


def pin_threads(num_threads: int) -> None:
  """Fixes the CPU threads of both JAX (XLA flags) and PyTorch to ``num_threads``."""
  if num_threads == 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false").strip()
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  try:
    import torch
    torch.set_num_threads(num_threads)
    torch.set_num_interop_threads(1)
  except ImportError:
    pass


def block(tree):
  import jax
  return jax.block_until_ready(tree)


def interleaved_medians(fns: dict, repeats: int) -> dict:
  """Times each callable ``repeats`` times, alternating between them; returns median seconds."""
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return {name: statistics.median(ts) for name, ts in times.items()}


def torch_available() -> bool:
  try:
    import torch  # noqa: F401
    return True
  except ImportError:
    return False


def print_results(medians: dict, compile_s: float, repeats: int, rate) -> None:
  """The JAX compile time, ``rate(seconds)`` for each timed callable, and, when PyTorch ran,
  the closing ``jax_over_torch=<ratio>`` line the README promises."""
  print(f"jax compile_s={compile_s:.2f}")
  for name, sec in medians.items():
    print(f"{name}: {rate(sec)} (median of {repeats})")
  if "torch" in medians:
    print(f"jax_over_torch={medians['torch'] / medians['jax']:.3f}")
