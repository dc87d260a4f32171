"""Inception FID comparable with papers: the TF FID Inception-v3 in Flax, on a fixed protocol.

Papers report FID in the pool3 features (2048-d) of the Inception-v3 graph that the original
TensorFlow FID code froze in 2015 (``inception-2015-12-05``). pytorch-fid and torch-fidelity ship
the same graph as PyTorch weights, ``pt_inception-2015-12-05-6726825d.pth``; this module runs
that network in JAX. Its layers, names and quirks follow the TF graph as torch-fidelity rebuilds
it: average pools that ignore padding, a max pool in the last block, images quantised to uint8,
resized to 299 x 299 by TensorFlow 1.x bilinear resizing (no half-pixel offset), scaled by
``(x - 128) / 128``; grayscale images are repeated to three channels.

The weights are read from the ``.pth`` file (needs ``torch``, once) or from an ``.npz`` holding
the same state dict by its PyTorch names (``python -m ebm_jax.eval.inception convert``); the first
read caches the ``.npz`` so later runs need no torch. No registry wheel ships the file, so every
command that needs it names where to download it (without internet access, download it on
another machine and pass its path). Names and shapes alone would let other Inception-v3 weights
through (torchvision's ImageNet ones have the same), and their FID is not comparable with
papers: a ``.pth`` must have the standard file's sha256, and an ``.npz`` must record that it was
converted from such a file.

The protocol (``ebm_jax.eval.metrics.inception_fid``): 50,000 samples from the model against the
statistics of the whole training split, computed once per (dataset, image size, weights) and
cached, as clean-fid and torch-fidelity do.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from ebm_jax import errors

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               + WEIGHTS_NAME)
# sha256 of the file at WEIGHTS_URL (95,628,359 bytes), as projects that pin it by checksum
# record it. Its first 8 hex digits are the "-6726825d" in the name: torch.hub's convention,
# which pytorch-fid checks with load_state_dict_from_url(..., check_hash=True).
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
# Key of an .npz's record of the .pth it was converted from (its sha256). It guards against
# passing the wrong file by mistake; it is not a signature.
SOURCE_KEY = "source_sha256"
INPUT_SIZE = 299
NUM_FEATURES = 2048
DEFAULT_NUM_SAMPLES = 50_000


class InceptionWeightsError(errors.Error, ValueError):
  """The weights file is missing, unreadable or not the FID Inception's."""


def how_to_get_weights() -> str:
  return (f"download {WEIGHTS_URL} (the pytorch-fid / torch-fidelity FID weights, 91 MB) and "
          "pass --inception_weights=PATH")


# ----------------------------------------------------------------------------- network


class BasicConv2d(nn.Module):
  """conv (no bias) -> batch norm (running statistics, eps 1e-3) -> ReLU."""

  features: int
  kernel_size: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x):
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel_size, (self.strides, self.strides),
                padding=((ph, ph), (pw, pw)), use_bias=False, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x):
  # TensorFlow's average pool leaves the padded zeros out of the mean.
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x):
  return nn.max_pool(x, (3, 3), (2, 2))


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(64, (1, 1), name="branch1x1")(x)
    b5 = BasicConv2d(48, (1, 1), name="branch5x5_1")(x)
    b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv2d(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], -1)


class InceptionB(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(384, (3, 3), strides=2, name="branch3x3")(x)
    bd = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv2d(96, (3, 3), strides=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], -1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = BasicConv2d(192, (1, 1), name="branch1x1")(x)
    b7 = BasicConv2d(c7, (1, 1), name="branch7x7_1")(x)
    b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv2d(c7, (1, 1), name="branch7x7dbl_1")(x)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv2d(192, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], -1)


class InceptionD(nn.Module):
  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(192, (1, 1), name="branch3x3_1")(x)
    b3 = BasicConv2d(320, (3, 3), strides=2, name="branch3x3_2")(b3)
    b7 = BasicConv2d(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv2d(192, (3, 3), strides=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], -1)


class InceptionE(nn.Module):
  # The FID graph's last block pools by max where the paper (and its first E block) averages.
  max_pool: bool = False

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(320, (1, 1), name="branch1x1")(x)
    b3 = BasicConv2d(384, (1, 1), name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
    bd = BasicConv2d(448, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)],
                         -1)
    pooled = (nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1))) if self.max_pool
              else _avg_pool_3x3(x))
    bp = BasicConv2d(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], -1)


class FIDInceptionV3(nn.Module):
  """Preprocessed 299 x 299 x 3 images -> pool3 features (N, 2048). Submodule names are the
  PyTorch state dict's, so weights map one to one."""

  @nn.compact
  def __call__(self, x):
    x = BasicConv2d(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = BasicConv2d(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3_s2(x)
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
      x = InceptionC(c7, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    return x.mean(axis=(1, 2))


# ----------------------------------------------------------------------------- preprocessing


def _tf1_bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """(out, in) weights of TensorFlow 1.x ``resize_bilinear`` (align_corners=False): output
  pixel i reads input position i * in / out, without the half-pixel offset of later resizes."""
  src = np.arange(out_size, dtype=np.float32) * np.float32(in_size / out_size)
  lo = src.astype(np.int64)
  hi = np.minimum(lo + 1, in_size - 1)
  frac = src - lo.astype(np.float32)
  m = np.zeros((out_size, in_size), np.float32)
  np.add.at(m, (np.arange(out_size), lo), 1.0 - frac)
  np.add.at(m, (np.arange(out_size), hi), frac)
  return m


def preprocess(images: jax.Array) -> jax.Array:
  """uint8 NHWC images (1 or 3 channels, any size) -> the network's 299 x 299 x 3 input."""
  x = images.astype(jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  rows = jnp.asarray(_tf1_bilinear_matrix(x.shape[1], INPUT_SIZE))
  cols = jnp.asarray(_tf1_bilinear_matrix(x.shape[2], INPUT_SIZE))
  x = jnp.einsum("oh,nhwc,pw->nopc", rows, x, cols, precision=jax.lax.Precision.HIGHEST)
  return (x - 128.0) / 128.0


# ----------------------------------------------------------------------------- weights


def _template(image_shape=(INPUT_SIZE, INPUT_SIZE, 3)) -> dict:
  """The network's variables as shapes (nothing computed)."""
  return jax.eval_shape(FIDInceptionV3().init, jax.random.PRNGKey(0),
                        jnp.zeros((1, *image_shape), jnp.float32))


# Flax leaf -> (PyTorch leaf, layout change)
_LEAVES = {("params", "kernel"): ("weight", lambda w: w.transpose(2, 3, 1, 0)),
           ("params", "scale"): ("weight", lambda w: w),
           ("params", "bias"): ("bias", lambda w: w),
           ("batch_stats", "mean"): ("running_mean", lambda w: w),
           ("batch_stats", "var"): ("running_var", lambda w: w)}


@functools.cache
def torch_names() -> dict[str, tuple]:
  """PyTorch state-dict name -> (Flax collection, path, shape in PyTorch layout) of every
  variable the network uses (the file's ``fc`` classifier and ``num_batches_tracked`` aside)."""
  names = {}
  for collection, tree in _template().items():
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      keys = tuple(p.key for p in path)
      torch_leaf, _ = _LEAVES[collection, keys[-1]]
      shape = leaf.shape
      if keys[-1] == "kernel":
        shape = (shape[3], shape[2], shape[0], shape[1])
      names[".".join((*keys[:-1], torch_leaf))] = (collection, keys, shape)
  return names


def variables_from_state_dict(state_dict: dict[str, np.ndarray], source: str = "weights") -> dict:
  """Flax variables from the FID Inception's PyTorch state dict (arrays by PyTorch name)."""
  variables: dict = {}
  for name, (collection, keys, shape) in torch_names().items():
    if name not in state_dict:
      raise InceptionWeightsError(f"{source}: no {name}; not the FID Inception weights "
                                  f"({WEIGHTS_NAME})")
    value = np.asarray(state_dict[name], np.float32)
    if value.shape != shape:
      raise InceptionWeightsError(f"{source}: {name} has shape {value.shape}, expected {shape}; "
                                  f"not the FID Inception weights ({WEIGHTS_NAME})")
    node = variables.setdefault(collection, {})
    for key in keys[:-1]:
      node = node.setdefault(key, {})
    node[keys[-1]] = jnp.asarray(_LEAVES[collection, keys[-1]][1](value))
  return variables


def _read_pth(path: str) -> dict[str, np.ndarray]:
  try:
    import torch
  except ImportError:
    raise InceptionWeightsError(
        f"{path}: reading a .pth file needs torch once (pip install torch; the CPU wheel "
        "does), or convert it elsewhere: python -m ebm_jax.eval.inception convert "
        "--inception_weights=X.pth --out=X.npz") from None
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001 - any unreadable file is one error
    raise InceptionWeightsError(f"{path}: not a readable PyTorch file ({type(e).__name__}: "
                                f"{e})") from None
  return {k: v.numpy() for k, v in state.items()}


def file_digest(path: str) -> str:
  """sha256 of a file, hashed once while its size and modification time stay the same (the
  weights' digest keys both the .npz cache and the reference statistics)."""
  st = os.stat(path)
  return _file_digest(os.path.abspath(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
  del mtime_ns, size   # part of the cache key only
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def require_file(path: str) -> None:
  """One-line error naming where to get the weights when ``path`` is not a file."""
  if not path or not os.path.isfile(path):
    raise InceptionWeightsError(f"Inception weights {path or '(none)'} not found: "
                                + how_to_get_weights())


def _load_npz(path: str, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
  """The arrays of an ``.npz`` (only those of ``keys`` present when given: an .npz is read
  lazily, so one small entry costs no more than itself)."""
  try:
    with np.load(path) as f:
      return {k: f[k] for k in f.files if keys is None or k in keys}
  except Exception as e:  # noqa: BLE001
    raise InceptionWeightsError(f"{path}: not a readable .npz ({type(e).__name__}: {e})"
                                ) from None


def source_digest(path: str) -> str:
  """sha256 of the ``.pth`` the weights in ``path`` come from: the file's own for a ``.pth``,
  the one recorded when an ``.npz`` was written ('' when it records none)."""
  if not path.endswith(".npz"):
    return file_digest(path)
  recorded = _load_npz(path, [SOURCE_KEY]).get(SOURCE_KEY)
  return "" if recorded is None else str(recorded)


def check_weights(path: str) -> None:
  """One-line error unless ``path`` is the FID Inception weights file or an ``.npz`` converted
  from it (the file's sha256, not only its names and shapes)."""
  require_file(path)
  digest = source_digest(path)
  if digest == WEIGHTS_SHA256:
    return
  if not path.endswith(".npz"):
    found = f"sha256 {digest[:16]}..."
  elif digest:
    found = f"converted from a file of sha256 {digest[:16]}..."
  else:
    found = "an .npz that records no file it was converted from"
  raise InceptionWeightsError(
      f"{path} is not the FID Inception weights ({found}, expected {WEIGHTS_SHA256[:16]}...; "
      f"FID from other weights is not comparable with papers): download {WEIGHTS_URL}")


def write_npz(path: str, state: dict[str, np.ndarray], source_sha256: str) -> None:
  """Writes a state dict as ``.npz`` with the sha256 of the ``.pth`` it was read from."""
  from ebm_jax import files
  files.write_npz(path, **state, **{SOURCE_KEY: np.asarray(source_sha256)})


def read_state_dict(path: str, cache: str | None = None, verify: bool = True
                    ) -> dict[str, np.ndarray]:
  """The state dict of a ``.pth`` or ``.npz`` weights file; a ``.pth`` read is cached as
  ``.npz`` under ``cache`` (keyed by the file's sha256) so later reads need no torch.

  Args:
    path: the weights file.
    cache: folder of the ``.npz`` cache of ``.pth`` files (none when empty).
    verify: refuse any file but the FID Inception weights (:func:`check_weights`). False only
      for synthetic weights in tests: FID from other weights is not comparable with papers.
  """
  require_file(path)
  if verify:
    check_weights(path)
  if path.endswith(".npz"):
    state = _load_npz(path)
    state.pop(SOURCE_KEY, None)
    return state
  digest = file_digest(path)
  cached = cache and os.path.join(cache, f"inception_{digest[:16]}.npz")
  if cached and os.path.exists(cached):
    # Named by the digest of the .pth just checked (caches written before the check existed
    # record no source).
    return read_state_dict(cached, verify=False)
  state = _read_pth(path)
  if cached:
    os.makedirs(cache, exist_ok=True)
    write_npz(cached, state, digest)
  return state


# ----------------------------------------------------------------------------- features


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
  """Pool3 features of uint8 images in fixed-size batches (one compilation per image shape)."""

  variables: dict
  batch_size: int = 100

  @functools.cached_property
  def _apply(self) -> Callable:
    return jax.jit(lambda variables, images: FIDInceptionV3().apply(variables,
                                                                    preprocess(images)))

  def __call__(self, images: np.ndarray, progress: Callable[[int], None] | None = None
               ) -> np.ndarray:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"Inception features: expected uint8 NHWC images with 1 or 3 channels, "
                       f"got {images.dtype} {images.shape}")
    # Sets smaller than a batch run as one batch rounded up to a multiple of 8 (each such size
    # compiles once) rather than padded to the full batch.
    batch_size = min(self.batch_size, -(-len(images) // 8) * 8)
    out = []
    for i in range(0, len(images), batch_size):
      chunk = images[i:i + batch_size]
      pad = batch_size - len(chunk)
      if pad:   # the last batch padded, so every call has one shape
        chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.uint8)])
      out.append(np.asarray(self._apply(self.variables, chunk), np.float64)[:len(chunk) - pad])
      if progress:
        progress(i + len(chunk) - pad)
    return np.concatenate(out) if out else np.zeros((0, NUM_FEATURES))


def load_extractor(path: str, cache: str | None = None, batch_size: int = 100,
                   verify: bool = True) -> FeatureExtractor:
  """The network with the weights in ``path`` (``verify`` as in :func:`read_state_dict`)."""
  return FeatureExtractor(
      variables_from_state_dict(read_state_dict(path, cache, verify), path), batch_size)


def random_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
  """A random state dict in the real file's names and shapes (He-scaled convolutions, batch
  norms near identity), for testing the network's plumbing without the weights."""
  rng = np.random.default_rng(seed)
  state = {}
  for name, (_, keys, shape) in sorted(torch_names().items()):
    leaf = name.rsplit(".", 1)[1]
    if keys[-1] == "kernel":
      fan_in = shape[1] * shape[2] * shape[3]
      value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif leaf == "weight":
      value = rng.uniform(0.5, 1.5, shape)
    elif leaf == "bias":
      value = rng.normal(0.0, 0.1, shape)
    elif leaf == "running_mean":
      value = rng.normal(0.0, 0.1, shape)
    else:
      value = rng.uniform(0.5, 2.0, shape)
    state[name] = value.astype(np.float32)
  return state


def state_checksum(state: dict[str, np.ndarray]) -> str:
  """sha256 of a state dict's arrays in name order (tells whether two random draws agree)."""
  h = hashlib.sha256()
  for name in sorted(state):
    h.update(name.encode())
    h.update(np.ascontiguousarray(state[name], np.float32).tobytes())
  return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- command line


def convert(weights: str, out: str) -> str:
  """The FID Inception's ``.pth`` as an ``.npz`` (read later without torch), recording the file
  it came from; refuses any file but the FID weights. Returns what it wrote, in words."""
  state = read_state_dict(weights)                    # refuses any file but the FID weights
  variables_from_state_dict(state, weights)           # checks names and shapes
  write_npz(out, {k: state[k] for k in torch_names()}, source_digest(weights))
  return f"wrote {out}: {len(torch_names())} arrays of the FID Inception"


USAGE = "python -m ebm_jax.eval.inception convert --inception_weights=X.pth --out=X.npz"


def _define_flags() -> None:
  """Defined only when run as a program, so importing the library defines no flags."""
  from absl import flags
  flags.DEFINE_string("inception_weights", None, "The FID Inception's weights (.pth).")
  flags.DEFINE_string("out", None, "The .npz to write.")


def main(argv: Sequence[str]) -> None:
  """``python -m ebm_jax.eval.inception convert --inception_weights=X.pth --out=X.npz``."""
  from absl import flags
  from ebm_jax import cli
  if list(argv[1:]) != ["convert"] or not (flags.FLAGS.inception_weights and flags.FLAGS.out):
    cli.fail(f"usage: {USAGE}", 2)
  print(cli.call(convert, flags.FLAGS.inception_weights, flags.FLAGS.out))


if __name__ == "__main__":
  from absl import app
  _define_flags()
  app.run(main)
