"""Writes quickstart.ipynb from the cells below (edit here, then run this file; the notebook is
committed without outputs): python notebooks/make_quickstart.py [OUT.ipynb]"""
import os
import sys

import nbformat
from nbformat import v4

md, code = v4.new_markdown_cell, v4.new_code_cell

CELLS = [
    md("""# ebm_jax quickstart

Energy-based models trained by MCMC maximum likelihood, in JAX. This notebook uses the library's
public Python API (`import ebm_jax`; nothing shells out to `train.py`):

0. the pieces: an energy function, a Langevin kernel and `run_chain`, checked on a Gaussian;
1. train ebm-anatomy's 8-mode Gaussian mixture and look at its samples, its diagnostics and its
   learned landscape;
2. a short MNIST run and its sample grid;
3. sample the toy's checkpoint with MALA (blackjax);
4. write a new sampler kernel here, in a few lines, register it, and train the toy with it.

**Runtime.** On Colab any runtime works (*Runtime → Change runtime type*: CPU, T4 GPU or TPU):
the setup cell installs the jax of the runtime's accelerator and this package; the batch and the
chains are sharded over every device (`docs/tpu.md`). On a 2-core CPU the full sizes below take
about 5 minutes.
"""),
    code("""#@title Setup: install on Colab, quick sizes for the test suite { display-mode: "form" }
import importlib.util
import os
import shutil
import subprocess
import sys

# Where the package comes from when it is not installed yet: a checkout (this notebook's parent
# folder) or EBM_JAX_SOURCE (a path, or "git+https://..." of a clone).
SOURCE = os.environ.get("EBM_JAX_SOURCE", os.path.dirname(os.getcwd()))
if importlib.util.find_spec("ebm_jax") is None:
  if not (os.path.exists(os.path.join(SOURCE, "pyproject.toml")) or "://" in SOURCE):
    raise SystemExit("set EBM_JAX_SOURCE to a checkout of ebm_jax or git+https://<its clone>")
  accelerator = ("tpu" if os.environ.get("COLAB_TPU_ADDR") or os.path.exists("/dev/accel0")
                 else "cuda12" if shutil.which("nvidia-smi") else None)
  pip = [sys.executable, "-m", "pip", "install", "-q"]
  if accelerator:
    subprocess.run(pip + ["-U", f"jax[{accelerator}]"], check=True)
  subprocess.run(pip + [SOURCE], check=True)

# EBM_QUICKSTART_QUICK=1 (the test suite sets it) shrinks every run to seconds; the figures then
# show untrained models.
QUICK = os.environ.get("EBM_QUICKSTART_QUICK") == "1"
WORKDIR = os.environ.get("EBM_QUICKSTART_WORKDIR", os.path.abspath("runs/quickstart"))
QUICK_GMM = {"num_train_steps": 20, "sampler.num_steps": 5, "final_num_steps": 10,
             "log_every_steps": 10, "init.bank_size": 200, "num_final_samples": 200,
             "diagnostics.kde_samples": 200, "diagnostics.landscape_res": 40}
QUICK_MNIST = {"num_train_steps": 4, "log_every_steps": 2, "batch_size": 16, "model.n_f": 4,
               "sampler.num_steps": 2, "init.bank_size": 64, "num_final_samples": 16}
print("quick" if QUICK else "full", "sizes; runs in", WORKDIR)"""),
    code("""import glob
import jax
import jax.numpy as jnp
from IPython.display import Image, display

import ebm_jax

print(jax.devices())

def show(pattern):
  \"\"\"The newest file matching ``pattern`` under WORKDIR, inline.\"\"\"
  path = sorted(glob.glob(os.path.join(WORKDIR, pattern)))[-1]
  print(os.path.relpath(path, WORKDIR))
  display(Image(filename=path))"""),
    md("""## 0. The pieces

An energy function maps a batch to one energy per sample; a sampler is `init` + `step(key,
state, energy_fn) -> (state, info)` (blackjax's shape); `run_chain` is one `lax.scan` of the
step over a batch of chains. The unadjusted Langevin algorithm with step `eps^2 / 2` and noise
`eps` targets `exp(-E)`, here a standard Gaussian, up to its discretisation: its stationary
variance is `1 / (1 - eps^2 / 4)`."""),
    code("""energy_fn = lambda x: 0.5 * jnp.sum(x ** 2, axis=-1)      # exp(-E): N(0, I)
eps = 0.3
sampler = ebm_jax.langevin(step_size=eps ** 2 / 2, noise_std=eps)
state = sampler.init(jnp.zeros((10000, 2)), energy_fn)
state, info = ebm_jax.run_chain(jax.random.key(0), sampler.step, state, energy_fn, 300)
print("variance per axis", jnp.var(state.position, axis=0),
      "expected", 1 / (1 - eps ** 2 / 4))"""),
    md("""## 1. The 8-mode Gaussian mixture

The shipped recipe `toy_gmm` (`configs/toy_gmm.py`): a small MLP energy, a persistent bank of
10,000 chains, K = 20 Langevin steps per update, Adam, an EMA of the weights for sampling. The
run writes its directory as `train.py` does (metrics, checkpoints, grids, figures, TensorBoard
events)."""),
    code("""gmm_config = ebm_jax.load_recipe("toy_gmm", QUICK_GMM if QUICK else None)
gmm_dir = os.path.join(WORKDIR, "gmm")
state = ebm_jax.train_and_evaluate(gmm_config, gmm_dir)
print("trained to step", int(state.step))"""),
    code("""show("gmm/images/points_*.png")      # data, chain starts (bank) and samples
show("gmm/plots/diagnostics.png")     # ebm-anatomy's d_s_t / r_t diagnostics
show("gmm/plots/landscape_*.png")     # true density, exp(-c E) and a KDE of the samples"""),
    code("""rows, _ = ebm_jax.read_metrics(os.path.join(gmm_dir, "metrics.jsonl"))
last = rows[-1]
print({k: round(last[k], 4) for k in ("step", "loss", "d_s_t", "r_t", "kl_smoothed",
                                       "kl_smoothed_floor") if k in last})"""),
    md("""## 2. A short MNIST run

The `mnist` recipe trains up to 4,500 updates or 17 minutes on 2 CPU cores (README); here a few
hundred, which already draws digit-like strokes. The evaluation classifier is skipped to keep
this short (`eval.at_end=False`)."""),
    code("""mnist_config = ebm_jax.load_recipe("mnist", {
    "parallel.cpu_devices": 0,         # jax has started: use the devices it has
    "eval.at_end": False, "eval.every_steps": 0, "train_time_budget_s": 0.0,
    "num_train_steps": 300, "final_num_steps": 0, "num_final_samples": 100,
    "init.bank_size": 1000, **(QUICK_MNIST if QUICK else {})})
mnist_dir = os.path.join(WORKDIR, "mnist")
ebm_jax.train_and_evaluate(mnist_config, mnist_dir)
show("mnist/images/samples_*.png")"""),
    md("""## 3. MALA from the checkpoint

`ebm_jax.sample_checkpoint` (what `sample.py` runs) restores the toy's last checkpoint and
samples its density with another sampler: here blackjax's MALA, its step size adapted to the
0.574 acceptance rate, on `exp(-c E)` at the temperature the training sampler targets."""),
    code("""summary = ebm_jax.sample_checkpoint(
    gmm_dir, sampler="mala", init="uniform", num_samples=200 if QUICK else 2000,
    num_steps=20 if QUICK else 500, adapt_steps=10 if QUICK else 200, progress=False)
print({k: summary[k] for k in ("sampler", "num_steps", "step_size", "acceptance_rate",
                                "kl_smoothed")})
show("gmm/sampling/mala_uniform_*/samples.png")"""),
    md("""## 4. A new sampler, written here

A kernel is `init` + `step(key, state, energy_fn) -> (state, info)` over a batch of chains.
This one is Langevin with each sample's gradient scaled to unit RMS before the step, a
normalised-gradient variant that keeps the step length fixed where the energy is steep.
Registered under a name, it is a `sampler.name` like the built-in ones: the train step, the
config's validation and `sample_checkpoint` all find it in `ebm_jax.SAMPLERS`."""),
    code("""def normalised_langevin(step_size, noise_std):
  def step(key, state, energy_fn):
    g = state.energy_grad
    rms = jnp.sqrt(jnp.mean(g ** 2, axis=tuple(range(1, g.ndim)), keepdims=True)) + 1e-8
    x = state.position - step_size * g / rms + noise_std * jax.random.normal(key, g.shape)
    e, g_new = ebm_jax.energy_and_grad(energy_fn, x)
    return ebm_jax.ChainState(x, e, g_new), ebm_jax.step_info(state, e)
  init = lambda x, energy_fn: ebm_jax.ChainState(x, *ebm_jax.energy_and_grad(energy_fn, x))
  return ebm_jax.Sampler(init, step)

if "normalised_langevin" not in ebm_jax.SAMPLERS:      # rerunning the cell keeps one entry
  ebm_jax.register_sampler("normalised_langevin", ebm_jax.SamplerSpec(
      build=lambda sc, step_size, noise: normalised_langevin(step_size, noise),
      temperature=lambda step_size, noise: None))        # no known stationary density

new_config = ebm_jax.load_recipe("toy_gmm", {
    **(QUICK_GMM if QUICK else {}), "sampler.name": "normalised_langevin",
    "sampler.step_size": 0.01,
    "final_step_fraction": 1.0})   # quarter-step final chains keep only Langevin's target
ebm_jax.train_and_evaluate(new_config, os.path.join(WORKDIR, "gmm_normalised"))
show("gmm_normalised/images/points_*.png")
show("gmm_normalised/plots/landscape_*.png")"""),
    md("""## Where next

- `ebm-jax-train --config=mnist` (in a checkout: `python train.py --config=configs/mnist.py`)
  — the full MNIST recipe; `configs/` lists the others (Fashion-MNIST, CoopNets, CIFAR-10, the
  seed papers' settings).
- `tensorboard --logdir runs/` — every run's curves and grids.
- `python sweep.py --sweep=sweeps/thesis_claims_toy.py:gmm --workdir=runs/study-toy` (in a
  checkout) — a study of settings, trained as vmapped groups (`docs/study/` holds its report).
- `docs/library.md` — the layers, the registries, and how to add a sampler, a chain start, an
  objective or a dataset; `docs/tpu.md` — GPUs, TPU VMs and pod slices."""),
]


def main(argv):
  for i, cell in enumerate(CELLS):
    cell.id = f"cell-{i:02d}"        # stable ids: the file changes only when a cell does
  nb = v4.new_notebook(cells=CELLS, metadata={
      "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
      "language_info": {"name": "python"}, "accelerator": "GPU",
      "colab": {"provenance": []}})
  path = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                    "quickstart.ipynb")
  nbformat.write(nb, path)
  print("wrote", path)


if __name__ == "__main__":
  main(sys.argv)
