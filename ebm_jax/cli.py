"""What every command line shares: absl flags, and ``--config.<key>`` errors and other known
errors as one line (the CPU device split that must precede jax's start is
``ebm_jax.core.parallel.start_devices``).

The entry points (``train.py``, ``sample.py``, ``sweep.py``, ``python -m ebm_jax.run.evaluate``,
``python -m ebm_jax.data``) are absl programs that parse flags and make one library call.
"""

from __future__ import annotations

import sys
from typing import Callable

from absl import flags

from ebm_jax import errors


# Bad config, data, checkpoint, divergence, study (each an ebm_jax.errors.Error), and the plain
# errors a command's arguments raise.
KNOWN_ERRORS = (errors.Error, ValueError, FileNotFoundError)


def fail(message: str, code: int) -> None:
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
  sys.exit(code)


def call(fn: Callable, *args, code: int = 1, **kwargs):
  """``fn(*args, **kwargs)``, with a known error printed as ``error: <one line>`` and exit
  ``code``."""
  try:
    return fn(*args, **kwargs)
  except KNOWN_ERRORS as e:
    fail(str(e), code)


def parse_flags_with_config(argv):
  """absl flag parsing, with an unknown ``--config.<key>`` reported in one line (exit 2)."""
  try:
    return flags.FLAGS(argv)
  except AttributeError as e:   # ml_collections: an override names a key the config lacks
    key = next((a.split("=")[0] for a in argv[1:] if a.startswith("--config.")
                and str(e).strip("'\"") in a), str(e))
    fail(f"{key}: unknown config key (see ebm_jax/config.py)", 2)
  except flags.Error as e:
    fail(str(e), 2)
