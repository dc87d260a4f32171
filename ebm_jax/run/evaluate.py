"""Evaluating a run directory: its ``samples.npz`` scored into ``eval.json`` with the classifier
metrics of :mod:`ebm_jax.eval.metrics`, Inception FID of samples drawn from its checkpoint, and
the samples as PNG files for external FID tools.

Command line::

    python -m ebm_jax.run.evaluate --workdir=runs/x        # scores samples.npz, appends eval.json
    python -m ebm_jax.run.evaluate --workdir=runs/x --inception_weights=PATH   # + Inception FID
    python -m ebm_jax.run.evaluate train-classifier --dataset=mnist --image_size=32
    python -m ebm_jax.run.evaluate export-png --workdir=runs/x  # samples as PNG files
    python -m ebm_jax.run.evaluate calibrate --dataset=mnist --image_size=28   # reference table
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

from ebm_jax import data as data_lib
from ebm_jax.eval import inception
from ebm_jax.eval import metrics
from ebm_jax.run import rundir
from ebm_jax.run import runner as runner_lib


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
  if data_lib.get(name).is_toy:
    raise ValueError(f"evaluation: {name} is a toy density; its KL metrics are in "
                     "metrics.jsonl and sample.py's summary.json")
  samples_path = samples_path or os.path.join(workdir, "samples.npz")
  if not os.path.exists(samples_path):
    raise FileNotFoundError(f"{samples_path} not found: the run has not finished")
  with np.load(samples_path) as f:
    x = f["x"]
    proposals = f["proposals"] if "proposals" in f.files else None
  model, test = metrics.load_feature_model(name, config["data"]["image_size"],
                                   data_dir=config["data"]["dir"], log=log)
  classes = list(config["data"].get("classes", ()))
  reference = metrics.reference_images(test, classes)
  record = {"samples": os.path.abspath(samples_path), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            **({"step": step} if step is not None else {}), "reference_classes": classes or "all",
            **metrics.score_samples(model, reference, x)}
  if proposals is not None:   # CoopNets: the generator's proposals, before the chains
    record["proposals"] = metrics.score_samples(model, reference, proposals)
  if inception_weights:
    record.update(inception_fid(workdir, inception_weights, num_samples=inception_num_samples,
                                verify_weights=verify_inception_weights, log=log))
  path = os.path.join(workdir, rundir.EVAL)
  rundir.write_json(path, (rundir.read_json(path) or []) + [record])
  return record



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
  if data_lib.get(data["name"]).is_toy:
    raise ValueError(f"Inception FID: {data['name']} is not an image dataset")
  extractor = inception.load_extractor(weights, os.path.join(metrics.cache_dir(), "inception"),
                                       batch_size, verify=verify_weights)
  digest = inception.file_digest(weights)
  other_weights = ("" if inception.source_digest(weights) == inception.WEIGHTS_SHA256 else
                   " (NOT the FID Inception weights: not comparable with papers)")
  classes = tuple(data.get("classes", ()))
  reference = metrics.inception_reference(data["name"], data["image_size"], extractor, digest,
                                  data_dir=data["dir"], classes=classes, log=log)
  if samples_path:
    with np.load(samples_path) as f:
      x = f["x"]
    chain = f"{len(x)} samples from {os.path.abspath(samples_path)}"
  else:
    _, run, state, hp = runner_lib.load_run(workdir)
    start = time.time()
    x = run.draw_samples(state, hp, jax.random.PRNGKey(seed), num_samples)
    chain = (f"{run.sampling_protocol(hp, num_samples)}, checkpoint step {int(state.step)}, "
             f"seed {seed} ({time.time() - start:.0f} s)")
  if not np.all(np.isfinite(x)):
    raise ValueError("Inception FID: the samples contain NaN or inf")
  features = metrics.inception_features(extractor, data_lib.to_uint8(x), "samples", log)
  fid = metrics.frechet_distance_from_stats(*metrics.gaussian_fit(features), reference["mu"],
                                            reference["sigma"])
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
  flags.DEFINE_enum("dataset", "mnist", data_lib.names("image"),
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
  """One command of ``python -m ebm_jax.run.evaluate [COMMAND] --flags``."""
  if command == "train-classifier":
    model, _ = metrics.load_feature_model(args.dataset, args.image_size, data_dir=args.data_dir)
    print(f"{args.dataset} {args.image_size}x{args.image_size}: test accuracy "
          f"{model.test_accuracy:.4f}")
  elif command == "calibrate":
    table = metrics.calibrate(args.dataset, args.image_size, data_dir=args.data_dir)
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
    cli.fail(f"usage: python -m ebm_jax.run.evaluate [{'|'.join(COMMANDS)}] --flags", 2)
  cli.call(run_command, command, flags.FLAGS)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
