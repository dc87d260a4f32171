"""The training state, the one jitted train step, and the training loop.

``train_step(state, images) -> (state, metrics, batch_images)`` does, in one XLA program:
draw a data batch (from the device-resident dataset, or from a toy density) -> advance the
spectral-norm power iteration -> draw chain starts (noise, data, persistent bank, replay buffer)
-> run the sampler for K steps (``lax.scan``) -> contrastive loss on the ``stop_gradient``-ed
samples -> Optax update -> write the chains back to the bank / buffer. Its keys derive from
``fold_in(state.rng, state.step)``, so a resumed run replays the same steps bit for bit.

A step whose loss or new parameters are not finite is not applied: the returned state is the
old one (the bank keeps its old entries), and ``metrics["finite"]`` is 0, which the loop turns
into a clean stop.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ebm_jax import buffers
from ebm_jax import checkpointing
from ebm_jax import config_validation
from ebm_jax import data as data_lib
from ebm_jax import diagnostics
from ebm_jax import inits
from ebm_jax import losses
from ebm_jax import models
from ebm_jax import parallel
from ebm_jax import reporting
from ebm_jax import samplers
from ebm_jax import sampling

Array = jax.Array

# fold_in tags of the non-step key streams (step keys use the step number, < 2**31).
_INIT_STREAM = 2 ** 32 - 1
_FINAL_SAMPLES_STREAM = 2 ** 32 - 2
_LONGRUN_STREAM = 2 ** 32 - 3
_LANDSCAPE_STREAM = 2 ** 32 - 4


class TrainingDiverged(RuntimeError):
  """The loss or the parameters became non-finite (or the loss passed
  ``divergence_threshold``) at update ``step``."""

  def __init__(self, message: str, step: int):
    super().__init__(message)
    self.step = step


@flax.struct.dataclass
class TrainState:
  step: Array                 # int32 scalar: number of updates applied
  params: Any                 # the energy network's trainable parameters
  model_state: Any            # other Flax collections (spectral-norm vectors), {} if none
  opt_state: Any              # Optax state
  chain_store: Any            # PersistentBank | ReplayBuffer | None
  rng: Array                  # uint32[2] base key; step keys are fold_in(rng, step)
  generator: Any = None       # GeneratorState for CoopNets (init.name = "generator"), else None


# ----------------------------------------------------------------------------- components


class DataSource(NamedTuple):
  """Where data batches come from: ``draw(images, key, n) -> float32 [n, *sample_shape]``."""
  sample_shape: tuple
  draw: Callable[[Array, Array, int], Array]
  toy: data_lib.ToyDensity | None = None


def make_data_source(config, images: np.ndarray | None) -> DataSource:
  if data_lib.is_toy(config.data.name):
    toy = data_lib.TOY_DENSITIES[config.data.name](config.data.toy_sd, config.data.toy_radius)
    return DataSource((2,), lambda _, key, n: toy.sample(key, n), toy)
  return DataSource(tuple(images.shape[1:]), data_lib.draw_image_batch)


class ChainStart(NamedTuple):
  """How chains start. ``draw`` returns the starts and what ``update`` needs to write back."""
  init_store: Callable[[Array], Any]                         # key -> store (or None)
  draw: Callable[[Any, Array, Array], tuple[Array, Any]]     # (state, key, data) -> starts, ctx
  update: Callable[[Any, Any, Array], Any]                   # (store, ctx, samples) -> store


def make_chain_start(ic, sample_shape: tuple, generator=None) -> ChainStart:
  """The chain initialiser named ``ic.name`` (see configs/default.py, section init).

  ``generator``: the CoopNets :class:`GeneratorSpec` (for ``init.name = "generator"``); these
  draws use its running batch-norm statistics (the train step proposes in training mode).
  """
  no_store = lambda key: None
  keep = lambda store, ctx, samples: store
  dtype = jnp.dtype(ic.bank_dtype)

  def with_noise(key, x):   # the thesis adds data_epsilon noise to persistent-bank starts
    return inits.data_init(key, x, noise_std=ic.start_noise_std)

  def noise(state, key, x):
    return inits.noise_init(ic.name, key, x.shape, scale=ic.scale), None

  def from_data(state, key, x):
    return with_noise(key, x), None

  def bank_draw(state, key, x):
    k_draw, k_noise = jax.random.split(key)
    starts, indices = buffers.bank_draw(state.chain_store, k_draw, x.shape[0])
    return with_noise(k_noise, starts), indices

  def replay_draw(state, key, x):
    k_draw, k_noise = jax.random.split(key)
    starts, _ = buffers.replay_draw(state.chain_store, k_draw, x.shape[0],
                                    reinit_prob=ic.reinit_prob, scale=ic.scale)
    return with_noise(k_noise, starts), None

  def generator_draw(state, key, x):
    g = state.generator
    return generator.propose(key, {"params": g.params, "batch_stats": g.batch_stats},
                             x.shape[0], train=False)

  starts = {
      "uniform": lambda: ChainStart(no_store, noise, keep),
      "gaussian": lambda: ChainStart(no_store, noise, keep),
      "data": lambda: ChainStart(no_store, from_data, keep),
      "persistent": lambda: ChainStart(
          lambda key: buffers.init_persistent_bank(key, ic.bank_size, sample_shape,
                                                   scale=ic.scale, dtype=dtype),
          bank_draw, buffers.bank_write),
      "replay": lambda: ChainStart(
          lambda key: buffers.init_replay_buffer(key, ic.bank_size, sample_shape,
                                                 scale=ic.scale, dtype=dtype),
          replay_draw, lambda buffer, ctx, samples: buffers.replay_push(buffer, samples)),
      "generator": lambda: ChainStart(no_store, generator_draw, keep),
  }
  return starts[ic.name]()


class GeneratorState(NamedTuple):
  """CoopNets' generator: parameters, batch-norm statistics, its own optimizer state."""
  params: Any
  batch_stats: Any
  opt_state: Any


class GeneratorSpec(NamedTuple):
  module: models.Generator
  optimizer: optax.GradientTransformation
  z_dim: int

  def propose(self, key, variables, n: int, *, train: bool):
    """``(x0, z)``; in training mode also the updated batch statistics."""
    z = jax.random.normal(key, (n, self.z_dim))
    if train:
      x0, updates = self.module.apply(variables, z, train=True, mutable=["batch_stats"])
      return x0, z, updates["batch_stats"]
    return self.module.apply(variables, z, train=False), z


def make_generator(config, sample_shape) -> GeneratorSpec | None:
  if config.init.name != "generator":
    return None
  gc = config.generator
  module = models.Generator(n_f=gc.n_f, channels=sample_shape[-1], image_size=sample_shape[0],
                            leak=gc.leak)
  return GeneratorSpec(module, optax.adam(gc.learning_rate, b1=gc.beta1, b2=gc.beta2),
                       gc.z_dim)


def make_sampler(sc) -> samplers.Sampler:
  """The chain kernel named ``sc.name`` (see configs/default.py, section sampler)."""
  kw = dict(clip_range=(-1.0, 1.0) if sc.clip_x else None,
            max_grad_norm=sc.max_grad_norm or None)
  noise_std = sampler_noise_std(sc)
  builders = {
      "langevin": lambda: samplers.langevin(sc.step_size, noise_std, **kw),
      "gradient_descent": lambda: samplers.gradient_descent(sc.step_size, **kw),
      "momentum_sgd": lambda: samplers.optax_sampler(
          samplers.thesis_momentum_sgd(sc.step_size, sc.momentum), noise_std, **kw),
      "adam": lambda: samplers.optax_sampler(
          samplers.thesis_adam(sc.step_size, sc.adam_beta1, sc.adam_beta2), noise_std, **kw),
      "mala": lambda: samplers.mala(sc.step_size),
      "hmc": lambda: samplers.hmc(sc.step_size, sc.hmc_leapfrog_steps),
  }
  return builders[sc.name]()


def sampler_noise_std(sc) -> float:
  """The noise sd per step: ``noise_std`` with its variance divided by ``noise_divide``."""
  return sc.noise_std / sc.noise_divide ** 0.5


def make_lr_schedule(oc) -> optax.Schedule:
  """ebm-anatomy's schedule: multiply by ``lr_decay`` every step, never below ``lr_min``."""
  if oc.lr_decay == 1.0:
    return optax.constant_schedule(oc.learning_rate)
  return optax.exponential_decay(oc.learning_rate, transition_steps=1,
                                 decay_rate=oc.lr_decay, end_value=oc.lr_min)


def make_optimizer(oc) -> optax.GradientTransformation:
  """Optax chain: [clip] -> [L2 weight decay, as torch] -> SGD(+momentum) | Adam -> -lr."""
  parts = []
  if oc.grad_clip:
    parts.append(optax.clip_by_global_norm(oc.grad_clip))
  if oc.weight_decay:
    # Added to the gradient before the optimizer, as the reference codes' torch optimizers do.
    parts.append(optax.add_decayed_weights(oc.weight_decay))
  core = {
      "sgd": lambda: optax.trace(decay=oc.beta1) if oc.beta1 else optax.identity(),
      "adam": lambda: optax.scale_by_adam(b1=oc.beta1, b2=oc.beta2),
  }
  parts += [core[oc.name](), optax.scale_by_learning_rate(make_lr_schedule(oc))]
  return optax.chain(*parts)


class Components(NamedTuple):
  module: Any
  energy: models.EnergyFn
  sampler: samplers.Sampler
  chain_start: ChainStart
  optimizer: optax.GradientTransformation
  data: DataSource
  mesh: Any = None            # jax.sharding.Mesh with a "data" axis, or None (one device)
  generator: GeneratorSpec | None = None    # CoopNets (init.name = "generator")


def make_components(config, images: np.ndarray | None, mesh=None) -> Components:
  module = models.get_model(config.model.name, n_f=config.model.n_f, leak=config.model.leak,
                            spectral_norm=config.model.spectral_norm,
                            conv_impl=config.model.conv_impl)
  source = make_data_source(config, images)
  generator = make_generator(config, source.sample_shape)
  return Components(module, models.make_energy_fn(module, config.model.compute_dtype),
                    make_sampler(config.sampler),
                    make_chain_start(config.init, source.sample_shape, generator),
                    make_optimizer(config.optimizer), source, mesh, generator)


def init_state(config, comps: Components) -> TrainState:
  rng = jax.random.PRNGKey(config.seed)
  k_params, k_store = jax.random.split(jax.random.fold_in(rng, _INIT_STREAM))
  example = jnp.zeros((1, *comps.data.sample_shape), jnp.float32)
  variables = models.init_variables(comps.module, k_params, example)
  params = variables.pop("params")
  generator = None
  if comps.generator is not None:
    k_store, k_gen = jax.random.split(k_store)
    g = jax.jit(comps.generator.module.init)(k_gen, jnp.zeros((1, comps.generator.z_dim)))
    generator = GeneratorState(g["params"], g["batch_stats"],
                               comps.generator.optimizer.init(g["params"]))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=variables,
                    opt_state=comps.optimizer.init(params),
                    chain_store=comps.chain_start.init_store(k_store), rng=rng,
                    generator=generator)


# ----------------------------------------------------------------------------- the step


def _unroll(config):
  return True if config.sampler.unroll == 0 else config.sampler.unroll


def run_sampler(config, comps: Components, variables, key: Array, starts: Array):
  """K steps of the training sampler from ``starts``; shared by the train step, final samples
  and landscapes. Returns ``(final ChainState, stacked ChainInfo, initial ChainState)``."""
  energy_fn = functools.partial(comps.energy, variables)
  init = comps.sampler.init(parallel.constrain_batch(starts, comps.mesh), energy_fn)
  final, info = samplers.run_chain(key, comps.sampler.step, init, energy_fn,
                                   config.sampler.num_steps, unroll=_unroll(config))
  return final, info, init


def draw_data(config, comps: Components, images: Array, key: Array, n: int) -> Array:
  k_draw, k_noise = jax.random.split(key)
  x = parallel.constrain_batch(comps.data.draw(images, k_draw, n), comps.mesh)
  if config.data.noise_std:
    x = x + config.data.noise_std * jax.random.normal(k_noise, x.shape, x.dtype)
  return x


def _all_finite(tree) -> Array:
  return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)] or
                             [True]))


def _explain_latents(config, gen: GeneratorSpec, variables, key, z, revised):
  """CoopNets' G1: Langevin on z so that G(z) explains the revised images:
  ``z <- z - (delta^2 / 2) grad[ ||x - G(z)||^2 / (2 sigma^2) + ||z||^2 / 2 ] + delta xi``."""
  gc = config.generator
  sigma = gc.sigma

  def latent_energy(z):
    x = gen.module.apply(variables, z, train=True, mutable=["batch_stats"])[0]
    recon = jnp.sum(jnp.square((revised - x).reshape(z.shape[0], -1)), axis=1)
    return recon / (2 * sigma ** 2) + 0.5 * jnp.sum(jnp.square(z), axis=1)

  sampler = samplers.langevin(gc.langevin_step_size ** 2 / 2,
                              gc.langevin_step_size if gc.langevin_noise else 0.0)
  state, _ = samplers.run_chain(key, sampler.step, sampler.init(z, latent_energy),
                                latent_energy, gc.langevin_steps)
  return jax.lax.stop_gradient(state.position)


def make_train_step(config, comps: Components):
  """Returns the (unjitted) pure ``train_step(state, images) -> (state, metrics, images)``.

  With ``init.name = "generator"`` the step is CoopNets' MCMC teaching: the generator proposes
  (G0), the sampler revises (D1), optionally Langevin on z explains the revisions (G1), the
  energy learns from the revisions (D2) and the generator learns to reproduce them (G2).
  """
  schedule = make_lr_schedule(config.optimizer)
  gen = comps.generator

  def train_step(state: TrainState, images: Array):
    key = jax.random.fold_in(state.rng, state.step)
    k_data, k_start, k_chain, k_latent = jax.random.split(key, 4)
    x_data = draw_data(config, comps, images, k_data, config.batch_size)
    # The power iteration advances once per update, before sampling; chains only read it.
    variables = models.update_spectral_state(
        comps.module, {"params": state.params, **state.model_state}, x_data)
    model_state = {k: v for k, v in variables.items() if k != "params"}
    if gen is not None:                                                      # G0
      g = state.generator
      starts, z, _ = gen.propose(k_start, {"params": g.params, "batch_stats": g.batch_stats},
                                 config.batch_size, train=True)
      starts, ctx = jax.lax.stop_gradient(starts), None
    else:
      starts, ctx = comps.chain_start.draw(state, k_start, x_data)
    final, info, init = run_sampler(config, comps, variables, k_chain, starts)      # D1
    samples = jax.lax.stop_gradient(final.position)

    def loss_fn(params):                                                              # D2
      energy_fn = functools.partial(comps.energy, {"params": params, **model_state})
      return losses.contrastive_loss(energy_fn, x_data, samples, scale=config.loss.scale,
                                     l2_energy=config.loss.l2_energy)

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = comps.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    extra_metrics, new_generator = {}, state.generator
    if gen is not None:
      g_vars = {"params": g.params, "batch_stats": g.batch_stats}
      if config.generator.langevin_steps:                                             # G1
        z = _explain_latents(config, gen, g_vars, k_latent, z, samples)

      def gen_loss_fn(gp):                                                            # G2
        x, upd = gen.module.apply({"params": gp, "batch_stats": g.batch_stats}, z,
                                  train=True, mutable=["batch_stats"])
        return losses.generator_loss(samples, x, config.generator.sigma), upd["batch_stats"]

      (gen_loss, batch_stats), gen_grads = jax.value_and_grad(gen_loss_fn, has_aux=True)(
          g.params)
      gen_updates, gen_opt = gen.optimizer.update(gen_grads, g.opt_state, g.params)
      new_generator = GeneratorState(optax.apply_updates(g.params, gen_updates), batch_stats,
                                     gen_opt)
      recon = jnp.mean(jnp.sum(jnp.square((samples - starts).reshape(starts.shape[0], -1)), 1))
      extra_metrics = {"gen_loss": gen_loss, "recon_loss": recon}
    finite = jnp.isfinite(loss) & _all_finite(params) & _all_finite(new_generator)
    if config.divergence_threshold:
      finite &= jnp.abs(loss) <= config.divergence_threshold
    keep_if_finite = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    # On divergence the bank gets its own starts back, i.e. stays as it was.
    chain_store = comps.chain_start.update(state.chain_store, ctx,
                                           jnp.where(finite, samples, starts))
    new_state = TrainState(
        step=state.step + finite.astype(jnp.int32),
        params=keep_if_finite(params, state.params),
        model_state=keep_if_finite(model_state, state.model_state),
        opt_state=keep_if_finite(opt_state, state.opt_state),
        chain_store=chain_store, rng=state.rng,
        generator=keep_if_finite(new_generator, state.generator))
    metrics = {
        "loss": loss, "d_s_t": aux.d_s_t,
        "energy_data": aux.energy_data, "energy_samples": aux.energy_samples,
        **samplers.chain_summary(init, final, info), **extra_metrics,
        "param_grad_norm": optax.tree.norm(grads), "lr": schedule(state.step),
        "finite": finite.astype(jnp.float32),
    }
    if comps.mesh is not None:
      new_state = jax.lax.with_sharding_constraint(
          new_state, parallel.state_shardings(new_state, comps.mesh))
    return new_state, metrics, {"data": x_data, "starts": starts, "samples": samples}

  return train_step


def make_sample_fn(config, comps: Components):
  """``sample(state, images, key, n) -> (starts, samples)``: the training sampler from the
  training init, reading but never writing the bank (final ``samples.npz``, landscapes,
  evaluation)."""

  def sample(state: TrainState, images: Array, key: Array, n: int):
    k_data, k_start, k_chain = jax.random.split(key, 3)
    x_data = draw_data(config, comps, images, k_data, n)
    starts = comps.chain_start.draw(state, k_start, x_data)[0]
    variables = {"params": state.params, **state.model_state}
    final, *_ = run_sampler(config, comps, variables, k_chain, starts)
    return starts, final.position

  return sample


# ----------------------------------------------------------------------------- the loop


_IGNORED_IN_RUN_ID = ("num_train_steps", "log_every_steps", "checkpoint_every_steps",
                      "keep_checkpoints", "num_final_samples", "num_grid_images")


def run_id(config) -> str:
  """A short hash of the settings that define a run (not its length or logging)."""
  c = config.to_dict()
  for key in _IGNORED_IN_RUN_ID:
    c.pop(key, None)
  return hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:8]


def load_training_images(config, log) -> np.ndarray | None:
  if data_lib.is_toy(config.data.name):
    return None
  images = data_lib.load_images(config.data.name, "train", data_dir=config.data.dir,
                                image_size=config.data.image_size,
                                classes=tuple(config.data.classes), log=log).images
  if jax.process_count() > 1:   # each host keeps only its share (equal shares: the rest dropped)
    usable = len(images) - len(images) % jax.device_count()
    images = images[parallel.process_slice(usable)]
  return images


def sampler_temperature_scale(config) -> float:
  """The factor ``c`` such that the training sampler targets ``exp(-c E)``.

  Langevin-type updates ``x - s grad E + sigma xi`` target ``exp(-(2 s / sigma^2) E)``
  (ebm-anatomy: ``2 / eps^2``); MALA and HMC target ``exp(-E)``. Noiseless samplers have no
  stationary density; for them the energy is read at temperature 1.
  """
  sc = config.sampler
  if sc.name in ("mala", "hmc") or sampler_noise_std(sc) == 0:
    return 1.0
  return 2.0 * sc.step_size / sampler_noise_std(sc) ** 2


def make_start_fn(config, comps: Components, init_name: str):
  """Jitted ``starts(state, images, key, n)`` from the chain initialiser ``init_name`` (read
  only: a bank or buffer is drawn from, never written)."""
  chain_start = make_chain_start(ml_collections.ConfigDict({**config.init.to_dict(),
                                                            "name": init_name}),
                                 comps.data.sample_shape, comps.generator)

  @functools.partial(jax.jit, static_argnums=3)
  def starts(state, images, key, n):
    k_data, k_start = jax.random.split(key)
    x_data = draw_data(config, comps, images, k_data, n)
    return chain_start.draw(state, k_start, x_data)[0]

  return starts


def draw_samples(config, comps, state, images_dev, key, n: int) -> np.ndarray:
  """``n`` samples of the model in ``state`` with the training sampler and init, in batches."""
  sample = jax.jit(make_sample_fn(config, comps), static_argnums=3)
  chunks = [parallel.fetch(sample(state, images_dev, jax.random.fold_in(key, i),
                                  config.batch_size)[1]).astype(np.float32)
            for i in range(-(-n // config.batch_size))]
  return (np.concatenate(chunks)[:n] if chunks
          else np.zeros((0, *comps.data.sample_shape), np.float32))


def write_final_samples(config, comps, state, images_dev, workdir, log,
                        path: str | None = None) -> str:
  """Draws ``num_final_samples`` from the model in ``state`` (training sampler and init) into
  ``path`` (default: the contract's ``samples.npz``)."""
  key = jax.random.fold_in(jax.random.fold_in(state.rng, _FINAL_SAMPLES_STREAM), state.step)
  x = draw_samples(config, comps, state, images_dev, key, config.num_final_samples)
  path = path or os.path.join(workdir, "samples.npz")
  if parallel.is_main_process():
    os.makedirs(os.path.dirname(path), exist_ok=True)
    reporting.set_aside(path, f"before_step_{int(state.step)}")
    reporting.write_npz(path, x=x)
  log(f"wrote {x.shape[0]} samples to {path}")
  return path


def evaluate_samples(config, workdir, path, step, log) -> None:
  """Scores samples with the evaluation classifier into eval.json (image datasets)."""
  if not parallel.is_main_process():
    return
  from ebm_jax import evaluation   # lazy: trains the classifier on first use
  record = evaluation.evaluate_run(workdir, path, log=log, step=step)
  log(f"step {step}: eval " + ", ".join(
      f"{k} {record[k]:.4g}" for k in ("fid", "kid", "inception_score", "class_entropy",
                                       "confident_fraction")))


def run_long_run(config, comps, state, images_dev, step: int):
  """ebm-anatomy's long-run check: ``longrun.num_steps`` of the training sampler from
  ``longrun.init``, on the current model."""
  key = jax.random.fold_in(jax.random.fold_in(state.rng, _LONGRUN_STREAM), step)
  k_start, k_chain = jax.random.split(key)
  x0 = make_start_fn(config, comps, config.longrun.init)(state, images_dev, k_start,
                                                         config.longrun.num_chains)
  return sampling.long_run(k_chain, comps.sampler, comps.energy,
                           {"params": state.params, **state.model_state}, x0,
                           config.longrun.num_steps,
                           chunk_steps=min(config.longrun.num_steps, 1000))


def toy_landscape(config, comps, state, images_dev, step: int):
  """True / model / KDE densities of a toy run, from ``diagnostics.kde_samples`` samples."""
  key = jax.random.fold_in(jax.random.fold_in(state.rng, _LANDSCAPE_STREAM), step)
  samples = draw_samples(config, comps, state, images_dev, key, config.diagnostics.kde_samples)
  energy_fn = functools.partial(comps.energy, {"params": state.params, **state.model_state})
  return diagnostics.toy_landscape(
      comps.data.toy.log_density, energy_fn, comps.data.toy.plot_limit,
      sampler_temperature_scale(config), samples, config.diagnostics.landscape_res,
      config.diagnostics.kde_bandwidth)


def place_dataset(images: np.ndarray | None, mesh) -> Array:
  """The training images on the devices: replicated on one host (each device gathers its
  batch locally), sharded along ``data`` across hosts (each host holds only its part)."""
  if images is None:
    return jnp.zeros((0,), jnp.uint8)
  if mesh is None:
    return jax.device_put(images)
  if jax.process_count() == 1:
    return jax.device_put(images, parallel.replicated(mesh))
  return parallel.global_array(images, mesh)


def prepare(config, log, *, need_images: bool = True):
  """Mesh, components, the initial state placed on the mesh, and the dataset on the devices."""
  mesh = parallel.make_mesh(config.parallel.num_devices)
  config_validation.validate_for_devices(config, mesh.devices.size)
  images = load_training_images(config, log) if need_images else None
  if images is None and not data_lib.is_toy(config.data.name):
    size, channels = config.data.image_size, data_lib.IMAGE_SOURCES[config.data.name].channels
    images = np.zeros((1, size, size, channels), np.uint8)   # shapes only
  comps = make_components(config, images, mesh if mesh.devices.size > 1 else None)
  state = init_state(config, comps)
  state = jax.device_put(state, parallel.state_shardings(state, mesh))
  return comps, state, place_dataset(images, mesh)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (or resumes) the run in ``workdir`` and writes the contract's outputs there."""
  config_validation.validate(config)
  os.makedirs(workdir, exist_ok=True)
  ckpt = checkpointing.Checkpointer(workdir, config.keep_checkpoints, config.checkpoint_dir)
  latest = ckpt.latest_step()
  log = functools.partial(reporting.log_line, workdir)
  reporting.write_config(workdir, config, latest or 0, log)

  comps, state, images_dev = prepare(config, log)
  if latest is not None:
    restored = ckpt.restore(state, log=log)
    if restored is not None:
      state = restored
      log(f"resumed from checkpoint at step {int(state.step)} in {ckpt.directory}")
  start_step = int(state.step)
  if (start_step >= config.num_train_steps
      and os.path.exists(os.path.join(workdir, "samples.npz"))):
    log(f"run already finished at step {start_step} (num_train_steps="
        f"{config.num_train_steps}); nothing to do. Raise --config.num_train_steps to continue.")
    ckpt.close()
    return state

  report = reporting.RunReporter(config, workdir, start_step, comps.data.toy)
  train_step = jax.jit(make_train_step(config, comps), donate_argnums=0)
  report.log(f"training {config.model.name} on {config.data.name} from step {start_step} to "
             f"{config.num_train_steps} (sampler {config.sampler.name}, "
             f"K={config.sampler.num_steps}, init {config.init.name}) on "
             f"{jax.device_count()} {jax.default_backend()} device(s); workdir "
             f"{os.path.abspath(workdir)}")
  from tqdm import tqdm
  bar = tqdm(total=config.num_train_steps, initial=start_step, unit="step", dynamic_ncols=True,
             file=sys.stderr)
  try:
    for step in range(start_step + 1, config.num_train_steps + 1):
      state, metrics, batch_images = train_step(state, images_dev)
      metrics = jax.tree.map(parallel.fetch, metrics)
      if not metrics["finite"]:
        _on_divergence(config, comps, state, images_dev, workdir, step, ckpt, report)
      report.record(step, metrics)
      bar.update(1)
      if every(config.longrun.every_steps, step):
        report.long_run(step, run_long_run(config, comps, state, images_dev, step))
      if every(config.log_every_steps, step) or step == config.num_train_steps:
        row = log_progress(config, comps, report, state, images_dev, step, batch_images)
        bar.set_postfix(loss=f"{row['loss']:.3g}", d_s_t=f"{row['d_s_t']:.3g}",
                        r_t=f"{row['r_t']:.3g}", sps=f"{row['samples_per_sec']:.0f}")
      if every(config.eval.every_steps, step) and step != config.num_train_steps:
        path = os.path.join(workdir, "eval_samples", f"samples_{step:06d}.npz")
        write_final_samples(config, comps, state, images_dev, workdir, report.log, path)
        evaluate_samples(config, workdir, path, step, report.log)
      if every(config.checkpoint_every_steps, step):
        ckpt.save(step, state)
  finally:
    bar.close()
  ckpt.save(int(state.step), state)
  report.log(f"finished {config.num_train_steps} steps; checkpoint in {ckpt.directory}")
  finish_run(config, comps, state, images_dev, workdir, report.log)
  ckpt.close()
  return state


def every(n: int, step: int) -> bool:
  """True at every ``n``-th step (never when ``n`` is 0)."""
  return bool(n) and step % n == 0


def log_progress(config, comps, report, state, images_dev, step: int, batch_images) -> dict:
  """A log step of one run: its metrics row, grids and figures, and at landscape steps (and the
  last step) a toy density's landscape with its KL metrics. Returns the metrics row."""
  final = step == config.num_train_steps
  extra = {}
  if comps.data.toy is not None and (
      every(config.diagnostics.landscape_every_steps, step) or final):
    extra = report.landscape(step, toy_landscape(config, comps, state, images_dev, step))
  return report.log_step(step, batch_images, extra, final=final)


def finish_run(config, comps, state, images_dev, workdir, log) -> None:
  """The end of a finished run: ``samples.npz`` and, when asked, its evaluation."""
  if config.num_final_samples:
    path = write_final_samples(config, comps, state, images_dev, workdir, log)
    if config.eval.at_end or config.eval.every_steps:
      evaluate_samples(config, workdir, path, int(state.step), log)


def _on_divergence(config, comps, state, images_dev, workdir, step, ckpt, report):
  """Keeps the last good state (checkpoint + sample grids) and stops with one line."""
  save_last_good(config, comps, state, images_dev, workdir, ckpt, step)
  ckpt.close()
  raise TrainingDiverged(
      f"training diverged at step {step}: the loss or the parameters became non-finite; the last "
      f"good state (step {int(state.step)}) is checkpointed and its samples are in "
      f"{os.path.join(workdir, 'images')}. Lower optimizer.learning_rate or sampler.step_size, "
      "or add loss.l2_energy / model.spectral_norm", step)


def save_last_good(config, comps, state, images_dev, workdir, ckpt, step: int) -> None:
  """A diverged run's last good state: its checkpoint, and grids of its chains' starts and
  samples, so the run can be inspected and resumed with gentler settings."""
  ckpt.save(int(state.step), state)
  sample = jax.jit(make_sample_fn(config, comps), static_argnums=3)
  starts, samples = sample(state, images_dev, jax.random.PRNGKey(step), config.batch_size)
  limit = comps.data.toy.plot_limit if comps.data.toy is not None else None
  for name, x in (("starts", starts), ("samples", samples)):
    reporting.save_samples(
        os.path.join(workdir, "images", f"diverged_last_good_{name}_{int(state.step):06d}.png"),
        x, f"last good {name}", limit, config.num_grid_images)


def load_run(workdir: str, step: int | None = None, *, need_images: bool = True):
  """Rebuilds a run from its ``config.json`` and checkpoint (the latest, or ``step``).

  Returns ``(config, comps, state, images_dev)``.
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise checkpointing.CheckpointError(f"{path} not found: {workdir} is not a training run")
  with open(path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  config.data.classes = tuple(config.data.classes)
  config_validation.validate(config)
  log = functools.partial(reporting.log_line, workdir)
  comps, template, images_dev = prepare(config, log, need_images=need_images)
  ckpt = checkpointing.Checkpointer(workdir, config.keep_checkpoints, config.checkpoint_dir)
  state = ckpt.restore(template, step=step, log=log)
  ckpt.close()
  if state is None:
    raise checkpointing.CheckpointError(f"no checkpoint in {ckpt.directory}")
  return config, comps, state, images_dev
