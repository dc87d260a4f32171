"""Energy networks as pure functions.

Every network maps a batch of inputs to one unbounded scalar per input::

    energy = energy_fn(variables, x)      # x: [batch, H, W, C] or [batch, 2]; energy: [batch]

Convention: **low energy = likely**, ``p(x) ∝ exp(-E(x))``.

How the reference codes map onto it:

* ebm-anatomy (Nijkamp, Hill et al. 2020) already uses energies: its ``f(x)`` is our ``E(x)``
  and its Langevin update ``x -= grad f + eps * noise`` is our Langevin kernel with
  ``step_size=1, noise_std=eps`` (see :mod:`ebm_jax.core.samplers`).
* Short-run MCMC (Nijkamp et al. 2019) and the thesis / CoopNets code use a *score*
  ``f(x)`` where higher means more likely and sample by gradient *ascent*. Their ``f`` is our
  ``-E``; ascent on ``f`` is descent on ``E``, and their loss ``f(samples) - f(data)`` is our
  ``E(data) - E(samples)``.

``variables`` is the Flax variable dict: ``{"params": ...}`` plus, with spectral normalisation,
``{"spectral": ...}`` holding the power-iteration vectors. Those vectors are *state*: they are
read (never written) by :func:`make_energy_fn`, and advanced once per training step by
:func:`update_spectral_state`, so a sampling chain can never change them. They are ordinary
arrays and are checkpointed with the parameters.

Weights are initialised like PyTorch's ``nn.Conv2d`` / ``nn.Linear`` defaults
(``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for kernels and biases), because the published
hyper-parameters of the reference codes (step sizes, learning rates) were tuned against the
energy scale those initialisations give.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Variables = Mapping[str, Any]
EnergyFn = Callable[[Variables, Array], Array]

SPECTRAL_COLLECTION = "spectral"


def _torch_uniform(fan_in: int):
  """PyTorch's default init for conv/linear weights and biases: U(-1/sqrt(fan_in), ...)."""
  bound = 1.0 / max(fan_in, 1) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class Conv2D(nn.Module):
  """A 2-D NHWC convolution with symmetric padding, computed one of two ways.

  ``impl="xla"`` uses XLA's native convolution; ``impl="patches"`` gathers explicit patches
  (im2col) and multiplies them by the kernel matrix. Both have the same parameters (``kernel``
  HWIO, ``bias``) and results; on XLA's CPU backend the patch matmul and its gradients ran 2-5x
  faster than the native convolution for these nets (benchmarks/README.md), while on GPUs and
  TPUs the native convolution is the fast one.
  """

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  impl: str = "xla"
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    k, s, p = self.kernel_size, self.stride, self.padding
    kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    if self.impl == "xla":
      y = jax.lax.conv_general_dilated(x, kernel, (s, s), ((p, p), (p, p)),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
      return y + bias
    out_h = (x.shape[1] + 2 * p - k) // s + 1
    out_w = (x.shape[2] + 2 * p - k) // s + 1
    if s > 1 and k % s == 0:
      # A k x k stride-s convolution is a (k/s) x (k/s) stride-1 one on the space-to-depth
      # input: its patches are (k/s)^2 contiguous slices instead of k^2 strided ones, whose
      # gradient (a scatter-add of k^2 strided slices) was the slow part of the input gradient
      # (benchmarks/README.md). Pad up to a multiple of s; the extra rows feed no output.
      extra_h, extra_w = -(x.shape[1] + 2 * p) % s, -(x.shape[2] + 2 * p) % s
      x = _space_to_depth(jnp.pad(x, ((0, 0), (p, p + extra_h), (p, p + extra_w), (0, 0))), s)
      kernel = _kernel_space_to_depth(kernel, s)
      k, s = k // s, 1
    elif p:
      x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    if k == 1 and s == 1:
      patches = x
    else:   # [..., (i, j, c)]: the same order as kernel.reshape(k * k * c_in, c_out)
      patches = jnp.concatenate(
          [x[:, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s, :]
           for i in range(k) for j in range(k)], axis=-1)
    return patches @ kernel.reshape(-1, self.features) + bias


def _space_to_depth(x, s):
  """``[n, h, w, c] -> [n, h/s, w/s, s*s*c]``, each s x s block's pixels ordered (a, b, c)."""
  n, h, w, c = x.shape
  x = x.reshape(n, h // s, s, w // s, s, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // s, w // s, s * s * c)


def _kernel_space_to_depth(kernel, s):
  """HWIO ``[k, k, c, f] -> [k/s, k/s, s*s*c, f]`` matching :func:`_space_to_depth`:
  tap ``(s*p + a, s*q + b)`` becomes tap ``(p, q)``, input channel ``(a, b, c)``."""
  k, _, c, f = kernel.shape
  kernel = kernel.reshape(k // s, s, k // s, s, c, f).transpose(0, 2, 1, 3, 4, 5)
  return kernel.reshape(k // s, k // s, s * s * c, f)


CONV_IMPLS = ("auto", "xla", "patches")


def resolve_conv_impl(conv_impl: str) -> str:
  """``auto`` -> ``patches`` on CPU backends, ``xla`` (native convolution) elsewhere."""
  if conv_impl not in CONV_IMPLS:
    raise ValueError(f"model.conv_impl: expected one of {CONV_IMPLS}, got {conv_impl!r}")
  if conv_impl == "auto":
    return "patches" if jax.default_backend() == "cpu" else "xla"
  return conv_impl


# Nonlinearities between layers: ``fn(h, leak)``. Leaky ReLU is the seeds' choice; SiLU (Swish)
# is IGEBM's, smooth, so the energy's input gradient that Langevin follows is continuous.
ACTIVATIONS: dict[str, Callable[[Array, float], Array]] = {
    "leaky_relu": nn.leaky_relu,
    "silu": lambda h, leak: nn.silu(h),
}


class _Layers(nn.Module):
  """Mixin: conv / dense layers with torch-style init and optional spectral norm."""

  spectral_norm: bool = False
  conv_impl: str = "xla"          # "xla" (native convolution) or "patches" (im2col + matmul)
  activation: str = "leaky_relu"  # a key of ACTIVATIONS (``leak`` is its slope where it has one)

  def act(self, h):
    return ACTIVATIONS[self.activation](h, self.leak)

  def conv(self, x, features, kernel, stride=1, padding=0, *, update_stats,
           zero_init=False, name=None):
    fan_in = x.shape[-1] * kernel * kernel
    init = nn.initializers.zeros if zero_init else _torch_uniform(fan_in)
    layer = Conv2D(features, kernel, stride, padding, impl=self.conv_impl, kernel_init=init,
                   bias_init=init, name=name)
    return self._wrap(layer, x, update_stats)

  def dense(self, x, features, *, update_stats, name=None):
    init = _torch_uniform(x.shape[-1])
    layer = nn.Dense(features, kernel_init=init, bias_init=init, name=name)
    return self._wrap(layer, x, update_stats)

  def _wrap(self, layer, x, update_stats):
    if not self.spectral_norm:
      return layer(x)
    return nn.SpectralNorm(layer, collection_name=SPECTRAL_COLLECTION)(
        x, update_stats=update_stats)

  def layers(self, update_stats):
    """(conv, dense) with ``update_stats`` bound, for use inside ``__call__``."""
    return (functools.partial(self.conv, update_stats=update_stats),
            functools.partial(self.dense, update_stats=update_stats))


class ToyMLP(_Layers):
  """ebm-anatomy's ToyNet for 2-D points: 2 -> n_f -> 2n_f -> 2n_f -> 2n_f -> 1."""

  n_f: int = 32
  leak: float = 0.05

  @nn.compact
  def __call__(self, x, update_stats: bool = False):
    conv, dense = self.layers(update_stats)
    for features in (self.n_f, 2 * self.n_f, 2 * self.n_f, 2 * self.n_f):
      x = self.act(dense(x, features))
    return dense(x, 1)[:, 0]


class VanillaConvNet(_Layers):
  """ebm-anatomy's / short-run MCMC's "vanilla" ConvNet.

  3x3 conv to ``n_f``; three 4x4 stride-2 convs doubling the channels to ``8 n_f``; a final
  valid conv to one output. At 32x32 the final conv is 4x4 as in the papers; at 28x28 the
  feature map is 3x3 and so is the final conv, at 64x64 8x8 (the papers use 32x32).
  Leak: 0.05 in ebm-anatomy, 0.2 in short-run MCMC.
  """

  n_f: int = 32
  leak: float = 0.05

  @nn.compact
  def __call__(self, x, update_stats: bool = False):
    conv, dense = self.layers(update_stats)
    act = self.act
    x = act(conv(x, self.n_f, 3, 1, 1))
    for mult in (2, 4, 8):
      x = act(conv(x, self.n_f * mult, 4, 2, 1))
    x = conv(x, 1, x.shape[1], 1, 0)
    return x.reshape(x.shape[0])


class NonLocalBlock(_Layers):
  """Embedded-Gaussian non-local block (Wang et al. 2018) as used by ebm-anatomy.

  Keys and values are max-pooled 2x2 ("sub_sample"); the output projection starts at zero so
  the block is the identity at initialisation.
  """

  @nn.compact
  def __call__(self, x, update_stats: bool = False):
    conv, dense = self.layers(update_stats)
    b, h, w, c = x.shape
    inter = max(1, c // 2)
    pool = lambda t: nn.max_pool(t, (2, 2), (2, 2))
    g = pool(conv(x, inter, 1, name="g")).reshape(b, -1, inter)
    theta = conv(x, inter, 1, name="theta").reshape(b, -1, inter)
    phi = pool(conv(x, inter, 1, name="phi")).reshape(b, -1, inter)
    attn = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi), axis=-1)
    y = jnp.einsum("bqk,bkc->bqc", attn, g).reshape(b, h, w, inter)
    return x + conv(y, c, 1, zero_init=True, name="W")


class NonlocalNet(_Layers):
  """ebm-anatomy's NonlocalNet: three conv stages (n_f, 2n_f, 4n_f) with max-pooling and
  non-local blocks before stages 2 and 3, then dense 8 n_f -> 1."""

  n_f: int = 32
  leak: float = 0.05

  @nn.compact
  def __call__(self, x, update_stats: bool = False):
    conv, dense = self.layers(update_stats)
    act = self.act
    pool = lambda h: nn.max_pool(h, (2, 2), (2, 2))
    x = pool(act(conv(x, self.n_f, 3, 1, 1)))
    block = functools.partial(NonLocalBlock, spectral_norm=self.spectral_norm,
                              conv_impl=self.conv_impl)
    x = block()(x, update_stats)
    x = pool(act(conv(x, 2 * self.n_f, 3, 1, 1)))
    x = block()(x, update_stats)
    x = pool(act(conv(x, 4 * self.n_f, 3, 1, 1)))
    x = act(dense(x.reshape(x.shape[0], -1), 8 * self.n_f))
    return dense(x, 1)[:, 0]


class ThesisDescriptor(_Layers):
  """The thesis code's descriptor: 5x5 stride-2 conv n_f (64), 3x3 stride-2 conv 2 n_f (128),
  3x3 conv 4 n_f (256), dense to 1, leaky ReLU between ("same"-style padding)."""

  n_f: int = 64
  leak: float = 0.2

  @nn.compact
  def __call__(self, x, update_stats: bool = False):
    conv, dense = self.layers(update_stats)
    act = self.act
    x = act(conv(x, self.n_f, 5, 2, 2))
    x = act(conv(x, 2 * self.n_f, 3, 2, 1))
    x = act(conv(x, 4 * self.n_f, 3, 1, 1))
    return dense(x.reshape(x.shape[0], -1), 1)[:, 0]


class LevelConditioned(nn.Module):
  """An energy network conditioned on a noise level (recovery likelihood's ``f(y, t)``).

  The level ``t`` in ``[0, num_levels)`` (one per example; None = level 0) enters as one more
  input feature, ``2 t / (num_levels - 1) - 1`` in ``[-1, 1]``: a coordinate for 2-D points, a
  constant channel for images, so every network of :data:`MODELS` serves unchanged.
  """

  inner: nn.Module
  num_levels: int

  @nn.compact
  def __call__(self, x, level=None, update_stats: bool = False):
    if level is None:
      level = jnp.zeros(x.shape[:1], jnp.int32)
    feature = (2.0 * level.astype(x.dtype) / max(self.num_levels - 1, 1) - 1.0).reshape(
        (-1,) + (1,) * (x.ndim - 1))
    feature = jnp.broadcast_to(feature, x.shape[:-1] + (1,))
    return self.inner(jnp.concatenate([x, feature], axis=-1), update_stats=update_stats)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """A network class and the input kinds it accepts."""
  cls: type
  image: bool            # True: [batch, H, W, C] images; False: [batch, 2] points
  default_leak: float


MODELS: dict[str, ModelSpec] = {
    "toy_mlp": ModelSpec(ToyMLP, image=False, default_leak=0.05),
    "vanilla": ModelSpec(VanillaConvNet, image=True, default_leak=0.05),
    "nonlocal": ModelSpec(NonlocalNet, image=True, default_leak=0.05),
    "thesis": ModelSpec(ThesisDescriptor, image=True, default_leak=0.2),
}

IMAGE_SIZES = (28, 32, 64)


def get_model(name: str, *, n_f: int, leak: float | None = None,
              spectral_norm: bool = False, conv_impl: str = "auto",
              activation: str = "leaky_relu") -> nn.Module:
  """Builds the energy network called ``name`` (one of :data:`MODELS`).

  ``conv_impl`` picks how convolutions are computed (same parameters either way): ``xla``
  (native), ``patches`` (im2col + matmul, faster on CPUs) or ``auto`` (patches on CPU).
  """
  if name not in MODELS:
    raise ValueError(f"model.name: unknown model {name!r}; expected one of {sorted(MODELS)}")
  if not isinstance(n_f, int) or n_f < 1:
    raise ValueError(f"model.n_f: expected a positive integer, got {n_f!r}")
  if activation not in ACTIVATIONS:
    raise ValueError(f"model.activation: expected one of {tuple(ACTIVATIONS)}, got "
                     f"{activation!r}")
  spec = MODELS[name]
  leak = spec.default_leak if leak is None else leak
  return spec.cls(n_f=n_f, leak=leak, spectral_norm=spectral_norm,
                  conv_impl=resolve_conv_impl(conv_impl), activation=activation)


def check_input(module: nn.Module, x: Array) -> None:
  """Raises a one-line ValueError if ``x`` is not what ``module`` expects (at trace time)."""
  if isinstance(module, LevelConditioned):    # its input is the inner network's, less a feature
    module = module.inner
  name = type(module).__name__
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"{name}: x must be a float array, got dtype {x.dtype}")
  if isinstance(module, ToyMLP):
    if x.ndim != 2 or x.shape[1] != 2:
      raise ValueError(f"{name}: x must have shape [batch, 2], got {tuple(x.shape)}")
    return
  if x.ndim != 4 or x.shape[1] != x.shape[2] or x.shape[1] not in IMAGE_SIZES:
    raise ValueError(f"{name}: x must be NHWC images [batch, S, S, C] with S in "
                     f"{IMAGE_SIZES}, got {tuple(x.shape)}")


def init_variables(module: nn.Module, key: Array, example_x: Array) -> dict:
  """Initialises parameters (and spectral-norm state) for inputs shaped like ``example_x``."""
  check_input(module, example_x)
  # Jitted: eager initialisation dispatches every small op of the patch convolutions.
  return dict(jax.jit(module.init)({"params": key}, example_x[:1]))


COMPUTE_DTYPES = ("float32", "bfloat16")


def make_energy_fn(module: nn.Module, compute_dtype: str = "float32") -> EnergyFn:
  """Returns the pure ``energy_fn(variables, x) -> [batch]`` of ``module``.

  The spectral-norm state in ``variables`` is read, never updated, so calling this inside a
  sampling chain leaves it untouched. ``compute_dtype="bfloat16"`` runs the network in bfloat16
  (see :func:`with_compute_dtype`).
  """

  def energy_fn(variables: Variables, x: Array) -> Array:
    check_input(module, x)
    return module.apply(variables, x)

  return with_compute_dtype(energy_fn, compute_dtype)


def with_compute_dtype(energy_fn: Callable, compute_dtype: str) -> Callable:
  """Mixed precision for any energy function: its floating-point arguments (parameters,
  positions) are cast to ``compute_dtype`` on the way in and the energies back to float32.

  The caller keeps float32 parameters, chain positions and optimizer state; gradients flow
  through the casts, so they come back in float32 too. bfloat16 pays on accelerators with
  bfloat16 matrix units (GPUs, TPUs); CPUs without AVX-512 BF16 emulate it (slower than
  float32, benchmarks/README.md).

  Example:
    >>> energy = with_compute_dtype(lambda x: 0.5 * jnp.sum(x ** 2, axis=1), "bfloat16")
    >>> energy(jnp.ones((2, 3))).dtype
    dtype('float32')
  """
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f"model.compute_dtype: expected one of {COMPUTE_DTYPES}, "
                     f"got {compute_dtype!r}")
  if compute_dtype == "float32":
    return energy_fn
  dtype = jnp.dtype(compute_dtype)

  def cast(a):
    return a.astype(dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a

  def mixed_energy_fn(*args):
    return energy_fn(*jax.tree.map(cast, args)).astype(jnp.float32)

  return mixed_energy_fn


def update_spectral_state(module: nn.Module, variables: Variables, x: Array) -> dict:
  """Advances the spectral-norm power iteration by one step (call once per training step).

  Returns ``variables`` with a new ``"spectral"`` collection; without spectral norm it returns
  ``variables`` unchanged.
  """
  if SPECTRAL_COLLECTION not in variables:
    return dict(variables)
  _, updates = module.apply(variables, x, update_stats=True, mutable=[SPECTRAL_COLLECTION])
  return {**variables, **updates}


class Generator(nn.Module):
  """The thesis's / CoopNets' DCGAN-style generator: ``z -> G(z)`` in [-1, 1].

  z -> (dense, i.e. a transposed conv of a 1x1 input) 4x4x(4 n_f) -> 5x5 stride-2 transposed
  convs to 8x8x(2 n_f), 16x16x(n_f), 32x32xC, batch norm and leaky ReLU between, tanh out
  (n_f = 128 gives the 512 / 256 / 128 channels of the thesis's description). For 28x28 images
  it starts at 7x7x(2 n_f) and upsamples twice; for 64x64 it upsamples four times.
  Batch-norm running statistics live in the ``batch_stats`` collection.
  """

  n_f: int = 128
  channels: int = 1
  image_size: int = 32
  leak: float = 0.01         # torch's nn.LeakyReLU() default, as the thesis code

  @nn.compact
  def __call__(self, z, train: bool = True):
    start, widths = {28: (7, (2, 1)), 32: (4, (4, 2, 1)), 64: (4, (8, 4, 2, 1))}[self.image_size]
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5)
    act = lambda h: nn.leaky_relu(h, self.leak)
    x = nn.Dense(start * start * widths[0] * self.n_f)(z)
    x = act(norm()(x.reshape(z.shape[0], start, start, widths[0] * self.n_f)))
    for w in widths[1:]:
      x = act(norm()(nn.ConvTranspose(w * self.n_f, (5, 5), (2, 2), padding="SAME")(x)))
    x = nn.ConvTranspose(self.channels, (5, 5), (2, 2), padding="SAME")(x)
    return jnp.tanh(x)
