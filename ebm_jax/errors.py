"""The errors a command reports as one line (``error: ...``) instead of a traceback.

Each layer raises its own subclass (a bad config key, missing data, an unreadable checkpoint, a
diverged run, a malformed study), so ``ebm_jax.cli`` catches them all without importing the
layers that define them.
"""


class Error(Exception):
  """An error whose message is the whole story: printed in one line by the command lines."""
