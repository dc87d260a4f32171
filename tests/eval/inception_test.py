"""The FID Inception port: plumbing against torch-fidelity on random weights, weight files
and their sha256 check, and Inception FID of a run end to end (random weights, so the tests
need neither the real file nor torch)."""

import hashlib
import json
import os
import re

import numpy as np
import pytest

from ebm_jax.eval import inception
from ebm_jax.run import evaluate

REFERENCE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "testdata",
                         "inception_reference.npz")


@pytest.fixture(scope="module")
def random_state():
  return inception.random_state_dict(0)


@pytest.fixture(scope="module")
def extractor(random_state):
  return inception.FeatureExtractor(inception.variables_from_state_dict(random_state),
                                    batch_size=4)


def test_features_match_torch_fidelity_on_the_same_random_weights(random_state, extractor):
  # tests/testdata/inception_reference.npz: torch-fidelity's InceptionV3 (independent code) on
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


def sha256(path) -> str:
  return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_the_expected_digest_is_the_one_the_standard_file_is_named_by():
  # torch.hub names a file by the first 8 hex digits of its sha256.
  assert inception.WEIGHTS_NAME.endswith(f"-{inception.WEIGHTS_SHA256[:8]}.pth")
  assert inception.WEIGHTS_URL.endswith("/" + inception.WEIGHTS_NAME)
  assert re.fullmatch("[0-9a-f]{64}", inception.WEIGHTS_SHA256)


def test_weight_files_npz_and_pth(tmp_path, monkeypatch, random_state):
  # An .npz converted from the standard file records its sha256; the record is not an array.
  npz = tmp_path / "w.npz"
  inception.write_npz(str(npz), random_state, inception.WEIGHTS_SHA256)
  with np.load(npz) as f:
    assert str(f[inception.SOURCE_KEY]) == inception.WEIGHTS_SHA256
  state = inception.read_state_dict(str(npz))
  assert sorted(state) == sorted(random_state)
  assert inception.state_checksum(state) == inception.state_checksum(random_state)
  torch = pytest.importorskip("torch")
  pth = tmp_path / "w.pth"
  torch.save({k: torch.from_numpy(v) for k, v in random_state.items()}, pth)
  # This file stands in for the standard one: the check compares digests only.
  monkeypatch.setattr(inception, "WEIGHTS_SHA256", sha256(pth))
  cache = tmp_path / "cache"
  state = inception.read_state_dict(str(pth), str(cache))
  assert inception.state_checksum(state) == inception.state_checksum(random_state)
  # Cached as .npz (later reads need no torch), recording the .pth it came from.
  assert [p.name for p in cache.iterdir()] == [f"inception_{sha256(pth)[:16]}.npz"]
  assert inception.source_digest(str(next(cache.iterdir()))) == sha256(pth)
  inception.convert(str(pth), str(tmp_path / "c.npz"))
  assert inception.source_digest(str(tmp_path / "c.npz")) == sha256(pth)
  assert inception.state_checksum(inception.read_state_dict(str(tmp_path / "c.npz"))) == (
      inception.state_checksum(random_state))


def refusal(path: str, found: str) -> str:
  """The one-line error for a file other than the FID Inception weights, as a full match."""
  return ("^" + re.escape(
      f"{path} is not the FID Inception weights ({found}, expected 6726825d0af5f729...; FID "
      "from other weights is not comparable with papers): download https://github.com/mseitzer/"
      "pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth") + "$")


def test_weights_of_the_right_names_and_shapes_from_another_file_are_refused(tmp_path,
                                                                             random_state):
  # An .npz by the PyTorch names that records no source, or another file as its source (here
  # torchvision's ImageNet Inception-v3, whose names and shapes are the same).
  bare = tmp_path / "bare.npz"
  np.savez(bare, **random_state)
  with pytest.raises(inception.InceptionWeightsError,
                     match=refusal(bare, "an .npz that records no file it was converted from")):
    inception.read_state_dict(str(bare))
  torchvision = "1a9a5a14f40645a370184bd54f4e8e631351e71399112b43ad0294a79da290c8"
  other = tmp_path / "other.npz"
  inception.write_npz(str(other), random_state, torchvision)
  with pytest.raises(inception.InceptionWeightsError,
                     match=refusal(other, "converted from a file of sha256 1a9a5a14f40645a3...")):
    inception.load_extractor(str(other))
  # A .pth is refused by its digest before it is read (so without torch too).
  pth = tmp_path / "other.pth"
  pth.write_bytes(bare.read_bytes())
  with pytest.raises(inception.InceptionWeightsError,
                     match=refusal(pth, f"sha256 {sha256(pth)[:16]}...")):
    inception.read_state_dict(str(pth), str(tmp_path / "cache"))
  with pytest.raises(inception.InceptionWeightsError,
                     match=refusal(pth, f"sha256 {sha256(pth)[:16]}...")):
    inception.convert(str(pth), str(tmp_path / "c.npz"))
  assert not (tmp_path / "cache").exists() and not (tmp_path / "c.npz").exists()
  # The escape hatch for synthetic weights reads them unchecked.
  state = inception.read_state_dict(str(bare), verify=False)
  assert inception.state_checksum(state) == inception.state_checksum(random_state)


def test_a_torch_file_of_the_right_names_and_shapes_is_refused(tmp_path, random_state):
  torch = pytest.importorskip("torch")
  pth = tmp_path / "w.pth"
  torch.save({k: torch.from_numpy(v) for k, v in random_state.items()}, pth)
  with pytest.raises(inception.InceptionWeightsError,
                     match=refusal(pth, f"sha256 {sha256(pth)[:16]}...")):
    inception.read_state_dict(str(pth))


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
  from ebm_jax.run import train
  monkeypatch.setenv("EBM_CACHE_DIR", str(tmp_path / "cache"))
  weights = tmp_path / "w.npz"
  np.savez(weights, **random_state)
  workdir = tmp_path / "run"
  config = tiny_image_config(**{"data.dir": str(tmp_path / "nodata"), "tensorboard": False})
  logs = []
  with tfds.testing.mock_data(num_examples=16):
    train.train_and_evaluate(config, str(workdir))
    # Drawn from the checkpoint by the final chain (the evaluation command's path) ...
    record = evaluate.evaluate_run(str(workdir), inception_weights=str(weights),
                                     inception_num_samples=10, log=logs.append,
                                     verify_inception_weights=False)
    # ... and from a samples file.
    from_file = evaluate.inception_fid(str(workdir), str(weights), samples_path=str(
        workdir / "samples.npz"), batch_size=16, verify_weights=False, log=logs.append)
    # Checked (the default), random weights are refused before anything is scored.
    with pytest.raises(inception.InceptionWeightsError, match="is not the FID Inception weights"):
      evaluate.evaluate_run(str(workdir), inception_weights=str(weights), log=logs.append)
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
  for p in (protocol, from_file["inception_protocol"]):
    assert (f"weights sha256 {sha256(weights)[:16]} (NOT the FID Inception weights: not "
            "comparable with papers); uint8") in p
