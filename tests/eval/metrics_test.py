"""Sample-quality metrics: closed forms, and separation of real data, noise and one class."""

import json

import numpy as np
import pytest

from ebm_jax import data
from ebm_jax.eval import metrics as evaluation
from ebm_jax.run import evaluate


def test_frechet_distance_of_gaussians_matches_the_closed_form():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(20000, 3))
  b = rng.normal(size=(20000, 3)) * 2.0 + 1.0
  # |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^1/2) = 3 + (3 + 12 - 2 * 6) = 6
  np.testing.assert_allclose(evaluation.frechet_distance(a, b), 6.0, rtol=0.05)
  assert evaluation.frechet_distance(a, a) < 1e-6


def test_frechet_distance_of_non_commuting_covariances_matches_the_2d_closed_form():
  # For 2x2 S1 S2 (eigenvalues l1, l2 > 0): tr (S1 S2)^1/2 = sqrt(l1) + sqrt(l2)
  # = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)).
  s1 = np.array([[2.0, 0.3], [0.3, 0.5]])
  rot = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
  s2 = rot @ np.diag([3.0, 0.2]) @ rot.T
  mu1, mu2 = np.array([0.0, 1.0]), np.array([1.5, -0.5])
  tr_sqrt = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
  expected = 1.5 ** 2 + 1.5 ** 2 + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
  np.testing.assert_allclose(evaluation.frechet_distance_from_stats(mu1, s1, mu2, s2), expected,
                             rtol=1e-10)
  assert abs(evaluation.frechet_distance_from_stats(mu1, s1, mu1, s1)) < 1e-10


def test_kid_is_zero_for_one_distribution_and_positive_for_two():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
  assert abs(evaluation.kernel_distance(a, b)) < 0.02
  assert evaluation.kernel_distance(a, b + 1.0) > 0.5


def synthetic_digits(n, seed):
  """Ten easily told classes: class k lights a 6x6 block at one of ten positions."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 10
  images = rng.integers(0, 40, (n, 28, 28, 1)).astype(np.uint8)
  for i, k in enumerate(labels):
    r, c = divmod(int(k), 5)
    images[i, 4 + 12 * r:10 + 12 * r, 1 + 5 * c:7 + 5 * c] = 255
  return data.ImageData(images, labels.astype(np.int32))


@pytest.fixture(scope="module")
def feature_model():
  train, test = synthetic_digits(2000, 0), synthetic_digits(1000, 1)
  params, accuracy = evaluation.train_classifier(train, test, epochs=1, log=lambda m: None)
  model = evaluation.FeatureModel(evaluation.Classifier(), params, accuracy, "synthetic", 28)
  return model, test


def test_metrics_separate_real_data_from_noise_and_one_class(feature_model):
  model, test = feature_model
  assert model.test_accuracy > 0.95
  real = data.to_float(synthetic_digits(1000, 2).images)
  noise = np.random.default_rng(3).uniform(-1, 1, real.shape).astype(np.float32)
  one_class = np.asarray(real)[np.arange(1000) % 10 == 3]
  scores = {name: evaluation.score_samples(model, test, np.asarray(x))
            for name, x in (("real", real), ("noise", noise), ("one_class", one_class))}
  assert scores["real"]["class_coverage"] == 10
  assert scores["real"]["class_entropy"] > 0.95 * np.log(10)
  assert scores["real"]["inception_score"] > 8
  assert scores["one_class"]["class_coverage"] == 1
  assert scores["one_class"]["class_entropy"] < 0.1
  assert scores["one_class"]["inception_score"] < 1.5
  assert scores["real"]["fid"] < 0.1 * min(scores["noise"]["fid"], scores["one_class"]["fid"])
  assert scores["real"]["kid"] < 0.1 * min(scores["noise"]["kid"], scores["one_class"]["kid"])
  assert scores["real"]["confident_fraction"] > scores["noise"]["confident_fraction"]


def test_bad_samples_are_one_line_errors(feature_model):
  model, test = feature_model
  with pytest.raises(ValueError, match="classifier expects"):
    evaluation.score_samples(model, test, np.zeros((4, 32, 32, 1), np.float32))
  with pytest.raises(ValueError, match="NaN or inf"):
    evaluation.score_samples(model, test, np.full((4, 28, 28, 1), np.nan, np.float32))


def test_evaluate_run_appends_to_eval_json_and_caches_the_classifier(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds
  monkeypatch.setenv("EBM_CACHE_DIR", str(tmp_path / "cache"))
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text(json.dumps(
      {"data": {"name": "mnist", "image_size": 28, "dir": str(tmp_path / "nodata")}}))
  np.savez(workdir / "samples.npz", x=np.zeros((20, 28, 28, 1), np.float32))
  noise = np.random.default_rng(0).uniform(-1, 1, (20, 28, 28, 1)).astype(np.float32)
  np.savez(workdir / "coop.npz", x=np.zeros((20, 28, 28, 1), np.float32), proposals=noise)
  with tfds.testing.mock_data(num_examples=64):
    first = evaluate.evaluate_run(str(workdir), log=lambda m: None)
    second = evaluate.evaluate_run(str(workdir), log=lambda m: None)
    coop = evaluate.evaluate_run(str(workdir), str(workdir / "coop.npz"), log=lambda m: None)
  assert len(list((tmp_path / "cache").iterdir())) == 1
  records = json.loads((workdir / "eval.json").read_text())
  assert len(records) == 3 and records[0]["fid"] == first["fid"] == second["fid"]
  # A CoopNets file's proposals are scored apart from its samples, in the same record.
  assert "proposals" not in first and coop["fid"] == first["fid"]
  assert records[2]["proposals"]["fid"] == coop["proposals"]["fid"] != coop["fid"]
  assert evaluate.export_png(str(workdir / "samples.npz"), str(tmp_path / "png")) == 20


def test_repeated_scoring_compiles_the_classifier_once(feature_model):
  model, test = feature_model
  x = np.asarray(data.to_float(synthetic_digits(1000, 4).images))
  evaluation.score_samples(model, test, x)
  compiled = evaluation._apply_fn(model.module)._cache_size()
  for seed in (5, 6):          # later evaluations of a run: same shapes, no new program
    evaluation.score_samples(model, test, x[np.random.default_rng(seed).permutation(1000)])
  assert evaluation._apply_fn(model.module)._cache_size() == compiled


def test_a_single_class_run_is_scored_against_its_own_class(feature_model):
  model, test = feature_model
  threes = np.asarray(data.to_float(synthetic_digits(1000, 7).images))[np.arange(1000) % 10 == 3]
  against_all = evaluation.score_samples(model, test, threes)["fid"]
  reference = evaluation.reference_images(test, (3,))
  assert set(np.unique(reference.labels)) == {3}
  assert evaluation.score_samples(model, reference, threes)["fid"] < 0.1 * against_all
  assert evaluation.reference_images(test, ()) is test
