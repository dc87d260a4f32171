"""Shared test helpers: tiny configs and a directly jitted train step (not a test module)."""

import glob
import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np

from ebm_jax import config as config_lib
from ebm_jax import data, hparams, spec
from ebm_jax.core import objectives
from ebm_jax.run import reporting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_IMAGES = jnp.zeros((0,), jnp.uint8)

CONTRACT_KEYS = {"step", "loss", "energy_data", "energy_samples", "d_s_t", "r_t",
                 "grad_norm_start", "grad_norm_end", "lr", "wall_time", "energy_start",
                 "energy_end", "samples_per_sec"}


def shipped_specs(folder: str, getter: str):
  """``<folder>/x.py`` and ``<folder>/x.py:variant`` for every shipped file of ``folder``
  defining ``getter`` (a recipe's ``get_config``, a sweep's ``get_sweep``, a search's
  ``get_search``) and every variant its ``VARIANTS`` names."""
  for path in sorted(glob.glob(os.path.join(ROOT, folder, "*.py"))):
    module = config_lib.load_module(path, getter.removeprefix("get_"))
    if hasattr(module, getter):
      yield path
      yield from (f"{path}:{variant}" for variant in getattr(module, "VARIANTS", ()))


def override(c, overrides: dict):
  """Sets ``{"section.key": value}`` overrides on a config."""
  for key, value in overrides.items():
    config_lib.set_value(c, key, value)
  return c


def tiny_toy_config(**overrides):
  c = config_lib.get_config()
  c.data.name = "gmm"
  c.model.name = "toy_mlp"
  c.model.n_f = 8
  c.sampler.num_steps = 5
  c.sampler.step_size = 0.05
  c.sampler.noise_std = 0.1
  c.init.name = "persistent"
  c.init.bank_size = 64
  c.optimizer.learning_rate = 1e-3
  c.batch_size = 16
  c.num_train_steps = 6
  c.log_every_steps = 2
  c.checkpoint_every_steps = 3
  c.num_final_samples = 20
  c.diagnostics.landscape_res = 30
  c.diagnostics.kde_samples = 50
  c.diagnostics.figures = False   # a second each; the tests of figures turn them on
  return override(c, overrides)


def diverging_toy(**overrides):
  """A tiny toy run that diverges mid-run: Adam at lr 0.05 runs away between updates 200 and 400
  (seed 0; the exact update depends on XLA's optimisation level); at lr 0.025 it does not within
  600 updates."""
  return tiny_toy_config(**{"optimizer.learning_rate": 0.05, "divergence_threshold": 1e3,
                            "num_train_steps": 600, "log_every_steps": 100,
                            "checkpoint_every_steps": 200, **overrides})


def tiny_image_config(**overrides):
  c = tiny_toy_config(**overrides)
  c.data.name = "mnist"
  c.data.image_size = 28
  c.model.name = "vanilla"
  c.model.n_f = 4
  c.sampler.num_steps = 2
  return override(c, overrides)


def make_step(config, images=None, energy=None):
  """``(objective, state, step)`` for one model, ``step(state, images)`` jitted once with the
  config's hyper-parameters passed as an argument."""
  static = spec.from_config(config)
  comps = objectives.make_components(
      static, data.get(static.data.name).make_source(static.data, images))
  if energy is not None:
    comps = comps._replace(energy=energy)
  objective = objectives.build(static, comps)
  hp = hparams.from_config(config)
  jitted = jax.jit(objective.train_step)
  return objective, objective.init_state(hp), lambda state, x: jitted(state, hp, x)


def inject_runaway(monkeypatch, at_step: int, lr: float | None = None):
  """Makes the loop judge update ``at_step`` of the model training at learning rate ``lr``
  (every model when None) a runaway, once: a divergence at a known update, whatever the CPU's
  float order does to a run's real trajectory. Returns the list of ``(step, lr)`` injected."""
  from ebm_jax.run import recovery   # lazy, as the loop's modules are
  real, injected = recovery.runaway_cause, []

  def runaway_cause(row, trace, rc):
    step = len(trace["step"]) + 1      # the trace holds the model's updates before this one
    if (step == at_step and not injected
        and (lr is None or abs(float(row["lr"]) - lr) < 1e-6 * lr)):
      injected.append((step, lr))
      return "runaway: injected by the test"
    return real(row, trace, rc)

  monkeypatch.setattr(recovery, "runaway_cause", runaway_cause)
  return injected


def without_clock(state):
  """``state`` with its wall-clock zeroed: the seconds a run took are not part of its
  trajectory, so a resumed run's state equals the uninterrupted one's up to them."""
  return state.replace(wall_time=jnp.zeros_like(state.wall_time))


def read_metrics(workdir, events=False):
  """The rows of a run's metrics.jsonl (recovery event rows only with ``events``)."""
  rows, torn = reporting.read_metrics(os.path.join(workdir, "metrics.jsonl"), events=events)
  assert not torn
  return rows


# ----------------------------------------------------------------------------- study rows

AXES = ["sampler.num_steps", "optimizer.learning_rate", "sampler.noise_std",
        "model.spectral_norm"]
ROLES = {"K": AXES[0], "lr": AXES[1], "noise": AXES[2], "sn": AXES[3]}


def synthetic_rows(quality_fn, diverged_fn=lambda k, lr, noise, sn: False, sps=None,
                   seeds=(None,), noise_sd=0.0, seed_offsets=None):
  """Seed-level rows of a 2x2x2x2 grid; quality_fn's value times a lognormal seed effect of sd
  ``noise_sd`` (log10 units) and a fixed offset per seed (``seed_offsets``, log10). Each
  cell's curve, evaluated at 10, 50 and 100 updates at the cell's speed, is quality x 100 /
  step."""
  rng = np.random.default_rng(0)
  rows = []
  for k, lr, noise, sn, seed in itertools.product((5, 100), (1e-3, 1e-2), (0.0, 0.1),
                                                  (False, True), seeds):
    diverged = diverged_fn(k, lr, noise, sn)
    setting = f"K{k}-lr{lr}-n{noise}-sn{sn}"
    speed = (sps or {5: 10.0, 100: 2.0})[k]
    q = quality_fn(k, lr, noise, sn) * 10 ** (noise_sd * rng.normal()
                                              + (seed_offsets or {}).get(seed, 0.0))
    steps = np.array([10, 50, 100])
    rows.append({
        "cell": setting + ("" if seed is None else f"-seed{seed}"), "setting": setting,
        AXES[0]: k, AXES[1]: lr, AXES[2]: noise, AXES[3]: sn,
        **({} if seed is None else {"seed": seed}),
        "status": "diverged" if diverged else "finished",
        "diverged_at_step": 7 if diverged else "", "quality": np.nan if diverged else q,
        "stable": not diverged, "dynamics": "stable", "models_in_group": 4,
        "steps_per_sec": speed, "seconds_per_update": 1.0 / speed,
        "_curve": {"step": steps, "wall_time": steps / speed, "grad_evals": steps * 10.0 * k,
                   "quality": q * 100.0 / steps}})
  return rows
