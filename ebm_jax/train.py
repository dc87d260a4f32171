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
import shutil
import sys
import time
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
from ebm_jax import inits
from ebm_jax import losses
from ebm_jax import models
from ebm_jax import plotting
from ebm_jax import samplers

Array = jax.Array

# fold_in tags of the non-step key streams (step keys use the step number, < 2**31).
_INIT_STREAM = 2 ** 32 - 1
_FINAL_SAMPLES_STREAM = 2 ** 32 - 2


class TrainingDiverged(RuntimeError):
  """The loss or the parameters became non-finite."""


@flax.struct.dataclass
class TrainState:
  step: Array                 # int32 scalar: number of updates applied
  params: Any                 # the energy network's trainable parameters
  model_state: Any            # other Flax collections (spectral-norm vectors), {} if none
  opt_state: Any              # Optax state
  chain_store: Any            # PersistentBank | ReplayBuffer | None
  rng: Array                  # uint32[2] base key; step keys are fold_in(rng, step)


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
  init_store: Callable[[Array], Any]                       # key -> store (or None)
  draw: Callable[[Any, Array, Array], tuple[Array, Any]]   # (store, key, data) -> starts, ctx
  update: Callable[[Any, Any, Array], Any]                 # (store, ctx, samples) -> store


def make_chain_start(ic, sample_shape: tuple) -> ChainStart:
  """The chain initialiser named ``ic.name`` (see configs/default.py, section init)."""
  no_store = lambda key: None
  keep = lambda store, ctx, samples: store
  dtype = jnp.dtype(ic.bank_dtype)

  def noise(store, key, x):
    return inits.noise_init(ic.name, key, x.shape, scale=ic.scale), None

  def from_data(store, key, x):
    return inits.data_init(key, x, noise_std=ic.data_noise_std), None

  def bank_draw(bank, key, x):
    return buffers.bank_draw(bank, key, x.shape[0])

  def replay_draw(buffer, key, x):
    starts, _ = buffers.replay_draw(buffer, key, x.shape[0], reinit_prob=ic.reinit_prob)
    return starts, None

  starts = {
      "uniform": lambda: ChainStart(no_store, noise, keep),
      "gaussian": lambda: ChainStart(no_store, noise, keep),
      "data": lambda: ChainStart(no_store, from_data, keep),
      "persistent": lambda: ChainStart(
          lambda key: buffers.init_persistent_bank(key, ic.bank_size, sample_shape, dtype=dtype),
          bank_draw, buffers.bank_write),
      "replay": lambda: ChainStart(
          lambda key: buffers.init_replay_buffer(key, ic.bank_size, sample_shape, dtype=dtype),
          replay_draw, lambda buffer, ctx, samples: buffers.replay_push(buffer, samples)),
  }
  return starts[ic.name]()


def make_sampler(sc) -> samplers.Sampler:
  """The chain kernel named ``sc.name`` (see configs/default.py, section sampler)."""
  kw = dict(clip_range=(-1.0, 1.0) if sc.clip_x else None,
            max_grad_norm=sc.max_grad_norm or None)
  builders = {
      "langevin": lambda: samplers.langevin(sc.step_size, sc.noise_std, **kw),
      "gradient_descent": lambda: samplers.gradient_descent(sc.step_size, **kw),
      "momentum_sgd": lambda: samplers.optax_sampler(
          samplers.thesis_momentum_sgd(sc.step_size, sc.momentum), sc.noise_std, **kw),
      "adam": lambda: samplers.optax_sampler(
          samplers.thesis_adam(sc.step_size, sc.adam_beta1, sc.adam_beta2), sc.noise_std, **kw),
      "mala": lambda: samplers.mala(sc.step_size),
      "hmc": lambda: samplers.hmc(sc.step_size, sc.hmc_leapfrog_steps),
  }
  return builders[sc.name]()


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


def make_components(config, images: np.ndarray | None) -> Components:
  module = models.get_model(config.model.name, n_f=config.model.n_f, leak=config.model.leak,
                            spectral_norm=config.model.spectral_norm,
                            conv_impl=config.model.conv_impl)
  source = make_data_source(config, images)
  return Components(module, models.make_energy_fn(module), make_sampler(config.sampler),
                    make_chain_start(config.init, source.sample_shape),
                    make_optimizer(config.optimizer), source)


def init_state(config, comps: Components) -> TrainState:
  rng = jax.random.PRNGKey(config.seed)
  k_params, k_store = jax.random.split(jax.random.fold_in(rng, _INIT_STREAM))
  example = jnp.zeros((1, *comps.data.sample_shape), jnp.float32)
  variables = models.init_variables(comps.module, k_params, example)
  params = variables.pop("params")
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=variables,
                    opt_state=comps.optimizer.init(params),
                    chain_store=comps.chain_start.init_store(k_store), rng=rng)


# ----------------------------------------------------------------------------- the step


def _unroll(config):
  return True if config.sampler.unroll == 0 else config.sampler.unroll


def sample_chains(config, comps: Components, variables, chain_store, key: Array,
                  data_batch: Array):
  """Chain starts -> K sampler steps. Shared by the train step and final sampling.

  Returns ``(starts, final ChainState, stacked ChainInfo, init ChainState, ctx)``.
  """
  k_start, k_chain = jax.random.split(key)
  energy_fn = functools.partial(comps.energy, variables)
  starts, ctx = comps.chain_start.draw(chain_store, k_start, data_batch)
  init = comps.sampler.init(starts, energy_fn)
  final, info = samplers.run_chain(k_chain, comps.sampler.step, init, energy_fn,
                                   config.sampler.num_steps, unroll=_unroll(config))
  return starts, final, info, init, ctx


def draw_data(config, comps: Components, images: Array, key: Array, n: int) -> Array:
  k_draw, k_noise = jax.random.split(key)
  x = comps.data.draw(images, k_draw, n)
  if config.data.noise_std:
    x = x + config.data.noise_std * jax.random.normal(k_noise, x.shape, x.dtype)
  return x


def _all_finite(tree) -> Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))


def make_train_step(config, comps: Components):
  """Returns the (unjitted) pure ``train_step(state, images) -> (state, metrics, images)``."""
  schedule = make_lr_schedule(config.optimizer)

  def train_step(state: TrainState, images: Array):
    key = jax.random.fold_in(state.rng, state.step)
    k_data, k_chain = jax.random.split(key)
    x_data = draw_data(config, comps, images, k_data, config.batch_size)
    # The power iteration advances once per update, before sampling; chains only read it.
    variables = models.update_spectral_state(
        comps.module, {"params": state.params, **state.model_state}, x_data)
    model_state = {k: v for k, v in variables.items() if k != "params"}
    starts, final, info, init, ctx = sample_chains(config, comps, variables,
                                                   state.chain_store, k_chain, x_data)
    samples = jax.lax.stop_gradient(final.position)

    def loss_fn(params):
      energy_fn = functools.partial(comps.energy, {"params": params, **model_state})
      return losses.contrastive_loss(energy_fn, x_data, samples, scale=config.loss.scale,
                                     l2_energy=config.loss.l2_energy)

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = comps.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & _all_finite(params)
    keep_if_finite = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    # On divergence the bank gets its own starts back, i.e. stays as it was.
    chain_store = comps.chain_start.update(state.chain_store, ctx,
                                           jnp.where(finite, samples, starts))
    new_state = TrainState(
        step=state.step + finite.astype(jnp.int32),
        params=keep_if_finite(params, state.params),
        model_state=keep_if_finite(model_state, state.model_state),
        opt_state=keep_if_finite(opt_state, state.opt_state),
        chain_store=chain_store, rng=state.rng)
    metrics = {
        "loss": loss, "d_s_t": aux.d_s_t,
        "energy_data": aux.energy_data, "energy_samples": aux.energy_samples,
        **samplers.chain_summary(init, final, info),
        "param_grad_norm": optax.tree.norm(grads), "lr": schedule(state.step),
        "finite": finite.astype(jnp.float32),
    }
    return new_state, metrics, {"data": x_data, "starts": starts, "samples": samples}

  return train_step


def make_sample_fn(config, comps: Components):
  """``sample(state, images, key, n) -> samples``: the training sampler and init, without
  writing to the bank (used for the final ``samples.npz``)."""

  def sample(state: TrainState, images: Array, key: Array, n: int):
    k_data, k_chain = jax.random.split(key)
    x_data = draw_data(config, comps, images, k_data, n)
    variables = {"params": state.params, **state.model_state}
    starts, final, *_ = sample_chains(config, comps, variables, state.chain_store, k_chain,
                                      x_data)
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


def _log(workdir: str, message: str) -> None:
  """Prints above the progress bar and appends to ``<workdir>/log.txt``."""
  from tqdm import tqdm
  tqdm.write(message, file=sys.stderr)
  with open(os.path.join(workdir, "log.txt"), "a") as f:
    f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + message + "\n")


def _set_aside(path: str, suffix: str) -> None:
  """Renames an existing file to ``<stem>_<suffix><ext>`` (never deletes a finished run's file)."""
  if os.path.exists(path):
    stem, ext = os.path.splitext(path)
    target = f"{stem}_{suffix}{ext}"
    n = 1
    while os.path.exists(target):
      target, n = f"{stem}_{suffix}.{n}{ext}", n + 1
    os.replace(path, target)


def _write_config(workdir: str, config, step: int, log) -> None:
  path = os.path.join(workdir, "config.json")
  text = json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)
  if os.path.exists(path):
    with open(path) as f:
      if f.read() == text:
        return
    _set_aside(path, f"until_step_{step}")
    log(f"config changed since the last run; previous config kept as config_until_step_{step}.json")
  with open(path, "w") as f:
    f.write(text)


def _mean_rows(rows: list[dict]) -> dict:
  return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _save_images(workdir, step, batch_images, comps: Components, num: int) -> None:
  host = jax.device_get(batch_images)
  if comps.data.toy is not None:
    plotting.save_points(os.path.join(workdir, "images", f"points_{step:06d}.png"),
                         {k: v[:2000] for k, v in host.items()}, comps.data.toy.plot_limit,
                         f"step {step}")
    return
  for name, x in host.items():
    plotting.save_image_grid(os.path.join(workdir, "images", f"{name}_{step:06d}.png"), x, num)


def _rewind_history(path: str, step: int) -> list[dict]:
  """The metrics rows up to ``step``; later rows (logged after the checkpoint we resume from)
  are dropped from the file, since the resumed run replays those steps exactly."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  kept = [r for r in rows if r["step"] <= step]
  if len(kept) < len(rows):
    with open(path + ".tmp", "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(path + ".tmp", path)
  return kept


def load_training_images(config, log) -> np.ndarray | None:
  if data_lib.is_toy(config.data.name):
    return None
  return data_lib.load_images(config.data.name, "train", data_dir=config.data.dir,
                              image_size=config.data.image_size,
                              classes=tuple(config.data.classes), log=log).images


def write_final_samples(config, comps, state, images_dev, workdir, log) -> str:
  """Draws ``num_final_samples`` from the final model (training sampler and init)."""
  sample = jax.jit(make_sample_fn(config, comps), static_argnums=3)
  key = jax.random.fold_in(jax.random.fold_in(state.rng, _FINAL_SAMPLES_STREAM), state.step)
  chunks, n = [], config.num_final_samples
  for i in range(-(-n // config.batch_size)):
    _, x = sample(state, images_dev, jax.random.fold_in(key, i), config.batch_size)
    chunks.append(np.asarray(x, np.float32))
  x = np.concatenate(chunks)[:n] if chunks else np.zeros((0, *comps.data.sample_shape),
                                                        np.float32)
  path = os.path.join(workdir, "samples.npz")
  _set_aside(path, f"before_step_{int(state.step)}")
  tmp = path + ".tmp.npz"
  np.savez(tmp, x=x)
  os.replace(tmp, path)
  log(f"wrote {x.shape[0]} samples to {path}")
  return path


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (or resumes) the run in ``workdir`` and writes the contract's outputs there."""
  config_validation.validate(config)
  os.makedirs(workdir, exist_ok=True)
  log = functools.partial(_log, workdir)
  ckpt = checkpointing.Checkpointer(workdir, config.keep_checkpoints)
  latest = ckpt.latest_step()
  samples_path = os.path.join(workdir, "samples.npz")
  _write_config(workdir, config, latest or 0, log)

  images = load_training_images(config, log)
  comps = make_components(config, images)
  images_dev = jnp.asarray(images) if images is not None else jnp.zeros((0,), jnp.uint8)
  state = init_state(config, comps)
  if latest is not None:
    restored = ckpt.restore(state, log=log)
    if restored is not None:
      state = restored
      log(f"resumed from checkpoint at step {int(state.step)} in {ckpt.directory}")
  start_step = int(state.step)
  if start_step >= config.num_train_steps and os.path.exists(samples_path):
    log(f"run already finished at step {start_step} (num_train_steps="
        f"{config.num_train_steps}); nothing to do. Raise --config.num_train_steps to continue.")
    ckpt.close()
    return state

  train_step = jax.jit(make_train_step(config, comps), donate_argnums=0)
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  history = _rewind_history(metrics_path, start_step)
  wall_offset = history[-1]["wall_time"] if history else 0.0
  log(f"training {config.model.name} on {config.data.name} from step {start_step} to "
      f"{config.num_train_steps} (sampler {config.sampler.name}, K={config.sampler.num_steps}, "
      f"init {config.init.name}); workdir {os.path.abspath(workdir)}")

  from tqdm import tqdm
  window: list[dict] = []
  t_window = time.perf_counter()
  t_start = time.time()
  bar = tqdm(total=config.num_train_steps, initial=start_step, unit="step", dynamic_ncols=True,
             file=sys.stderr)
  try:
    for step in range(start_step + 1, config.num_train_steps + 1):
      state, metrics, batch_images = train_step(state, images_dev)
      metrics = jax.device_get(metrics)
      if not metrics["finite"]:
        _on_divergence(config, comps, state, images_dev, batch_images, workdir, step, ckpt, log)
      window.append(metrics)
      bar.update(1)
      if step % config.log_every_steps == 0 or step == config.num_train_steps:
        elapsed = time.perf_counter() - t_window
        row = {"step": step, **_mean_rows(window),
               "samples_per_sec": config.batch_size * len(window) / elapsed,
               "wall_time": wall_offset + time.time() - t_start}
        row.pop("finite")
        with open(metrics_path, "a") as f:
          f.write(json.dumps(row) + "\n")
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3g}", d_s_t=f"{row['d_s_t']:.3g}",
                        r_t=f"{row['r_t']:.3g}", sps=f"{row['samples_per_sec']:.0f}")
        _save_images(workdir, step, batch_images, comps, config.num_grid_images)
        plotting.save_training_curves(os.path.join(workdir, "plots", "training.png"), history)
        window, t_window = [], time.perf_counter()
      if step % config.checkpoint_every_steps == 0:
        ckpt.save(step, state)
  finally:
    bar.close()
  ckpt.save(int(state.step), state)
  log(f"finished {config.num_train_steps} steps; checkpoint in {ckpt.directory}")
  if config.num_final_samples:
    write_final_samples(config, comps, state, images_dev, workdir, log)
  ckpt.close()
  return state


def _on_divergence(config, comps, state, images_dev, batch_images, workdir, step, ckpt, log):
  """Keeps the last good state (checkpoint + sample grids) and stops with one line."""
  ckpt.save(int(state.step), state)
  sample = jax.jit(make_sample_fn(config, comps), static_argnums=3)
  starts, samples = sample(state, images_dev, jax.random.PRNGKey(step), config.batch_size)
  _save_images(workdir, int(state.step), {"diverged_last_good_starts": starts,
                                          "diverged_last_good_samples": samples},
               comps, config.num_grid_images)
  ckpt.close()
  raise TrainingDiverged(
      f"training diverged at step {step}: the loss or the parameters became non-finite; the last "
      f"good state (step {int(state.step)}) is checkpointed and its samples are in "
      f"{os.path.join(workdir, 'images')}. Lower optimizer.learning_rate or sampler.step_size, "
      "or add loss.l2_energy / model.spectral_norm")
