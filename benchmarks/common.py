"""Shared benchmark helpers: thread pinning, interleaved timing, medians.

Import this module (and call :func:`pin_threads`) before importing jax, so the XLA flags apply.
"""

import os
import statistics
import time


PRECISIONS = ("fp32", "tf32", "bf16")


def pin_threads(num_threads: int, device: str = "cpu") -> None:
  """Fixes the CPU threads of both JAX (XLA flags) and PyTorch to ``num_threads``; with
  ``device="cpu"`` JAX also stays on the CPU even where a GPU exists."""
  if num_threads == 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_cpu_multi_thread_eigen=false").strip()
  if device == "cpu":
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


def set_jax_precision(precision: str) -> str:
  """Matmul / convolution precision of float32 math in JAX, and the model's compute dtype.

  ``fp32``: full float32 (XLA on recent GPUs would otherwise use TF32); ``tf32``: TensorFloat-32
  matmuls on GPUs; ``bf16``: the network runs in bfloat16 (``model.compute_dtype``). Returns the
  compute dtype to build the energy with."""
  import jax
  jax.config.update("jax_default_matmul_precision",
                    {"fp32": "highest", "tf32": "tensorfloat32", "bf16": "default"}[precision])
  return "bfloat16" if precision == "bf16" else "float32"


def torch_runner(fn, precision: str, device: str):
  """``fn`` under PyTorch's matching precision (TF32 flags, bfloat16 autocast), synchronised
  with the GPU so that the timer sees the finished work."""
  import contextlib
  import torch
  torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
  torch.backends.cudnn.allow_tf32 = precision == "tf32"
  torch_device = "cuda" if device == "gpu" else "cpu"

  def run():
    context = (torch.autocast(torch_device, dtype=torch.bfloat16) if precision == "bf16"
               else contextlib.nullcontext())
    with context:
      out = fn()
    if device == "gpu":
      torch.cuda.synchronize()
    return out

  return run


def grad_flops(energy_fn, variables, x) -> float:
  """FLOPs of one energy + input-gradient evaluation of a batch, from XLA's cost analysis of
  the compiled function (per device when ``x`` is sharded); NaN where XLA gives none."""
  import jax
  fn = jax.jit(lambda v, x: jax.grad(lambda x: energy_fn(v, x).sum())(x))
  cost = fn.lower(variables, x).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost.get("flops", float("nan"))) if cost else float("nan")
