"""Metric writers: one interface the training loop calls, several files written side by side.

Modelled on CLU's ``metric_writers``: a writer takes scalars and images at a step; a
:class:`MultiWriter` forwards each call to all of its writers; :func:`create_default_writer`
builds a run directory's writers (``metrics.jsonl`` rows, PNG grids, TensorBoard events), on the
main process only (the others get a writer that writes nothing).

TensorBoard events are written with ``tensorboardX``: a small, maintained, pure-Python writer of
TensorBoard's event protocol that needs neither TensorFlow nor PyTorch (tensorboard's own
``tensorboard.summary`` writer API is still marked experimental). The events go into the run
directory itself, so ``tensorboard --logdir runs/`` shows each run, and each cell of a sweep, as
a run of its own.
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Protocol, Sequence

import numpy as np

from ebm_jax.run import rundir

# Scalars named "<namespace>/<name>" whose file of record is another one (eval.json for
# "eval/..."): TensorBoard shows them, metrics.jsonl keeps only the training rows.
EVAL_NAMESPACE = "eval"


class MetricWriter(Protocol):
  """What the loop calls; every method is a no-op where a writer has nothing to write."""

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None: ...

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """``images``: name -> uint8 array, (H, W) grey or (H, W, 3) colour."""

  def write_event(self, step: int, event: Mapping) -> None:
    """A run event (a recovery): its fields, e.g. ``{"event": "recovery", "cause": ...}``."""

  def flush(self) -> None: ...

  def close(self) -> None: ...


class _NoWrites:
  def write_scalars(self, step, scalars) -> None:
    pass

  def write_images(self, step, images) -> None:
    pass

  def write_event(self, step, event) -> None:
    pass

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass


class JsonlWriter(_NoWrites):
  """Appends one JSON row per call to a ``.jsonl`` file: ``{"step": step, **scalars}``; events
  go in as rows of their own. Namespaced scalars (``eval/...``) are left to their own files."""

  def __init__(self, path: str):
    self.path = path

  def _append(self, row: dict) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")

  def write_scalars(self, step, scalars) -> None:
    row = {k: v for k, v in scalars.items() if "/" not in k}
    if row:
      self._append({"step": int(step), **row})

  def write_event(self, step, event) -> None:
    self._append({"step": int(step), **event})


class PngWriter(_NoWrites):
  """Each image as ``<directory>/<name>_<step:06d>.png`` (written atomically)."""

  def __init__(self, directory: str):
    self.directory = directory

  def write_images(self, step, images) -> None:
    from ebm_jax.run import plotting
    for name, image in images.items():
      plotting.save_array_image(os.path.join(self.directory, f"{name}_{int(step):06d}.png"),
                                image)


class TensorBoardWriter(_NoWrites):
  """TensorBoard event files in ``logdir``. A resumed run passes ``purge_step``: TensorBoard
  then drops the events an earlier process wrote from that step on, as the run's other files
  rewind to its checkpoint."""

  def __init__(self, logdir: str, purge_step: int | None = None):
    from tensorboardX import SummaryWriter   # lazy: only runs that write events import it
    self.summary = SummaryWriter(logdir=logdir, purge_step=purge_step or None, flush_secs=30)

  def write_scalars(self, step, scalars) -> None:
    for name, value in scalars.items():
      if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        self.summary.add_scalar(name, float(value), int(step))

  def write_images(self, step, images) -> None:
    for name, image in images.items():
      image = np.asarray(image)
      self.summary.add_image(name, image, int(step),
                             dataformats="HW" if image.ndim == 2 else "HWC")

  def write_event(self, step, event) -> None:
    self.summary.add_text("events", json.dumps(dict(event)), int(step))

  def flush(self) -> None:
    self.summary.flush()

  def close(self) -> None:
    self.summary.close()


class MultiWriter(_NoWrites):
  """Forwards every call to each of ``writers``."""

  def __init__(self, writers: Sequence[MetricWriter]):
    self.writers = list(writers)

  def write_scalars(self, step, scalars) -> None:
    for w in self.writers:
      w.write_scalars(step, scalars)

  def write_images(self, step, images) -> None:
    for w in self.writers:
      w.write_images(step, images)

  def write_event(self, step, event) -> None:
    for w in self.writers:
      w.write_event(step, event)

  def flush(self) -> None:
    for w in self.writers:
      w.flush()

  def close(self) -> None:
    for w in self.writers:
      w.close()


def create_default_writer(workdir: str, *, tensorboard: bool = True,
                          start_step: int = 0) -> MetricWriter:
  """A run directory's writers: ``metrics.jsonl``, PNG grids under ``images/`` and, with
  ``tensorboard``, event files in ``workdir``; on processes other than the main one, none."""
  if not rundir.is_writer():
    return MultiWriter([])
  writers: list[MetricWriter] = [JsonlWriter(os.path.join(workdir, rundir.METRICS)),
                                 PngWriter(os.path.join(workdir, rundir.IMAGES))]
  if tensorboard:
    writers.append(TensorBoardWriter(workdir, purge_step=start_step + 1 if start_step else None))
  return MultiWriter(writers)
