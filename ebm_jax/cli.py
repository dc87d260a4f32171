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
from ebm_jax import _moved


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


_CONFIG_OVERRIDES: list[str] = []


def parse_flags_with_config(argv):
  """absl flag parsing, with the ``--config.<key>=<value>`` overrides set apart for
  :func:`config_overrides` (every command takes them, in this one syntax)."""
  rest = []
  _CONFIG_OVERRIDES.clear()
  args = iter(argv)
  for arg in args:
    if arg.startswith("--config."):
      override = arg[len("--config."):]
      if "=" not in override:          # absl's other form: --config.<key> <value>
        override += "=" + next(args, "")
      _CONFIG_OVERRIDES.append(override)
    else:
      rest.append(arg)
  try:
    return flags.FLAGS(rest)
  except flags.Error as e:
    fail(str(e), 2)


def config_overrides() -> list[str]:
  """The ``key=value`` texts of the command line's ``--config.<key>=<value>`` arguments."""
  return list(_CONFIG_OVERRIDES)


def __getattr__(name: str):
  return _moved.attribute(__name__, name)     # a name that moved away, named in one line
