"""notebooks/quickstart.ipynb runs top to bottom (at quick sizes) and is the file its
generator writes, so it never rots."""

import os
import re
import subprocess
import sys

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "quickstart.ipynb")

# Run before the notebook's cells, in its kernel: this checkout's ebm_jax importable (no
# install), and MNIST from tfds's mock data (no download).
SCAFFOLD = f"""import sys
sys.path.insert(0, {ROOT!r})
import tensorflow_datasets as tfds
_mock = tfds.testing.mock_data(num_examples=48)
_mock.__enter__()"""


def test_the_committed_notebook_is_what_its_generator_writes(tmp_path):
  fresh = tmp_path / "quickstart.ipynb"
  subprocess.run([sys.executable, os.path.join(ROOT, "notebooks", "make_quickstart.py"),
                  str(fresh)], check=True, capture_output=True)
  assert fresh.read_text() == open(NOTEBOOK).read(), "run notebooks/make_quickstart.py"


def test_quickstart_runs_at_quick_sizes(tmp_path, monkeypatch):
  monkeypatch.setenv("EBM_QUICKSTART_QUICK", "1")
  monkeypatch.setenv("EBM_QUICKSTART_WORKDIR", str(tmp_path / "runs"))
  monkeypatch.setenv("EBM_DATA_DIR", str(tmp_path / "no_local_data"))
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nb.cells.insert(0, nbformat.v4.new_code_cell(SCAFFOLD))
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": os.path.join(ROOT, "notebooks")}}).execute()
  outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(images) >= 7          # grids, diagnostics, landscapes, MNIST, MALA, new sampler
  text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
  assert "trained to step 20" in text and "'sampler': 'mala'" in text
  # The low-level cell: ULA's stationary variance of a standard Gaussian at eps = 0.3 (1.023).
  variances = re.search(r"variance per axis \[([\d.]+) ([\d.]+)\]", text)
  assert variances and all(abs(float(v) - 1.023) < 0.05 for v in variances.groups()), text[:500]
  # Public API only: no internal module, no sys.path edit in the notebook itself.
  source = "\n".join(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells)
  assert "sys.path" not in source and not re.search(r"from ebm_jax[.\w]* import", source)
  assert (tmp_path / "runs" / "gmm_normalised" / "samples.npz").exists()
