"""A run's components and every jitted function it uses, built once and reused.

A :class:`Runner` serves ``M >= 1`` models that share one static config (a single run is a group
of one): their states are stacked along a leading model axis and one jitted step updates all of
them, ``step(states, hparams, images, active) -> (states, metrics, batch_images)`` (``active``:
``[M]`` bools, False for a model that waits unchanged): ``jax.vmap`` of the objective's step
for ``M > 1``, the plain step for ``M = 1``, so a single run compiles exactly the program it
always did. The per-model functions (chain starts, samples, long runs,
landscapes) take one model's state and :class:`~ebm_jax.hparams.HParams` as arguments, so every
model, checkpoint and batch reuses one compiled program.

Placement: a single model is data-parallel (batch, chains and bank sharded along a ``data`` mesh
axis, parameters replicated); a group is model-parallel (the stacked models sharded along a
``models`` axis when the devices divide them, each model's batch on one device).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax import chain_starts
from ebm_jax import checkpointing
from ebm_jax import config as config_lib
from ebm_jax import data as data_lib
from ebm_jax import diagnostics
from ebm_jax import hparams as hparams_lib
from ebm_jax import objectives
from ebm_jax import parallel
from ebm_jax import rundir
from ebm_jax import samplers
from ebm_jax import sampling
from ebm_jax.hparams import HParams
from ebm_jax.objectives import base

Array = jax.Array

# fold_in tags of the non-step key streams (step keys use the step number, < 2**31; the
# initialisation stream is base.INIT_STREAM = 2**32 - 1).
FINAL_SAMPLES_STREAM = 2 ** 32 - 2
LONGRUN_STREAM = 2 ** 32 - 3
LANDSCAPE_STREAM = 2 ** 32 - 4


def stack(trees: Sequence[Any]):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, i: int):
  return jax.tree.map(lambda a: a[i], tree)


def _expand(tree):
  return jax.tree.map(lambda a: a[None], tree)


def _squeeze(tree):
  return jax.tree.map(lambda a: a[0], tree)


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


def shape_only_images(config) -> np.ndarray | None:
  """A one-image stand-in with the dataset's shape (for runs that need no data draws)."""
  if data_lib.is_toy(config.data.name):
    return None
  size, channels = config.data.image_size, data_lib.IMAGE_SOURCES[config.data.name].channels
  return np.zeros((1, size, size, channels), np.uint8)


def place_dataset(images: np.ndarray | None, mesh) -> Array:
  """The training images on the devices: replicated on one host (each device gathers its
  batch locally), sharded along ``data`` across hosts (each host holds only its part)."""
  if images is None:
    return jnp.zeros((0,), jnp.uint8)
  if mesh is None:
    return jax.device_put(images)
  if jax.process_count() == 1 or parallel.DATA_AXIS not in mesh.axis_names:
    return jax.device_put(images, parallel.replicated(mesh))
  return parallel.global_array(images, mesh)


def model_mesh(num_models: int):
  """A mesh whose ``models`` axis shards a group's models over the devices when their number
  divides evenly (e.g. two CPU devices); None otherwise."""
  devices = jax.devices()
  if len(devices) < 2 or num_models % len(devices):
    return None
  return jax.sharding.Mesh(np.asarray(devices), (parallel.MODELS_AXIS,))


class Runner:
  """Components, placement and every jitted function of ``num_models`` models of ``config``."""

  def __init__(self, config, images: np.ndarray | None, num_models: int = 1):
    self.config = config
    self.num_models = num_models
    if config.parallel.num_devices > jax.device_count():
      raise config_lib.ConfigError(
          f"config.parallel.num_devices: {config.parallel.num_devices} requested but only "
          f"{jax.device_count()} devices exist (0 = all of them)")
    if num_models == 1:
      mesh = parallel.make_mesh(config.parallel.num_devices)
      config_lib.validate_for_devices(config, mesh.devices.size)
      data_mesh = mesh if mesh.devices.size > 1 else None
    else:
      mesh, data_mesh = model_mesh(num_models), None
    self.mesh = mesh
    self.comps = base.make_components(config, images, data_mesh)
    self.objective = objectives.build(config, self.comps)
    self.images = place_dataset(images, mesh)
    self.toy = self.comps.data.toy
    one_init, one_step = self.objective.init_state, self.objective.train_step
    if num_models == 1:
      init = lambda hp: _expand(one_init(_squeeze(hp)))                    # noqa: E731
      step = lambda s, hp, x, active: _expand(                             # noqa: E731
          one_step(_squeeze(s), _squeeze(hp), x, active[0]))
    else:
      init, step = jax.vmap(one_init), jax.vmap(one_step, in_axes=(0, 0, None, 0))
    self._init = jax.jit(init)
    self.step = jax.jit(step, donate_argnums=0)
    self.all_active = self.active([True] * num_models)
    self._energy = jax.jit(self.comps.energy)
    self._samplers: dict[str, Callable] = {}
    self._start_fns: dict[tuple[str, int], Callable] = {}
    self._long_runner = None
    self._chains = None
    self._kde_floors: dict[int, float] = {}   # KL(true || KDE) of n exact toy samples, per n
    # The config the chains of samples.npz / evaluations run under (their own K).
    self.final_config = config
    if config.final_num_steps:
      self.final_config = config.copy_and_resolve_references()
      self.final_config.sampler.num_steps = config.final_num_steps

  # --- the stacked models

  def place(self, tree):
    """Puts a stacked state (or hparams) where the step expects it."""
    if self.mesh is None:
      return jax.device_put(tree)
    return jax.device_put(tree, parallel.stacked_shardings(tree, self.mesh))

  def hparams(self, configs: Sequence[Any]) -> HParams:
    return self.place(hparams_lib.stack([hparams_lib.from_config(c) for c in configs]))

  def init(self, hparams: HParams):
    return self.place(self._init(hparams))

  def active(self, flags) -> jax.Array:
    """The ``[M]`` mask of models the step updates (:attr:`all_active`: every one)."""
    return self.place(np.asarray(flags, bool))

  def replace(self, states, i: int, state):
    """The stacked states with model ``i``'s replaced by ``state``."""
    return self.place(jax.tree.map(lambda a, b: a.at[i].set(b), states, state))

  # --- one model

  def eval_variables(self, state) -> dict:
    """The variables every sample and evaluation of the model uses: the EMA of the energy
    parameters when ``ema.decay > 0`` (training chains always use the raw ones)."""
    params = state.params if state.ema_params is None else state.ema_params
    return {"params": params, **state.model_state}

  def energy_fn(self, state) -> Callable[[Array], Array]:
    """The model's batch energy, compiled once per run."""
    variables = self.eval_variables(state)
    return lambda x: self._energy(variables, x)

  def _starts(self, init_name: str, n: int) -> Callable:
    start = self.objective.chain_start(init_name)
    config, comps = self.config, self.comps

    def starts(state, hp, images, key):
      k_data, k_start = jax.random.split(key)
      x_data = base.draw_data(config, comps, images, k_data, n)
      return start.draw(state, k_start, x_data, hp)[0]

    return starts

  def starts_fn(self, init_name: str, n: int) -> Callable:
    """Jitted ``starts(state, hp, images, key)``: ``n`` chain starts from ``init_name`` (read
    only: a bank or buffer is drawn from, never written)."""
    if (init_name, n) not in self._start_fns:
      self._start_fns[init_name, n] = jax.jit(self._starts(init_name, n))
    return self._start_fns[init_name, n]

  def sample_fn(self, init_name: str | None = None, final: bool = False) -> Callable:
    """Jitted ``sample(state, hp, images, key) -> (starts, samples)``: one batch of the
    training sampler from ``init_name`` (default: the training init), reading but never
    writing the bank; with ``final``, chains of ``final_num_steps``."""
    init_name = init_name or self.config.init.name
    if (init_name, final) not in self._samplers:
      draw_starts = self._starts(init_name, self.config.batch_size)
      config, comps = (self.final_config if final else self.config), self.comps

      chain_hp = self.final_hparams if final else (lambda hp: hp)

      def sample(state, hp, images, key):
        k_start, k_chain = jax.random.split(key)
        starts = draw_starts(state, hp, images, k_start)
        final, *_ = base.run_sampler(config, comps, chain_hp(hp), self.eval_variables(state),
                                     k_chain, starts)
        return starts, final.position

      self._samplers[init_name, final] = jax.jit(sample)
    return self._samplers[init_name, final]

  def _chains_from(self) -> Callable:
    """Jitted ``chains(state, hp, starts, key)``: the training sampler's ``final_num_steps``
    (else K) steps from given starts (evaluation weights)."""
    if self._chains is None:
      config, comps = self.final_config, self.comps

      def chains(state, hp, starts, key):
        final, *_ = base.run_sampler(config, comps, self.final_hparams(hp),
                                     self.eval_variables(state), key, starts)
        return final.position

      self._chains = jax.jit(chains)
    return self._chains

  def final_hparams(self, hp: HParams) -> HParams:
    """``hp`` for the final chains: step size x ``final_step_fraction`` and noise x its square
    root, so Langevin's target density is the training chains' with less discretisation bias
    (on the rings, KL(true || KDE) 0.122 -> 0.089 at a quarter of the step)."""
    f = self.config.final_step_fraction
    if f == 1:
      return hp
    return hp.replace(step_size=hp.step_size * f, noise_std=hp.noise_std * f ** 0.5)

  def draw_samples(self, state, hp: HParams, key: Array, n: int, *,
                   with_starts: bool = False):
    """``n`` samples of the model in ``state``: the training sampler from the training init, in
    batches. With a bank or buffer holding the whole batches, ``n`` distinct chains of it (a
    random subset) are continued, so no sample is another's duplicate; a
    buffer's starts are its chains, without noise restarts. ``with_starts``: ``(starts,
    samples)``, row ``i`` of ``starts`` the start of chain ``i``."""
    b, store = self.config.batch_size, state.chain_store
    batches = range(-(-n // b))
    if store is not None and store.samples.shape[0] >= len(batches) * b:
      chains = self._chains_from()
      k_rows, key = jax.random.split(key)
      rows = np.asarray(jax.random.permutation(k_rows, store.samples.shape[0]))
      starts = [store.samples[rows[i * b:(i + 1) * b]].astype(jnp.float32) for i in batches]
      chunks = [(x0, chains(state, hp, x0, jax.random.fold_in(key, i)))
                for i, x0 in zip(batches, starts)]
    else:
      sample = self.sample_fn(final=True)
      chunks = [sample(state, hp, self.images, jax.random.fold_in(key, i)) for i in batches]

    def gathered(j):   # j = 0: the starts, 1: the samples
      if not chunks:
        return np.zeros((0, *self.comps.data.sample_shape), np.float32)
      return np.concatenate([parallel.fetch(c[j]).astype(np.float32) for c in chunks])[:n]

    return (gathered(0), gathered(1)) if with_starts else gathered(1)

  def sampling_protocol(self, n: int) -> str:
    """How :meth:`draw_samples` makes ``n`` samples, in words (logged beside them)."""
    c = self.config
    sc, init = c.sampler, c.init.name
    whole_batches = -(-n // c.batch_size) * c.batch_size
    if chain_starts.STARTS[init].has_store and c.init.bank_size >= whole_batches:
      store = "bank" if init == "persistent" else "buffer"
      start = f"{n} distinct chains of the {init} {store}"
    else:
      start = f"{n} chains from {init} starts"
    weights = f"EMA weights (decay {c.ema.decay:g})" if c.ema.decay else "raw weights"
    k, f = self.final_config.sampler.num_steps, c.final_step_fraction
    return (f"{start}, continued K = {k} {sc.name} steps (step {sc.step_size * f:g}, "
            f"noise {samplers.effective_noise_std(sc) * f ** 0.5:g}) with the {weights}")

  def final_samples(self, state, hp: HParams, *, with_starts: bool = False):
    """``samples.npz``: ``num_final_samples`` chains of the training sampler (K steps, the
    evaluation weights) from the training init (distinct chains of a bank or buffer)."""
    key = jax.random.fold_in(jax.random.fold_in(state.rng, FINAL_SAMPLES_STREAM), state.step)
    return self.draw_samples(state, hp, key, self.config.num_final_samples,
                             with_starts=with_starts)

  def long_run(self, state, hp: HParams, step: int,
               init: str | None = None) -> sampling.LongRun:
    """ebm-anatomy's long-run check: ``longrun.num_steps`` of the training sampler from
    ``init`` (default ``longrun.init``) on the current model, at the step and noise of the
    final chains (:meth:`final_hparams`): the chain that makes ``samples.npz``, run longer, so
    a long run differs from the short-run samples in its length alone."""
    lc = self.config.longrun
    hp = self.final_hparams(hp)
    if self._long_runner is None:
      sc = self.config.sampler
      self._long_runner = sampling.ChainRunner(
          lambda p: samplers.build(sc, *p), self.comps.energy,
          chunk_steps=min(lc.num_steps, 1000))
    key = jax.random.fold_in(jax.random.fold_in(state.rng, LONGRUN_STREAM), step)
    k_start, k_chain = jax.random.split(key)
    x0 = self.starts_fn(init or lc.init, lc.num_chains)(state, hp, self.images, k_start)
    return self._long_runner.run(k_chain, self.eval_variables(state),
                                 (hp.step_size, hp.noise_std), x0, lc.num_steps)

  def temperature(self) -> float:
    """``c`` of the density ``exp(-c E)`` the training sampler targets; 1 for samplers with no
    stationary density (the energy is then read at temperature 1)."""
    c = samplers.temperature(self.config.sampler)
    return 1.0 if c is None else float(c)

  def landscape(self, state, hp: HParams, step: int,
                samples: np.ndarray | None = None) -> diagnostics.Landscape:
    """True / model / KDE densities of a toy run, from ``diagnostics.kde_samples`` samples of
    the training sampler (or from ``samples``), with the KDE floor of as many exact samples."""
    dc = self.config.diagnostics
    if samples is None:
      key = jax.random.fold_in(jax.random.fold_in(state.rng, LANDSCAPE_STREAM), step)
      samples = self.draw_samples(state, hp, key, dc.kde_samples)
    n = len(samples)
    if n not in self._kde_floors:
      self._kde_floors[n] = diagnostics.kde_floor(self.toy, n, self.toy.plot_limit,
                                                  dc.landscape_res, dc.kde_bandwidth)
    return diagnostics.toy_landscape(self.toy.log_density, self.energy_fn(state),
                                     self.toy.plot_limit, self.temperature(), samples,
                                     dc.landscape_res, dc.kde_bandwidth)._replace(
                                         kl_kde_floor=self._kde_floors[n])

  # --- checkpoints

  def restore(self, ckpts: Sequence[checkpointing.Checkpointer], states, log):
    """The models' states at their newest checkpoint (a group: the newest step all its models
    hold); ``(states, 0)`` when there is none."""
    steps = [set(c.all_steps()) for c in ckpts]
    if not any(steps):
      return states, 0
    if len(ckpts) == 1:
      restored = ckpts[0].restore(unstack(states, 0), log=log)
      if restored is None:
        return states, 0
      return self.place(_expand(restored)), int(restored.step)
    common = set.intersection(*steps)
    if not common:
      raise checkpointing.CheckpointError(
          "the models of this group hold checkpoints of different steps; resume them one by "
          "one (sweep.py --cells=<cell>)")
    step = max(common)
    restored = [c.restore(unstack(states, i), step=step, log=log) for i, c in enumerate(ckpts)]
    return self.place(stack(restored)), step


def load_run(workdir: str, step: int | None = None, *, need_images: bool = True):
  """Rebuilds a run from its ``config.json`` and checkpoint (the latest, or ``step``).

  Returns ``(config, runner, state, hparams)`` for the one model of the run.
  """
  path = os.path.join(workdir, rundir.CONFIG)
  if not os.path.exists(path):
    raise checkpointing.CheckpointError(f"{path} not found: {workdir} is not a training run")
  log = functools.partial(rundir.log_line, workdir)
  with open(path) as f:
    config = config_lib.from_saved_run(json.load(f), log)
  images = load_training_images(config, log) if need_images else shape_only_images(config)
  runner = Runner(config, images)
  hp = runner.hparams([config])
  ckpt = checkpointing.Checkpointer(workdir, config.keep_checkpoints, config.checkpoint_dir)
  state = ckpt.restore(unstack(runner.init(hp), 0), step=step, log=log)
  ckpt.close()
  if state is None:
    raise checkpointing.CheckpointError(f"no checkpoint in {ckpt.directory}")
  return config, runner, state, unstack(hp, 0)
