"""What a run writes while it trains: log lines, metrics rows, per-step traces, image grids,
training and diagnostic figures, long-run chains and toy landscapes.

All of it is derived from the train step's outputs on the host; none of it feeds back into
training, so a run with or without these files trains identically.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np

from ebm_jax.eval import diagnostics
from ebm_jax.core import parallel
from ebm_jax.run import plotting
from ebm_jax.run import rundir
from ebm_jax.run import writers

# Per-step series kept in diagnostics.npz (every step, not only logged ones).
TRACE_KEYS = ("d_s_t", "r_t", "loss", "energy_data", "energy_start", "energy_end",
              "grad_norm_start", "grad_norm_end")


def samples_image(x, title, toy_limit: float | None, num: int) -> np.ndarray:
  """An image grid (images) or a scatter plot (2-D points) of samples, as a uint8 image."""
  if toy_limit is not None:
    return plotting.points_panels({title: np.asarray(x)}, toy_limit)
  return plotting.scaled_image_grid(np.asarray(x), num)


def save_samples(path: str, x, title, toy_limit: float | None, num: int) -> None:
  plotting.save_array_image(path, samples_image(x, title, toy_limit, num))


def read_metrics(path: str, *, events: bool = False) -> tuple[list[dict], int]:
  """The rows of a ``metrics.jsonl`` and how many lines could not be read (a line torn by a
  crash mid-write is skipped, never fatal). Event rows (``"event": "recovery"``) only with
  ``events``; the others are the logged metrics."""
  if not os.path.exists(path):
    return [], 0
  rows, torn = [], 0
  with open(path) as f:
    for line in f:
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        torn += 1
        continue
      if events or "event" not in row:
        rows.append(row)
  return rows, torn


def quality_metric(spec) -> str:
  """The one number (lower = better) a run's quality is judged by (of a spec or a config):
  studies, searches and the plateau stop all read it."""
  from ebm_jax import data as data_lib
  return data_lib.get(spec.data.name).quality_metric


def measurements(workdir: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
  """A run's quality curve: ``step``, ``wall_time`` (s of training, outputs included) and each
  of ``keys`` at every update where they were measured. Toy KLs come from the metrics rows of
  landscape steps; image metrics from ``eval.json``, timed by the metrics row of their step
  (evaluations at steps that were not logged are left out)."""
  rows, _ = read_metrics(os.path.join(workdir, rundir.METRICS))
  if any(k in r for r in rows for k in keys):
    records, times = [r for r in rows if all(r.get(k) is not None for k in keys)], None
  else:
    times = {r["step"]: r["wall_time"] for r in rows}
    records = [r for r in (rundir.read_json(os.path.join(workdir, rundir.EVAL)) or [])
               if r.get("step") in times and all(k in r for k in keys)]
  out = {"step": np.array([r["step"] for r in records], np.int64),
         "wall_time": np.array([r["wall_time"] if times is None else times[r["step"]]
                                for r in records], np.float64)}
  out.update({k: np.array([r[k] for r in records], np.float64) for k in keys})
  return out


def logged_until(workdir: str) -> int:
  """The last step ``metrics.jsonl`` holds a row for (0 when none)."""
  rows, _ = read_metrics(os.path.join(workdir, rundir.METRICS), events=True)
  return max((r["step"] for r in rows), default=0)


class RunReporter:
  """Writes a run directory's progress files; resumes them at ``start_step``.

  Rows, grids and events go through one :mod:`~ebm_jax.run.writers` writer (metrics.jsonl, PNGs,
  TensorBoard). On multi-host runs every process keeps the series, only process 0 writes files.
  ``spec`` is the run's static :class:`~ebm_jax.spec.Spec`; ``wall_offset`` the seconds the
  run has trained before (default: the ``wall_time`` of the last row kept), so a recovered
  run's clock counts the time its discarded updates took.
  """

  def __init__(self, spec, workdir: str, start_step: int, toy=None,
               wall_offset: float | None = None):
    self.spec = spec
    self.main = rundir.is_writer()
    self.workdir = workdir
    self.toy = toy
    self.metrics_path = os.path.join(workdir, rundir.METRICS)
    self.trace_path = os.path.join(workdir, rundir.TRACE)
    self.history = self._rewind_metrics(start_step)
    self.trace = self._rewind_trace(start_step)
    self.window: list[dict] = []
    if wall_offset is None:
      wall_offset = self.history[-1]["wall_time"] if self.history else 0.0
    self.wall_offset = wall_offset
    self.t_start = time.time()
    self.t_window = time.perf_counter()
    # The first figures wait figures_every_secs (or the final step): early ones show nothing yet
    # and, in short runs and many-cell sweeps, drawing them cost more than the training.
    self.t_figures = time.perf_counter()
    self.writer = writers.create_default_writer(workdir, tensorboard=spec.tensorboard,
                                                start_step=start_step)

  def log(self, message: str) -> None:
    rundir.log_line(self.workdir, message)

  def wall_time(self) -> float:
    """Seconds the run has trained, resumed calls included (metrics' ``wall_time``)."""
    return self.wall_offset + time.time() - self.t_start

  # --- resuming: what was logged after the checkpoint we resume from is replayed (exactly,
  # under the same settings), so the files continue from that step; the files as they were
  # are set aside whole under the step they ran until, never deleted.

  def _rewind_metrics(self, step: int) -> list[dict]:
    rows, torn = read_metrics(self.metrics_path, events=True)
    if torn:
      self.log(f"warning: {torn} unreadable line(s) in {self.metrics_path} (a write cut short) "
               "skipped; the file is kept as it was beside the new one")
    kept = [r for r in rows if r["step"] <= step]
    if len(kept) < len(rows) or torn:
      until = max((r["step"] for r in rows), default=step)
      rundir.set_aside(self.metrics_path, f"until_step_{until}")
      rundir.write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
    return [r for r in kept if "event" not in r]

  def _rewind_trace(self, step: int) -> dict:
    trace = {k: [] for k in ("step",) + TRACE_KEYS}
    if os.path.exists(self.trace_path):
      with np.load(self.trace_path) as f:
        keep = f["step"] <= step
        for k in trace:
          trace[k] = list(f[k][keep]) if k in f else []
        until = int(f["step"].max()) if f["step"].size else step
      if until > step:
        rundir.set_aside(self.trace_path, f"until_step_{until}")
        self._write_trace(trace)
    return trace

  def _write_trace(self, trace: dict | None = None) -> None:
    trace = self.trace if trace is None else trace
    rundir.write_npz(self.trace_path, **{k: np.asarray(v) for k, v in trace.items()})

  # --- every step

  def record(self, step: int, metrics: dict) -> None:
    self.window.append(metrics)
    self.trace["step"].append(step)
    for k in TRACE_KEYS:
      self.trace[k].append(float(metrics[k]))

  # --- log steps

  def _row(self, step: int) -> dict:
    """The metrics row of the window (means over its steps)."""
    row = {"step": step}
    for k in self.window[0]:
      if k != "finite":
        row[k] = float(np.mean([m[k] for m in self.window]))
    row["samples_per_sec"] = (self.spec.batch_size * len(self.window)
                              / (time.perf_counter() - self.t_window))
    row["wall_time"] = self.wall_time()
    return row

  def event(self, step: int, event: dict) -> None:
    """An event row (a recovery) in metrics.jsonl, outside the logged metrics' history."""
    self.writer.write_event(step, event)
    self.writer.flush()

  def scalars(self, step: int, scalars: dict) -> None:
    """Scalars of record elsewhere (``eval/...`` from eval.json) into the other writers."""
    self.writer.write_scalars(step, scalars)
    self.writer.flush()

  def close(self) -> None:
    self.writer.close()

  def flush(self, step: int) -> None:
    """Writes the pending window as a row at ``step`` and the trace, with no figures (before a
    divergence stops the run, so the metrics leading up to it are kept)."""
    if not self.window:
      return
    row = self._row(step)
    self.history.append(row)
    self.window = []
    self._write_row(row)
    if self.main:
      self._write_trace()

  def _write_row(self, row: dict) -> None:
    self.writer.write_scalars(row["step"], {k: v for k, v in row.items() if k != "step"})

  def log_step(self, step: int, batch_images: dict, extra: dict | None = None,
               final: bool = False) -> dict:
    """Writes the metrics row (means over the window), grids, figures and traces.

    The matplotlib figures (the slow part) are refreshed at most every
    ``diagnostics.figures_every_secs`` seconds, and at the final step.
    """
    host_images = jax.tree.map(parallel.fetch, batch_images)   # a collective on multi-host runs
    row = {**self._row(step), **(extra or {})}
    self.history.append(row)
    if not self.main:
      self.window = []
      return row
    self._write_row(row)
    self._save_batch_images(step, host_images)
    self.writer.flush()
    self._write_trace()
    verdict = diagnostics.learning_verdict(self.trace["d_s_t"], self.trace["r_t"])
    self.log(f"step {step}: loss {row['loss']:.4g}, d_s_t {row['d_s_t']:.4g}, r_t "
             f"{row['r_t']:.4g}, {row['samples_per_sec']:.0f} samples/s; {verdict}")
    now = time.perf_counter()
    if self.spec.diagnostics.figures and (
        final or now - self.t_figures >= self.spec.diagnostics.figures_every_secs):
      self.t_figures = now
      self._plot(plotting.save_training_curves, "training.png", self.history)
      if len(self.trace["d_s_t"]) >= 3:
        correlations = diagnostics.anatomy_correlations(
            self.trace["d_s_t"], self.trace["r_t"], self.spec.diagnostics.max_lag,
            self.spec.diagnostics.window)
        self._plot(plotting.save_anatomy_diagnostics, "diagnostics.png", self.trace["step"],
                   self.trace["d_s_t"], self.trace["r_t"], correlations,
                   f"step {step}: {verdict}")
    self.window = []
    self.t_window = time.perf_counter()    # figure time is not counted as training time
    return row

  def _plot(self, save, name: str, *args) -> None:
    """``save(plots/<name>, *args)``: every matplotlib figure of a run, none with
    ``diagnostics.figures`` off."""
    if self.spec.diagnostics.figures:
      save(os.path.join(self.workdir, rundir.PLOTS, name), *args)

  def _save_batch_images(self, step: int, host: dict) -> None:
    if self.toy is not None:
      images = {"points": plotting.points_panels(host, self.toy.plot_limit, f"step {step}")}
    else:
      images = {name: plotting.scaled_image_grid(x, self.spec.num_grid_images)
                for name, x in host.items()}
    self.writer.write_images(step, images)

  # --- occasional diagnostics

  def long_run(self, step: int, run) -> None:
    """A long-run chain's final samples and its per-step energy trace."""
    if not self.main:
      return
    limit = self.toy.plot_limit if self.toy is not None else None
    self.writer.write_images(step, {"longrun": samples_image(
        run.positions, f"long run, {len(run.energy)} steps", limit, self.spec.num_grid_images)})
    traces = {"mean energy": run.energy, "mean gradient norm": run.grad_norm}
    if np.any(run.acceptance_rate < 1):
      traces["acceptance rate"] = run.acceptance_rate
    self._plot(plotting.save_chain_trace, f"longrun_{step:06d}.png", traces,
               f"long run at training step {step}")
    self.log(f"step {step}: long run of {len(run.energy)} steps: mean energy "
             f"{run.energy[0]:.4g} -> {run.final_energy:.4g}"
             + (f", {run.num_nonfinite} non-finite chains" if run.num_nonfinite else ""))

  def landscape(self, step: int, landscape) -> dict:
    if not self.main:
      return {}
    self._plot(plotting.save_toy_landscape, f"landscape_{step:06d}.png", landscape,
               f"step {step}")
    return {"kl_true_model": landscape.kl_true_model, "kl_true_kde": landscape.kl_true_kde,
            "kl_kde_floor": landscape.kl_kde_floor, "kl_smoothed": landscape.kl_smoothed,
            "kl_smoothed_floor": landscape.kl_smoothed_floor}
