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
Python API (nothing shells out to `train.py`):

1. train ebm-anatomy's 8-mode Gaussian mixture and look at its samples, its diagnostics and its
   learned landscape;
2. a short MNIST run and its sample grid;
3. sample the toy's checkpoint with MALA (blackjax);
4. write a new sampler kernel here, in a few lines, register it, and train the toy with it.

**Runtime.** On Colab, *Runtime → Change runtime type → T4 GPU* or *TPU*: the same code runs on
them (the batch and the chains are sharded over every device of a `jax.sharding` mesh; see
`docs/tpu.md`). Install a matching jax first (`pip install -U "jax[cuda12]"` on GPUs,
`pip install -U "jax[tpu]"` on TPUs). On a 2-core CPU the full sizes below take about 5 minutes.
"""),
    code("""# Setup: inside a checkout of the repository this adds it to the path; on Colab it
# clones
# the repository named by EBM_JAX_REPO (your clone's URL) and installs it.
import os
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
if IN_COLAB and not os.path.exists("ebm_jax"):
  repo = os.environ.get("EBM_JAX_REPO", "")
  assert repo, "set EBM_JAX_REPO to the URL of your clone of this repository"
  subprocess.run(["git", "clone", "-q", repo, "ebm_jax"], check=True)
  os.chdir("ebm_jax")
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "requirements.txt"],
                 check=True)
root = os.getcwd() if os.path.exists("ebm_jax/__init__.py") else os.path.dirname(os.getcwd())
sys.path.insert(0, root)

# QUICK=1 (the test suite sets it) shrinks every run to seconds; the figures then show
# untrained models.
QUICK = os.environ.get("EBM_QUICKSTART_QUICK") == "1"
WORKDIR = os.environ.get("EBM_QUICKSTART_WORKDIR", os.path.join(root, "runs", "quickstart"))
print("quick" if QUICK else "full", "sizes; runs in", WORKDIR)"""),
    code("""import glob
import jax
import jax.numpy as jnp
from IPython.display import Image, display

from ebm_jax.run import from_checkpoint as checkpoint_sampling, train
from ebm_jax.core import samplers
from configs import mnist, toy_gmm

print(jax.devices())

def show(pattern):
  \"\"\"The newest file matching ``pattern`` under WORKDIR, inline.\"\"\"
  path = sorted(glob.glob(os.path.join(WORKDIR, pattern)))[-1]
  print(os.path.relpath(path, WORKDIR))
  display(Image(filename=path))"""),
    md("""## 1. The 8-mode Gaussian mixture

The recipe of `configs/toy_gmm.py`: a small MLP energy, a persistent bank of 10,000 chains,
K = 20 Langevin steps per update, Adam, an EMA of the weights for sampling. The run writes its
directory as `train.py` does (metrics, checkpoints, grids, figures, TensorBoard events)."""),
    code("""gmm_config = toy_gmm.get_config()
if QUICK:
  gmm_config.num_train_steps = 20
  gmm_config.sampler.num_steps = 5
  gmm_config.final_num_steps = 10
  gmm_config.log_every_steps = 10
  gmm_config.init.bank_size = 200
  gmm_config.num_final_samples = 200
  gmm_config.diagnostics.kde_samples = 200
  gmm_config.diagnostics.landscape_res = 40
gmm_dir = os.path.join(WORKDIR, "gmm")
state = train.train_and_evaluate(gmm_config, gmm_dir)
print("trained to step", int(state.step))"""),
    code("""show("gmm/images/points_*.png")      # data, chain starts (bank) and samples
show("gmm/plots/diagnostics.png")     # ebm-anatomy's d_s_t / r_t diagnostics
show("gmm/plots/landscape_*.png")     # true density, exp(-c E) and a KDE of the samples"""),
    code("""from ebm_jax import reporting
rows, _ = reporting.read_metrics(os.path.join(gmm_dir, "metrics.jsonl"))
last = rows[-1]
print({k: round(last[k], 4) for k in ("step", "loss", "d_s_t", "r_t", "kl_smoothed",
                                       "kl_smoothed_floor") if k in last})"""),
    md("""## 2. A short MNIST run

`configs/mnist.py` trains up to 4,500 updates or 17 minutes on 2 CPU cores (README); here a few
hundred, which already draws digit-like strokes. The evaluation classifier is skipped to keep
this short (`eval.at_end=False`)."""),
    code("""mnist_config = mnist.get_config()
mnist_config.parallel.cpu_devices = 0      # jax has started: use the devices it has
mnist_config.eval.at_end = False
mnist_config.eval.every_steps = 0
mnist_config.train_time_budget_s = 0.0
mnist_config.num_train_steps = 300
mnist_config.final_num_steps = 0
mnist_config.num_final_samples = 100
mnist_config.init.bank_size = 1000
if QUICK:
  mnist_config.num_train_steps = 4
  mnist_config.log_every_steps = 2
  mnist_config.batch_size = 16
  mnist_config.model.n_f = 4
  mnist_config.sampler.num_steps = 2
  mnist_config.init.bank_size = 64
  mnist_config.num_final_samples = 16
mnist_dir = os.path.join(WORKDIR, "mnist")
train.train_and_evaluate(mnist_config, mnist_dir)
show("mnist/images/samples_*.png")"""),
    md("""## 3. MALA from the checkpoint

`checkpoint_sampling.sample_checkpoint` (what `sample.py` runs) restores the toy's last
checkpoint and samples its density with another sampler: here blackjax's MALA, its step size
adapted to the 0.574 acceptance rate, on `exp(-c E)` at the temperature the training sampler
targets."""),
    code("""summary = checkpoint_sampling.sample_checkpoint(
    gmm_dir, sampler="mala", init="uniform", num_samples=200 if QUICK else 2000,
    num_steps=20 if QUICK else 500, adapt_steps=10 if QUICK else 200, progress=False)
print({k: summary[k] for k in ("sampler", "num_steps", "step_size", "acceptance_rate",
                                "kl_smoothed")})
show("gmm/sampling/mala_uniform_*/samples.png")"""),
    md("""## 4. A new sampler, written here

A kernel is `init` + `step(key, state, energy_fn) -> (state, info)` over a batch of chains
(blackjax's shape). This one is Langevin with each sample's gradient scaled to unit RMS before the
step, a normalised-gradient variant that keeps the step length fixed where the energy is steep.
Registered under a name, it is a `sampler.name` like the built-in ones: the train step, the
config's validation and `sample_checkpoint` all find it in the registry."""),
    code("""def normalised_langevin(step_size, noise_std):
  def step(key, state, energy_fn):
    g = state.energy_grad
    rms = jnp.sqrt(jnp.mean(g ** 2, axis=tuple(range(1, g.ndim)), keepdims=True)) + 1e-8
    x = state.position - step_size * g / rms + noise_std * jax.random.normal(key, g.shape)
    e, g_new = samplers.energy_and_grad(energy_fn, x)
    return samplers.ChainState(x, e, g_new), samplers.step_info(state, e)
  init = lambda x, energy_fn: samplers.ChainState(x, *samplers.energy_and_grad(energy_fn, x))
  return samplers.Sampler(init, step)

if "normalised_langevin" not in samplers.SAMPLERS:      # rerunning the cell keeps one entry
  samplers.register("normalised_langevin", samplers.SamplerSpec(
      build=lambda sc, step_size, noise: normalised_langevin(step_size, noise),
      temperature=lambda step_size, noise: None))        # no known stationary density

new_config = gmm_config.copy_and_resolve_references()
new_config.sampler.name = "normalised_langevin"
new_config.sampler.step_size = 0.01
new_config.final_step_fraction = 1.0   # quarter-step final chains keep only Langevin's target
new_state = train.train_and_evaluate(new_config, os.path.join(WORKDIR, "gmm_normalised"))
show("gmm_normalised/images/points_*.png")
show("gmm_normalised/plots/landscape_*.png")"""),
    md("""## Where next

- `python train.py --config=configs/mnist.py` — the full MNIST recipe; `configs/` lists the
  others (Fashion-MNIST, CoopNets, CIFAR-10, the seed papers' settings).
- `tensorboard --logdir runs/` — every run's curves and grids.
- `python sweep.py --sweep=sweeps/thesis_claims_toy.py --workdir=runs/study-toy` — a study of
  settings, trained as vmapped groups (`docs/study/` holds its report).
- `docs/tpu.md` — GPUs, TPU VMs and pod slices."""),
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
