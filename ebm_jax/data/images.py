"""Image datasets on the host: the raw formats parsed (IDX, the CIFAR binary, the Flowers JPEGs,
or a prepared tfds dataset read without TensorFlow), resized, and mapped to ``[-1, 1]``.

Images are kept as ``uint8`` NHWC arrays and moved to the device once; each train step draws its
batch inside the jitted step (:func:`draw_image_batch`) and maps it to ``[-1, 1]`` (the
reference codes' ``Normalize(0.5, 0.5)``).
"""

from __future__ import annotations

import gzip
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax.data.sources import (CIFAR_DIR, CIFAR_FILES, CIFAR_RECORD, IDX_FILES, DataError,
                                  ImageSource, verify)

Array = jax.Array


class ImageData(NamedTuple):
  images: np.ndarray             # uint8 [N, S, S, C]
  labels: np.ndarray             # int32 [N]


def _read_maybe_gz(path: str) -> bytes | None:
  for candidate, opener in ((path, open), (path + ".gz", gzip.open)):
    if os.path.exists(candidate):
      with opener(candidate, "rb") as f:
        return f.read()
  return None

def _parse_idx(data: bytes, what: str) -> np.ndarray:
  if len(data) < 8 or data[:2] != b"\x00\x00" or data[2] != 0x08:
    raise DataError(f"{what}: not an unsigned-byte IDX file")
  ndim = data[3]
  dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
  body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
  if body.size != int(np.prod(dims)):
    raise DataError(f"{what}: IDX header says {dims} but holds {body.size} bytes")
  return body.reshape(dims)

def load_idx_split(source: ImageSource, root: str, split: str):
  arrays = []
  for fname in IDX_FILES[split]:
    data = _read_maybe_gz(os.path.join(root, fname))
    if data is None:
      return None
    verify(source, fname, data, root)
    arrays.append(_parse_idx(data, os.path.join(root, fname)))
  images, labels = arrays
  return images[..., None], labels.astype(np.int32)

def load_cifar_split(root: str, split: str):
  parts = []
  for fname in CIFAR_FILES[split]:
    path = os.path.join(root, CIFAR_DIR, fname)
    if not os.path.exists(path):
      return None
    raw = np.fromfile(path, np.uint8)
    if raw.size % CIFAR_RECORD:
      raise DataError(f"{path}: size {raw.size} is not a multiple of a CIFAR-10 record")
    parts.append(raw.reshape(-1, CIFAR_RECORD))
  records = np.concatenate(parts)
  images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return np.ascontiguousarray(images), records[:, 0].astype(np.int32)

def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
  """torchvision's ``Resize(size)`` (shorter side, bilinear) then ``CenterCrop(size)``."""
  from PIL import Image
  img = Image.fromarray(image)
  w, h = img.size
  scale = size / min(w, h)
  img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
  w, h = img.size
  left, top = (w - size) // 2, (h - size) // 2
  return np.asarray(img.crop((left, top, left + size, top + size)).convert("RGB"))

def load_flowers_split(root: str, split: str, size: int):
  """Oxford Flowers 102 from ``jpg/`` + ``imagelabels.mat`` (+ ``setid.mat``): ``train`` is
  all 8,189 images (as ebm-anatomy trains), ``test`` the official test ids. Decoded images are
  cached as ``processed_<size>_<split>.npz`` beside them."""
  cache = os.path.join(root, f"processed_{size}_{split}.npz")
  if os.path.exists(cache):
    with np.load(cache) as f:
      return f["images"], f["labels"]
  labels_path = os.path.join(root, "imagelabels.mat")
  if not (os.path.isdir(os.path.join(root, "jpg")) and os.path.exists(labels_path)):
    return None
  from PIL import Image
  from scipy.io import loadmat
  labels = loadmat(labels_path)["labels"][0].astype(np.int32) - 1
  ids = np.arange(1, len(labels) + 1)
  if split == "test":
    ids = loadmat(os.path.join(root, "setid.mat"))["tstid"][0]
  images = np.stack([center_crop_resize(
      np.asarray(Image.open(os.path.join(root, "jpg", f"image_{i:05d}.jpg")).convert("RGB")),
      size) for i in ids])
  np.savez(cache, images=images, labels=labels[ids - 1])
  return images, labels[ids - 1]

def load_tfds(source: ImageSource, split: str, size: int):
  """Reads a prepared tfds dataset (array_record) without TensorFlow; None if not there."""
  try:
    import tensorflow_datasets as tfds  # lazy: heavy, and absent on some accelerator images
    from absl import logging
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)   # tfds warns about every folder it probes
    try:
      ds = tfds.data_source(source.name, split=split, download=False)
    finally:
      logging.set_verbosity(verbosity)
  except Exception:  # not prepared, wrong format, tfds missing: try the next route
    return None
  examples = [ds[i] for i in range(len(ds))]
  resize = (lambda im: center_crop_resize(im, size)) if not source.native_size else (lambda im: im)
  images = np.stack([resize(np.asarray(e["image"], np.uint8)) for e in examples])
  labels = np.asarray([e["label"] for e in examples], np.int32)
  return images, labels


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of uint8 NHWC images, rounded back to uint8 (as torchvision's Resize)."""
  if images.shape[1] == size:
    return images
  out = jax.image.resize(jnp.asarray(images, jnp.float32),
                         (images.shape[0], size, size, images.shape[3]), "linear")
  return np.asarray(jnp.clip(jnp.round(out), 0, 255)).astype(np.uint8)

def to_float(images: Array) -> Array:
  """uint8 [0, 255] -> float32 [-1, 1] (the seeds' ``Normalize(0.5, 0.5)``)."""
  return images.astype(jnp.float32) / 127.5 - 1.0

def to_uint8(x) -> np.ndarray:
  """float [-1, 1] -> uint8 [0, 255], clipping out-of-range values."""
  return np.asarray(np.clip(np.round((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255),
                    np.uint8)

def draw_image_batch(images: Array, key: Array, batch_size: int) -> Array:
  """A uniformly drawn batch of device-resident uint8 images, as float32 in [-1, 1]."""
  idx = jax.random.randint(key, (batch_size,), 0, images.shape[0])
  return to_float(images[idx])
