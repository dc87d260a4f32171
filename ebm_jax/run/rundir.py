"""The run directory's contract: file names, atomic writes, main-process-only writing, and
setting files aside instead of overwriting them.

Every file of a run is written through here: to a temporary name first and then renamed, so a
reader (or a crash) never sees half a file; on multi-host runs only process 0 writes. A file
that would be replaced by different content is kept under a name that says until when it held
(``config_until_step_N.json``, ``samples_before_step_N.npz``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import numpy as np

from ebm_jax.core import parallel

CONFIG = "config.json"
METRICS = "metrics.jsonl"
TRACE = "diagnostics.npz"
SAMPLES = "samples.npz"
EVAL = "eval.json"
LOG = "log.txt"
IMAGES = "images"
PLOTS = "plots"
EVAL_SAMPLES = "eval_samples"


def is_writer() -> bool:
  """Whether this process writes run files (process 0 of a multi-host run)."""
  return parallel.is_main_process()


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ".tmp"):
  """Yields a temporary path to write ``path``'s content to; renames it into place on success
  (``suffix`` keeps an extension writers need, e.g. ``.tmp.png``)."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + suffix
  yield tmp
  os.replace(tmp, path)


# The writers below do nothing on processes other than the writer, so callers need no guard.


def write_text(path: str, text: str) -> None:
  if is_writer():
    with atomic_path(path) as tmp, open(tmp, "w") as f:
      f.write(text)


def write_bytes(path: str, data: bytes) -> None:
  if is_writer():
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
      f.write(data)


def write_json(path: str, value) -> None:
  write_text(path, json.dumps(value, indent=2, default=str))


def write_npz(path: str, **arrays) -> None:
  if is_writer():
    with atomic_path(path, ".tmp.npz") as tmp:
      np.savez(tmp, **arrays)


def set_aside(path: str, suffix: str) -> str | None:
  """Renames an existing file to ``<stem>_<suffix><ext>`` (never deletes a run's file);
  returns the new name."""
  if not is_writer() or not os.path.exists(path):
    return None
  stem, ext = os.path.splitext(path)
  target, n = f"{stem}_{suffix}{ext}", 1
  while os.path.exists(target):
    target, n = f"{stem}_{suffix}.{n}{ext}", n + 1
  os.replace(path, target)
  return target


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


def read_json(path: str):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)
