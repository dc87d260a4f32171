"""Metric writers: metrics.jsonl, PNGs and TensorBoard events behind one interface, read back
with tensorboard's own event reader."""

import json

import numpy as np
from tensorboard.backend.event_processing import event_accumulator, event_multiplexer

from ebm_jax.run import loop, rundir, writers
from testutil import read_metrics, tiny_toy_config


def events(logdir):
  acc = event_accumulator.EventAccumulator(
      str(logdir), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0,
                                  event_accumulator.TENSORS: 0})
  acc.Reload()
  return acc


def test_one_call_writes_jsonl_png_and_tensorboard_side_by_side(tmp_path):
  writer = writers.create_default_writer(str(tmp_path))
  grid = np.tile(np.arange(16, dtype=np.uint8)[:, None] * 16, (1, 8))       # (16, 8) grey
  writer.write_scalars(3, {"loss": 0.5, "lr": 1e-3, "eval/fid": 7.0})
  writer.write_images(3, {"samples": grid, "rgb": np.zeros((4, 4, 3), np.uint8)})
  writer.write_event(4, {"event": "recovery", "cause": "non-finite loss"})
  writer.close()
  rows = [json.loads(line) for line in (tmp_path / rundir.METRICS).read_text().splitlines()]
  # eval/... is eval.json's: metrics.jsonl keeps only the training row and the event.
  assert rows == [{"step": 3, "loss": 0.5, "lr": 1e-3},
                  {"step": 4, "event": "recovery", "cause": "non-finite loss"}]
  assert (tmp_path / rundir.IMAGES / "samples_000003.png").exists()
  acc = events(tmp_path)
  assert set(acc.Tags()["scalars"]) == {"loss", "lr", "eval/fid"}
  assert [(e.step, e.value) for e in acc.Scalars("eval/fid")] == [(3, 7.0)]
  image = acc.Images("samples")[0]
  assert (image.step, image.width, image.height) == (3, 8, 16)
  text = acc.Tensors("events/text_summary")[0]
  assert text.step == 4 and b"non-finite loss" in text.tensor_proto.string_val[0]


def test_processes_other_than_the_main_one_write_nothing(tmp_path, monkeypatch):
  monkeypatch.setattr(rundir, "is_writer", lambda: False)
  writer = writers.create_default_writer(str(tmp_path))
  writer.write_scalars(1, {"loss": 1.0})
  writer.write_images(1, {"samples": np.zeros((4, 4), np.uint8)})
  writer.close()
  assert list(tmp_path.iterdir()) == []


def test_a_training_run_writes_every_metrics_row_and_grid_as_events_and_resumes_them(tmp_path):
  workdir = tmp_path / "run"
  config = tiny_toy_config(**{"num_train_steps": 4, "checkpoint_every_steps": 2})
  loop.train([loop.Run(config, str(workdir))], log=lambda m: None)
  config.num_train_steps = 6
  loop.train([loop.Run(config, str(workdir))], log=lambda m: None)   # resumes from step 4
  rows = read_metrics(workdir)
  acc = events(workdir)
  for key in ("loss", "d_s_t", "r_t", "lr", "samples_per_sec", "kl_true_kde"):
    logged = [(r["step"], r[key]) for r in rows if key in r]
    assert [(e.step, e.value) for e in acc.Scalars(key)] == [
        (s, np.float32(v)) for s, v in logged], key
  assert [e.step for e in acc.Scalars("loss")] == [2, 4, 6]
  assert [e.step for e in acc.Images("points")] == [2, 4, 6]


def test_a_tensorboard_run_per_model_of_a_group(tmp_path):
  configs = [tiny_toy_config(**{"num_train_steps": 2, "optimizer.learning_rate": lr})
             for lr in (1e-3, 2e-3)]
  loop.train([loop.Run(c, str(tmp_path / f"lr_{c.optimizer.learning_rate:g}")) for c in configs],
             log=lambda m: None)
  mux = event_multiplexer.EventMultiplexer().AddRunsFromDirectory(str(tmp_path))
  mux.Reload()
  assert sorted(mux.Runs()) == ["lr_0.001", "lr_0.002"]
  lrs = {run: mux.Scalars(run, "lr")[-1].value for run in mux.Runs()}
  assert np.allclose([lrs["lr_0.001"], lrs["lr_0.002"]], [1e-3, 2e-3])


def test_tensorboard_off_writes_no_events(tmp_path):
  config = tiny_toy_config(**{"num_train_steps": 2, "tensorboard": False})
  loop.train([loop.Run(config, str(tmp_path))], log=lambda m: None)
  assert read_metrics(tmp_path) and not list(tmp_path.glob("events.out.tfevents.*"))
