"""Train-step and Langevin-chain throughput against the number of devices of the data mesh.

    python benchmarks/scaling.py                       # CPU: 1, 2, 4, 8 simulated host devices
    python benchmarks/scaling.py --devices 1 --n_f 128 --batch 256 --peak_tflops 67

Each device count runs in a fresh process (the CPU device count is fixed when jax starts).
On CPU the simulated devices share the machine's cores, so this measures how well the sharded
step uses them, not more hardware. With ``--peak_tflops`` it also reports the fraction of that
peak reached by the Langevin chain, counting the FLOPs XLA's cost analysis gives for the
compiled chain (forward + input gradient per step).
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))


def worker(args):
  import common
  common.pin_threads(args.threads)
  if args.devices > 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}")
  import functools
  import jax
  import jax.numpy as jnp
  import numpy as np
  from ebm_jax import config, spec
  from ebm_jax.core import parallel, samplers
  from ebm_jax.run import runner

  c = config.get_config()
  c.data.image_size = args.size
  c.model.name, c.model.n_f = "vanilla", args.n_f
  c.sampler.num_steps = args.steps
  c.init.name = "uniform"
  c.batch_size = args.batch
  c.parallel.num_devices = args.devices
  images = np.random.default_rng(0).integers(0, 256, (1000, args.size, args.size, 1),
                                             dtype=np.uint8)
  run = runner.Runner(spec.from_config(c), images)
  mesh, comps, hp = run.mesh, run.comps, run.hparams([c])
  state, images_dev = run.init(hp), run.images
  t0 = time.perf_counter()
  compiled_step = run.step.lower(state, hp, images_dev, run.all_active).compile()
  step_compile = time.perf_counter() - t0

  one = runner.unstack(state, 0)
  variables = jax.tree.map(jnp.copy, run.eval_variables(one))  # the step donates state
  sampler = samplers.build(run.spec.sampler, c.sampler.step_size, c.sampler.noise_std)
  x0 = jax.device_put(jax.random.uniform(jax.random.key(0), (args.batch, args.size, args.size, 1)),
                      parallel.batch_sharded(mesh))

  @jax.jit
  def chain(key, variables, x0):
    energy_fn = functools.partial(comps.energy, variables)
    x0 = parallel.constrain_batch(x0, comps.mesh)
    s, _ = samplers.run_chain(key, sampler.step, sampler.init(x0, energy_fn),
                              energy_fn, args.steps)
    return s.position

  compiled_chain = chain.lower(jax.random.key(0), variables, x0).compile()
  # FLOPs of one energy + input-gradient evaluation (XLA's cost analysis counts a loop body
  # once, so the chain's count is this times K).
  # Per device for a sharded input: times the devices for the whole chain.
  flops = common.grad_flops(comps.energy, variables, x0) * args.steps * args.devices

  holder = {"state": state}

  def run_step():
    holder["state"], m, _ = compiled_step(holder["state"], hp, images_dev, run.all_active)
    jax.block_until_ready(m)

  def run_chain():
    jax.block_until_ready(compiled_chain(jax.random.key(1), variables, x0))

  run_step(), run_chain()
  medians = common.interleaved_medians({"step": run_step, "chain": run_chain}, args.repeats)
  out = {"devices": args.devices, "backend": jax.default_backend(),
         "device_kind": jax.devices()[0].device_kind, "n_f": args.n_f, "batch": args.batch,
         "K": args.steps, "size": args.size, "step_compile_s": step_compile,
         "train_steps_per_s": 1 / medians["step"],
         "train_samples_per_s": args.batch / medians["step"],
         "chain_images_steps_per_s": args.batch * args.steps / medians["chain"],
         "chain_flops": flops, "chain_tflops_per_s": flops / medians["chain"] / 1e12}
  if args.peak_tflops:
    out["fraction_of_peak"] = out["chain_tflops_per_s"] / args.peak_tflops
  print("RESULT " + json.dumps(out))


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--devices", type=int, nargs="*", default=[1, 2, 4, 8])
  p.add_argument("--n_f", type=int, default=32)
  p.add_argument("--size", type=int, default=32, choices=[28, 32])
  p.add_argument("--batch", type=int, default=96, help="a multiple of every device count")
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--threads", type=int, default=2)
  p.add_argument("--peak_tflops", type=float, default=0.0)
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker:
    args.devices = args.devices[0]
    worker(args)
    return
  rows = []
  for n in args.devices:
    cmd = [sys.executable, __file__, "--worker", "--devices", str(n), "--n_f", str(args.n_f),
           "--batch", str(args.batch), "--size", str(args.size), "--steps", str(args.steps),
           "--repeats", str(args.repeats), "--threads", str(args.threads), "--peak_tflops",
           str(args.peak_tflops)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    line = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    if not line:
      print(f"devices={n}: failed\n{result.stderr[-2000:]}")
      continue
    rows.append(json.loads(line[0][len("RESULT "):]))
    r = rows[-1]
    print(f"devices={n} {r['backend']} ({r['device_kind']}): "
          f"{r['train_steps_per_s']:.3f} train steps/s, {r['train_samples_per_s']:.1f} samples/s, "
          f"chain {r['chain_images_steps_per_s']:.0f} images*steps/s, "
          f"{r['chain_tflops_per_s']:.3f} TFLOP/s"
          + (f" ({100 * r['fraction_of_peak']:.1f}% of peak)" if "fraction_of_peak" in r else "")
          + f", compile {r['step_compile_s']:.1f}s", flush=True)
  if rows:
    base = rows[0]["train_steps_per_s"]
    print("speed-up over the first: " + ", ".join(
        f"{r['devices']}: {r['train_steps_per_s'] / base:.2f}x" for r in rows))


if __name__ == "__main__":
  main()
