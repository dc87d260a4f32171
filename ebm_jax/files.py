"""Writing files so that no reader or crash sees half of one, and only process 0 writes.

Every file ebm_jax writes (a run's outputs, fetched datasets, cached statistics) goes through
here: to a temporary name first, then renamed into place. A file that would be replaced by
different content can be kept under a name that says until when it held (:func:`set_aside`).
"""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np

from ebm_jax.core import parallel


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


def read_json(path: str):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)
