"""Checkpoint restore: a config mismatch, a damaged checkpoint and a passing I/O or memory
error are told apart; only a damaged checkpoint is set aside."""

import os

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from ebm_jax.run import checkpointing

# The two checkpoints hold different values, so restoring the wrong step fails the tests.
STATES = {step: {"w": jnp.full((3, 2), float(step)),
                 "bank": {"samples": jnp.arange(16.0).reshape(8, 2) * step}}
          for step in (1, 2)}
STATE = STATES[2]


def saved(tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, STATES[1])
  ckpt.save(2, STATES[2])
  return ckpt


def assert_holds(restored, step):
  np.testing.assert_array_equal(restored["w"], np.full((3, 2), float(step)))
  np.testing.assert_array_equal(restored["bank"]["samples"],
                                np.arange(16.0).reshape(8, 2) * step)


def wrapped(outer, cause):
  """``outer`` raised ``from cause``, as orbax wraps a failed array read."""
  outer.__cause__ = cause
  return outer


def test_the_latest_checkpoint_or_the_one_asked_for_is_restored(tmp_path):
  with saved(tmp_path) as ckpt:
    assert_holds(ckpt.restore(STATE), 2)
    assert_holds(ckpt.restore(STATE, step=1), 1)


def test_a_template_of_other_shapes_is_a_config_error_and_nothing_moves(tmp_path):
  ckpt = saved(tmp_path)
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"checkpoint 2 .* does not match this config's training state "
                           r"\(stored array \(3, 2\) float32 where this config has \(3, 4\)"):
    ckpt.restore({"w": jnp.ones((3, 4)), "bank": {"samples": jnp.zeros((8, 2))}})
  assert ckpt.all_steps() == [1, 2] and not (tmp_path / "checkpoints_unreadable").exists()
  ckpt.close()


@pytest.mark.parametrize("error, named", [
    (OSError("disk went away"), r"OSError: disk went away"),
    (MemoryError("6 GB bank"), r"MemoryError: 6 GB bank"),
    (wrapped(Exception("Encountered error while reading array index"), OSError("stale handle")),
     r"OSError: stale handle"),
])
def test_io_and_memory_errors_leave_every_checkpoint_in_place(tmp_path, monkeypatch, error,
                                                              named):
  ckpt = saved(tmp_path)

  def failing_restore(*args, **kwargs):
    raise error

  monkeypatch.setattr(ocp.CheckpointManager, "restore", failing_restore)
  with pytest.raises(checkpointing.CheckpointError,
                     match=rf"checkpoint 2 .* could not be read now \({named}\); it is left in "
                           r"place"):
    ckpt.restore(STATE, log=lambda m: None)
  assert ckpt.all_steps() == [1, 2] and not (tmp_path / "checkpoints_unreadable").exists()
  ckpt.close()


@pytest.mark.parametrize("error, named", [
    (PermissionError(13, "Permission denied"), r"PermissionError: \[Errno 13\] Permission denied"),
    (OSError("Stale file handle"), r"OSError: Stale file handle"),
    # How tensorstore reports a denied permission: a ValueError carrying the status code.
    (ValueError("PERMISSION_DENIED: Error reading local file _sharding"),
     r"ValueError: PERMISSION_DENIED: Error reading local file _sharding"),
])
def test_io_errors_reading_the_metadata_leave_every_checkpoint_in_place(tmp_path, monkeypatch,
                                                                        error, named):
  ckpt = saved(tmp_path)

  def failing_metadata(self, step):
    raise error

  monkeypatch.setattr(ocp.CheckpointManager, "item_metadata", failing_metadata)
  messages = []
  with pytest.raises(checkpointing.CheckpointError,
                     match=rf"^checkpoint 2 in \S+ could not be read now \({named}\); it is left "
                           r"in place: free memory or fix the file system, then rerun$"):
    ckpt.restore(STATE, log=messages.append)
  assert ckpt.all_steps() == [1, 2] and not (tmp_path / "checkpoints_unreadable").exists()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"] and messages == []
  ckpt.close()


def test_unreadable_metadata_is_damage_set_aside_and_the_one_before_restored(tmp_path,
                                                                            monkeypatch):
  ckpt = saved(tmp_path)
  read_metadata = ocp.CheckpointManager.item_metadata

  def metadata_2_damaged(self, step):
    if step == 2:
      raise ValueError("Expecting value: line 1 column 1 (char 0)")
    return read_metadata(self, step)

  monkeypatch.setattr(ocp.CheckpointManager, "item_metadata", metadata_2_damaged)
  messages = []
  assert_holds(ckpt.restore(STATE, log=messages.append), 1)
  assert ckpt.all_steps() == [1] and (tmp_path / "checkpoints_unreadable" / "2").is_dir()
  assert messages == [
      "checkpoint 2 is unreadable (Expecting value: line 1 column 1 (char 0)); moved it to "
      f"{tmp_path / 'checkpoints_unreadable' / '2'} and trying the previous one"]
  ckpt.close()


def test_a_damaged_checkpoint_is_set_aside_and_the_one_before_restored(tmp_path):
  ckpt = saved(tmp_path)
  for root, _, files in os.walk(tmp_path / "checkpoints" / "2"):
    for name in files:
      if name not in ("_CHECKPOINT_METADATA", "commit_success.txt"):
        (tmp_path / root / name).write_bytes(b"garbage")
  messages = []
  assert_holds(ckpt.restore(STATE, log=messages.append), 1)
  assert ckpt.all_steps() == [1]
  assert (tmp_path / "checkpoints_unreadable" / "2").is_dir()
  assert messages[0].startswith("checkpoint 2 is unreadable (") and len(messages) == 1
  ckpt.close()


def test_a_checkpointer_used_with_with_is_closed_on_an_exception(tmp_path, monkeypatch):
  closed, close = [], ocp.CheckpointManager.close
  monkeypatch.setattr(ocp.CheckpointManager, "close",
                      lambda self: (closed.append(self), close(self)))
  with pytest.raises(RuntimeError, match="a step failed"):
    with saved(tmp_path) as ckpt:
      raise RuntimeError("a step failed")
  assert closed == [ckpt._manager]


def test_a_checkpoint_from_before_the_wall_clock_field_restores_with_the_initial_clock(tmp_path):
  import flax
  import jax

  @flax.struct.dataclass
  class Before:                # a train state as checkpointed before wall_time existed
    step: jax.Array
    params: dict

  @flax.struct.dataclass
  class Now:
    step: jax.Array
    params: dict
    wall_time: jax.Array

  with checkpointing.Checkpointer(str(tmp_path)) as ckpt:
    ckpt.save(5, Before(jnp.asarray(5, jnp.int32), {"w": jnp.full((3,), 7.0)}))
    template = Now(jnp.asarray(0, jnp.int32), {"w": jnp.zeros(3)}, jnp.float32(0.0))
    restored = ckpt.restore(template)
  assert isinstance(restored, Now) and int(restored.step) == 5
  np.testing.assert_array_equal(restored.params["w"], [7.0, 7.0, 7.0])
  assert float(restored.wall_time) == 0.0


def test_the_same_arrays_in_another_tree_are_a_config_mismatch_and_nothing_moves(tmp_path):
  # An optimizer chain in another order holds the same arrays in other places of the tree.
  with saved(tmp_path) as ckpt:
    other = {"w": STATE["w"], "bank": {"positions": STATE["bank"]["samples"]}}
    with pytest.raises(checkpointing.CheckpointError,
                       match=r"^checkpoint 2 in .* does not match this config's training state "
                             r"\(its tree differs"):
      ckpt.restore(other, log=lambda m: None)
    assert ckpt.all_steps() == [1, 2]
  assert not os.path.exists(tmp_path / "checkpoints_unreadable")


def test_a_missing_file_is_damage_not_a_passing_error(tmp_path):
  ckpt = saved(tmp_path)
  ckpt._manager.item_metadata = _raising_for(ckpt, 2, FileNotFoundError(
      "No structure could be identified for the checkpoint"))
  messages = []
  assert_holds(ckpt.restore(STATE, log=messages.append), 1)
  assert os.path.isdir(tmp_path / "checkpoints_unreadable" / "2")
  ckpt.close()


def _raising_for(ckpt, step, error):
  real = ckpt._manager.item_metadata

  def item_metadata(s):
    if s == step:
      raise error
    return real(s)

  return item_metadata


def test_checkpoints_after_a_resume_step_are_set_aside_not_deleted(tmp_path):
  with saved(tmp_path) as ckpt:
    messages = []
    assert ckpt.set_aside_after(1, messages.append) == [2]
    assert ckpt.all_steps() == [1]
    assert_holds(ckpt.restore(STATE), 1)
  assert os.path.isdir(tmp_path / "checkpoints_set_aside" / "2")
  assert messages == [f"checkpoints [2] are after step 1, where the run resumes with its group; "
                      f"moved them to {tmp_path / 'checkpoints_set_aside'}"]
