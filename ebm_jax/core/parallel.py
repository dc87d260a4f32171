"""Data parallelism by sharding: one mesh axis ``data`` over every device of every host.

The train step is written for one device and compiled for many: batches, chain states and the
persistent bank / replay buffer are sharded along ``data`` (their leading axis), parameters and
optimizer state are replicated, and XLA's SPMD partitioner inserts the collectives (the mean
over the batch in the loss becomes an all-reduce of the gradients; drawing bank rows by global
index becomes a gather across devices). Random numbers are generated the same way whatever the
sharding (``jax_threefry_partitionable``), so a run on 8 devices follows the same trajectory as
on 1, up to the order of floating-point reductions.
"""

from __future__ import annotations

import os
import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
MODELS_AXIS = "models"    # a study's group of models, stacked along their leading axis


CPU_COLLECTIVE_TIMEOUT_S = 24 * 3600


def set_cpu_devices(count: int) -> None:
  """Splits the host CPU into ``count`` single-threaded XLA devices.

  Must run before jax starts its backends: before the first ``jax.devices()`` or array, and
  before importing blackjax (which creates arrays at import; ebm_jax imports it lazily). On
  2-core CPUs two single-threaded devices with the batch sharded beat one device using XLA's
  intra-op threads (figures in benchmarks/README.md)."""
  if count <= 1:
    return
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in flags:
    flags += f" --xla_force_host_platform_device_count={count}"
  if "xla_cpu_multi_thread_eigen" not in flags:
    flags += " --xla_cpu_multi_thread_eigen=false"
  # Each device is one thread; on a loaded machine one of them can reach an all-reduce more
  # than XLA's default 20 + 40 s (warn-stuck + terminate) after the other, and XLA then aborts
  # the whole process (a study sharing two cores with another did, 60 s late). Waiting is right
  # here: both devices are threads of this process, so the late one does arrive.
  if "xla_cpu_collective_call_terminate_timeout_seconds" not in flags:
    flags += f" --xla_cpu_collective_call_terminate_timeout_seconds={CPU_COLLECTIVE_TIMEOUT_S}"
  os.environ["XLA_FLAGS"] = flags.strip()


def maybe_initialize_distributed(mode: str) -> None:
  """``jax.distributed.initialize()`` for multi-host runs.

  ``mode``: ``"auto"`` initialises when a multi-host launcher is detected (Cloud TPU pod
  slices, SLURM, Open MPI, or ``JAX_COORDINATOR_ADDRESS`` set); ``"on"`` always; ``"off"``
  never. Without a launcher, ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID`` say where the coordinator is, how many processes there are and which one
  this is (e.g. two processes on one machine: ``localhost:12355``, 2, and 0 or 1).
  """
  if mode == "off":
    return
  launched = any(v in os.environ for v in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS",
                                           "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES"))
  if mode == "on" or launched:
    explicit = {key: int(os.environ[var]) for key, var in (("num_processes", "JAX_NUM_PROCESSES"),
                                                           ("process_id", "JAX_PROCESS_ID"))
                if var in os.environ}
    jax.distributed.initialize(**explicit)


def start_devices(cpu_devices: int, distributed: str = "off") -> None:
  """The CPU device split and multi-host initialisation, before jax starts its backends."""
  set_cpu_devices(cpu_devices)
  maybe_initialize_distributed(distributed)


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D mesh over the first ``num_devices`` devices (0: all of them, on all hosts)."""
  devices = jax.devices()
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(f"parallel.num_devices: {num_devices} requested but only "
                       f"{len(devices)} devices exist")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_divisible(mesh: Mesh, **sizes: int) -> None:
  """One-line error unless every named size is a multiple of the number of devices."""
  n = mesh.devices.size
  for name, size in sizes.items():
    if size % n:
      raise ValueError(f"{name}: {size} is not a multiple of the {n} devices of the mesh; "
                       f"use a multiple of {n} or set parallel.num_devices")


def constrain_batch(x, mesh: Mesh | None):
  """Marks ``x`` (leading axis = batch) as sharded along ``data`` inside a jitted function."""
  if mesh is None or mesh.devices.size == 1:
    return x
  return jax.lax.with_sharding_constraint(x, batch_sharded(mesh))


def state_shardings(state, mesh: Mesh, *, stacked: bool = False):
  """Shardings of a TrainState: the chain store's arrays along ``data`` (their leading axis, the
  chains), all else replicated. ``stacked``: the state has a leading model axis (of one
  model), left unsharded."""
  store = NamedSharding(mesh, P(None, DATA_AXIS) if stacked else P(DATA_AXIS))

  def sharding(path, leaf):
    keys = [getattr(k, "name", getattr(k, "key", None)) for k in path]
    if "chain_store" in keys and getattr(leaf, "ndim", 0) >= 1 + stacked:
      return store
    return replicated(mesh)

  return jax.tree_util.tree_map_with_path(sharding, state)


def stacked_shardings(tree, mesh: Mesh):
  """Shardings of ``M`` stacked models' states or hyper-parameters (leading model axis): along
  ``models`` on a models mesh; on a data mesh, the chain store's arrays along ``data`` (their
  second axis) and all else replicated."""
  if MODELS_AXIS in mesh.axis_names:
    return jax.tree.map(lambda _: NamedSharding(mesh, P(MODELS_AXIS)), tree)
  return state_shardings(tree, mesh, stacked=True)


def global_array(local: np.ndarray, mesh: Mesh) -> jax.Array:
  """A dataset array sharded along ``data`` from each process's slice of it (single-process:
  the whole array)."""
  return jax.make_array_from_process_local_data(batch_sharded(mesh), local)


def process_slice(n: int) -> slice:
  """This process's contiguous share of ``n`` rows, for loading only its part of the data."""
  count, index = jax.process_count(), jax.process_index()
  per = n // count
  return slice(index * per, (index + 1) * per)


def fetch(x) -> np.ndarray:
  """A host numpy copy of a (possibly multi-host sharded) array, on every process."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    if x.sharding.is_fully_replicated:
      return np.asarray(x.addressable_data(0))
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def is_main_process() -> bool:
  return jax.process_index() == 0


_COLLECTIVE_OP = re.compile(
    r"\s(all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)(?:-start)?\(")
_COMPUTATION_HEADER = re.compile(r"^(?:ENTRY )?%([\w.\-]+) .*\{\s*$")
_LOOP_BODY = re.compile(r"\swhile\(.*\bbody=%([\w.\-]+)")


def collectives_in_loops(hlo_text: str) -> list[str]:
  """The collective operations (all-reduce, all-gather, ...) that run inside while loops.

  ``hlo_text`` is a compiled program's text (``jitted.lower(...).compile().as_text()``). Chains
  and other ``lax.scan`` loops over a sharded batch should need none: a collective inside the
  loop makes every step wait on every device (see ``samplers.run_chain``). Returns
  ``"computation: op"`` strings, empty when the loops are free of communication.
  """
  computations, current = {}, None
  for line in hlo_text.splitlines():
    header = _COMPUTATION_HEADER.match(line)
    if header:
      current = computations.setdefault(header.group(1), [])
    elif current is not None:
      current.append(line)
  pending = [m.group(1) for line in hlo_text.splitlines() for m in [_LOOP_BODY.search(line)]
             if m]
  found, seen = [], set()
  while pending:
    name = pending.pop()
    if name in seen or name not in computations:
      continue
    seen.add(name)
    for line in computations[name]:
      op = _COLLECTIVE_OP.search(line)
      if op:
        found.append(f"{name}: {op.group(1)}")
      # Collectives may sit in computations the loop body calls (nested loops, conditionals).
      pending.extend(ref for ref in re.findall(r"%([\w.\-]+)", line) if ref in computations)
  return sorted(found)
