"""Image grids and training figures (PNG), written from host numpy arrays."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from ebm_jax.run import rundir  # noqa: E402
from ebm_jax.data import to_uint8  # noqa: E402


def _atomic_save(fig_or_image, path: str) -> None:
  """Writes to a temporary name first so a reader never sees a half-written PNG."""
  with rundir.atomic_path(path, ".tmp.png") as tmp:
    if isinstance(fig_or_image, Image.Image):
      fig_or_image.save(tmp)
    else:
      fig_or_image.savefig(tmp, dpi=90)
      plt.close(fig_or_image)


def image_grid(x: np.ndarray, num: int | None = None, pad: int = 2) -> np.ndarray:
  """Tiles NHWC images in [-1, 1] (values outside are clipped) into one uint8 image."""
  x = np.asarray(x)[:num]
  n, h, w, c = x.shape
  cols = math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
  for i, img in enumerate(to_uint8(x)):
    r, col = divmod(i, cols)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h,
         pad + col * (w + pad):pad + col * (w + pad) + w] = img
  return grid[..., 0] if c == 1 else grid


def scaled_image_grid(x: np.ndarray, num: int | None = None, scale: int = 2) -> np.ndarray:
  """:func:`image_grid` enlarged ``scale`` times (nearest neighbour), as the PNG grids show it."""
  grid = image_grid(x, num)
  return grid.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else grid


def save_array_image(path: str, image: np.ndarray) -> None:
  """A uint8 (H, W) or (H, W, 3) array as a PNG."""
  _atomic_save(Image.fromarray(np.asarray(image)), path)


def save_image_grid(path: str, x: np.ndarray, num: int | None = None, scale: int = 2) -> None:
  save_array_image(path, scaled_image_grid(x, num, scale))


def points_image(points: np.ndarray, limit: float, size: int = 256) -> np.ndarray:
  """Rasterises 2-D points in ``[-limit, limit]^2`` as dark 2x2 dots on white (no matplotlib:
  this runs at every log step of fast toy runs)."""
  canvas = np.full((size, size), 255, np.uint8)
  p = np.asarray(points, np.float64)
  p = p[np.all(np.isfinite(p), axis=1)]
  cols = np.round((p[:, 0] + limit) / (2 * limit) * (size - 2)).astype(int)
  rows = np.round((limit - p[:, 1]) / (2 * limit) * (size - 2)).astype(int)
  inside = (cols >= 0) & (cols < size - 1) & (rows >= 0) & (rows < size - 1)
  for dr in (0, 1):
    for dc in (0, 1):
      canvas[rows[inside] + dr, cols[inside] + dc] = 40
  canvas[size // 2, :] = np.minimum(canvas[size // 2, :], 200)     # axes through the origin
  canvas[:, size // 2] = np.minimum(canvas[:, size // 2], 200)
  return canvas


def points_panels(points: dict, limit: float, title: str = "") -> np.ndarray:
  """Point sets (e.g. data / chain starts / samples) side by side, each panel labelled, as one
  uint8 image."""
  from PIL import ImageDraw
  panels = [points_image(p, limit) for p in points.values()]
  gap, header = 8, 18
  width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
  image = Image.new("L", (width, panels[0].shape[0] + header), 255)
  draw = ImageDraw.Draw(image)
  x = 0
  for name, panel in zip(points, panels):
    image.paste(Image.fromarray(panel), (x, header))
    draw.text((x + 4, 3), f"{name}  {title}".strip(), fill=0)
    x += panel.shape[1] + gap
  return np.asarray(image)


def save_points(path: str, points: dict, limit: float, title: str = "") -> None:
  save_array_image(path, points_panels(points, limit, title))


TRAINING_PANELS = (
    ("loss", ("loss",)),
    ("energy difference d_s_t", ("d_s_t",)),
    ("mean Langevin gradient r_t", ("r_t",)),
    ("energies", ("energy_data", "energy_start", "energy_end")),
    ("sample gradient norms", ("grad_norm_start", "grad_norm_end")),
    ("learning rate", ("lr",)),
)


def save_training_curves(path: str, history: list[dict]) -> None:
  """Loss, d_s_t, r_t, energies (data / chain start / chain end), gradient norms and lr."""
  if not history:
    return
  steps = np.array([row["step"] for row in history])
  fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
  for ax, (title, keys) in zip(axes.ravel(), TRAINING_PANELS):
    for key in keys:
      if key in history[0]:
        ax.plot(steps, [row[key] for row in history], label=key, lw=1)
    if title.startswith("energy difference"):
      ax.axhline(0.0, ls="--", c="k", lw=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    if len(keys) > 1:
      ax.legend(fontsize=7)
  fig.subplots_adjust(hspace=0.35, wspace=0.25, left=0.05, right=0.98, top=0.95, bottom=0.08)
  _atomic_save(fig, path)


def save_anatomy_diagnostics(path: str, steps, d_s_t, r_t, correlations, verdict: str = ""):
  """ebm-anatomy's Fig. 3 panels: d_s_t and r_t over training, their cross-correlation over
  lags and their auto-correlations over the recent window."""
  fig, axes = plt.subplots(2, 2, figsize=(10, 7))
  ax = axes[0, 0]
  ax.plot(steps, d_s_t, lw=0.8)
  ax.axhline(0.0, ls="--", c="k", lw=0.8)
  ax.set_title("energy difference $d_{s_t}$", fontsize=10)
  ax.set_xlabel("step", fontsize=8)
  ax = axes[0, 1]
  ax.plot(steps, r_t, lw=0.8, c="tab:orange")
  ax.set_title("mean Langevin gradient magnitude $r_t$", fontsize=10)
  ax.set_xlabel("step", fontsize=8)
  ax = axes[1, 0]
  ax.bar(correlations.lags, correlations.cross)
  ax.axhline(0.0, ls="--", c="k", lw=0.8)
  ax.set_title("cross-correlation of $d_{s_t}$ and $r_t$", fontsize=10)
  ax.set_xlabel("lag (steps)", fontsize=8)
  ax = axes[1, 1]
  width = 0.35
  ax.bar(correlations.acf_lags - width / 2, correlations.acf_d_s_t, width, label="$d_{s_t}$")
  ax.bar(correlations.acf_lags + width / 2, correlations.acf_r_t, width, label="$r_t$")
  ax.axhline(0.0, ls="--", c="k", lw=0.8)
  ax.set_title("auto-correlations", fontsize=10)
  ax.set_xlabel("lag (steps)", fontsize=8)
  ax.legend(fontsize=8)
  if verdict:
    fig.suptitle(verdict, fontsize=8, wrap=True)
  fig.subplots_adjust(hspace=0.4, wspace=0.25, left=0.07, right=0.98, top=0.88, bottom=0.08)
  _atomic_save(fig, path)


def save_toy_landscape(path: str, landscape, title: str = "") -> None:
  """ebm-anatomy's toy figure: true / model / short-run KDE densities and log-densities."""
  panels = [("true", landscape.true), ("EBM", landscape.model)]
  if landscape.kde is not None:
    panels.append(("short-run KDE", landscape.kde))
  fig, axes = plt.subplots(2, len(panels), figsize=(3.3 * len(panels), 6.4), squeeze=False)
  lim = float(landscape.axis[-1])
  for col, (name, density) in enumerate(panels):
    for row, (label, values) in enumerate((("density", density),
                                           ("log-density", np.log(density + 1e-10)))):
      ax = axes[row, col]
      ax.imshow(values, origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis")
      ax.set_title(f"{name} {label}", fontsize=9)
      ax.set_xticks([])
      ax.set_yticks([])
  kl = f"KL(true||EBM) = {landscape.kl_true_model:.3f}"
  if landscape.kl_smoothed is not None:
    kl += f", KL(true*K||KDE) = {landscape.kl_smoothed:.4f}"
    if landscape.kl_smoothed_floor is not None:
      kl += f" (exact samples: {landscape.kl_smoothed_floor:.4f})"
  fig.suptitle(f"{title}  {kl}".strip(), fontsize=10)
  fig.subplots_adjust(hspace=0.15, wspace=0.05, left=0.02, right=0.98, top=0.9, bottom=0.02)
  _atomic_save(fig, path)


def save_chain_trace(path: str, traces: dict, title: str = "") -> None:
  """Per-step chain traces (e.g. mean energy, acceptance rate) of a long run."""
  fig, axes = plt.subplots(1, len(traces), figsize=(4.5 * len(traces), 3.2), squeeze=False)
  for ax, (name, values) in zip(axes[0], traces.items()):
    ax.plot(np.arange(1, len(values) + 1), values, lw=0.8)
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("chain step", fontsize=8)
    if len(values) > 100:
      ax.set_xscale("log")
  if title:
    fig.suptitle(title, fontsize=10)
  fig.subplots_adjust(wspace=0.3, left=0.06, right=0.98, top=0.82, bottom=0.15)
  _atomic_save(fig, path)


def save_heatmap(path: str, values: np.ndarray, row_labels, col_labels, marks, *,
                 row_name: str, col_name: str, value_name: str, title: str = "",
                 value_range: tuple[float, float] | None = None) -> None:
  """A grid of cells coloured by ``values`` (log10, lower = better, green) with ``marks``
  (a string per cell, e.g. "diverged") written over it; NaN cells are grey.
  ``value_range`` fixes the colour scale, so that several maps can be compared."""
  values = np.asarray(values, np.float64)
  fig, ax = plt.subplots(figsize=(1.3 * len(col_labels) + 2.4, 0.9 * len(row_labels) + 1.6))
  shown = np.ma.masked_invalid(np.log10(np.where(values > 0, values, np.nan)))
  cmap = matplotlib.colormaps["RdYlGn_r"].with_extremes(bad="0.75")
  limits = np.log10(value_range) if value_range else (None, None)
  image = ax.imshow(shown, cmap=cmap, aspect="auto", vmin=limits[0], vmax=limits[1])
  for r in range(values.shape[0]):
    for c in range(values.shape[1]):
      text = "" if not np.isfinite(values[r, c]) else f"{values[r, c]:.3g}"
      if marks[r][c]:
        text = f"{text}\n{marks[r][c]}" if text else marks[r][c]
      ax.text(c, r, text, ha="center", va="center", fontsize=7)
  ax.set_xticks(range(len(col_labels)), [str(v) for v in col_labels])
  ax.set_yticks(range(len(row_labels)), [str(v) for v in row_labels])
  ax.set_xlabel(col_name)
  ax.set_ylabel(row_name)
  if shown.count():
    fig.colorbar(image, ax=ax, label=f"log10 {value_name}")
  ax.set_title(title, fontsize=8)
  fig.tight_layout()
  _atomic_save(fig, path)


def save_trace_overlay(path: str, traces: dict, title: str = "") -> None:
  """Per-step d_s_t and r_t of several runs (label -> (steps, d_s_t, r_t)), smoothed."""
  fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
  for label, (steps, d_s_t, r_t) in traces.items():
    for ax, y in zip(axes, (d_s_t, r_t)):
      y = np.asarray(y, np.float64)
      k = max(1, len(y) // 100)
      smooth = np.convolve(y, np.ones(k) / k, mode="valid") if len(y) >= k else y
      ax.plot(np.asarray(steps)[k - 1:][:len(smooth)], smooth, lw=0.8, label=label)
  axes[0].axhline(0.0, color="k", lw=0.5)
  # A diverged run's last values would flatten every other trace: limit the axes to the
  # bulk of the pooled values (the diverged run leaves the plot where it blows up).
  for ax, index, log in ((axes[0], 1, False), (axes[1], 2, True)):
    pooled = np.concatenate([np.asarray(t[index], np.float64) for t in traces.values()])
    pooled = pooled[np.isfinite(pooled) & ((pooled > 0) if log else True)]
    if len(pooled) > 10:
      v = np.log10(pooled) if log else pooled
      center, spread = np.median(v), 8 * np.median(np.abs(v - np.median(v))) + 1e-12
      lo, hi = max(v.min(), center - spread), min(v.max(), center + spread)
      ax.set_ylim((10 ** (lo - 0.2), 10 ** (hi + 0.2)) if log else
                  (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)))
  axes[0].set_ylabel("d_s_t = E(data) - E(samples)")
  axes[1].set_ylabel("r_t (mean sample-gradient norm)")
  axes[1].set_yscale("log")
  for ax in axes:
    ax.set_xlabel("step")
  axes[1].legend(fontsize=6, loc="best")
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  _atomic_save(fig, path)


def save_quality_curves(path: str, curves: dict, panels: dict, value_name: str,
                        title: str = "") -> None:
  """Quality against budgets: one panel per ``panels`` entry (curve key -> axis label), one
  colour per ``curves`` label (label -> list of curve dicts holding those keys and
  ``quality``), every replicate drawn thin, on log axes."""
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
  colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for ax, (key, label) in zip(axes[0], panels.items()):
    for i, (name, members) in enumerate(curves.items()):
      for j, curve in enumerate(members):
        if len(curve["quality"]):
          ax.plot(curve[key], curve["quality"], color=colours[i % len(colours)], lw=0.7,
                  alpha=0.6, marker=".", ms=2, label=name if j == 0 else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel(value_name)
    ax.legend(fontsize=7)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  _atomic_save(fig, path)
