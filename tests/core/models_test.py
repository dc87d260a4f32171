"""Energy networks: shapes, gradients, architecture sizes, spectral-norm state."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_jax.core import models, samplers

KEY = jax.random.key(0)
IMAGE_SHAPES = [(28, 28, 1), (32, 32, 1), (32, 32, 3)]
CASES = [("toy_mlp", (2,))] + [(name, shape) for name in ("vanilla", "nonlocal", "thesis")
                               for shape in IMAGE_SHAPES]


def build(name, shape, spectral_norm=False, n_f=4, batch=3):
  module = models.get_model(name, n_f=n_f, spectral_norm=spectral_norm)
  x = jax.random.uniform(KEY, (batch, *shape), minval=-1, maxval=1)
  variables = models.init_variables(module, jax.random.key(1), x)
  return module, variables, x


# Every net at every input size, and each net once more with spectral norm.
SHAPE_CASES = [(name, shape, False) for name, shape in CASES] + [
    ("toy_mlp", (2,), True), ("vanilla", (28, 28, 1), True), ("nonlocal", (32, 32, 3), True),
    ("thesis", (32, 32, 1), True)]


@pytest.mark.parametrize("name, shape, spectral_norm", SHAPE_CASES)
def test_energy_shape_and_finite_gradients(name, shape, spectral_norm):
  module, variables, x = build(name, shape, spectral_norm)
  energy_fn = models.make_energy_fn(module)

  @jax.jit
  def energy_and_grads(variables, x):
    total = lambda p, x: energy_fn({**variables, "params": p}, x).sum()
    return energy_fn(variables, x), jax.grad(total, argnums=(0, 1))(variables["params"], x)

  energy, (grad_p, grad_x) = energy_and_grads(variables, x)
  chex.assert_shape(energy, (x.shape[0],))
  chex.assert_tree_all_finite(energy)
  chex.assert_shape(grad_x, x.shape)
  chex.assert_tree_all_finite((grad_x, grad_p))
  assert float(jnp.abs(grad_x).sum()) > 0


def torch_conv(c_in, c_out, k):
  return c_in * c_out * k * k + c_out


@pytest.mark.parametrize("n_c", [1, 3])
def test_parameter_counts_match_the_pytorch_reference_architectures(n_c):
  n_f = 32
  count = lambda v: sum(a.size for a in jax.tree.leaves(v["params"]))
  # ebm-anatomy VanillaNet at 32x32.
  vanilla = (torch_conv(n_c, n_f, 3) + torch_conv(n_f, 2 * n_f, 4) + torch_conv(2 * n_f, 4 * n_f, 4)
             + torch_conv(4 * n_f, 8 * n_f, 4) + torch_conv(8 * n_f, 1, 4))
  assert count(build("vanilla", (32, 32, n_c), n_f=n_f)[1]) == vanilla
  # ebm-anatomy NonlocalNet at 32x32: each non-local block has four 1x1 convs.
  nl_block = lambda c: 3 * torch_conv(c, c // 2, 1) + torch_conv(c // 2, c, 1)
  nonlocal_ = (torch_conv(n_c, n_f, 3) + nl_block(n_f) + torch_conv(n_f, 2 * n_f, 3)
               + nl_block(2 * n_f) + torch_conv(2 * n_f, 4 * n_f, 3)
               + (4 * n_f * 4 * 4) * (8 * n_f) + 8 * n_f + 8 * n_f + 1)
  assert count(build("nonlocal", (32, 32, n_c), n_f=n_f)[1]) == nonlocal_
  # ebm-anatomy ToyNet.
  toy = (2 * n_f + n_f) + (n_f * 2 * n_f + 2 * n_f) + 2 * (4 * n_f * n_f + 2 * n_f) + 2 * n_f + 1
  assert count(build("toy_mlp", (2,), n_f=n_f)[1]) == toy


def test_nonlocal_block_is_the_identity_at_initialisation():
  block = models.NonLocalBlock()
  x = jax.random.normal(KEY, (2, 8, 8, 6))
  variables = block.init(KEY, x)
  np.testing.assert_array_equal(block.apply(variables, x), x)


def test_leak_and_width_knobs_are_used():
  module = models.get_model("vanilla", n_f=8, leak=0.2)
  assert module.leak == 0.2 and module.n_f == 8
  assert models.get_model("vanilla", n_f=8).leak == 0.05      # ebm-anatomy's default


def spectral_sigmas(variables):
  """(top singular value of the raw kernel reshaped to [-1, out], stored sigma) per layer."""
  params, state = variables["params"], variables[models.SPECTRAL_COLLECTION]
  out = []
  for path, sigma in jax.tree_util.tree_leaves_with_path(state):
    if not str(path[-1].key).endswith("/sigma"):
      continue
    # Path: (*parent modules, SpectralNorm_k, "<layer>/kernel/sigma"); the params tree is the
    # same as without spectral norm.
    kernel = params
    for k in [p.key for p in path[:-2]] + str(path[-1].key).split("/")[:-1]:
      kernel = kernel[k]
    matrix = np.asarray(kernel).reshape(-1, kernel.shape[-1])
    out.append((np.linalg.svd(matrix, compute_uv=False)[0], float(sigma)))
  return out


@pytest.mark.parametrize("name, shape", [("toy_mlp", (2,)), ("vanilla", (32, 32, 1)),
                                         ("nonlocal", (28, 28, 1)), ("thesis", (32, 32, 3))])
def test_spectral_norm_power_iteration_converges_and_sampling_leaves_it_alone(name, shape):
  module, variables, x = build(name, shape, spectral_norm=True)
  update = jax.jit(functools.partial(models.update_spectral_state, module))
  for _ in range(30):
    variables = update(variables, x)
  sigmas = spectral_sigmas(variables)
  num_layers = {"toy_mlp": 5, "vanilla": 5, "nonlocal": 13, "thesis": 4}[name]
  assert len(sigmas) == num_layers           # every conv / dense layer is normalised
  for top, sigma in sigmas:
    if top == 0:                             # the non-local blocks' zero-initialised output
      continue
    assert abs(top / sigma - 1) < 0.02, (top, sigma)   # normalised weights: top SV is 1

  before = variables[models.SPECTRAL_COLLECTION]
  energy_fn = functools.partial(models.make_energy_fn(module), variables)
  sampler = samplers.langevin(0.01, 0.01)
  jax.jit(lambda x: samplers.run_chain(KEY, sampler.step, sampler.init(x, energy_fn),
                                       energy_fn, 3))(x)
  chex.assert_trees_all_equal(variables[models.SPECTRAL_COLLECTION], before)


def test_update_without_spectral_norm_is_the_identity():
  module, variables, x = build("vanilla", (32, 32, 1))
  chex.assert_trees_all_equal(models.update_spectral_state(module, variables, x), variables)


@pytest.mark.parametrize("name, x, match", [
    ("vanilla", jnp.zeros((2, 30, 30, 1)), r"NHWC images \[batch, S, S, C\]"),
    ("vanilla", jnp.zeros((2, 1, 32, 32)), r"NHWC images"),
    ("toy_mlp", jnp.zeros((2, 3)), r"shape \[batch, 2\]"),
    ("toy_mlp", jnp.zeros((2, 2), jnp.int32), "must be a float array"),
])
def test_wrong_inputs_fail_with_one_line(name, x, match):
  module = models.get_model(name, n_f=4)
  with pytest.raises(ValueError, match=match):
    models.init_variables(module, KEY, x)


def test_unknown_model_and_bad_width():
  with pytest.raises(ValueError, match="model.name: unknown model 'resnet'"):
    models.get_model("resnet", n_f=4)
  with pytest.raises(ValueError, match="model.n_f"):
    models.get_model("vanilla", n_f=0)


# Strided kernels that the stride divides take the space-to-depth path, on sizes that need the
# extra padding (9 + 2 = 11) and on sizes that do not (8 + 2 = 10).
@pytest.mark.parametrize("kernel, stride, padding, size", [
    (3, 1, 1, 9), (4, 2, 1, 9), (4, 2, 1, 8), (4, 1, 0, 9), (1, 1, 0, 9), (5, 2, 2, 9),
    (6, 3, 1, 9), (2, 2, 0, 8)])
def test_patch_convolution_equals_the_native_one(kernel, stride, padding, size):
  x = jax.random.normal(KEY, (2, size, size, 3))
  native = models.Conv2D(5, kernel, stride, padding, impl="xla")
  patches = models.Conv2D(5, kernel, stride, padding, impl="patches")
  variables = native.init(jax.random.key(1), x)
  variables = jax.tree.map(lambda a: a + 0.1, variables)       # a non-zero bias too
  chex.assert_trees_all_close(patches.apply(variables, x), native.apply(variables, x),
                              rtol=1e-5, atol=1e-5)
  grad = lambda m: jax.grad(lambda x: jnp.sum(m.apply(variables, x) ** 2))(x)
  chex.assert_trees_all_close(grad(patches), grad(native), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["vanilla", "nonlocal", "thesis"])
def test_conv_impls_share_parameters_and_energies(name):
  x = jax.random.uniform(KEY, (3, 32, 32, 3), minval=-1, maxval=1)
  native = models.get_model(name, n_f=4, conv_impl="xla")
  patches = models.get_model(name, n_f=4, conv_impl="patches")
  variables = models.init_variables(native, jax.random.key(1), x)
  chex.assert_trees_all_equal_shapes(variables,
                                     models.init_variables(patches, jax.random.key(1), x))
  chex.assert_trees_all_close(models.make_energy_fn(patches)(variables, x),
                              models.make_energy_fn(native)(variables, x), rtol=1e-4, atol=1e-5)


def test_unknown_conv_impl():
  with pytest.raises(ValueError, match="model.conv_impl: expected one of"):
    models.get_model("vanilla", n_f=4, conv_impl="fft")


@pytest.mark.parametrize("name", ["toy_mlp", "vanilla"])
def test_bfloat16_compute_keeps_float32_interfaces_and_close_energies(name):
  module = models.get_model(name, n_f=8)
  shape = (4, 2) if name == "toy_mlp" else (4, 32, 32, 1)
  x = jax.random.uniform(KEY, shape, minval=-1, maxval=1)
  variables = models.init_variables(module, jax.random.key(1), x)
  full = models.make_energy_fn(module)
  half = models.make_energy_fn(module, "bfloat16")
  e32, e16 = full(variables, x), half(variables, x)
  chex.assert_type(e16, jnp.float32)
  scale = float(jnp.max(jnp.abs(e32))) + 1e-3
  assert float(jnp.max(jnp.abs(e16 - e32))) < 2e-2 * scale
  grads = [jax.grad(lambda v, x: jnp.sum(f(v, x)), argnums=(0, 1))(variables, x)
           for f in (full, half)]
  chex.assert_trees_all_equal_dtypes(grads[0], grads[1])    # float32 gradients both ways
  gx32, gx16 = grads[0][1], grads[1][1]
  cos = jnp.sum(gx32 * gx16) / (jnp.linalg.norm(gx32) * jnp.linalg.norm(gx16))
  assert float(cos) > 0.99
  with pytest.raises(ValueError, match="model.compute_dtype: expected one of"):
    models.make_energy_fn(module, "float16")


@pytest.mark.parametrize("name, shape", [("toy_mlp", (2,)), ("vanilla", (28, 28, 1)),
                                         ("nonlocal", (28, 28, 1)), ("thesis", (32, 32, 3))])
def test_silu_activation_keeps_the_parameters_and_changes_the_energy(name, shape):
  x = jax.random.normal(jax.random.key(1), (4, *shape))
  leaky = models.get_model(name, n_f=4)
  silu = models.get_model(name, n_f=4, activation="silu")
  variables = models.init_variables(leaky, jax.random.key(0), x)
  chex.assert_trees_all_equal_shapes(variables, models.init_variables(silu, jax.random.key(0), x))
  e_leaky, e_silu = leaky.apply(variables, x), silu.apply(variables, x)
  chex.assert_shape(e_silu, (4,))
  assert np.all(np.isfinite(e_silu)) and not np.allclose(e_leaky, e_silu)
  with pytest.raises(ValueError, match="model.activation: expected one of"):
    models.get_model(name, n_f=4, activation="relu6")
