"""Writes docs/figures/readme.png, the README's figure, from committed runs:

    python docs/figures/make_readme_figure.py docs/runs/<run> [docs/runs/<run> ...]

Each run gives one panel: an image run its last sample grid (``images/samples_<step>.png``), a
toy run its last landscape (``plots/landscape_<step>.png``: true density, learned exp(-c E)
and the samples' KDE).
"""
import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _panel(run: str) -> str:
  for pattern in ("images/samples_*.png", "plots/landscape_*.png"):
    paths = sorted(glob.glob(os.path.join(run, pattern)))
    if paths:
      return paths[-1]
  raise SystemExit(f"{run}: no images/samples_*.png or plots/landscape_*.png")


def main(runs, out: str = "docs/figures/readme.png") -> None:
  images = [plt.imread(_panel(run)) for run in runs]
  widths = [im.shape[1] / im.shape[0] for im in images]
  fig, axes = plt.subplots(1, len(images), figsize=(4 * sum(widths), 4), squeeze=False,
                           gridspec_kw={"width_ratios": widths})
  for ax, image in zip(axes[0], images):
    ax.imshow(image)
    ax.axis("off")
  fig.tight_layout(pad=0.2)
  fig.savefig(out, dpi=120)
  print(f"wrote {out}")


if __name__ == "__main__":
  main(sys.argv[1:])
