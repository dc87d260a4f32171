"""The guard: every cell of a heterogeneous vmapped group is measured as it would be alone.

For each per-model value (every :class:`~ebm_jax.hparams.HParams` field), a group of two cells
that differ in it must give each cell the metrics rows, landscape KLs (``kl_true_model``
included), final samples, sampling protocol and long-run check (toy GMM), and the classifier
scores of eval.json (mock MNIST), that a single run of its setting gives. The runs are a few
updates long: a vmapped step sums in another float order than the single step, and over
hundreds of updates that alone moves a toy KL by ~10 %, while a cell measured with its
neighbour's setting is off by up to 26x (the toy study's kl_true_model). What the cells are
compared on is within 1e-3 here.
"""

import json
import os

import numpy as np
import pytest

from ebm_jax import hparams
from ebm_jax.run import loop, reporting
from testutil import tiny_toy_config

# Every per-model value with the other cell's setting of it; the base sets lr_decay < 1 so
# lr_min matters, a replay buffer so reinit_prob and start_noise_std do.
OTHER_VALUE = {
    "seed": 1,
    "optimizer.learning_rate": 3e-3,
    "optimizer.lr_min": 6e-4,
    "sampler.step_size": 0.02,
    "sampler.noise_std": 0.3,
    "loss.scale": 3.0,
    "loss.l2_energy": 0.5,
    "init.scale": 2.0,
    "init.reinit_prob": 0.5,
    "init.start_noise_std": 0.05,
}
TIMING = ("wall_time", "samples_per_sec")


def base_config(**overrides):
  return tiny_toy_config(**{
      "init.name": "replay", "optimizer.lr_decay": 0.5, "optimizer.lr_min": 2e-4,
      "num_train_steps": 4, "log_every_steps": 2, "checkpoint_every_steps": 4,
      "diagnostics.landscape_every_steps": 2, "longrun.every_steps": 2,
      "longrun.num_steps": 10, "longrun.num_chains": 16, "longrun.at_end": True,
      "tensorboard": False, **overrides})


def outputs(workdir: str) -> dict:
  """What a run measured: its metrics rows (timing aside), samples, protocol and long-run
  check."""
  rows = [{k: v for k, v in r.items() if k not in TIMING}
          for r in reporting.read_metrics(os.path.join(workdir, "metrics.jsonl"))[0]]
  with np.load(os.path.join(workdir, "samples.npz")) as f:
    samples = f["x"]
  log = open(os.path.join(workdir, "log.txt")).read().splitlines()
  protocol = [line.split(": ", 1)[1] for line in log if " samples to " in line]
  with open(os.path.join(workdir, "longrun.json")) as f:
    longrun = json.load(f)
  return {"rows": rows, "samples": samples, "protocol": protocol, "longrun": longrun}


def assert_same(alone: dict, member: dict) -> None:
  assert len(alone["rows"]) == len(member["rows"]) == 2
  for a, m in zip(alone["rows"], member["rows"]):
    assert a.keys() == m.keys()
    assert {"kl_true_model", "kl_smoothed", "kl_smoothed_floor", "kl_true_kde"} <= a.keys()
    for key in a:
      np.testing.assert_allclose(m[key], a[key], rtol=1e-3, atol=1e-6, err_msg=key)
  np.testing.assert_allclose(member["samples"], alone["samples"], rtol=1e-3, atol=1e-5)
  assert member["protocol"] == alone["protocol"] and len(alone["protocol"]) == 1
  la, lm = alone["longrun"], member["longrun"]
  assert lm["verdict"] == la["verdict"]
  for name in ("from_data", "from_noise"):
    np.testing.assert_allclose(lm[name]["kl_smoothed"], la[name]["kl_smoothed"], rtol=1e-3)
  np.testing.assert_allclose(lm["short_run"], la["short_run"], rtol=1e-3)


def differs(a: dict, b: dict) -> bool:
  rows = any(not np.isclose(ra[k], rb[k], rtol=1e-3, atol=1e-6)
             for ra, rb in zip(a["rows"], b["rows"]) for k in ra)
  return rows or not np.allclose(a["samples"], b["samples"], rtol=1e-3, atol=1e-5)


def train(configs, workdir):
  runs = [loop.Run(c, os.path.join(workdir, f"m{i}")) for i, c in enumerate(configs)]
  loop.train(runs, log=lambda m: None)
  return [outputs(r.workdir) for r in runs]


@pytest.fixture(scope="module")
def alone_base(tmp_path_factory):
  return train([base_config()], str(tmp_path_factory.mktemp("base")))[0]


def test_the_table_covers_every_hparams_field():
  assert set(OTHER_VALUE) == set(hparams.VMAPPABLE_KEYS)


@pytest.mark.parametrize("key", hparams.VMAPPABLE_KEYS)
def test_each_cell_of_a_group_equals_its_setting_trained_alone(key, alone_base, tmp_path):
  other = base_config(**{key: OTHER_VALUE[key]})
  member_base, member_other = train([base_config(), other], str(tmp_path / "group"))
  (alone_other,) = train([other], str(tmp_path / "alone"))
  # The setting matters: the two settings' runs differ (else the guard could not fail). Adam
  # is blind to loss.scale, so for it the difference is in the loss alone.
  assert differs(alone_other, alone_base)
  assert_same(alone_base, member_base)
  assert_same(alone_other, member_other)


def image_config(cache, **overrides):
  from testutil import tiny_image_config
  return tiny_image_config(**{
      "data.dir": os.path.join(cache, "nodata"), "init.name": "replay",
      "optimizer.lr_decay": 0.5, "optimizer.lr_min": 2e-4, "num_train_steps": 2,
      "log_every_steps": 2, "eval.at_end": True, "tensorboard": False, **overrides})


def image_train(configs, workdir, cache):
  """Trains on mock MNIST; returns each run's eval.json scores and samples. The evaluation
  cache (the classifier, trained once) is ``cache``'s."""
  from unittest import mock

  import tensorflow_datasets as tfds
  runs = [loop.Run(c, os.path.join(workdir, f"m{i}")) for i, c in enumerate(configs)]
  with (tfds.testing.mock_data(num_examples=32),
        mock.patch.dict(os.environ, {"EBM_CACHE_DIR": os.path.join(cache, "cache")})):
    loop.train(runs, log=lambda m: None)
  out = []
  for run in runs:
    record = json.load(open(os.path.join(run.workdir, "eval.json")))[-1]
    with np.load(os.path.join(run.workdir, "samples.npz")) as f:
      out.append({"scores": {k: v for k, v in record.items() if isinstance(v, float)},
                  "samples": f["x"]})
  return out


@pytest.fixture(scope="module")
def image_cache(tmp_path_factory):
  """One evaluation cache (the classifier trained once) and the base setting's run alone."""
  cache = str(tmp_path_factory.mktemp("image"))
  return cache, image_train([image_config(cache)], os.path.join(cache, "base"), cache)[0]


@pytest.mark.parametrize("key", hparams.VMAPPABLE_KEYS)
def test_each_image_cell_is_evaluated_in_its_group_as_alone(key, image_cache, tmp_path):
  # The classifier scores of eval.json (FID, KID, IS, entropy, coverage, confident fraction).
  cache, alone_base = image_cache
  other = image_config(cache, **{key: OTHER_VALUE[key]})
  member_base, member_other = image_train([image_config(cache), other], str(tmp_path / "g"),
                                          cache)
  (alone_other,) = image_train([other], str(tmp_path / "alone"), cache)
  assert {"fid", "kid", "confident_fraction"} <= alone_base["scores"].keys()
  for alone, member in ((alone_base, member_base), (alone_other, member_other)):
    assert alone["scores"].keys() == member["scores"].keys()
    for name, value in alone["scores"].items():
      np.testing.assert_allclose(member["scores"][name], value, rtol=1e-3, atol=1e-6,
                                 err_msg=name)
    np.testing.assert_allclose(member["samples"], alone["samples"], rtol=1e-3, atol=1e-5)
