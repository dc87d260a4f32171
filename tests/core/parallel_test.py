"""Data parallelism on 8 simulated CPU devices (a subprocess: the device count is fixed when
jax starts): same trajectory as one device, expected shardings, resharding checkpoints."""

import json
import os
import subprocess
import sys

import pytest
from jax.sharding import PartitionSpec as P

from ebm_jax import config
from ebm_jax.core import parallel

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # tests/


@pytest.mark.parametrize("init", ["persistent", "replay"])
def test_eight_devices_match_one_and_checkpoints_reshard(init):
  result = subprocess.run([sys.executable, os.path.join(HERE, "sharding_check.py"), init],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-3000:]
  line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
  out = json.loads(line[len("RESULT "):])
  assert out["device_count"] == 8
  # Same seed, same trajectory, up to the order of floating-point reductions.
  assert out["diff_1_vs_8"] < 1e-5 * max(1.0, out["params_scale"]), out
  assert out["bank_spec"] == str(P("data")) and out["bank_devices"] == 8
  assert out["params_replicated"]
  # The chain's diagnostics are reduced after its loop: no step waits on the other devices.
  assert out["loop_collectives"] == [], out["loop_collectives"]
  for n, c in out["continued"].items():
    assert c["restored_step"] == 6 and c["restore_diff"] == 0.0, (n, c)
    assert c["final_step"] == 9
  assert out["continue_diff_1_vs_4"] < 1e-5 * max(1.0, out["params_scale"])
  assert out["continue_diff_1_vs_8"] < 1e-5 * max(1.0, out["params_scale"])


def test_sizes_must_divide_across_devices():
  c = config.get_config()
  c.batch_size = 100
  with pytest.raises(config.ConfigError,
                     match=r"config.batch_size: expected a multiple of the 8 devices"):
    config.validate_for_devices(c, 8)
  c.batch_size, c.longrun.num_chains = 96, 64
  config.validate_for_devices(c, 8)


def test_single_device_mesh_and_too_many_devices():
  mesh = parallel.make_mesh()
  assert mesh.axis_names == ("data",)
  with pytest.raises(ValueError, match="parallel.num_devices: 999 requested"):
    parallel.make_mesh(999)


def test_importing_the_library_leaves_the_device_count_open():
  # train.py splits the CPU into devices after importing ebm_jax: nothing imported at module
  # level (blackjax creates arrays on import) may start jax's backends first.
  code = ("import ebm_jax, ebm_jax.run.train, ebm_jax.core.chain_runner, ebm_jax.eval.metrics\n"
          "from ebm_jax.core import parallel\nparallel.set_cpu_devices(2)\nimport jax\n"
          "print(jax.device_count())")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(HERE),
                          env={**env, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip().splitlines()[-1] == "2"


LATE_DEVICE = """
import functools, sys
from ebm_jax.core import parallel
parallel.set_cpu_devices(2)
import jax, jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P

@jax.jit
@functools.partial(jax.shard_map, mesh=Mesh(jax.devices(), ("d",)), in_specs=P("d"),
                   out_specs=P())
def late_sum(x):      # device 0 reaches the all-reduce seconds after device 1
  n = jnp.where(jax.lax.axis_index("d") == 0, 400_000_000, 1)
  return jax.lax.psum(jax.lax.fori_loop(0, n, lambda i, v: jnp.sin(v), x).sum(), "d")

print(float(late_sum(jnp.zeros(2))))
"""


def test_a_device_late_at_an_all_reduce_is_waited_for_not_aborted():
  # XLA aborts a process whose CPU devices meet at a collective more than its warn-stuck plus
  # terminate timeouts apart (20 + 40 s by default: a loaded 2-core machine got there). The
  # test shrinks both to 1 s, the terminate one only *unless* set_cpu_devices sets its own, so
  # it fails on a library that leaves XLA's timeout in place and passes in seconds when not.
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run(
      [sys.executable, "-c", LATE_DEVICE.replace(
          "parallel.set_cpu_devices(2)",
          "import os\nparallel.set_cpu_devices(2)\n"
          "os.environ['XLA_FLAGS'] += ' --xla_cpu_collective_call_warn_stuck_timeout_seconds=1'\n"
          "if 'terminate_timeout' not in os.environ['XLA_FLAGS']:\n"
          "  os.environ['XLA_FLAGS'] += "
          "' --xla_cpu_collective_call_terminate_timeout_seconds=1'")],
      capture_output=True, text=True, timeout=300, cwd=os.path.dirname(HERE),
      env={**env, "JAX_PLATFORMS": "cpu"})
  assert result.returncode == 0, result.stderr[-2000:]
  assert float(result.stdout.strip().splitlines()[-1]) == 0.0
