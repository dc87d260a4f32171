"""An installed ebm_jax (a wheel in a fresh virtualenv, run from another directory) validates a
recipe and trains the toy GMM without the repository's files."""

import json
import os
import re
import shutil
import site
import subprocess
import sys
import tomllib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECK = """
import os, sys
import ebm_jax
from ebm_jax import config
assert os.path.realpath(ebm_jax.__file__).startswith(os.path.realpath(sys.prefix)), ebm_jax.__file__
config.validate(config.get_config())
c = config.load_recipe(sys.argv[1])
config.validate(c)
print("validated", c.model.name, c.sampler.name, c.init.name)
"""


def install_elsewhere(tmp_path):
  """A fresh virtualenv with the package installed from a wheel, and a directory away from the
  checkout to run it in: ``(python, env, directory)``."""
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  # `pip install .` (a wheel built from pyproject.toml) into the new environment; the
  # dependencies are this interpreter's, so nothing large is downloaded again. It builds from a
  # copy of what the wheel is made of: setuptools builds in the source's build/ and never
  # removes what it left there (an older layout's modules would enter the wheel), and two
  # tests building in one checkout at once would race.
  source = tmp_path / "source"
  source.mkdir()
  for name in ("pyproject.toml", "LICENSE", "README.md"):
    shutil.copy(os.path.join(ROOT, name), source / name)
  for folder in ("ebm_jax", "configs"):
    shutil.copytree(os.path.join(ROOT, folder), source / folder,
                    ignore=shutil.ignore_patterns("__pycache__"))
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                  "--target", str(venv / "site"), str(source)], check=True, timeout=300,
                 cwd=tmp_path)
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "PYTHONPATH": os.pathsep.join([str(venv / "site"), *site.getsitepackages()])}
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  return python, env, elsewhere


def test_an_installed_package_validates_the_mnist_recipe(tmp_path):
  python, env, elsewhere = install_elsewhere(tmp_path)
  result = subprocess.run([python, "-c", CHECK, os.path.join(ROOT, "configs", "mnist.py")],
                          capture_output=True, text=True, timeout=300, cwd=elsewhere, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == "validated vanilla langevin replay"


TINY = ["--config.num_train_steps=4", "--config.log_every_steps=2", "--config.model.n_f=8",
        "--config.sampler.num_steps=3", "--config.batch_size=16", "--config.init.bank_size=64",
        "--config.num_final_samples=20", "--config.diagnostics.kde_samples=50",
        "--config.diagnostics.landscape_res=30", "--config.diagnostics.figures=False",
        "--config.final_num_steps=3"]


def test_an_installed_package_trains_the_toy_gmm_by_recipe_name_from_another_directory(tmp_path):
  python, env, elsewhere = install_elsewhere(tmp_path)
  # The recipes ship inside the package; `configs/` of the checkout is nowhere on the path. The
  # console script the wheel installs runs the command (python -m ebm_jax.run.train is the same).
  script = tmp_path / "venv" / "site" / "bin" / "ebm-jax-train"
  result = subprocess.run([python, str(script), "--config=toy_gmm", "--workdir=run", *TINY],
                          capture_output=True, text=True, timeout=600, cwd=elsewhere, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  with np.load(elsewhere / "run" / "samples.npz") as f:
    assert f["x"].shape == (20, 2) and np.all(np.isfinite(f["x"]))
  rows = [json.loads(line) for line in open(elsewhere / "run" / "metrics.jsonl")]
  assert [r["step"] for r in rows] == [2, 4]


def _names(requirements):
  return {re.split(r"[<>=!~;\[ ]", r.strip(), maxsplit=1)[0].lower().replace("_", "-")
          for r in requirements if r.strip() and not r.strip().startswith("#")}


def test_pyproject_declares_what_requirements_txt_installs():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  with open(os.path.join(ROOT, "requirements.txt")) as f:
    pinned = _names(line.split("#")[0] for line in f)
  runtime = _names(project["dependencies"])
  extras = set().union(*(_names(v) for v in project["optional-dependencies"].values()))
  # A default run writes TensorBoard events (`tensorboard = True`): `pip install .` alone must
  # bring the writer, not only the requirements file.
  assert "tensorboardx" in runtime
  assert runtime | extras == pinned, (runtime | extras) ^ pinned
  assert project["license"] == "Apache-2.0" and os.path.exists(os.path.join(ROOT, "LICENSE"))
