"""The recipe leaderboard: quality against wall-clock on this machine, for the project's default
recipes and each seed's recipe family scaled to the same budget.

Every entry is an ordinary run (``<workdir>/<task>/<entry>``) of a recipe with a few
overrides that size it for a CPU (smaller network, shorter chains where the paper's are
hundreds of steps) and the same wall-clock budget (``train_time_budget_s``), evaluated every N
updates with the same evaluation: the classifier's FID / confident fraction / class balance
for images, KL(true * K || KDE_K of ``diagnostics.kde_samples`` samples) (the proper score)
for the toys. The report is the time each entry first meets its task's target, its final
quality, and a figure of the curves::

    python -m ebm_jax.study.leaderboard --tasks=gmm,rings,mnist --workdir=runs/leaderboard

Entries already trained there are not trained again (a run whose budget is spent does
nothing), so the same command regenerates ``docs/leaderboard.md`` from the runs.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
from typing import Callable

import numpy as np

from ebm_jax import config as config_lib
from ebm_jax.run import reporting
from ebm_jax.run import rundir

# Settings every image entry shares, so entries differ in their family's choices (init,
# sampler, K, objective, optimizer), not in the network: the default recipe's network at 28x28.
IMAGE_SCALE = {"data.image_size": 28, "model.name": "vanilla", "model.n_f": 16,
               "batch_size": 64}
TOY_SCALE = {"sampler.num_steps": 100}


@dataclasses.dataclass(frozen=True)
class Entry:
  name: str                 # the row of the table
  recipe: str               # configs/x.py[:variant]
  overrides: dict           # what scales the family to the budget (stated in the report)
  family: str               # the paper the recipe family comes from


DRL_FAMILY = "recovery likelihood (DRL: 6 noise levels, K 30 Langevin steps per level)"


def _toy_entries(recipe: str, drl_recipe: str) -> list[Entry]:
  return [
      Entry("default", recipe, {}, "this project"),
      Entry("anatomy-convergent", f"{recipe}:paper", dict(TOY_SCALE),
            "ebm-anatomy (persistent bank, SGD, eps 0.125)"),
      Entry("short-run-noise", recipe, {**TOY_SCALE, "init.name": "uniform", "ema.decay": 0.0},
            "short-run MCMC (chains from noise every update)"),
      Entry("replay-jem", recipe, {"sampler.num_steps": 20, "init.name": "replay",
                                   "init.reinit_prob": 0.05, "ema.decay": 0.0},
            "JEM / IGEBM (replay buffer, 5% noise restarts)"),
      Entry("thesis-noise-free", recipe, {**TOY_SCALE, "sampler.name": "momentum_sgd",
                                          "sampler.momentum": 0.0, "sampler.noise_std": 0.0,
                                          "init.name": "uniform", "ema.decay": 0.0,
                                          "optimizer.learning_rate": 1e-4,
                                          "optimizer.lr_min": 1e-4,
                                          # descent has no target a smaller step would keep
                                          "final_step_fraction": 1.0},
            "the thesis code (noise-free descent from noise, Adam 1e-4)"),
      Entry("drl", drl_recipe, {}, DRL_FAMILY),
  ]


ENTRIES: dict[str, list[Entry]] = {
    "gmm": _toy_entries("configs/toy_gmm.py", "configs/toy_drl.py"),
    "rings": _toy_entries("configs/toy_rings.py", "configs/toy_drl.py:rings"),
    "mnist": [
        Entry("default", "configs/mnist.py", {}, "this project"),
        Entry("replay-jem", "configs/mnist.py",
              {"sampler.num_steps": 20, "model.activation": "leaky_relu", "ema.decay": 0.0,
               "optimizer.learning_rate": 3e-4},
              "JEM (replay buffer, K 20, step 1, noise 0.01; this project's previous default)"),
        Entry("anatomy-convergent", "configs/mnist.py:paper",
              {**IMAGE_SCALE, "sampler.num_steps": 100, "init.bank_size": 10000},
              "ebm-anatomy (persistent bank from noise, SGD, eps 7.5e-3)"),
        Entry("short-run-noise", "configs/mnist_shortrun.py", dict(IMAGE_SCALE),
              "short-run MCMC (K 100 from uniform noise, Adam 1e-4)"),
        Entry("coopnets", "configs/mnist_coopnets.py", {}, "CoopNets (generator proposals)"),
        Entry("thesis-noise-free", "configs/thesis.py:uniform",
              {**IMAGE_SCALE, "data.name": "mnist"},
              "the thesis code (K 100 noise-free SGD from noise, Adam 1e-4)"),
        Entry("drl", "configs/mnist_drl.py", {}, DRL_FAMILY),
    ],
}

# Wall-clock budget of each entry (s), and how often its quality is measured (updates).
BUDGETS = {"gmm": 120.0, "rings": 120.0, "mnist": 1200.0}
EVAL_EVERY = {"gmm": 500, "rings": 500, "mnist": 250}
TOY_KDE_SAMPLES = 10000
TOY_MARGIN = 0.02                  # nats above exact samples' kl_smoothed (the proper floor)
IMAGE_CONFIDENT, IMAGE_CLASS_MIN, IMAGE_FID_RATIO = 0.9, 0.05, 3.0


def entry_overrides(task: str, entry: Entry, budget_s: float) -> dict:
  """The entry's overrides plus what every entry of ``task`` shares: the budget (it ends the
  run), one checkpoint at the end, and the task's measurements."""
  common = {"train_time_budget_s": budget_s, "num_train_steps": 10 ** 7,
            "checkpoint_every_steps": 10 ** 7}
  if task == "mnist":
    common.update({"log_every_steps": 50, "eval.every_steps": EVAL_EVERY[task],
                   "eval.at_end": True, "num_final_samples": 1000})
  else:
    common.update({"log_every_steps": 100,
                   "diagnostics.landscape_every_steps": EVAL_EVERY[task],
                   "diagnostics.kde_samples": TOY_KDE_SAMPLES,
                   "num_final_samples": TOY_KDE_SAMPLES})
  return {**entry.overrides, **common}


def entry_config(task: str, entry: Entry, budget_s: float):
  c = config_lib.load_recipe(entry.recipe)
  for key, value in entry_overrides(task, entry, budget_s).items():
    config_lib.set_value(c, key, value)
  config_lib.validate(c)
  return c


def train_command(task: str, entry: Entry, budget_s: float, workdir: str) -> list[str]:
  """The README's command for the entry: ``train.py`` in a fresh process (its own device split
  and compilation, counted in its time)."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  script = os.path.join(root, "train.py")
  return [sys.executable, script, f"--config={entry.recipe}", f"--workdir={workdir}",
          *(f"--config.{k}={v}" for k, v in entry_overrides(task, entry, budget_s).items())]


# ----------------------------------------------------------------------------- curves


@dataclasses.dataclass
class Curve:
  entry: Entry
  updates: np.ndarray       # at each measurement
  wall_time: np.ndarray     # s of training (outputs included) at each measurement
  quality: dict             # metric -> array
  meets: np.ndarray         # bool: the task's target holds at that measurement
  devices: int = 1          # CPU devices (cores) the run used
  budget_s: float = 0.0     # its train_time_budget_s


def _run_facts(workdir: str) -> tuple[int, float]:
  """(CPU devices, wall-clock budget) of a run, from its config.json."""
  config = rundir.read_json(os.path.join(workdir, "config.json")) or {}
  return (int(config.get("parallel", {}).get("cpu_devices", 0) or 1),
          float(config.get("train_time_budget_s", 0.0)))


def toy_curve(workdir: str, entry: Entry) -> Curve:
  m = reporting.measurements(workdir, ("kl_smoothed", "kl_smoothed_floor", "kl_true_model"))
  return Curve(entry, m.pop("step"), m.pop("wall_time"), m,
               m["kl_smoothed"] <= m["kl_smoothed_floor"] + TOY_MARGIN, *_run_facts(workdir))


def image_curve(workdir: str, entry: Entry, real_fid: float) -> Curve:
  m = reporting.measurements(workdir, ("fid", "confident_fraction", "min_class_fraction"))
  fid, conf, low = m["fid"], m["confident_fraction"], m["min_class_fraction"]
  return Curve(entry, m.pop("step"), m.pop("wall_time"), m,
               (conf >= IMAGE_CONFIDENT) & (low >= IMAGE_CLASS_MIN)
               & (fid <= IMAGE_FID_RATIO * real_fid), *_run_facts(workdir))


def first_time(curve: Curve) -> float | None:
  hits = np.flatnonzero(curve.meets)
  return float(curve.wall_time[hits[0]]) if hits.size else None


# ----------------------------------------------------------------------------- report


def machine() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    name = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.startswith("Model name"))
    flags = next(line for line in out.splitlines() if line.startswith("Flags"))
    cores = os.cpu_count()
    isa = ", ".join(f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags)
    return f"{name}, {cores} cores ({isa or 'no AVX-512'})"
  except (OSError, subprocess.CalledProcessError, StopIteration):
    return platform.processor() or "unknown CPU"


def _describe(entry: Entry) -> str:
  over = ", ".join(f"`{k}={v}`" for k, v in entry.overrides.items())
  return f"`{entry.recipe}`" + (f" with {over}" if over else "")


def task_section(task: str, curves: list[Curve], target: str, figure: str) -> str:
  quality = "kl_smoothed" if task != "mnist" else "fid"
  budget_s = max(c.budget_s for c in curves)
  lines = [f"## {task}", "", f"Target: {target}. Budget {budget_s / 60:g} min of wall-clock per "
           f"entry; quality measured every {EVAL_EVERY[task]} updates.", "",
           f"![{task} curves]({figure})", "",
           "| entry | family | recipe (scaled) | cores | updates | time to target | final "
           + ("KL(true⊛K‖KDE) (exact samples)" if task != "mnist"
              else "FID / confident / min class")
           + " |", "|---|---|---|---|---|---|---|"]
  for c in sorted(curves, key=lambda c: (first_time(c) is None, first_time(c) or 0,
                                         c.quality[quality][-1] if len(c.updates) else 1e9)):
    t = first_time(c)
    if not len(c.updates):
      final = "no measurement"
    elif task == "mnist":
      final = (f"{c.quality['fid'][-1]:.1f} / {c.quality['confident_fraction'][-1]:.3f} / "
               f"{c.quality['min_class_fraction'][-1]:.3f}")
    else:
      final = f"{c.quality['kl_smoothed'][-1]:.4f} ({c.quality['kl_smoothed_floor'][-1]:.4f})"
    lines.append(f"| {c.entry.name} | {c.entry.family} | {_describe(c.entry)} | {c.devices} | "
                 f"{c.updates[-1] if len(c.updates) else 0} | "
                 f"{'%.0f s' % t if t is not None else 'not reached'} | {final} |")
  return "\n".join(lines) + "\n"


def plot_curves(path: str, task: str, curves: list[Curve], real_fid: float | None) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  keys = (["fid", "confident_fraction"] if task == "mnist" else ["kl_smoothed"])
  fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4), squeeze=False)
  for ax, key in zip(axes[0], keys):
    for c in curves:
      if len(c.updates):
        ax.plot(c.wall_time / 60, c.quality[key], marker="o", ms=3, label=c.entry.name)
    if key == "fid":
      ax.set_yscale("log")
      ax.axhline(IMAGE_FID_RATIO * real_fid, color="k", ls="--", lw=1, label="target")
    elif key == "confident_fraction":
      ax.axhline(IMAGE_CONFIDENT, color="k", ls="--", lw=1, label="target")
    else:
      ax.set_yscale("log")
      floor = next((c.quality["kl_smoothed_floor"][-1] for c in curves if len(c.updates)),
                   None)
      if floor is not None:
        ax.axhline(floor + TOY_MARGIN, color="k", ls="--", lw=1, label="target")
        ax.axhline(floor, color="grey", ls=":", lw=1, label="exact samples")
    ax.set_xlabel("wall-clock (min)")
    ax.set_ylabel(key)
    ax.legend(fontsize=7)
  fig.suptitle(f"{task}: quality against wall-clock")
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def real_image_fid(dataset: str, image_size: int) -> float:
  """FID of 1,000 real training images (the classifier's floor for 1,000 samples)."""
  from ebm_jax.eval import metrics as evaluation
  return evaluation.calibrate(dataset, image_size, log=lambda m: None)["real (train split)"]["fid"]


def run(tasks, workdir: str, out: str = "docs/leaderboard.md", figures: str = "docs/figures",
        entries=None, budget_scale: float = 1.0, jobs: int = 1,
        log: Callable[[str], None] = print) -> str:
  """Trains the entries of ``tasks`` that ``workdir`` does not hold yet (``jobs`` at a time),
  then writes the report ``out`` (every task with runs in ``workdir``) and its figures."""
  pending = []
  for task in tasks:
    if task not in ENTRIES:
      raise ValueError(f"--tasks: unknown task {task!r}; expected some of {tuple(ENTRIES)}")
    for entry in ENTRIES[task]:
      if entries and entry.name not in entries:
        continue
      budget = BUDGETS[task] * budget_scale
      entry_config(task, entry, budget)       # a bad entry fails here, before any training
      command = train_command(task, entry, budget, os.path.join(workdir, task, entry.name))
      if jobs > 1:      # entries side by side: one CPU device (core) each
        command.append("--config.parallel.cpu_devices=1")
      pending.append((f"{task}/{entry.name}", command))
  running = []
  while pending or running:
    while pending and len(running) < jobs:
      name, command = pending.pop(0)
      log(f"leaderboard {name}: {' '.join(command[1:])}")
      running.append((name, subprocess.Popen(command, stdout=subprocess.DEVNULL)))
    name, process = running.pop(0)
    if process.wait():
      log(f"leaderboard {name}: train.py failed (see its log.txt); reported as far as it got")
  sections = [f"# The recipe leaderboard\n\nQuality against wall-clock for each recipe family, "
              f"on {machine()}; outputs (evaluation included) count in the time. Regenerate: "
              f"`python -m ebm_jax.study.leaderboard --workdir={workdir}` (entries already trained "
              "there are read, not retrained; `--jobs=2` trains two at a time, one core each).\n"]
  for task in ENTRIES:
    present = [e for e in ENTRIES[task] if os.path.exists(os.path.join(workdir, task, e.name,
                                                                       rundir.METRICS))]
    if not present:
      continue
    if task == "mnist":
      real = real_image_fid("mnist", 28)
      curves = [image_curve(os.path.join(workdir, task, e.name), e, real) for e in present]
      target = (f"confident fraction >= {IMAGE_CONFIDENT}, every class >= "
                f"{IMAGE_CLASS_MIN:.0%} of the samples, FID <= {IMAGE_FID_RATIO:g} x "
                f"{real:.2f} (1,000 real training images) in the evaluation classifier's features")
    else:
      real = None
      curves = [toy_curve(os.path.join(workdir, task, e.name), e) for e in present]
      target = (f"KL(true * K || KDE_K of {TOY_KDE_SAMPLES:,} samples), K a fixed Gaussian "
                f"kernel (a proper score), within {TOY_MARGIN} nats of what as many exact "
                "samples score")
    figure = os.path.join(figures, f"leaderboard_{task}.png")
    plot_curves(figure, task, curves, real)
    sections.append(task_section(task, curves, target,
                                 os.path.relpath(figure, os.path.dirname(out) or ".")))
  text = "\n".join(sections)
  write_between_markers(out, text, log)
  return text


BEGIN = ("<!-- leaderboard: begin. Written by `python -m ebm_jax.study.leaderboard`; everything up "
         "to the end marker is replaced when it runs, everything outside is kept. -->")
END = "<!-- leaderboard: end -->"


def write_between_markers(path: str, text: str, log: Callable[[str], None] = print) -> None:
  """Writes ``text`` between the markers of ``path``, keeping everything outside them (the
  hand-written sections). A file without the markers is set aside whole, never overwritten."""
  block = f"{BEGIN}\n\n{text.rstrip()}\n\n{END}\n"
  old = ""
  if os.path.exists(path):
    with open(path) as f:
      old = f.read()
  if BEGIN in old and END in old:
    head, rest = old.split(BEGIN, 1)
    tail = rest.split(END, 1)[1].lstrip("\n")
    new = head + block + ("\n" + tail if tail else "")
  else:
    if old:
      kept = rundir.set_aside(path, "before_markers")
      log(f"{path} had no leaderboard markers: kept whole as {kept}")
    new = block
  rundir.write_text(path, new)


def main(argv) -> None:
  del argv
  from absl import flags
  f = flags.FLAGS
  text = run([t for t in f.tasks.split(",") if t], f.workdir, f.out, f.figures,
             [e for e in f.entries.split(",") if e], f.budget_scale, f.jobs)
  print(text)


if __name__ == "__main__":
  from absl import app
  from absl import flags
  flags.DEFINE_string("tasks", "gmm,rings,mnist", "Comma-separated tasks to train.")
  flags.DEFINE_string("workdir", "runs/leaderboard", "Where the entries' runs live.")
  flags.DEFINE_string("out", "docs/leaderboard.md", "The report.")
  flags.DEFINE_string("figures", "docs/figures", "Where the curve figures go.")
  flags.DEFINE_string("entries", "", "Only these entries (comma-separated names).")
  flags.DEFINE_float("budget_scale", 1.0, "Multiplies every task's wall-clock budget.")
  flags.DEFINE_integer("jobs", 1, "Entries trained at once (> 1: one CPU device each).")
  from ebm_jax import cli
  app.run(lambda argv: cli.call(main, argv))
