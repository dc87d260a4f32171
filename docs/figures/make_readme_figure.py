"""Writes docs/figures/readme.png, the README's figure, from two committed runs:

    python docs/figures/make_readme_figure.py docs/runs/<mnist run> docs/runs/<gmm run>

Left: the MNIST run's last sample grid (``images/samples_<step>.png``); right: the GMM run's
last landscape (``plots/landscape_<step>.png``: true density, learned exp(-c E), samples' KDE).
"""
import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _last(run: str, pattern: str) -> str:
  paths = sorted(glob.glob(os.path.join(run, pattern)))
  if not paths:
    raise SystemExit(f"{run}: no {pattern}")
  return paths[-1]


def main(mnist_run: str, gmm_run: str, out: str = "docs/figures/readme.png") -> None:
  grid = plt.imread(_last(mnist_run, "images/samples_*.png"))
  landscape = plt.imread(_last(gmm_run, "plots/landscape_*.png"))
  ratio = landscape.shape[1] / landscape.shape[0] * grid.shape[0] / grid.shape[1]
  fig, axes = plt.subplots(1, 2, figsize=(4 * (1 + ratio), 4),
                           gridspec_kw={"width_ratios": [1, ratio]})
  for ax, image in zip(axes, (grid, landscape)):
    ax.imshow(image)
    ax.axis("off")
  fig.tight_layout(pad=0.2)
  fig.savefig(out, dpi=150)
  print(f"wrote {out}")


if __name__ == "__main__":
  main(*sys.argv[1:])
