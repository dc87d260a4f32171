"""The datasets a run can train on, one :class:`DatasetSpec` each in :data:`DATASETS`.

Every question whose answer depends on the dataset is asked of its spec here: is it a toy
density or images, which image sizes it allows, its classes, how its raw files load and fetch,
how a train step draws a batch, and which number judges a run's quality. ``data.name``'s
validation, the command lines' choices and the report follow from the registry, so a new image
dataset is one :func:`register` call (with a loader of its files, if their format is new).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, NamedTuple

import jax
import numpy as np

from ebm_jax.data import downloads
from ebm_jax.data import images as images_lib
from ebm_jax.data import toys
from ebm_jax.data.sources import (FETCH_COMMAND, IMAGE_SOURCES, DataError, ImageSource,
                                  default_data_dir)

Array = jax.Array

# The one number (lower = better) a run's quality is judged by.
# KL(true * K || KDE_K of the samples), K a fixed kernel: a proper score, lowest in expectation
# for exact samples (diagnostics.kl_smoothed); comparable across samplers.
TOY_QUALITY = "kl_smoothed"
IMAGE_QUALITY = "fid"              # classifier-feature FID of the samples


class DataSource(NamedTuple):
  """Where a train step's data come from: ``draw(images, key, n) -> float32 [n, *sample_shape]``
  (``images`` the device-resident uint8 array, unused by a toy density)."""
  sample_shape: tuple
  draw: Callable[[Array, Array, int], Array]
  toy: toys.ToyDensity | None = None


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """One dataset: images with raw files (``source``, ``load_split``, ``fetch_files``) or a toy
  density (``density``)."""
  name: str
  image_sizes: tuple = ()        # the data.image_size values a run may use (images only)
  source: ImageSource | None = None
  # (source, root, split, image_size) -> (uint8 NHWC images, int32 labels), or None if absent
  load_split: Callable | None = None
  fetch_files: Callable | None = None     # (source, target dir, log) -> None
  density: Callable[..., toys.ToyDensity] | None = None    # (sd, radius) -> ToyDensity

  @property
  def is_toy(self) -> bool:
    return self.density is not None

  @property
  def num_classes(self) -> int:
    return 0 if self.is_toy else self.source.num_classes

  @property
  def channels(self) -> int:
    return 0 if self.is_toy else self.source.channels

  @property
  def image_shape(self) -> tuple | None:
    """The stored images' shape (None where they vary, or for a toy density)."""
    if self.is_toy or not self.source.native_size:
      return None
    return (self.source.native_size, self.source.native_size, self.source.channels)

  @property
  def quality_metric(self) -> str:
    """The one number (lower = better) a run on this dataset is judged by: studies, searches
    and the plateau stop all read it."""
    return TOY_QUALITY if self.is_toy else IMAGE_QUALITY

  def sample_shape(self, image_size: int) -> tuple:
    return (2,) if self.is_toy else (image_size, image_size, self.channels)

  def make_source(self, dc, images: np.ndarray | None) -> DataSource:
    """The train step's data source for the spec's ``data`` section ``dc``."""
    if self.is_toy:
      toy = self.density(dc.toy_sd, dc.toy_radius)
      return DataSource((2,), lambda _, key, n: toy.sample(key, n), toy)
    return DataSource(tuple(images.shape[1:]), images_lib.draw_image_batch)


DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
  """Adds a dataset; every command and validation list reads :data:`DATASETS`."""
  if spec.name in DATASETS:
    raise ValueError(f"dataset {spec.name!r} is already registered")
  DATASETS[spec.name] = spec
  return spec


def _idx(source, root, split, size):
  return images_lib.load_idx_split(source, root, split)


def _cifar(source, root, split, size):
  return images_lib.load_cifar_split(root, split)


def _flowers(source, root, split, size):
  return images_lib.load_flowers_split(root, split, size)


register(DatasetSpec("mnist", (28, 32, 64), IMAGE_SOURCES["mnist"], _idx, downloads.fetch_idx))
register(DatasetSpec("fashion_mnist", (28, 32, 64), IMAGE_SOURCES["fashion_mnist"], _idx,
                     downloads.fetch_idx))
register(DatasetSpec("cifar10", (32,), IMAGE_SOURCES["cifar10"], _cifar, downloads.fetch_cifar))
register(DatasetSpec("oxford_flowers102", (32, 64), IMAGE_SOURCES["oxford_flowers102"], _flowers,
                     downloads.fetch_flowers))
for _name, _density in toys.TOY_DENSITIES.items():
  register(DatasetSpec(_name, density=_density))


def names(kind: str | None = None) -> list[str]:
  """The registered datasets (``kind`` "image" or "toy": of that kind only), sorted."""
  return sorted(n for n, s in DATASETS.items()
                if kind is None or s.is_toy == (kind == "toy"))


def get(name: str, kind: str | None = None) -> DatasetSpec:
  """The spec of dataset ``name``, or a one-line :class:`DataError` naming the choices."""
  if name not in DATASETS or (kind and DATASETS[name].is_toy != (kind == "toy")):
    what = f"{kind} dataset" if kind else "dataset"
    raise DataError(f"data.name: unknown {what} {name!r}; expected one of {names(kind)}")
  return DATASETS[name]


def is_toy(name: str) -> bool:
  return get(name).is_toy


def fetch(name: str, data_dir: str = "", log: Callable[[str], None] = print) -> str:
  """Downloads and verifies the raw files of dataset ``name`` into ``data_dir/name``."""
  if name not in names("image"):
    raise DataError(f"fetch: unknown dataset {name!r}; expected one of {names('image')}")
  spec = DATASETS[name]
  target = os.path.join(data_dir or default_data_dir(), name)
  spec.fetch_files(spec.source, target, log)
  return target


def _load_local(spec: DatasetSpec, data_dir: str, split: str, size: int):
  return spec.load_split(spec.source, os.path.join(data_dir, spec.name), split, size)


def load_images(name: str, split: str = "train", *, data_dir: str = "", image_size: int = 32,
                classes=(), allow_fetch: bool = True,
                log: Callable[[str], None] = print) -> images_lib.ImageData:
  """Loads an image dataset split as uint8 NHWC, resized and class-filtered, from the local
  files, else a prepared tfds dataset, else fetched (see :mod:`ebm_jax.data`)."""
  spec = get(name, "image")
  data_dir = data_dir or default_data_dir()
  tried = [f"local files under {os.path.join(data_dir, name)}", "a prepared tfds dataset"]
  loaded = (_load_local(spec, data_dir, split, image_size)
            or images_lib.load_tfds(spec.source, split, image_size))
  if loaded is None and allow_fetch:
    log(f"{name}: not found locally; fetching the raw files ...")
    try:
      fetch(name, data_dir, log)
    except DataError as e:
      tried.append(f"download ({e})")
    else:
      loaded = _load_local(spec, data_dir, split, image_size)
  if loaded is None:
    raise DataError(f"{name} {split} split not found; tried {', '.join(tried)}. Put the raw "
                    f"files there or run `{FETCH_COMMAND.format(name=name)}` where a network is "
                    "reachable")
  images, labels = loaded
  if classes:
    bad = sorted(set(classes) - set(range(spec.num_classes)))
    if bad:
      raise DataError(f"data.classes: {bad} are not labels of {name} "
                      f"(0..{spec.num_classes - 1})")
    keep = np.isin(labels, np.asarray(classes))
    images, labels = images[keep], labels[keep]
  return images_lib.ImageData(images_lib.resize_images(images, image_size), labels)
