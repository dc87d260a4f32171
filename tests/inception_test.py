"""The FID Inception port: plumbing against torch-fidelity on random weights, weight files,
and Inception FID of a run end to end (random weights; the real file cannot be fetched here)."""

import json
import os

import numpy as np
import pytest

from ebm_jax import evaluation, inception

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "inception_reference.npz")


@pytest.fixture(scope="module")
def random_state():
  return inception.random_state_dict(0)


@pytest.fixture(scope="module")
def extractor(random_state):
  return inception.FeatureExtractor(inception.variables_from_state_dict(random_state),
                                    batch_size=4)


def test_features_match_torch_fidelity_on_the_same_random_weights(random_state, extractor):
  # tests/data/inception_reference.npz: torch-fidelity's InceptionV3 (independent code) on
  # these weights and images, written by benchmarks/inception_reference.py.
  with np.load(REFERENCE) as ref:
    assert inception.state_checksum(random_state) == str(ref["state_checksum"]), (
        "numpy drew different random weights than when the reference was written: rerun "
        "benchmarks/inception_reference.py")
    for kind in ("gray", "rgb"):          # 28x28x1 (MNIST-like) and 32x32x3 (CIFAR-like)
      expected = ref[f"features_{kind}"]
      got = extractor(ref[kind])
      assert got.shape == (len(ref[kind]), inception.NUM_FEATURES)
      np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
      # The images' features differ from each other far more than the port from the reference.
      assert np.abs(expected - expected.mean(0)).max() > 100 * 1e-4


def test_tf1_resize_reads_positions_i_times_in_over_out():
  m = inception._tf1_bilinear_matrix(2, 4)     # sources 0, 0.5, 1, 1.5 (clamped at the edge)
  np.testing.assert_allclose(m, [[1, 0], [0.5, 0.5], [0, 1], [0, 1]])
  np.testing.assert_allclose(inception._tf1_bilinear_matrix(28, 299).sum(1), 1.0, rtol=1e-6)


def test_weight_files_npz_and_pth(tmp_path, random_state):
  npz = tmp_path / "w.npz"
  np.savez(npz, **random_state)
  assert inception.state_checksum(inception.read_state_dict(str(npz))) == (
      inception.state_checksum(random_state))
  torch = pytest.importorskip("torch")
  pth = tmp_path / "w.pth"
  torch.save({k: torch.from_numpy(v) for k, v in random_state.items()}, pth)
  cache = tmp_path / "cache"
  state = inception.read_state_dict(str(pth), str(cache))
  assert inception.state_checksum(state) == inception.state_checksum(random_state)
  assert len(list(cache.iterdir())) == 1           # cached as .npz: later reads need no torch
  inception.main(["convert", f"--inception_weights={pth}", f"--out={tmp_path / 'c.npz'}"])
  assert inception.state_checksum(inception.read_state_dict(str(tmp_path / "c.npz"))) == (
      inception.state_checksum(random_state))


def test_missing_and_wrong_weights_are_one_line_errors(tmp_path, random_state):
  with pytest.raises(inception.InceptionWeightsError, match="not found: download https://"):
    inception.read_state_dict(str(tmp_path / "absent.pth"))
  bad = dict(random_state)
  bad["Mixed_5b.branch1x1.conv.weight"] = np.zeros((3, 3), np.float32)
  with pytest.raises(inception.InceptionWeightsError, match="Mixed_5b.branch1x1.conv.weight has"):
    inception.variables_from_state_dict(bad)
  del bad["Mixed_5b.branch1x1.conv.weight"]
  with pytest.raises(inception.InceptionWeightsError, match="no Mixed_5b.branch1x1.conv.weight"):
    inception.variables_from_state_dict(bad)
  (tmp_path / "junk.npz").write_bytes(b"not a zip")
  with pytest.raises(inception.InceptionWeightsError, match="not a readable .npz"):
    inception.read_state_dict(str(tmp_path / "junk.npz"))


def test_inception_fid_of_a_run_with_its_protocol(tmp_path, monkeypatch, random_state):
  import tensorflow_datasets as tfds
  from testutil import tiny_image_config
  from ebm_jax import train
  monkeypatch.setenv("EBM_CACHE_DIR", str(tmp_path / "cache"))
  weights = tmp_path / "w.npz"
  np.savez(weights, **random_state)
  workdir = tmp_path / "run"
  config = tiny_image_config(**{"data.dir": str(tmp_path / "nodata"), "tensorboard": False})
  logs = []
  with tfds.testing.mock_data(num_examples=16):
    train.train_and_evaluate(config, str(workdir))
    # Drawn from the checkpoint by the final chain (the evaluation command's path) ...
    record = evaluation.evaluate_run(str(workdir), inception_weights=str(weights),
                                     inception_num_samples=10, log=logs.append)
    # ... and from a samples file.
    from_file = evaluation.inception_fid(str(workdir), str(weights), samples_path=str(
        workdir / "samples.npz"), batch_size=16, log=logs.append)
  assert np.isfinite(record["inception_fid"]) and record["inception_fid"] > 0
  assert record["inception_num_samples"] == 10 and from_file["inception_num_samples"] == 20
  saved = json.loads((workdir / "eval.json").read_text())[-1]
  assert saved["inception_fid"] == record["inception_fid"]
  # The training split's statistics are computed once, then read from the cache.
  assert sum("computing the Inception statistics" in line for line in logs) == 1
  assert len(list((tmp_path / "cache" / "inception").iterdir())) == 1
  protocol = record["inception_protocol"]
  assert "K = 2 langevin steps" in protocol and "checkpoint step 6" in protocol, protocol
  assert "NOT the standard protocol: 10 samples" in protocol
  assert "16 mnist training images" in protocol and "TF1 bilinear resize to 299" in protocol
  assert "20 samples from" in from_file["inception_protocol"]
