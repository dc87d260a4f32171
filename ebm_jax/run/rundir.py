"""The run directory's contract: its file names, its log, and its config kept across changes.

Its files are written with :mod:`ebm_jax.files` (atomic, process 0 only, re-exported here): a
file that would be replaced by different content is kept under a name that says until when it
held (``config_until_step_N.json``, ``samples_before_step_N.npz``).
"""

from __future__ import annotations

import json
import os
import sys
import time

# The writers, re-exported: a run's modules write through `rundir`.
from ebm_jax.files import (atomic_path, is_writer, read_json, set_aside, write_bytes,  # noqa: F401
                           write_json, write_npz, write_text)

CONFIG = "config.json"
METRICS = "metrics.jsonl"
TRACE = "diagnostics.npz"
SAMPLES = "samples.npz"
EVAL = "eval.json"
LOG = "log.txt"
IMAGES = "images"
PLOTS = "plots"
EVAL_SAMPLES = "eval_samples"


def log_line(workdir: str, message: str) -> None:
  """Prints above the progress bar and appends to ``<workdir>/log.txt`` (process 0 only)."""
  if not is_writer():
    return
  from tqdm import tqdm
  tqdm.write(message, file=sys.stderr)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, LOG), "a") as f:
    f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + message + "\n")


def write_config(workdir: str, config, step: int, log) -> None:
  """Writes config.json; a different earlier one is kept as config_until_step_<step>.json."""
  if not is_writer():
    return
  path = os.path.join(workdir, CONFIG)
  text = json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
    set_aside(path, f"until_step_{step}")
    log(f"config changed since the last run; previous config kept as "
        f"config_until_step_{step}.json")
  write_text(path, text)
