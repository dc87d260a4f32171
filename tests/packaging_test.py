"""An installed ebm_jax (a wheel in a fresh virtualenv, run from another directory) validates a
recipe without the repository's files."""

import os
import re
import site
import subprocess
import sys
import tomllib

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


def test_an_installed_package_validates_the_mnist_recipe(tmp_path):
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
  python = str(venv / "bin" / "python")
  # `pip install .` (a wheel built from pyproject.toml) into the new environment; the
  # dependencies are this interpreter's, so nothing large is downloaded again.
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                  "--target", str(venv / "site"), ROOT], check=True, timeout=300, cwd=tmp_path)
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "PYTHONPATH": os.pathsep.join([str(venv / "site"), *site.getsitepackages()])}
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  result = subprocess.run([python, "-c", CHECK, os.path.join(ROOT, "configs", "mnist.py")],
                          capture_output=True, text=True, timeout=300, cwd=elsewhere, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == "validated vanilla langevin replay"


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
