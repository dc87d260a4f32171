"""``python -m ebm_jax.data fetch NAME [--data_dir=DIR]``: fetches a dataset's raw files."""

from __future__ import annotations

import sys

from absl import app
from absl import flags

from ebm_jax.data.registry import fetch, names
from ebm_jax.data.sources import DataError



def main(argv) -> int:
  """``python -m ebm_jax.data fetch NAME [--data_dir=DIR]``: fetches a dataset's raw files."""
  return fetch_command(argv, flags.FLAGS.data_dir)

def fetch_command(argv, data_dir: str = "") -> int:
  choices = "|".join(names("image"))
  if len(argv) != 3 or argv[1] != "fetch":
    print(f"usage: python -m ebm_jax.data fetch {{{choices}}} [--data_dir=DIR]", file=sys.stderr)
    return 2
  try:
    path = fetch(argv[2], data_dir)
  except DataError as e:
    print(f"fetch failed: {e}", file=sys.stderr)
    return 1
  print(path)
  return 0

if __name__ == "__main__":
  flags.DEFINE_string("data_dir", "", "Where to put the files (default: $EBM_DATA_DIR or "
                      "~/.cache/ebm_jax/data).")
  app.run(main)
