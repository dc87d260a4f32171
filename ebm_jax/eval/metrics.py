"""Sample-quality metrics in the feature space of a small classifier trained here.

For each labelled dataset (MNIST, Fashion-MNIST, CIFAR-10) and image size, a small ConvNet is
trained once on the training split (a minute or two on a CPU) and cached under
``~/.cache/ebm_jax/classifiers`` (``$EBM_CACHE_DIR``), keyed by dataset, image size and a
checksum of the training data. From its softmax and its penultimate features:

* ``confident_fraction``: share of samples classified with probability >= 0.9;
* ``class_entropy``: entropy (nats) of the histogram of predicted classes (log 10 = 2.303 is
  perfectly even coverage; mode collapse lowers it), and ``class_coverage``: classes predicted
  for at least 1% of the samples; ``min_class_fraction``: the rarest predicted class's share;
* ``inception_score``: ``exp(E_x KL(p(y|x) || p(y)))`` with this classifier (at most 10);
* ``fid`` and ``kid``: Frechet distance and kernel inception distance (cubic polynomial kernel,
  unbiased, averaged over subsets) between the samples' and the test split's features.

These are **not** comparable with published Inception-v3 FID / IS numbers: the feature extractor
is different and much smaller. They compare runs of this project with each other, calibrated in
docs/metrics.md against real test images, noise and single-class sets. For the FID papers report,
``--inception_weights=PATH`` adds Inception FID (``ebm_jax.run.evaluate.inception_fid``,
``ebm_jax/eval/inception.py``): 50,000 samples drawn from the checkpoint by the run's final
chain against the cached statistics of the whole training split, with the protocol recorded
beside the number.

The run-directory commands (score a run, Inception FID from its checkpoint, PNG export) are in
:mod:`ebm_jax.run.evaluate`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from typing import NamedTuple

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ebm_jax import data as data_lib
from ebm_jax.eval import inception
from ebm_jax.core import models
from ebm_jax import files
from ebm_jax import _moved

CLASSIFIER_VERSION = 1        # bump when the architecture or training recipe changes


class Classifier(nn.Module):
  """conv32-pool-conv64-pool-dense128 (the features) -> dense(num_classes)."""

  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(models.Conv2D, impl=models.resolve_conv_impl("auto"))
    x = nn.relu(conv(32, 3, 1, 1)(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.relu(conv(64, 3, 1, 1)(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    features = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.num_classes)(features), features


class FeatureModel(NamedTuple):
  module: Classifier
  params: dict
  test_accuracy: float
  dataset: str
  image_size: int


def cache_dir() -> str:
  return os.environ.get("EBM_CACHE_DIR") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ebm_jax",
      "classifiers")


def _digest(*arrays) -> str:
  h = hashlib.sha256()
  for a in arrays:
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()[:12]


def train_classifier(train: data_lib.ImageData, test: data_lib.ImageData, *, epochs: int = 2,
                     batch_size: int = 128, seed: int = 0, log=print) -> tuple[dict, float]:
  """Trains the classifier with Adam; returns its params and test accuracy."""
  module = Classifier()
  x_train = data_lib.to_float(jnp.asarray(train.images))
  y_train = jnp.asarray(train.labels)
  params = module.init(jax.random.PRNGKey(seed), x_train[:1])["params"]
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, idx):
    def loss_fn(p):
      logits, _ = module.apply({"params": p}, x_train[idx])
      return optax.softmax_cross_entropy_with_integer_labels(logits, y_train[idx]).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  rng = np.random.default_rng(seed)
  batch_size = min(batch_size, len(y_train))
  n = len(y_train) - len(y_train) % batch_size
  for epoch in range(epochs):
    order = rng.permutation(len(y_train))[:n].reshape(-1, batch_size)
    for idx in order:
      params, opt_state, loss = step(params, opt_state, jnp.asarray(idx))
    log(f"classifier epoch {epoch + 1}/{epochs}: loss {float(loss):.4f}")
  probs, _ = _predict(module, params, test.images)
  accuracy = float(np.mean(np.argmax(probs, 1) == test.labels))
  log(f"classifier test accuracy {accuracy:.4f}")
  return params, accuracy


@functools.lru_cache(maxsize=None)
def _apply_fn(module):
  """The classifier's jitted forward, built once per module (modules are hashable)."""
  return jax.jit(lambda params, x: module.apply({"params": params}, x))


def _predict(module, params, images_or_x, batch_size: int = 500):
  """(softmax probabilities, features) of uint8 images or float arrays in [-1, 1]."""
  apply = functools.partial(_apply_fn(module), params)
  probs, feats = [], []
  for i in range(0, len(images_or_x), batch_size):
    chunk = images_or_x[i:i + batch_size]
    x = (data_lib.to_float(jnp.asarray(chunk)) if chunk.dtype == np.uint8
         else jnp.clip(jnp.asarray(chunk, jnp.float32), -1, 1))
    logits, f = apply(x)
    probs.append(np.asarray(jax.nn.softmax(logits)))
    feats.append(np.asarray(f, np.float64))
  return np.concatenate(probs), np.concatenate(feats)


def load_feature_model(dataset: str, image_size: int, *, data_dir: str = "",
                       log=print) -> tuple[FeatureModel, data_lib.ImageData]:
  """The cached classifier for ``dataset`` (trained and cached on first use) and the test split."""
  train = data_lib.load_images(dataset, "train", data_dir=data_dir, image_size=image_size,
                               log=log)
  test = data_lib.load_images(dataset, "test", data_dir=data_dir, image_size=image_size,
                              log=log)
  key = f"{dataset}_{image_size}_v{CLASSIFIER_VERSION}_{_digest(train.images, train.labels)}"
  path = os.path.join(cache_dir(), key + ".msgpack")
  module = Classifier()
  template = module.init(jax.random.PRNGKey(0), jnp.zeros((1, *train.images.shape[1:])))
  if os.path.exists(path):
    with open(path, "rb") as f:
      stored = flax.serialization.msgpack_restore(f.read())
    params = flax.serialization.from_state_dict(template["params"], stored["params"])
    accuracy = float(stored["test_accuracy"])
  else:
    log(f"training the {dataset} {image_size}x{image_size} evaluation classifier (cached in "
        f"{path}) ...")
    params, accuracy = train_classifier(train, test, log=log)
    files.write_bytes(path, flax.serialization.msgpack_serialize(
        {"params": flax.serialization.to_state_dict(params), "test_accuracy": accuracy}))
  return FeatureModel(module, params, accuracy, dataset, image_size), test


# ----------------------------------------------------------------------------- metrics


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2) between two Gaussians; the trace of the
  square root from the eigenvalues of the symmetric PSD S1^1/2 S2 S1^1/2 (S1 S2's spectrum)."""
  w, v = np.linalg.eigh(sigma1)
  sqrt_1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  eig = np.linalg.eigvalsh(sqrt_1 @ sigma2 @ sqrt_1)
  tr_covmean = np.sum(np.sqrt(np.clip(eig, 0, None)))
  diff = np.asarray(mu1) - np.asarray(mu2)
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean, covariance) of a feature set, rows as observations."""
  return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
  """Frechet distance between Gaussian fits of two feature sets."""
  return frechet_distance_from_stats(*gaussian_fit(f1), *gaussian_fit(f2))


def kernel_distance(f1: np.ndarray, f2: np.ndarray, num_subsets: int = 10,
                    subset_size: int = 1000, seed: int = 0) -> float:
  """KID: unbiased MMD^2 with the kernel (x.y / d + 1)^3, averaged over random subsets."""
  rng = np.random.default_rng(seed)
  d = f1.shape[1]
  m = min(subset_size, len(f1), len(f2))
  total = 0.0
  for _ in range(num_subsets):
    x = f1[rng.choice(len(f1), m, replace=False)]
    y = f2[rng.choice(len(f2), m, replace=False)]
    kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
    total += ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy))
              / (m * (m - 1)) - 2 * kxy.mean())
  return float(total / num_subsets)


def score_samples(model: FeatureModel, test: data_lib.ImageData, x: np.ndarray) -> dict:
  """All metrics of samples ``x`` (float NHWC in [-1, 1]) against the test split."""
  if x.shape[1:] != test.images.shape[1:]:
    raise ValueError(f"samples have shape {x.shape[1:]}, the {model.dataset} classifier expects "
                     f"{test.images.shape[1:]}")
  if not np.all(np.isfinite(x)):
    raise ValueError("samples contain NaN or inf")
  probs, feats = _predict(model.module, model.params, x)
  _, test_feats = _predict(model.module, model.params, test.images)
  hist = np.bincount(probs.argmax(1), minlength=probs.shape[1]) / len(probs)
  marginal = probs.mean(0)
  kl = np.sum(probs * (np.log(probs + 1e-12) - np.log(marginal + 1e-12)), axis=1)
  return {
      "num_samples": int(len(x)),
      "confident_fraction": float(np.mean(probs.max(1) >= 0.9)),
      "class_entropy": float(0.0 - np.sum(hist[hist > 0] * np.log(hist[hist > 0]))),
      "class_coverage": int(np.sum(hist >= 0.01)),
      "min_class_fraction": float(hist.min()),
      "inception_score": float(np.exp(kl.mean())),
      "fid": frechet_distance(feats, test_feats),
      "kid": kernel_distance(feats, test_feats),
      "classifier_test_accuracy": model.test_accuracy,
  }


def reference_images(test: data_lib.ImageData, classes=()) -> data_lib.ImageData:
  """The test images a run's samples are compared with: those of the run's ``data.classes``
  (all when empty), so a single-digit run is scored against that digit."""
  if not classes:
    return test
  keep = np.isin(test.labels, np.asarray(classes))
  if not keep.any():
    raise ValueError(f"evaluation: no test images of data.classes {tuple(classes)}")
  return data_lib.ImageData(test.images[keep], test.labels[keep])


# ----------------------------------------------------------------------------- Inception FID


def inception_features(extractor: inception.FeatureExtractor, images: np.ndarray, what: str,
                        log) -> np.ndarray:
  from tqdm import tqdm
  start = time.time()
  with tqdm(total=len(images), desc=f"Inception features of {what}", unit="img",
            leave=False) as bar:
    features = extractor(images, progress=lambda done: bar.update(done - bar.n))
  log(f"Inception features of {len(images)} {what}: {time.time() - start:.0f} s "
      f"({len(images) / max(time.time() - start, 1e-9):.1f} images/s)")
  return features


def inception_reference(dataset: str, image_size: int, extractor: inception.FeatureExtractor,
                        weights_digest: str, *, data_dir: str = "", classes=(),
                        log=print) -> dict:
  """Mean and covariance of the Inception features of the whole training split (of
  ``classes`` when given), computed once and cached by dataset, size, classes, weights and a
  checksum of the images."""
  train = data_lib.load_images(dataset, "train", data_dir=data_dir, image_size=image_size,
                               classes=classes, log=log)
  tag = "_c" + "-".join(map(str, classes)) if classes else ""
  key = (f"{dataset}_{image_size}{tag}_w{weights_digest[:12]}_"
         f"{_digest(train.images, train.labels)}")
  path = os.path.join(cache_dir(), "inception", key + ".npz")
  if os.path.exists(path):
    with np.load(path) as f:
      return {k: f[k] for k in f.files}
  log(f"computing the Inception statistics of the {len(train.images)} {dataset} training "
      f"images once (cached in {path})")
  mu, sigma = gaussian_fit(inception_features(extractor, train.images, "training images", log))
  stats = {"mu": mu, "sigma": sigma, "num_images": np.asarray(len(train.images))}
  os.makedirs(os.path.dirname(path), exist_ok=True)
  files.write_npz(path, **stats)
  return stats


def calibrate(dataset: str, image_size: int, *, data_dir: str = "", num: int = 1000,
              log=print) -> dict:
  """The metrics of reference sets, so a reader knows what a number means: real training
  images (a good model's floor), uniform noise, one class only (mode collapse), and real images
  blurred by a 2x down-and-up resize (blurry samples)."""
  model, test = load_feature_model(dataset, image_size, data_dir=data_dir, log=log)
  train = data_lib.load_images(dataset, "train", data_dir=data_dir, image_size=image_size,
                               log=log)
  rng = np.random.default_rng(0)
  real = np.asarray(data_lib.to_float(train.images[rng.choice(len(train.images), num, False)]))
  one_class = np.asarray(data_lib.to_float(train.images[train.labels == 1][:num]))
  small = jax.image.resize(real, (num, image_size // 2, image_size // 2, real.shape[-1]),
                           "linear")
  blurred = np.asarray(jax.image.resize(small, real.shape, "linear"))
  noise = rng.uniform(-1, 1, real.shape).astype(np.float32)
  sets = {"real (train split)": real, "blurred real": blurred, "one class (1)": one_class,
          "uniform noise": noise}
  return {name: score_samples(model, test, x) for name, x in sets.items()}


def __getattr__(name: str):
  return _moved.attribute(__name__, name)     # a name that moved away, named in one line
