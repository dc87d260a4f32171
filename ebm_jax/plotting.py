"""Image grids and training figures (PNG), written from host numpy arrays."""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from ebm_jax.data import to_uint8  # noqa: E402


def _atomic_save(fig_or_image, path: str) -> None:
  """Writes to a temporary name first so a reader never sees a half-written PNG."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = path + ".tmp.png"
  if isinstance(fig_or_image, Image.Image):
    fig_or_image.save(tmp)
  else:
    fig_or_image.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig_or_image)
  os.replace(tmp, path)


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


def save_image_grid(path: str, x: np.ndarray, num: int | None = None, scale: int = 2) -> None:
  grid = Image.fromarray(image_grid(x, num))
  if scale > 1:
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
  _atomic_save(grid, path)


def save_points(path: str, points: dict, limit: float, title: str = "") -> None:
  """Scatter plots of 2-D point sets (e.g. data / chain starts / samples) side by side."""
  fig, axes = plt.subplots(1, len(points), figsize=(3.2 * len(points), 3.2), squeeze=False)
  for ax, (name, p) in zip(axes[0], points.items()):
    p = np.asarray(p)
    ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.5)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_title(name, fontsize=9)
  if title:
    fig.suptitle(title, fontsize=10)
  _atomic_save(fig, path)


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
  fig.tight_layout()
  _atomic_save(fig, path)
