"""Checkpoint restore: a config mismatch, a damaged checkpoint and a passing I/O or memory
error are told apart; only a damaged checkpoint is set aside."""

import os

import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest

from ebm_jax import checkpointing

STATE = {"w": jnp.ones((3, 2)), "bank": {"samples": jnp.zeros((8, 2))}}


def saved(tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, STATE)
  ckpt.save(2, STATE)
  return ckpt


def test_a_template_of_other_shapes_is_a_config_error_and_nothing_moves(tmp_path):
  ckpt = saved(tmp_path)
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"checkpoint 2 .* does not match this config's training state "
                           r"\(stored array \(3, 2\) float32 where this config has \(3, 4\)"):
    ckpt.restore({"w": jnp.ones((3, 4)), "bank": {"samples": jnp.zeros((8, 2))}})
  assert ckpt.all_steps() == [1, 2] and not (tmp_path / "checkpoints_unreadable").exists()
  ckpt.close()


@pytest.mark.parametrize("error", [OSError("disk went away"), MemoryError("6 GB bank")])
def test_io_and_memory_errors_leave_every_checkpoint_in_place(tmp_path, monkeypatch, error):
  ckpt = saved(tmp_path)

  def failing_restore(*args, **kwargs):
    raise error

  monkeypatch.setattr(ocp.CheckpointManager, "restore", failing_restore)
  with pytest.raises(checkpointing.CheckpointError, match=r"could not be read now .* it is "
                                                          r"left in place"):
    ckpt.restore(STATE, log=lambda m: None)
  assert ckpt.all_steps() == [1, 2] and not (tmp_path / "checkpoints_unreadable").exists()
  ckpt.close()


def test_a_damaged_checkpoint_is_set_aside_and_the_one_before_restored(tmp_path):
  ckpt = saved(tmp_path)
  for root, _, files in os.walk(tmp_path / "checkpoints" / "2"):
    for name in files:
      if name not in ("_CHECKPOINT_METADATA", "commit_success.txt"):
        (tmp_path / root / name).write_bytes(b"garbage")
  messages = []
  restored = ckpt.restore(STATE, log=messages.append)
  assert restored is not None and ckpt.all_steps() == [1]
  assert (tmp_path / "checkpoints_unreadable" / "2").is_dir()
  assert "checkpoint 2 is unreadable" in messages[0]
  ckpt.close()
