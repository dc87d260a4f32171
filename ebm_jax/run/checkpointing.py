"""Orbax checkpoints of the whole training state (the only module that imports orbax).

A checkpoint holds everything a run needs to continue: parameters, spectral-norm state,
optimizer state, persistent bank / replay buffer, step and base PRNG key, so a resumed run
replays exactly the steps the uninterrupted run would have taken.

Nothing is ever deleted by hand here: Orbax keeps the last ``max_to_keep`` checkpoints. A
restore tells three failures apart: a stored tree whose arrays differ from the config's state
(number, shapes, dtypes, read from the checkpoint's metadata) is a config error and nothing
moves; an I/O or memory error is of the moment and nothing moves, whether it comes while
reading the metadata or the arrays; any other failure to read means a damaged checkpoint, which
is moved aside (to ``<workdir>/checkpoints_unreadable/``) before resuming from the one before it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp
from ebm_jax import errors


class CheckpointError(errors.Error, RuntimeError):
  """A checkpoint could not be restored (one-line message)."""


def checkpoint_directory(workdir: str, directory: str = "") -> str:
  """Where a run's checkpoints live: ``directory`` (e.g. a ``gs://`` path) or
  ``<workdir>/checkpoints``."""
  directory = directory or os.path.join(workdir, "checkpoints")
  return directory if "://" in directory else os.path.abspath(directory)


def may_hold_checkpoints(workdir: str, directory: str = "") -> bool:
  """False only when a local checkpoint directory is missing or holds no step (without
  creating it, unlike opening a :class:`Checkpointer`)."""
  path = checkpoint_directory(workdir, directory)
  if "://" in path:
    return True
  return os.path.isdir(path) and any(name.isdigit() for name in os.listdir(path))


class Checkpointer:
  """Saves and restores a training-state pytree under ``<workdir>/checkpoints``.

  ``with Checkpointer(...) as ckpt:`` closes it when the block ends, on an exception too.
  """

  def __init__(self, workdir: str, max_to_keep: int = 3, directory: str = ""):
    """``directory`` overrides ``<workdir>/checkpoints``, e.g. with a ``gs://`` bucket path."""
    self.directory = checkpoint_directory(workdir, directory)
    remote = "://" in self.directory
    self._aside = (None if remote else
                   os.path.join(os.path.dirname(self.directory), "checkpoints_unreadable"))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        # Registered up front so a fresh manager can read a checkpoint's stored tree.
        item_handlers=ocp.StandardCheckpointHandler())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any) -> None:
    """Saves ``state`` as checkpoint ``step`` and waits until it is on disk."""
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.StandardSave(state))
    self._manager.wait_until_finished()

  def restore(self, template: Any, step: int | None = None,
              log: Callable[[str], None] = print) -> Any:
    """Restores checkpoint ``step`` (default: the latest readable one) shaped like ``template``.

    ``template`` may hold arrays or ``jax.ShapeDtypeStruct``s (with shardings, to restore
    sharded). Returns None when there is no checkpoint.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    steps = [step] if step is not None else sorted(self._manager.all_steps(), reverse=True)
    for s in steps:
      try:
        return self._read(s, abstract, template)
      except CheckpointError:
        raise  # the config's mismatch: nothing moves
      except Exception as e:  # noqa: BLE001 - orbax / tensorstore raise many types
        # I/O and memory errors say nothing about the file, wherever in the read they come
        # (metadata or arrays): never move it, or a file-system hiccup empties the directory.
        transient = _transient_cause(e)
        if transient is not None:
          raise CheckpointError(
              f"checkpoint {s} in {self.directory} could not be read now "
              f"({type(transient).__name__}: {_reason(transient)}); it is left in place: free "
              "memory or fix the file system, then rerun") from e
        damage = e
      # A damaged checkpoint: set aside (never deleted), then the one before it.
      if step is not None or self._aside is None:
        raise CheckpointError(f"checkpoint {s} in {self.directory} is unreadable "
                              f"({_reason(damage)})") from damage
      self._move_aside(s, _reason(damage), log)
    return None

  def _read(self, step: int, abstract: Any, template: Any) -> Any:
    """Checkpoint ``step`` restored as ``abstract``; CheckpointError when its stored arrays do
    not match (the config's fault, not the file's), any other error as orbax raised it. A
    checkpoint written before a :data:`LATER_FIELDS` field existed restores with the
    ``template``'s value of it."""
    stored = self._manager.item_metadata(step)
    stored = None if stored is None else getattr(stored, "tree", stored)
    later = _later_fields_missing(stored, template)
    if later:
      fields = {f.name: getattr(abstract, f.name) for f in dataclasses.fields(abstract)
                if f.name not in later}
      if not _structure_difference(stored, fields):
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(fields))
        return template.replace(**restored)
    difference = _structure_difference(stored, abstract) if stored is not None else ""
    if difference:
      raise self._mismatch(step, difference)
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except ValueError as e:
      # The same arrays in another tree (e.g. an optimizer chain in another order): the
      # config's difference too, never a reason to move the file.
      if "tree structures do not match" in str(e):
        raise self._mismatch(step, "its tree differs: " + _reason(e)[:160]) from e
      raise

  def _mismatch(self, step: int, difference: str) -> CheckpointError:
    return CheckpointError(
        f"checkpoint {step} in {self.directory} does not match this config's training state "
        f"({difference}); use another --workdir, or the config the run was started with")

  def set_aside_after(self, step: int, log: Callable[[str], None]) -> list[int]:
    """Moves the checkpoints after ``step`` aside (to ``checkpoints_unreadable``'s sibling
    ``checkpoints_set_aside/``, never deleted): a model resumed at ``step`` with a group trains
    a new trajectory, whose saves and recoveries must not meet the old one's files."""
    later = sorted(s for s in self.all_steps() if s > step)
    if not later:
      return []
    if self._aside is None:
      raise CheckpointError(
          f"{self.directory} holds checkpoints after step {step}, where its group resumes; "
          "resume this run on its own (sweep.py --cells=<cell>)")
    target_dir = os.path.join(os.path.dirname(self._aside), "checkpoints_set_aside")
    os.makedirs(target_dir, exist_ok=True)
    for s in later:
      target = os.path.join(target_dir, str(s))
      n = 1
      while os.path.exists(target):
        target, n = os.path.join(target_dir, f"{s}.{n}"), n + 1
      shutil.move(os.path.join(self.directory, str(s)), target)
    self._manager.reload()
    log(f"checkpoints {later} are after step {step}, where the run resumes with its group; "
        f"moved them to {target_dir}")
    return later

  def _move_aside(self, step: int, reason: str, log) -> None:
    os.makedirs(self._aside, exist_ok=True)
    target = os.path.join(self._aside, str(step))
    shutil.move(os.path.join(self.directory, str(step)), target)
    log(f"checkpoint {step} is unreadable ({reason}); moved it to {target} and trying the "
        "previous one")
    self._manager.reload()

  def close(self) -> None:
    self._manager.close()

  def __enter__(self) -> Checkpointer:
    return self

  def __exit__(self, *exc_info) -> None:
    # Closed on an exception too, so a failed run does not leave orbax's threads behind.
    self.close()


# Train-state fields added after checkpoints had been written (a run's cumulative wall-clock):
# an older checkpoint lacks exactly these and restores with the template's (initial) values.
LATER_FIELDS = ("wall_time",)


def _later_fields_missing(stored, template) -> tuple[str, ...]:
  """The :data:`LATER_FIELDS` of a dataclass ``template`` (holding arrays) that the stored tree
  lacks."""
  if not isinstance(stored, dict) or not dataclasses.is_dataclass(template):
    return ()
  names = {f.name for f in dataclasses.fields(template)}
  return tuple(k for k in LATER_FIELDS
               if k in names and k not in stored and isinstance(getattr(template, k), jax.Array))


def _reason(e: BaseException) -> str:
  return " ".join(str(e).split())[:300]


# Tensorstore reports a file system's errors as a ValueError whose message starts with the
# status code (a denied permission is "PERMISSION_DENIED: Error reading local file ..."), so
# these codes are the OSErrors of tensorstore reads. NOT_FOUND, DATA_LOSS, OUT_OF_RANGE and the
# like describe the file's content and stay damage.
_TRANSIENT_STATUS = ("RESOURCE_EXHAUSTED", "PERMISSION_DENIED", "UNAVAILABLE",
                     "DEADLINE_EXCEEDED")


def _transient_cause(e: BaseException) -> BaseException | None:
  """The error of the moment (I/O, memory) in ``e``'s chain, else None: one of the
  checkpoint's content.

  The chain is followed because orbax wraps errors (an array read fails with
  ``Exception("Encountered error while reading array index ...") from e``); it is the chain
  Python prints: ``__cause__``, else ``__context__`` unless suppressed.
  """
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    message = str(e)
    # A missing file (orbax: "No structure could be identified ...") is the checkpoint's
    # content, not the moment's: it is damage like NOT_FOUND.
    missing = isinstance(e, (FileNotFoundError, NotADirectoryError, IsADirectoryError))
    if ((isinstance(e, (OSError, MemoryError)) and not missing)
        or "out of memory" in message.lower()
        or any(code in message for code in _TRANSIENT_STATUS)):
      return e
    e = e.__cause__ if e.__cause__ is not None else (
        None if e.__suppress_context__ else e.__context__)
  return None


def _leaf_signature(tree) -> list[tuple]:
  return sorted((tuple(x.shape), str(x.dtype)) for x in jax.tree.leaves(tree))


def _structure_difference(stored, abstract) -> str:
  """'' when the stored arrays match the template's (number, shapes and dtypes), else what
  differs."""
  have, want = _leaf_signature(stored), _leaf_signature(abstract)
  if len(have) != len(want):
    return f"the checkpoint holds {len(have)} arrays, this config's state {len(want)}"
  for h, w in zip(have, want):
    if h != w:
      return f"stored array {h[0]} {h[1]} where this config has {w[0]} {w[1]}"
  return ""
