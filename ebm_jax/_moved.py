"""The flat module paths of ebm_jax 0.1 (``ebm_jax.samplers``, ``ebm_jax.loop``, ...) as aliases of
the layered ones, so users' scripts and ``python -m ebm_jax.<old>`` keep working.

An old name imports the *same* module object as the new one (a registry or a patched function is
shared), with a :class:`DeprecationWarning` naming the new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

MOVED = {
    "samplers": "core.samplers", "models": "core.models", "inits": "core.inits",
    "buffers": "core.buffers", "chain_starts": "core.chain_starts", "losses": "core.losses",
    "parallel": "core.parallel", "sampling": "core.chain_runner", "objectives": "core.objectives",
    "diagnostics": "eval.diagnostics", "evaluation": "eval.metrics",
    "inception": "eval.inception", "convergence": "eval.convergence",
    "runner": "run.runner", "loop": "run.loop", "rundir": "run.rundir", "writers": "run.writers",
    "reporting": "run.reporting", "plotting": "run.plotting",
    "checkpointing": "run.checkpointing", "train": "run.train",
    "checkpoint_sampling": "run.from_checkpoint", "sweep": "study.sweep",
    "search": "study.search", "launch": "study.launch", "leaderboard": "study.leaderboard",
    "study_report": "study.report", "study_stats": "study.stats", "study_costs": "study.costs",
}
# Commands whose `python -m` moved apart from the module's library functions.
MAINS = {"evaluation": "run.evaluate", "convergence": "study.longrun"}


# Names that moved to another module: (module, name) -> the module that holds it now. The module
# they left answers a lookup of one with an AttributeError naming the new place.
MOVED_NAMES = {
    "ebm_jax.run.loop": dict.fromkeys(
        ("every", "Record", "LongRun", "LogStep", "Evaluate", "plateaued", "PlateauStop",
         "Checkpoint", "default_actions", "ProgressBar", "clock", "save_checkpoint",
         "write_samples", "samples_step", "evaluate", "rewind_evaluations"),
        "ebm_jax.run.actions") | dict.fromkeys(
        ("RECOVERY_STREAM", "save_last_good", "divergence_message", "rejection_cause",
         "RUNAWAY_KEYS", "runaway_cause", "last_checkpointed", "recover"), "ebm_jax.run.recovery"),
    "ebm_jax.eval.metrics": dict.fromkeys(
        ("evaluate_run", "inception_fid", "export_png", "run_command", "main", "COMMANDS"),
        "ebm_jax.run.evaluate"),
    "ebm_jax.eval.convergence": dict.fromkeys(("check_run", "run_command", "main"),
                                              "ebm_jax.study.longrun"),
    "ebm_jax.core.objectives.base": dict.fromkeys(
        ("OPTIMIZERS", "make_optimizer", "learning_rate"), "ebm_jax.core.optimizers")
    | dict.fromkeys(("DataSource", "make_data_source"), "ebm_jax.data"),
    "ebm_jax.core.objectives": {"name_of": "ebm_jax.config (objective.name)"},
    "ebm_jax.data": {"DATASET_NAMES": "ebm_jax.data (names())", "main": "ebm_jax.data.__main__",
                     "fetch_command": "ebm_jax.data.__main__"},
    "ebm_jax.study.report": dict.fromkeys(
        ("CLAIMS", "VERDICTS", "COMPARABLE_FACTOR", "with_scores", "main_effects",
         "ClaimResult", "claim_k_matters_most", "claim_small_k_low_lr",
         "claim_large_k_stable_slow", "claim_noiseless_comparable"), "ebm_jax.study.claims"),
    "ebm_jax.run.train": {"TrainingDiverged": "ebm_jax.run.loop"},
    "ebm_jax.cli": {"start_devices": "ebm_jax.core.parallel", "known_errors": "ebm_jax.cli "
                    "(KNOWN_ERRORS)"},
    "ebm_jax.core.inits": {"generator_init": "nowhere (CoopNets' generator start is "
                           "ebm_jax.core.chain_starts.STARTS['generator'])"},
}


def attribute(module: str, name: str):
  """A module's ``__getattr__``: a name that moved away fails in one line naming its place."""
  where = MOVED_NAMES.get(module, {}).get(name)
  if where is None:
    raise AttributeError(f"module {module!r} has no attribute {name!r}")
  raise AttributeError(f"{module}.{name} moved to {where}")


def new_name(fullname: str) -> str | None:
  """``ebm_jax.<old>[.sub]`` -> ``ebm_jax.<new>[.sub]``, or None for a name that did not move."""
  head, _, rest = fullname.partition(".")
  if head != "ebm_jax" or not rest:
    return None
  first, _, sub = rest.partition(".")
  if first not in MOVED:
    return None
  return "ebm_jax." + MOVED[first] + (f".{sub}" if sub else "")


class _Alias(importlib.abc.Loader):

  def __init__(self, old: str, new: str):
    self.old, self.new = old, new

  def create_module(self, spec):
    warnings.warn(f"{self.old} moved to {self.new}", DeprecationWarning, stacklevel=2)
    module = importlib.import_module(self.new)
    self._spec = module.__spec__
    return module

  def exec_module(self, module):
    # The module is the new one, already executed; the import machinery has just set its
    # __spec__ to the alias's: it keeps its own (importlib.reload, pickling by name).
    module.__spec__ = self._spec

  def get_code(self, fullname):   # `python -m ebm_jax.<old>` runs the new command as __main__
    main = "ebm_jax." + MAINS.get(self.old.split(".")[1], self.new.split(".", 1)[1])
    print(f"note: python -m {self.old} is now python -m {main}", file=sys.stderr)
    return importlib.util.find_spec(main).loader.get_code(main)


class _Finder(importlib.abc.MetaPathFinder):

  def find_spec(self, fullname, path=None, target=None):
    new = new_name(fullname)
    if new is None:
      return None
    return importlib.machinery.ModuleSpec(fullname, _Alias(fullname, new), origin=new,
                                          is_package=new.endswith("objectives"))


def install() -> None:
  if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder())
