"""A run's components and every jitted function it uses, built once and reused.

A :class:`Runner` serves ``M >= 1`` models that share one static :class:`~ebm_jax.spec.Spec`
(a single run is a group of one): their states are stacked along a leading model axis and one
jitted step updates all of them, ``step(states, hparams, images, active) -> (states, metrics,
batch_images)`` (``active``: ``[M]`` bools, False for a model that waits unchanged):
``jax.vmap`` of the objective's step for ``M > 1``, the plain step for ``M = 1``, so a single
run compiles exactly the program it always did. The per-model functions (chain starts, samples,
long runs, landscapes, temperature, the sampling protocol) take one model's state and
:class:`~ebm_jax.hparams.HParams` as arguments: every model, checkpoint and batch reuses one
compiled program, and no model is measured with another's settings.

Placement: a single model is data-parallel (batch, chains and bank sharded along a ``data`` mesh
axis, parameters replicated); a group is model-parallel (the stacked models sharded along a
``models`` axis when the devices divide them, each model's batch on one device).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax.core import chain_starts
from ebm_jax.run import checkpointing
from ebm_jax import config as config_lib
from ebm_jax import data as data_lib
from ebm_jax.eval import diagnostics
from ebm_jax import hparams as hparams_lib
from ebm_jax.core import objectives
from ebm_jax.core import parallel
from ebm_jax.run import rundir
from ebm_jax.core import samplers
from ebm_jax.core import chain_runner as sampling
from ebm_jax import spec as spec_lib
from ebm_jax.hparams import HParams
from ebm_jax.core.objectives import base

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


def load_training_images(spec, log) -> np.ndarray | None:
  """The training images of a spec's (or config's) dataset; None for a toy density."""
  dc = spec.data
  if data_lib.is_toy(dc.name):
    return None
  images = data_lib.load_images(dc.name, "train", data_dir=dc.dir, image_size=dc.image_size,
                                classes=tuple(dc.classes), log=log).images
  if jax.process_count() > 1:   # each host keeps only its share (equal shares: the rest dropped)
    usable = len(images) - len(images) % jax.device_count()
    images = images[parallel.process_slice(usable)]
  return images


def shape_only_images(spec) -> np.ndarray | None:
  """A one-image stand-in with the dataset's shape (for runs that need no data draws)."""
  if data_lib.is_toy(spec.data.name):
    return None
  shape = data_lib.get(spec.data.name).sample_shape(spec.data.image_size)
  return np.zeros((1, *shape), np.uint8)


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
  """Components, placement and every jitted function of ``num_models`` models of ``spec``.

  The runner holds only the static :class:`~ebm_jax.spec.Spec` the models share; everything
  that depends on one model's per-model values (its temperature, its samples, its long runs,
  its landscape, the protocol line beside its samples) takes that model's
  :class:`~ebm_jax.hparams.HParams`.
  """

  def __init__(self, spec: spec_lib.Spec, images: np.ndarray | None, num_models: int = 1):
    if not isinstance(spec, spec_lib.Spec):
      raise TypeError("Runner takes the static spec: Runner(spec.from_config(config), images); "
                      "the per-model values go to runner.hparams([config, ...])")
    self.spec = spec
    self.num_models = num_models
    if spec.parallel.num_devices > jax.device_count():
      raise config_lib.ConfigError(
          f"config.parallel.num_devices: {spec.parallel.num_devices} requested but only "
          f"{jax.device_count()} devices exist (0 = all of them)")
    if num_models == 1:
      mesh = parallel.make_mesh(spec.parallel.num_devices)
      config_lib.validate_for_devices(spec, mesh.devices.size)
      data_mesh = mesh if mesh.devices.size > 1 else None
    else:
      mesh, data_mesh = model_mesh(num_models), None
    self.mesh = mesh
    data_source = data_lib.get(spec.data.name).make_source(spec.data, images)
    self.comps = objectives.make_components(spec, data_source, data_mesh)
    self.objective = objectives.build(spec, self.comps)
    self.images = place_dataset(images, mesh)
    self.toy = self.comps.data.toy
    self.start = chain_starts.STARTS[spec.init.name]   # the training chain start's entry
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
    self._store_chains = None
    self._kde_floors: dict[int, tuple] = {}   # both toy KLs of n exact samples, per n

  # --- the stacked models

  def place(self, tree):
    """Puts a stacked state (or hparams) where the step expects it."""
    if self.mesh is None:
      return jax.device_put(tree)
    return jax.device_put(tree, parallel.stacked_shardings(tree, self.mesh))

  def hparams(self, configs: Sequence[Any]) -> HParams:
    """The stacked per-model values of ``configs`` (one per model), placed."""
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
    noise_std, comps = self.spec.data.noise_std, self.comps

    def starts(state, hp, images, key):
      k_data, k_start = jax.random.split(key)
      x_data = base.draw_data(noise_std, comps, images, k_data, n)
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
    writing the bank; with ``final``, the final chains (``final_num_steps``,
    ``final_step_fraction``)."""
    init_name = init_name or self.spec.init.name
    if (init_name, final) not in self._samplers:
      draw_starts = self._starts(init_name, self.spec.batch_size)
      sc = self.spec.final_sampler if final else self.spec.sampler
      chain_hp = self.final_hparams if final else (lambda hp: hp)
      objective = self.objective

      def sample(state, hp, images, key):
        k_start, k_chain = jax.random.split(key)
        starts = draw_starts(state, hp, images, k_start)
        return starts, objective.sample(sc, chain_hp(hp), self.eval_variables(state), k_chain,
                                        starts)

      self._samplers[init_name, final] = jax.jit(sample)
    return self._samplers[init_name, final]

  def _chains_from_store(self) -> Callable:
    """Jitted ``chains(state, hp, rows, key) -> (starts, samples)``: the final chains from the
    given rows of the model's bank or buffer. The rows are gathered inside the one program:
    indexing a sharded store eagerly, once per batch, put many small programs with collectives
    in flight at once, which deadlocked XLA's CPU client on 4 devices."""
    if self._store_chains is None:
      sc, objective = self.spec.final_sampler, self.objective

      stored = self.start.chains

      def chains(state, hp, rows, key):
        starts = stored(state.chain_store)[rows].astype(jnp.float32)
        return starts, objective.sample(sc, self.final_hparams(hp), self.eval_variables(state),
                                        key, starts)

      self._store_chains = jax.jit(chains)
    return self._store_chains

  def final_hparams(self, hp: HParams) -> HParams:
    """``hp`` for the final chains: step size x ``final_step_fraction`` and noise x its square
    root, so Langevin's target density is the training chains' with less discretisation bias
    (on the rings, KL(true || KDE) 0.122 -> 0.089 at a quarter of the step)."""
    f = self.spec.final_step_fraction
    if f == 1:
      return hp
    return hp.replace(step_size=hp.step_size * f, noise_std=hp.noise_std * f ** 0.5)

  def _from_store(self, state, n: int) -> bool:
    """Whether ``n`` samples continue distinct chains of the model's bank or buffer (it holds
    the whole batches)."""
    b = self.spec.batch_size
    return self.start.has_store and self.start.chains(state.chain_store).shape[0] >= -(-n // b) * b

  def draw_samples(self, state, hp: HParams, key: Array, n: int, *,
                   with_starts: bool = False):
    """``n`` samples of the model in ``state`` with its ``hp``: the final chains from the
    training init, in batches. With a bank or buffer holding the whole batches, ``n`` distinct
    chains of it (a random subset) are continued, so no sample is another's duplicate; a
    buffer's starts are its chains, without noise restarts. ``with_starts``: ``(starts,
    samples)``, row ``i`` of ``starts`` the start of chain ``i``. Each batch is one program,
    fetched before the next is dispatched."""
    b = self.spec.batch_size
    num_batches = -(-n // b)
    if self._from_store(state, n):
      chains = self._chains_from_store()
      k_rows, key = jax.random.split(key)
      size = self.start.chains(state.chain_store).shape[0]
      rows = np.asarray(jax.random.permutation(k_rows, size))[:num_batches * b]
      run = lambda i, k: chains(state, hp, rows[i * b:(i + 1) * b], k)   # noqa: E731
    else:
      sample = self.sample_fn(final=True)
      run = lambda i, k: sample(state, hp, self.images, k)               # noqa: E731
    chunks = [jax.tree.map(lambda a: parallel.fetch(a).astype(np.float32),
                           run(i, jax.random.fold_in(key, i))) for i in range(num_batches)]

    def gathered(j):   # j = 0: the starts, 1: the samples
      if not chunks:
        return np.zeros((0, *self.comps.data.sample_shape), np.float32)
      return np.concatenate([c[j] for c in chunks])[:n]

    return (gathered(0), gathered(1)) if with_starts else gathered(1)

  def sampling_protocol(self, hp: HParams, n: int) -> str:
    """How :meth:`draw_samples` makes ``n`` samples of the model with ``hp``, in words (logged
    beside them)."""
    spec, f = self.spec, self.spec.final_step_fraction
    sc, init = spec.sampler, spec.init.name
    whole_batches = -(-n // spec.batch_size) * spec.batch_size
    store = self.start.store
    if store and spec.init.bank_size >= whole_batches:
      start = f"{n} distinct chains of the {init} {store}"
    else:
      start = f"{n} chains from {init} starts"
    weights = f"EMA weights (decay {spec.ema.decay:g})" if spec.ema.decay else "raw weights"
    step = float(hp.step_size) * f
    noise = float(samplers.effective_noise_std(sc, float(hp.noise_std))) * f ** 0.5
    words = self.objective.sampling_words(spec.final_sampler, self.final_hparams(hp))
    if words:
      return f"{n} samples: {words}, with the {weights}"
    return (f"{start}, continued K = {spec.final_sampler.num_steps} {sc.name} steps (step "
            f"{step:g}, noise {noise:g}) with the {weights}")

  def final_samples(self, state, hp: HParams, *, with_starts: bool = False):
    """``samples.npz``: ``num_final_samples`` final chains of the model with ``hp`` (the
    evaluation weights) from the training init (distinct chains of a bank or buffer)."""
    key = jax.random.fold_in(jax.random.fold_in(state.rng, FINAL_SAMPLES_STREAM), state.step)
    return self.draw_samples(state, hp, key, self.spec.num_final_samples,
                             with_starts=with_starts)

  def long_run(self, state, hp: HParams, step: int,
               init: str | None = None) -> sampling.LongRun:
    """ebm-anatomy's long-run check: ``longrun.num_steps`` of the training sampler from
    ``init`` (default ``longrun.init``) on the model with ``hp``, at the step and noise of the
    final chains (:meth:`final_hparams`): the chain that makes ``samples.npz``, run longer, so
    a long run differs from the short-run samples in its length alone."""
    lc = self.spec.longrun
    num_steps, num_chains = lc.num_steps, lc.num_chains
    hp = self.final_hparams(hp)
    if self._long_runner is None:
      sc = self.spec.sampler
      self._long_runner = sampling.ChainRunner(
          lambda p: samplers.build(sc, *p), self.comps.energy,
          chunk_steps=min(num_steps, 1000))
    key = jax.random.fold_in(jax.random.fold_in(state.rng, LONGRUN_STREAM), step)
    k_start, k_chain = jax.random.split(key)
    x0 = self.starts_fn(init or lc.init, num_chains)(state, hp, self.images, k_start)
    return self._long_runner.run(k_chain, self.eval_variables(state),
                                 (hp.step_size, hp.noise_std), x0, num_steps)

  def temperature(self, hp: HParams) -> float:
    """``c`` of the density ``exp(-c E)`` the training sampler targets with the model's
    ``hp``; 1 for samplers with no stationary density (the energy is then read at
    temperature 1)."""
    c = self.sampler_temperature(hp)
    return 1.0 if c is None else c

  def sampler_temperature(self, hp: HParams) -> float | None:
    """``c`` of the training sampler with the model's ``hp``; None when it targets no
    density (noiseless descent, preconditioned updates)."""
    c = samplers.temperature(self.spec.sampler, float(hp.step_size), float(hp.noise_std))
    return None if c is None else float(c)

  def landscape(self, state, hp: HParams, step: int,
                samples: np.ndarray | None = None) -> diagnostics.Landscape:
    """True / model / KDE densities of a toy run, the model's density at its own temperature
    (from ``hp``), from ``diagnostics.kde_samples`` samples of its final chains (or from
    ``samples``), with the floors of as many exact samples (the proper score's: the mean of 5
    draws)."""
    dc = self.spec.diagnostics
    if samples is None:
      key = jax.random.fold_in(jax.random.fold_in(state.rng, LANDSCAPE_STREAM), step)
      samples = self.draw_samples(state, hp, key, dc.kde_samples)
    n = len(samples)
    if n not in self._kde_floors:
      args = (self.toy, n, self.toy.plot_limit, dc.landscape_res, dc.kde_bandwidth)
      self._kde_floors[n] = (diagnostics.kde_floor(*args), diagnostics.smoothed_floor(*args))
    kde_floor, smoothed_floor = self._kde_floors[n]
    return diagnostics.toy_landscape(self.toy.log_density, self.energy_fn(state),
                                     self.toy.plot_limit, self.temperature(hp), samples,
                                     dc.landscape_res, dc.kde_bandwidth)._replace(
                                         kl_kde_floor=kde_floor, kl_smoothed_floor=smoothed_floor)


class LoadedRun(NamedTuple):
  """A run rebuilt from its directory (:func:`load_run`)."""
  spec: spec_lib.Spec
  runner: Runner
  state: Any
  hparams: HParams


def load_run(workdir: str, step: int | None = None, *, need_images: bool = True,
             overrides: dict | None = None) -> LoadedRun:
  """Rebuilds a run from its ``config.json`` and checkpoint (the latest, or ``step``), with
  ``overrides`` (``{"longrun.num_steps": 500}``) applied to its config first.

  Returns ``(spec, runner, state, hparams)`` of the one model of the run.
  """
  path = os.path.join(workdir, rundir.CONFIG)
  if not os.path.exists(path):
    raise checkpointing.CheckpointError(f"{path} not found: {workdir} is not a training run")
  log = functools.partial(rundir.log_line, workdir)
  with open(path) as f:
    config = config_lib.from_saved_run(json.load(f), log)
  for key, value in (overrides or {}).items():
    config_lib.set_value(config, key, value)
  config_lib.validate(config)
  spec = spec_lib.from_config(config)
  images = load_training_images(spec, log) if need_images else shape_only_images(spec)
  runner = Runner(spec, images)
  hp = runner.hparams([config])
  with checkpointing.Checkpointer(workdir, spec.keep_checkpoints, spec.checkpoint_dir) as ckpt:
    state = ckpt.restore(unstack(runner.init(hp), 0), step=step, log=log)
    if state is None:
      raise checkpointing.CheckpointError(f"no checkpoint in {ckpt.directory}")
  return LoadedRun(spec, runner, state, unstack(hp, 0))
