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
``--inception_weights=PATH`` adds Inception FID (:func:`inception_fid`,
``ebm_jax/eval/inception.py``): 50,000 samples drawn from the checkpoint by the run's final
chain against the cached statistics of the whole training split, with the protocol recorded
beside the number.

Command line::

    python -m ebm_jax.eval.metrics --workdir=runs/x        # scores samples.npz, appends eval.json
    python -m ebm_jax.eval.metrics --workdir=runs/x --inception_weights=PATH   # + Inception FID
    python -m ebm_jax.eval.metrics train-classifier --dataset=mnist --image_size=32
    python -m ebm_jax.eval.metrics export-png --workdir=runs/x  # samples as PNG files for FID tools
    python -m ebm_jax.eval.metrics calibrate --dataset=mnist --image_size=28   # reference table
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from typing import NamedTuple

from absl import app
from absl import flags
import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ebm_jax import data as data_lib
from ebm_jax.eval import inception
from ebm_jax.core import models
from ebm_jax.run import rundir

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
    rundir.write_bytes(path, flax.serialization.msgpack_serialize(
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


def _run_config(workdir: str) -> dict:
  path = os.path.join(workdir, rundir.CONFIG)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: {workdir} is not a training run")
  with open(path) as f:
    return json.load(f)


def evaluate_run(workdir: str, samples_path: str | None = None, log=print,
                 step: int | None = None, inception_weights: str | None = None,
                 inception_num_samples: int = inception.DEFAULT_NUM_SAMPLES,
                 verify_inception_weights: bool = True) -> dict:
  """Scores a run's ``samples.npz`` (or ``samples_path``) and appends the record, with the
  training ``step`` it came from when given, to ``<workdir>/eval.json``. With
  ``inception_weights``, the record also holds :func:`inception_fid`'s number and protocol
  (``verify_inception_weights`` is its ``verify_weights``)."""
  config = _run_config(workdir)
  if inception_weights:   # checked before the minutes of classifier scoring
    if verify_inception_weights:
      inception.check_weights(inception_weights)
    else:
      inception.require_file(inception_weights)
  name = config["data"]["name"]
  if name not in data_lib.IMAGE_SOURCES:
    raise ValueError(f"evaluation: {name} is a toy density; its KL metrics are in "
                     "metrics.jsonl and sample.py's summary.json")
  samples_path = samples_path or os.path.join(workdir, "samples.npz")
  if not os.path.exists(samples_path):
    raise FileNotFoundError(f"{samples_path} not found: the run has not finished")
  with np.load(samples_path) as f:
    x = f["x"]
    proposals = f["proposals"] if "proposals" in f.files else None
  model, test = load_feature_model(name, config["data"]["image_size"],
                                   data_dir=config["data"]["dir"], log=log)
  classes = list(config["data"].get("classes", ()))
  reference = reference_images(test, classes)
  record = {"samples": os.path.abspath(samples_path), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            **({"step": step} if step is not None else {}), "reference_classes": classes or "all",
            **score_samples(model, reference, x)}
  if proposals is not None:   # CoopNets: the generator's proposals, before the chains
    record["proposals"] = score_samples(model, reference, proposals)
  if inception_weights:
    record.update(inception_fid(workdir, inception_weights, num_samples=inception_num_samples,
                                verify_weights=verify_inception_weights, log=log))
  path = os.path.join(workdir, rundir.EVAL)
  rundir.write_json(path, (rundir.read_json(path) or []) + [record])
  return record


# ----------------------------------------------------------------------------- Inception FID


def _inception_features(extractor: inception.FeatureExtractor, images: np.ndarray, what: str,
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
  mu, sigma = gaussian_fit(_inception_features(extractor, train.images, "training images", log))
  stats = {"mu": mu, "sigma": sigma, "num_images": np.asarray(len(train.images))}
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rundir.write_npz(path, **stats)
  return stats


def inception_fid(workdir: str, weights: str, *, num_samples: int = inception.DEFAULT_NUM_SAMPLES,
                  samples_path: str | None = None, seed: int = 0, batch_size: int = 100,
                  verify_weights: bool = True, log=print) -> dict:
  """Inception FID of a run: ``num_samples`` drawn from its latest checkpoint by the final
  chain of samples.npz (or the samples in ``samples_path``), quantised to uint8, against the
  training split's cached statistics. Returns ``inception_fid`` and ``inception_protocol`` (the
  protocol in words, flagged where it departs from the 50,000-sample standard).

  ``verify_weights=False`` (synthetic weights in tests only) accepts weights other than the FID
  Inception's; the protocol then says the number is not comparable with papers.
  """
  config = _run_config(workdir)
  data = config["data"]
  if data["name"] not in data_lib.IMAGE_SOURCES:
    raise ValueError(f"Inception FID: {data['name']} is not an image dataset")
  extractor = inception.load_extractor(weights, os.path.join(cache_dir(), "inception"),
                                       batch_size, verify=verify_weights)
  digest = inception.file_digest(weights)
  other_weights = ("" if inception.source_digest(weights) == inception.WEIGHTS_SHA256 else
                   " (NOT the FID Inception weights: not comparable with papers)")
  classes = tuple(data.get("classes", ()))
  reference = inception_reference(data["name"], data["image_size"], extractor, digest,
                                  data_dir=data["dir"], classes=classes, log=log)
  if samples_path:
    with np.load(samples_path) as f:
      x = f["x"]
    chain = f"{len(x)} samples from {os.path.abspath(samples_path)}"
  else:
    from ebm_jax.run import runner as runner_lib  # the run's model (imports the training stack)
    _, run, state, hp = runner_lib.load_run(workdir)
    start = time.time()
    x = run.draw_samples(state, hp, jax.random.PRNGKey(seed), num_samples)
    chain = (f"{run.sampling_protocol(hp, num_samples)}, checkpoint step {int(state.step)}, "
             f"seed {seed} ({time.time() - start:.0f} s)")
  if not np.all(np.isfinite(x)):
    raise ValueError("Inception FID: the samples contain NaN or inf")
  features = _inception_features(extractor, data_lib.to_uint8(x), "samples", log)
  fid = frechet_distance_from_stats(*gaussian_fit(features), reference["mu"], reference["sigma"])
  deviation = ("" if len(x) == inception.DEFAULT_NUM_SAMPLES else
               f"; NOT the standard protocol: {len(x)} samples instead of "
               f"{inception.DEFAULT_NUM_SAMPLES} (FID is biased upward at small N)")
  protocol = (f"pool3 (2048-d) of the FID Inception-v3, weights sha256 {digest[:16]}"
              f"{other_weights}; uint8 "
              f"images, TF1 bilinear resize to 299, gray repeated to RGB; {chain}; reference: "
              f"{int(reference['num_images'])} {data['name']} training images"
              f"{' of classes ' + str(list(classes)) if classes else ''} at "
              f"{data['image_size']}x{data['image_size']}{deviation}")
  log(f"Inception FID {fid:.3f} [{protocol}]")
  return {"inception_fid": fid, "inception_protocol": protocol,
          "inception_num_samples": int(len(x))}


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


def export_png(samples_path: str, out_dir: str) -> int:
  """Writes each sample as a PNG file (the input standard FID tools read)."""
  from PIL import Image
  with np.load(samples_path) as f:
    x = data_lib.to_uint8(f["x"])
  os.makedirs(out_dir, exist_ok=True)
  for i, img in enumerate(x):
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(
        os.path.join(out_dir, f"{i:06d}.png"))
  return len(x)


COMMANDS = ("score", "train-classifier", "export-png", "calibrate")


def _define_flags() -> None:
  """The command line's flags (defined only when run as a program, so importing the library
  defines none)."""
  flags.DEFINE_string("workdir", None, "score / export-png: the training run directory.")
  flags.DEFINE_string("samples", None, "npz with key x (default: <workdir>/samples.npz).")
  flags.DEFINE_enum("dataset", "mnist", sorted(data_lib.IMAGE_SOURCES),
                    "train-classifier / calibrate: the dataset.")
  flags.DEFINE_integer("image_size", 32, "train-classifier / calibrate: image size.")
  flags.DEFINE_string("data_dir", "", "Raw dataset files (default: $EBM_DATA_DIR or the cache).")
  flags.DEFINE_string("out", None, "export-png: output folder (default: <workdir>/samples_png).")
  flags.DEFINE_string("inception_weights", None, "score: also Inception FID, with the FID "
                      f"Inception weights ({inception.WEIGHTS_NAME}, checked by sha256, or the "
                      ".npz converted from it).")
  flags.DEFINE_integer("inception_num_samples", inception.DEFAULT_NUM_SAMPLES,
                       "score: samples drawn from the checkpoint for Inception FID.")


def run_command(command: str, args) -> None:
  """One command of ``python -m ebm_jax.eval.metrics [COMMAND] --flags``."""
  if command == "train-classifier":
    model, _ = load_feature_model(args.dataset, args.image_size, data_dir=args.data_dir)
    print(f"{args.dataset} {args.image_size}x{args.image_size}: test accuracy "
          f"{model.test_accuracy:.4f}")
  elif command == "calibrate":
    table = calibrate(args.dataset, args.image_size, data_dir=args.data_dir)
    keys = ("fid", "kid", "inception_score", "class_entropy", "class_coverage",
            "confident_fraction")
    print("| set | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, row in table.items():
      print(f"| {name} | " + " | ".join(f"{row[k]:.4g}" for k in keys) + " |")
  elif command == "export-png":
    if not (args.samples or args.workdir):
      raise ValueError("export-png needs --workdir or --samples")
    samples = args.samples or os.path.join(args.workdir, rundir.SAMPLES)
    out = args.out or os.path.join(os.path.dirname(samples), "samples_png")
    print(f"wrote {export_png(samples, out)} PNG files to {out}")
  else:
    if not args.workdir:
      raise ValueError("--workdir is required")
    record = evaluate_run(args.workdir, args.samples, inception_weights=args.inception_weights,
                          inception_num_samples=args.inception_num_samples)
    print(json.dumps(record, indent=2))
    if not args.inception_weights:
      print("Inception FID (paper-comparable): not computed; " + inception.how_to_get_weights())


def main(argv) -> None:
  from ebm_jax import cli
  command = argv[1] if len(argv) > 1 else "score"
  if command not in COMMANDS or len(argv) > 2:
    cli.fail(f"usage: python -m ebm_jax.eval.metrics [{'|'.join(COMMANDS)}] --flags", 2)
  cli.call(run_command, command, flags.FLAGS)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
