"""Writes tests/testdata/inception_reference.npz: torch-fidelity's InceptionV3 (an implementation
independent of ebm_jax/eval/inception.py, the one papers' FID numbers are reproduced with) run on
random weights in the real file's names and shapes, so tests/eval/inception_test.py can check the
Flax port's plumbing without the real weights or torch.

    pip install torch==2.13.0 && pip install --no-deps torch-fidelity==0.4.0
    python benchmarks/inception_reference.py

torch-fidelity's package __init__ imports torchvision (for other extractors); only its
Inception module is loaded here, so torchvision is not needed.
"""

import functools
import importlib.util
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ebm_jax.eval import inception  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "testdata", "inception_reference.npz")
SEED = 0


@functools.cache
def torch_fidelity_inception():
  spec = importlib.util.find_spec("torch_fidelity")
  if spec is None:
    sys.exit("pip install torch-fidelity==0.4.0 --no-deps (see benchmarks/requirements.txt)")
  package = types.ModuleType("torch_fidelity")
  package.__path__ = list(spec.submodule_search_locations)
  sys.modules["torch_fidelity"] = package
  from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
  return FeatureExtractorInceptionV3


def reference_features(state: dict, images: np.ndarray, path: str) -> np.ndarray:
  """Pool3 features by torch-fidelity from a .pth of ``state`` (uint8 NHWC images)."""
  full = {k: torch.from_numpy(v) for k, v in state.items()}
  full["fc.weight"] = torch.zeros(1008, 2048)
  full["fc.bias"] = torch.zeros(1008)
  for name, value in list(full.items()):
    if name.endswith("running_var"):
      full[name.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
  torch.save(full, path)
  extractor = torch_fidelity_inception()("inception-v3-compat", ["2048"],
                                         feature_extractor_weights_path=path)
  x = torch.from_numpy(images).permute(0, 3, 1, 2)
  if x.shape[1] == 1:
    x = x.repeat(1, 3, 1, 1)
  with torch.no_grad():
    (features,) = extractor(x)
  return features.numpy()


def main():
  torch.set_num_threads(2)
  rng = np.random.default_rng(SEED)
  state = inception.random_state_dict(SEED)
  gray = rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
  rgb = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  pth = OUT.replace(".npz", ".pth")
  try:
    arrays = {"gray": gray, "rgb": rgb,
              "features_gray": reference_features(state, gray, pth),
              "features_rgb": reference_features(state, rgb, pth),
              "state_checksum": np.asarray(inception.state_checksum(state))}
  finally:
    if os.path.exists(pth):
      os.remove(pth)
  np.savez_compressed(OUT, **arrays)
  print(f"wrote {os.path.normpath(OUT)}: features of {len(gray)} gray and {len(rgb)} RGB images,"
        f" norms {np.linalg.norm(arrays['features_gray'], axis=1).round(3)}")


if __name__ == "__main__":
  main()
