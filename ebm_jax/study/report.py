"""A study's results: ``results.csv``, heat maps, trace figures and ``report.md``.

Everything here reads the cells' own output files (``sweep_cell.json``, ``metrics.jsonl``,
``diagnostics.npz``, ``eval.json``), so a report can be rebuilt at any time, also for a study
that is still running (its unfinished cells show as "not run").

The report tests the thesis's four claims on the data: each verdict is computed from the table
it prints, with the rule it applies stated beside it.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import os
from typing import NamedTuple, Sequence

import numpy as np

from ebm_jax.eval import convergence
from ebm_jax import data as data_lib
from ebm_jax.eval import diagnostics
from ebm_jax.run import plotting
from ebm_jax.run import reporting
from ebm_jax.run import rundir
from ebm_jax.study import costs as study_costs
from ebm_jax.study import stats as study_stats
from ebm_jax.study import sweep as sweep_lib

IMAGE_METRICS = ("fid", "kid", "inception_score", "class_entropy", "class_coverage")
TOY_METRICS = ("kl_smoothed", "kl_true_kde", "kl_true_model")
# A run whose sample-gradient norm r_t grew more than this factor from its first tenth to its
# last quarter has energies running away, whatever d_s_t's sign changes say.
EXPLODING_R_T_GROWTH = 100.0
# Large K is "slow" when an update costs at least this factor more than at the smallest K.
SLOW_FACTOR = 1.5
# Noiseless cells are "comparable" when their quality is at most this factor worse.
COMPARABLE_FACTOR = 1.5


quality_metric = reporting.quality_metric


def _verdict_class(verdict: str) -> str:
  for prefix, name in (("stable", "stable"), ("drifting below", "drift-"),
                       ("drifting above", "drift+"), ("non-finite", "diverged")):
    if verdict.startswith(prefix):
      return name
  return "short"


def _r_t_growth(r_t: np.ndarray, start: int = 100, window: int = 100) -> float:
  """Mean r_t over the last quarter of the run / its median over the ``window`` updates after
  the first ``start`` (the loop's runaway baseline, which leaves initialisation's transient
  out); over the first tenth when the run is too short for that window."""
  r_t = np.asarray(r_t, np.float64)
  if len(r_t) < 20 or not np.all(np.isfinite(r_t)):
    return np.nan
  if len(r_t) >= 2 * (start + window):
    base = float(np.median(np.abs(r_t[start:start + window])))
  else:
    base = float(np.mean(np.abs(r_t[:max(1, len(r_t) // 10)])))
  return float(np.mean(np.abs(r_t[-(len(r_t) // 4):])) / base) if base > 0 else np.inf


def grad_evals_per_update(config) -> int:
  """Energy gradients (in x) one update's chains take: chains x K (x leapfrog steps for HMC)."""
  per_step = config.sampler.hmc_leapfrog_steps if config.sampler.name == "hmc" else 1
  return int(config.batch_size * config.sampler.num_steps * per_step)


def cell_curve(cell: sweep_lib.Cell, models_in_group, cost: float | None = None) -> dict:
  """The cell's quality at every evaluation: ``step``, ``wall_time``, ``grad_evals`` and
  ``quality``. ``wall_time`` is ``step x cost``, the setting's seconds per update measured in
  one interleaved run (:mod:`ebm_jax.study.costs`) when given; without it, the cell's share
  of its group's own clock (the group's time over its number of models, outputs included)."""
  metric = quality_metric(cell.config)
  m = reporting.measurements(cell.workdir, (metric,))
  share = float(models_in_group) if models_in_group not in ("", None, 0) else 1.0
  wall = m["step"] * cost if cost is not None else m["wall_time"] / share
  return {"step": m["step"], "wall_time": wall,
          "grad_evals": m["step"] * float(grad_evals_per_update(cell.config)),
          "quality": m[metric]}


def cell_row(cell: sweep_lib.Cell, costs: dict | None = None) -> dict:
  """One row of results.csv: the swept values, the outcome, the dynamics and the quality
  (keys starting with ``_`` stay out of the csv); ``costs``: the study's measured seconds per
  update (:mod:`ebm_jax.study.costs`), which then time its curve."""
  status = sweep_lib.read_status(cell) or {"status": "not run"}
  row = {"cell": cell.name, "grid": cell.grid, "setting": cell.setting, **cell.overrides,
         "status": status["status"], "diverged_at_step": status.get("diverged_at_step", ""),
         "recoveries": status.get("recoveries", ""),
         "models_in_group": status.get("models_in_group", ""),
         # The cell's training seconds over all its calls (recovered updates included);
         # older statuses: the group's wall time in its last call.
         "wall_time_s": status.get("train_time_s", status.get("group_wall_time_s", ""))}
  trace_path = os.path.join(cell.workdir, "diagnostics.npz")
  d_s_t = r_t = np.zeros(0)
  if os.path.exists(trace_path):
    with np.load(trace_path) as f:
      d_s_t, r_t = f["d_s_t"], f["r_t"]
  half = d_s_t[len(d_s_t) // 2:]
  rows, _ = reporting.read_metrics(os.path.join(cell.workdir, rundir.METRICS))
  last = rows[-1] if rows else {}
  # Updates per second of the cell's group: the median over its log windows, so the window
  # that holds the compilation does not count (figure writing is outside the windows).
  row["steps_per_sec"] = (float(np.median([r["samples_per_sec"] for r in rows]))
                          / cell.config.batch_size if rows else "")
  cost = study_costs.seconds_per_update(costs, cell.config)
  row["_cost"] = cost if cost is not None else np.nan
  row["seconds_per_update"] = (cost if cost is not None else
                               1.0 / row["steps_per_sec"] if row["steps_per_sec"] else np.nan)
  row.update({
      "d_s_t_final": last.get("d_s_t", np.nan),
      "d_s_t_mean": float(np.mean(half)) if len(half) else np.nan,
      "d_s_t_sd": float(np.std(half)) if len(half) else np.nan,
      "r_t_final": last.get("r_t", np.nan),
      "r_t_mean": float(np.mean(r_t[len(r_t) // 2:])) if len(r_t) else np.nan,
  })
  verdict = diagnostics.learning_verdict(d_s_t, r_t) if len(d_s_t) else "not run"
  dynamics = "diverged" if row["status"] == "diverged" else _verdict_class(verdict)
  recovery = cell.config.recovery
  if dynamics == "stable" and _r_t_growth(r_t, recovery.runaway_start,
                                          recovery.runaway_window) > EXPLODING_R_T_GROWTH:
    # d_s_t can cross 0 while both energies run away; anatomy's verdict does not see that.
    dynamics = "exploding"
  row["dynamics"] = dynamics if row["status"] != "not run" else "not run"
  row["stable"] = row["status"] == "finished" and dynamics == "stable"
  if data_lib.is_toy(cell.config.data.name):
    for key in TOY_METRICS:
      row[key] = last.get(key, np.nan) if row["status"] == "finished" else np.nan
  else:
    records = []
    path = os.path.join(cell.workdir, "eval.json")
    if os.path.exists(path) and row["status"] == "finished":
      with open(path) as f:
        records = json.load(f)
    for key in IMAGE_METRICS:
      row[key] = records[-1].get(key, np.nan) if records else np.nan
  row["quality"] = row[quality_metric(cell.config)]
  check = convergence.read(cell.workdir) if row["status"] == "finished" else None
  metric = quality_metric(cell.config)
  # A record of another metric (a long-run check written before the proper toy score) has no
  # comparable numbers: it is read as not checked.
  check = check if check and metric in check.get("from_data", {}) else None
  row["longrun_from_data"] = check["from_data"][metric] if check else np.nan
  row["longrun_from_noise"] = check["from_noise"][metric] if check else np.nan
  row["convergence"] = check["verdict"] if check else "not checked"
  row["grad_evals_per_update"] = grad_evals_per_update(cell.config)
  row["_curve"] = cell_curve(cell, row["models_in_group"], cost)
  row["_workdir"] = cell.workdir
  return row


def write_csv(path: str, rows: Sequence[dict]) -> None:
  keys = list(dict.fromkeys(k for r in rows for k in r if not k.startswith("_")))
  with rundir.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
      writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


# ----------------------------------------------------------------------------- analysis
#
# Every figure below is a statistic of seed-level rows: first a mean over each setting's
# replicates, then a contrast between settings; its interval is the Student-t interval over
# seeds of the contrast computed within each seed (study_stats.by_replicate). A verdict is
# "supported" / "not supported" when the interval lies on one side of the rule's threshold,
# "inconclusive" when it straddles it; a single-seed study judges by the point estimate and
# says so.


def _score(rows: Sequence[dict]) -> np.ndarray:
  """log10 quality per row (lower = better); a diverged cell scores as the grid's worst
  finished cell, so effects count divergence as failure rather than dropping it. Rows scored
  already (``_s``, by :func:`with_scores` on the whole grid) keep their scores, so a contrast
  within one seed still counts a divergence as the grid's worst, not that seed's."""
  if rows and all("_s" in r for r in rows):
    return np.asarray([r["_s"] for r in rows], np.float64)
  q = np.asarray([r["quality"] if r["status"] == "finished" else np.nan for r in rows],
                 np.float64)
  s = np.log10(np.where(q > 0, q, np.nan))
  worst = np.nanmax(s) if np.any(np.isfinite(s)) else np.nan
  diverged = np.asarray([r["status"] == "diverged" for r in rows])
  s[diverged] = worst
  return s


def with_scores(rows: Sequence[dict]) -> list[dict]:
  """The rows with their grid-level log10 score (:func:`_score`) attached as ``_s``."""
  return [dict(r, _s=s) for r, s in zip(rows, _score(rows))]


def _settings(rows: Sequence[dict], score: np.ndarray | None = None) -> list[tuple[dict, float]]:
  """(a representative row, mean score over its replicates) per setting, in first-seen order."""
  score = _score(rows) if score is None else score
  groups: dict = {}
  for r, v in zip(rows, score):
    groups.setdefault(r.get("setting", r["cell"]), (r, []))[1].append(v)
  return [(r, _finite_mean(v)) for r, v in groups.values()]


def _finite_mean(values: list[float]) -> float:
  """np.nanmean when any value is finite, else nan; in plain Python because the bootstrap calls
  it ~10^5 times per report on lists of a few seeds, where numpy's per-call overhead dominated."""
  if not any(math.isfinite(v) for v in values):
    return np.nan
  kept = [v for v in values if not math.isnan(v)]
  return sum(kept) / len(kept)


def _levels(rows, key) -> list:
  return list(dict.fromkeys(r[key] for r in rows))


def _fmt(v) -> str:
  return sweep_lib.format_value(v) if not isinstance(v, float) or np.isfinite(v) else "-"


def _level_means(rows, key, score=None) -> dict:
  """Each level of ``key``: the mean over settings at that level of their mean score."""
  settings = _settings(rows, score)
  out = {}
  for level in _levels(rows, key):
    vals = [m for r, m in settings if r[key] == level and np.isfinite(m)]
    out[level] = float(np.mean(vals)) if vals else np.nan
  return out


def main_effects(rows: Sequence[dict], axes: Sequence[str]) -> dict:
  """Per axis: each level's mean log10 quality (over the settings at that level) and stable
  fraction, levels in value order, and the signed effect (:func:`_effect`, in orders of
  magnitude)."""
  out = {}
  for key in axes:
    means = _level_means(rows, key)
    levels = sorted(means, key=_order)
    stable = [float(np.mean([r["stable"] for r in rows if r[key] == v])) for v in levels]
    out[key] = {"levels": levels, "mean_log10": [means[v] for v in levels],
                "stable_fraction": stable, "effect": _effect(rows, key)}
  return out


def _effect(rows, key, levels: Sequence | None = None) -> float:
  """The signed main effect of ``key``: its last level's mean log10 quality minus its first
  level's, levels in value order (K 100 minus K 5, spectral norm on minus off); a range of
  level means would be biased upward and could never be 0. ``levels``: the grid's (so one
  seed's rows missing an end level give nan, not a contrast between other levels)."""
  means = _level_means(rows, key)
  levels = sorted(means if levels is None else levels, key=_order)
  if len(levels) < 2:
    return 0.0
  return float(means.get(levels[-1], np.nan) - means.get(levels[0], np.nan))


def _factor_effect(rows, key):
  """How much ``key`` matters: over every pair of its levels (a < b in value order), the
  contrast b minus a within each seed with its t interval at the Bonferroni-adjusted level
  (the pairs' intervals hold together at 95 %). Returns (the interval of the pair with the
  largest |estimate|, that pair, (the smallest, the largest) |contrast| the intervals allow)."""
  levels = sorted(_levels(rows, key), key=_order)
  pairs = list(itertools.combinations(levels, 2)) or [(levels[0], levels[0])]
  level = 1 - (1 - study_stats.LEVEL) / len(pairs)
  found = []
  for a, b in pairs:
    iv = study_stats.by_replicate(rows, functools.partial(_effect, key=key, levels=(a, b)),
                                  level=level)
    found.append((iv, (a, b)))
  finite = [f for f in found if np.isfinite(f[0].estimate)] or found
  iv, pair = max(finite, key=lambda f: abs(f[0].estimate))
  if not iv.replicated:
    return iv, pair, (abs(iv.estimate), abs(iv.estimate))
  bounds = [_magnitude(f[0]) for f in finite]
  return iv, pair, (max(lo for lo, _ in bounds), max(hi for _, hi in bounds))


def _order(value):
  """Sort key of a factor's levels: numbers (bools, numpy scalars included) by value, then
  anything else by its text."""
  if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
    return (0, float(value))
  return (1, str(value))


def _magnitude(interval: study_stats.Interval) -> tuple[float, float]:
  """The smallest and largest |effect| its interval allows (0 when it straddles 0)."""
  lo, hi = interval.low, interval.high
  if lo <= 0 <= hi:
    return 0.0, max(-lo, hi)
  return min(abs(lo), abs(hi)), max(abs(lo), abs(hi))


def _subset(rows, **where):
  return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def _matched_settings(rows, key, a, b, axes, score=None):
  """(mean score at ``key`` = a, at = b) for settings equal in every other swept value."""
  others = [k for k in axes if k != key]
  means = {}
  for r, m in _settings(rows, score):
    means.setdefault(tuple(r[k] for k in others), {})[r[key]] = m
  return [(v[a], v[b]) for v in means.values() if a in v and b in v]


def _matched_pairs(rows, key, a, b, axes):
  """Pairs of seed-level rows with ``key`` = a and = b, every other swept value (and the seed)
  equal."""
  others = [k for k in axes if k != key] + ([sweep_lib.SEED_KEY] if sweep_lib.SEED_KEY in
                                            rows[0] else [])
  index = {tuple(r[k] for k in others): r for r in rows if r[key] == b}
  return [(r, index[tuple(r[k] for k in others)]) for r in rows
          if r[key] == a and tuple(r[k] for k in others) in index]


def _outcome(r) -> str:
  if r["status"] == "diverged":
    return f"diverged@{r['diverged_at_step']}"
  if r["status"] != "finished":
    return r["status"]
  return f"{r['quality']:.3g} ({r['dynamics']})"


def _untested(roles, axes, *needed) -> ClaimResult | None:
  """("not tested", why) when the sweep does not vary a setting a claim needs."""
  missing = [n for n in needed if roles.get(n) not in axes]
  if missing:
    return ClaimResult("not tested", [f"This sweep does not vary {', '.join(missing)} (roles "
                                      f"{', '.join(repr(n) for n in missing)})."])
  return None


def _blew_up(row) -> bool:
  return row["status"] == "diverged" or row.get("dynamics") == "exploding"


class ClaimResult(NamedTuple):
  verdict: str
  lines: list
  effect: str = ""          # the effect the verdict rests on, with its interval


def _judge(interval: study_stats.Interval, threshold: float = 0.0) -> str:
  """"supported" when the interval lies above ``threshold``, "not supported" when below,
  "inconclusive" when it straddles it; one seed: the point estimate's side."""
  if not np.isfinite(interval.estimate) and not np.isinf(interval.estimate):
    return "not tested"
  if not interval.replicated:
    return "supported" if interval.estimate > threshold else "not supported"
  if interval.method == "range":
    # The seeds' min and max is no 95 % interval: with 3 seeds all on one side of the
    # threshold a sign test gives p = 0.25.
    return "inconclusive"
  if interval.low > threshold:
    return "supported"
  if interval.high <= threshold:      # an interval at exactly 0: no effect, not a doubt
    return "not supported"
  return "inconclusive"


def _interval_note(interval: study_stats.Interval, threshold: float = 0.0) -> str:
  if not interval.replicated:
    return "one seed per setting: no interval, the verdict reads the point estimate"
  side = "excludes" if interval.excludes(threshold) else "includes"
  if interval.method == "range":
    return (f"the range over seeds {side} {threshold:g}; a seed's contrast is infinite, so "
            "there is no t interval, and a range over 3 seeds is not one: inconclusive")
  return f"95 % t interval over seeds {side} {threshold:g}"


def claim_k_matters_most(rows, axes, roles, metric) -> ClaimResult:
  if _untested(roles, axes, "K"):
    return _untested(roles, axes, "K")
  k = roles["K"]
  effects = main_effects(rows, axes)
  lines = [f"Main effect of each swept setting on log10 {metric}, signed: its last level's "
           "mean minus its first level's, levels in value order (each level's mean over the "
           "settings at that level; a diverged cell counts as the grid's worst), computed "
           "within each seed, with its t interval over seeds:", "",
           "| setting | levels | mean log10 " + metric + " per level | stable fraction "
           "per level | last minus first level [95 % interval] |", "|---|---|---|---|---|"]
  intervals = {key: study_stats.by_replicate(
      rows, functools.partial(_effect, key=key, levels=_levels(rows, key))) for key in axes}
  factor = {key: _factor_effect(rows, key) for key in axes}
  lines[-2] += " largest level contrast [simultaneous 95 %] |"
  lines[-1] = lines[-1] + "---|"
  for key, e in sorted(effects.items(), key=lambda kv: -abs(factor[kv[0]][0].estimate)):
    iv, (a, b), _ = factor[key]
    lines.append(f"| {key} | {', '.join(_fmt(v) for v in e['levels'])} | "
                 f"{', '.join(f'{m:.2f}' for m in e['mean_log10'])} | "
                 f"{', '.join(f'{s:.2f}' for s in e['stable_fraction'])} | {intervals[key]} | "
                 f"{_fmt(b)} minus {_fmt(a)}: {iv} |")
  others = [a for a in axes if a != k]
  k_low, k_high = factor[k][2]
  rival = max(others, key=lambda a: abs(factor[a][0].estimate), default=None)
  largest = max(axes, key=lambda a: abs(factor[a][0].estimate))
  lr = roles.get("lr")
  if lr in axes:
    best = []
    for level in _levels(rows, k):
      means = _level_means(_subset(rows, **{k: level}), lr)
      finite = {v: m for v, m in means.items() if np.isfinite(m)}
      best.append((level, min(finite, key=finite.get) if finite else None))
    lines += ["", "Best learning rate (lowest mean log10 " + metric + ") at each K: " +
              "; ".join(f"K={_fmt(a)}: {_fmt(b) if b is not None else '-'}"
                        for a, b in best) + "."]
  if not factor[k][0].replicated:
    verdict = ("supported" if all(abs(factor[k][0].estimate) > abs(factor[a][0].estimate)
                                  for a in others) else "not supported")
  elif all(k_low > factor[a][2][1] for a in others):
    verdict = "supported"
  elif any(factor[a][2][0] > k_high for a in others):
    verdict = "not supported"
  else:
    verdict = "inconclusive"

  def describe(key) -> str:
    iv, (a, b), _ = factor[key]
    return f"{iv} ({_fmt(b)} minus {_fmt(a)})"

  effect = (f"K's largest level contrast {describe(k)}"
            + (f"; largest other ({rival}) {describe(rival)}" if rival else ""))
  lines += ["", f"Largest level contrast here: **{largest}** ({factor[largest][0].estimate:+.2f} "
            f"orders of magnitude). K's: {describe(k)}"
            + (f"; the largest other, {rival}: {describe(rival)}" if rival else "")
            + (f" (simultaneous 95 % t intervals over seeds; K's "
               f"{'excludes' if factor[k][0].excludes(0) else 'includes'} 0)."
               if factor[k][0].replicated else " (one seed: no interval)."),
            "", "How much a factor matters is its largest contrast between two of its levels "
            "(a factor whose best level is in the middle, like a learning rate, has a small "
            "last-minus-first effect and a large one here); every pair of a factor's levels "
            "gets a t interval over seeds at the Bonferroni-adjusted level, so the factor's "
            "intervals hold together at 95 %.",
            "", "Rule: supported when every |contrast| K's intervals allow exceeds every "
            "|contrast| any other setting's intervals allow; not supported when some other "
            "setting's smallest allowed |contrast| exceeds K's largest; inconclusive otherwise."]
  return ClaimResult(verdict, lines, effect)


def claim_small_k_low_lr(rows, axes, roles, metric) -> ClaimResult:
  if _untested(roles, axes, "K", "lr"):
    return _untested(roles, axes, "K", "lr")
  k, lr, sn = roles["K"], roles["lr"], roles.get("sn")
  ks = sorted(_levels(rows, k))
  lrs = sorted(_levels(rows, lr))
  lines = [f"Outcome by K and learning rate, pooled over the other settings and seeds: "
           f"fraction of stable cells / median {metric}.", "",
           "| K \\ lr | " + " | ".join(_fmt(v) for v in lrs) + " |",
           "|---|" + "---|" * len(lrs)]
  highest_stable = {}
  for kv in ks:
    cells = []
    for v in lrs:
      sub = _subset(rows, **{k: kv, lr: v})
      frac = np.mean([r["stable"] for r in sub]) if sub else np.nan
      q = [r["quality"] for r in sub if r["status"] == "finished" and np.isfinite(r["quality"])]
      cells.append(f"{frac:.2f} / {np.median(q):.3g}" if q else f"{frac:.2f} / -")
      if sub and frac >= 0.5:
        highest_stable[kv] = v
    lines.append(f"| {_fmt(kv)} | " + " | ".join(cells) + " |")
  small, large, low, high = ks[0], ks[-1], lrs[0], lrs[-1]
  hs_small, hs_large = highest_stable.get(small), highest_stable.get(large)
  lines += ["", f"Highest learning rate with at least half of its cells stable: K={_fmt(small)}:"
            f" {_fmt(hs_small) if hs_small is not None else 'none'}; K={_fmt(large)}: "
            f"{_fmt(hs_large) if hs_large is not None else 'none'}."]

  def contrast(rs, value) -> float:
    """value(high lr) - value(low lr) at the smallest K, minus the same at the largest K."""
    def gap(kv):
      sub = _subset(rs, **{k: kv})
      return value(_subset(sub, **{lr: high})) - value(_subset(sub, **{lr: low}))
    return gap(small) - gap(large)

  def failed(rs) -> float:       # fraction of cells that blew up (diverged or exploding)
    return float(np.mean([_blew_up(r) for r in rs])) if rs else np.nan

  def mean_score(rs) -> float:   # rows carry "_s": log10 quality, diverged = the grid's worst
    values = [r["_s"] for r in rs if np.isfinite(r["_s"])]
    return float(np.mean(values)) if values else np.nan

  def quality_contrast(rs) -> float:
    return contrast([dict(r, _s=v) for r, v in zip(rs, _score(rs))], mean_score)

  def blowups(kv) -> study_stats.PairedBinary:    # high vs low lr, matched cells at K = kv
    pairs = _matched_pairs(_subset(rows, **{k: kv}), lr, high, low, axes)
    return study_stats.paired_binary([(_blew_up(a), _blew_up(b)) for a, b in pairs])

  # Blow-ups (diverged or exploding), not drift: a low learning rate that has not finished
  # learning drifts, which is no instability of the high one. Yes/no outcomes over matched
  # pairs are tested exactly (McNemar), not by t intervals over 3 seeds' fractions.
  at_small, at_large = blowups(small), blowups(large)
  unstable = study_stats.by_replicate(rows, functools.partial(contrast, value=failed))
  quality = study_stats.by_replicate(rows, quality_contrast)
  lr_verdict = at_small.verdict()
  if lr_verdict == "supported" and at_large.difference >= at_small.difference:
    lr_verdict = "not supported"         # as dangerous at large K: no small-K effect
  lines += ["", f"Blow-ups (diverged or exploding) at lr {_fmt(high)} vs lr {_fmt(low)}, matched "
            f"cells: at K={_fmt(small)} {at_small}; at K={_fmt(large)} {at_large}. Interaction "
            f"contrasts, (lr {_fmt(high)} minus lr {_fmt(low)}) at K={_fmt(small)} minus the same "
            f"at K={_fmt(large)}, per seed: blow-up fraction {unstable} (a t interval over "
            f"the seeds' fractions: descriptive); log10 {metric} {quality} "
            f"({_interval_note(quality)}). Positive = the high learning rate costs more at "
            "small K."]
  sn_verdict = None
  if sn in axes:
    small_rows = _subset(rows, **{k: small})
    pairs = _matched_pairs(small_rows, sn, True, False, axes)
    if pairs:
      stab_on = np.mean([a["stable"] for a, _ in pairs])
      stab_off = np.mean([b["stable"] for _, b in pairs])

      def sn_gain(rs) -> float:     # log10 quality without minus with: positive = sn better
        score = _score(rs)
        matched = _matched_settings([r for r in rs if r[k] == small], sn, False, True, axes,
                                    score[[r[k] == small for r in rs]])
        return float(np.mean([a - b for a, b in matched])) if matched else np.nan

      gain = study_stats.by_replicate(rows, sn_gain)
      prevented = study_stats.paired_binary([(_blew_up(off), _blew_up(on))
                                             for on, off in pairs])
      lines += ["", f"Spectral norm at K={_fmt(small)}: blow-ups without vs with, {prevented}; "
                f"stable fraction {stab_on:.2f} with vs {stab_off:.2f} without; log10 "
                f"{metric} without minus with (positive = spectral norm better): {gain} "
                f"({_interval_note(gain)})."]
      if prevented.verdict() == "supported":
        sn_verdict = "supported"
      elif prevented.verdict() == "not supported" and prevented.second_only:
        sn_verdict = "not supported"     # spectral norm itself made cells blow up, significantly
      else:
        sn_verdict = _judge(gain)        # no evidence on blow-ups either way: judge by quality
  lines += ["", "Rule: the learning-rate part is supported when the high learning rate blows up "
            "more of its matched cells than the low one at the smallest K (exact McNemar test, "
            "p < 0.05) and by a larger share than at the largest K; not supported when no pair "
            "differs, the low rate blows up more, or the high rate is as dangerous at large K; "
            "the spectral-norm part when it prevents blow-ups at the smallest K (the same test) "
            "or, with no evidence on blow-ups either way, improves quality over the gain's "
            "interval."]
  if sn_verdict is None or lr_verdict == sn_verdict:
    verdict = lr_verdict
  else:
    verdict = "mixed"
  lines.append(f"Learning rate: {lr_verdict}" + (f"; spectral norm: {sn_verdict}."
                                                 if sn_verdict else "."))
  return ClaimResult(verdict, lines, f"blow-ups, high vs low lr at K={_fmt(small)}: {at_small}; "
                     f"at K={_fmt(large)}: {at_large}")


def _lower_median(values) -> float:
  return float(np.quantile(np.asarray(values, np.float64), 0.5, method="inverted_cdf"))


def _first_time(curve: dict, target: float, axis: str = "wall_time") -> float:
  """The first ``axis`` value at which the curve reaches ``target`` (inf: never)."""
  hits = np.flatnonzero(curve["quality"] <= target) if len(curve["quality"]) else []
  return float(curve[axis][hits[0]]) if len(hits) else np.inf


def claim_large_k_stable_slow(rows, axes, roles, metric) -> ClaimResult:
  if _untested(roles, axes, "K"):
    return _untested(roles, axes, "K")
  k = roles["K"]
  ks = sorted(_levels(rows, k))
  finished = [m for r, m in _settings(rows) if np.isfinite(m)]
  # Target: the upper quartile of the settings' final quality (three in four settings end at
  # or below it), so the time to it is defined for most cells.
  target = (10 ** float(np.quantile(finished, 0.75, method="inverted_cdf")) if finished
            else np.nan)
  lines = [f"Time to quality: the first wall-clock at which a cell's {metric} reaches "
           f"{target:.3g} (the upper quartile of the settings' final {metric}), in s: the "
           "updates it took times its setting's cost per update (measured in one interleaved "
           "run when the study has costs.json, else the cell's share of its group's clock); "
           "medians are lower medians, so a level whose cells half reach the target has a "
           "finite time.", "",
           "| K | cells | stable fraction | diverged | median " + metric +
           " | median s per update | median time to target (s) | reached |",
           "|---|---|---|---|---|---|---|---|"]
  stats = {}
  for kv in ks:
    sub = _subset(rows, **{k: kv})
    stable = float(np.mean([r["stable"] for r in sub]))
    div = sum(r["status"] == "diverged" for r in sub)
    q = [r["quality"] for r in sub if r["status"] == "finished" and np.isfinite(r["quality"])]
    costs = [r["seconds_per_update"] for r in sub if np.isfinite(r["seconds_per_update"])]
    spu = float(np.median(costs)) if costs else np.nan
    times = [_first_time(r["_curve"], target) if r["status"] == "finished" else np.inf
             for r in sub]
    stats[kv] = (stable, spu)
    lines.append(f"| {_fmt(kv)} | {len(sub)} | {stable:.2f} | {div} | "
                 f"{np.median(q) if q else np.nan:.3g} | {spu:.3g} | "
                 f"{_lower_median(times):.3g} | {sum(np.isfinite(times))}/{len(sub)} |")
  small, large = ks[0], ks[-1]

  def time_ratio(rs) -> float:     # log10 of median time to target, largest K over smallest
    def median_time(kv):
      times = [_first_time(r["_curve"], target) if r["status"] == "finished" else np.inf
               for r in rs if r[k] == kv]
      return _lower_median(times) if times else np.nan
    a, b = median_time(large), median_time(small)
    if np.isnan(a) or np.isnan(b) or (np.isinf(a) and np.isinf(b)):
      return np.nan
    return float(np.log10(a / b)) if np.isfinite(a) and np.isfinite(b) else (
        np.inf if np.isinf(a) else -np.inf)

  ratio = study_stats.by_replicate(rows, time_ratio)
  # Less often stable only by an exact test over matched pairs (the same lr, noise, ... and
  # seed at both K): one cell more or less among 36 is not a difference in stability.
  stability = study_stats.paired_binary([
      (not a["stable"], not b["stable"]) for a, b in _matched_pairs(rows, k, large, small, axes)])
  less_stable = stability.verdict() == "supported"
  per_update = stats[large][1] / stats[small][1] if stats[small][1] > 0 else np.nan
  lines += ["", f"K={_fmt(large)} vs K={_fmt(small)}: stable fraction {stats[large][0]:.2f} vs "
            f"{stats[small][0]:.2f}; pairs unstable only at K={_fmt(large)} vs only at "
            f"K={_fmt(small)}: {stability}; one update takes {per_update:.1f}x as long; log10 "
            f"of the median time to target, K={_fmt(large)} over K={_fmt(small)}: {ratio} "
            f"({_interval_note(ratio)}).",
            "", "Rule: supported when the largest K is not less often stable than the smallest "
            "(an exact McNemar test of matched pairs, p < 0.05) and takes longer to reach the "
            "target (log10 time ratio positive over its interval); not supported when it is "
            "less often stable by that test or faster; inconclusive otherwise (and not tested "
            "when neither K reaches the target)."]
  time_verdict = _judge(ratio)
  if time_verdict == "not tested":
    return ClaimResult("not tested", lines + ["", "Neither K level reached the target."])
  verdict = "not supported" if less_stable else time_verdict
  return ClaimResult(verdict, lines, f"log10 time-to-target ratio: {ratio}")


def claim_noiseless_comparable(rows, axes, roles, metric) -> ClaimResult:
  if _untested(roles, axes, "noise"):
    return _untested(roles, axes, "noise")
  noise = roles["noise"]
  levels = sorted(_levels(rows, noise))
  if levels[0] != 0 or len(levels) < 2:
    return ClaimResult("not tested", ["The noise axis has no noiseless (0) level."])
  noiseless, noisy = levels[0], levels[-1]
  pairs = _matched_pairs(rows, noise, noiseless, noisy, axes)
  both = [(a, b) for a, b in pairs if a["status"] == "finished" and b["status"] == "finished"
          and np.isfinite(a["quality"]) and np.isfinite(b["quality"]) and b["quality"] > 0]
  ratios = np.asarray([a["quality"] / b["quality"] for a, b in both])
  stab0 = np.mean([a["stable"] for a, _ in pairs]) if pairs else np.nan
  stab1 = np.mean([b["stable"] for _, b in pairs]) if pairs else np.nan
  lines = [f"{len(pairs)} matched cells (noise 0 vs {_fmt(noisy)}, all else equal, seeds "
           f"included); {len(both)} with both finished. Stable fraction: noiseless {stab0:.2f}, "
           f"noisy {stab1:.2f}."]
  if not len(ratios):
    return ClaimResult("not tested", lines + ["No pair finished on both sides."])

  finished_both = {(a["cell"], b["cell"]) for a, b in both}

  def gap(rs) -> float:   # mean log10 gap, noiseless minus noisy, over pairs both finished
    diffs = [np.log10(a["quality"] / b["quality"])
             for a, b in _matched_pairs(rs, noise, noiseless, noisy, axes)
             if (a["cell"], b["cell"]) in finished_both]
    return float(np.mean(diffs)) if diffs else np.nan

  # Quality is compared where both cells finished; a divergence is the other outcome, tested
  # on its own (imputing the grid's worst score would let the noisy side's divergences make
  # the noiseless cells look comparable).
  interval = study_stats.by_replicate(rows, gap)
  blowups = study_stats.paired_binary([(_blew_up(a), _blew_up(b)) for a, b in pairs])
  lines.append(f"Blow-ups (diverged or exploding), noiseless vs noisy: {blowups}.")
  margin = float(np.log10(COMPARABLE_FACTOR))
  lines += [f"{metric}(noiseless) / {metric}(noisy) per matched cell: median "
            f"{np.median(ratios):.3g}, range {ratios.min():.3g}-{ratios.max():.3g}; noiseless "
            f"better in {int(np.sum(ratios < 1))}/{len(ratios)}. Mean log10 gap (noiseless "
            f"minus noisy, over the pairs both finished): {interval}, i.e. a factor "
            f"{10 ** interval.estimate:.3g}"
            + (f" [{10 ** interval.low:.3g}, {10 ** interval.high:.3g}]"
               if interval.replicated else "") + ".",
            "", f"Rule (an equivalence test): supported when the noiseless cells are at most a "
            f"factor {COMPARABLE_FACTOR} worse over the whole interval (log10 gap <= "
            f"{margin:.3f}), not supported when more than that over the whole interval, "
            "inconclusive otherwise."]
  checked = [(a, b) for a, b in pairs if a.get("convergence") in VERDICTS
             and b.get("convergence") in VERDICTS]
  if checked:
    lines += ["", "Long-run check of the same pairs (ebm-anatomy; the claim is about samples, "
              "this says whether a valid density was learned): convergent "
              f"{np.mean([a['convergence'] == 'convergent' for a, _ in checked]):.2f} of the "
              "noiseless cells vs "
              f"{np.mean([b['convergence'] == 'convergent' for _, b in checked]):.2f} of the "
              f"noisy ones ({len(checked)} pairs checked)."]
  if not interval.replicated:
    verdict = "supported" if interval.estimate <= margin else "not supported"
  elif interval.high <= margin:
    verdict = "supported"
  elif interval.low > margin:
    verdict = "not supported"
  else:
    verdict = "inconclusive"
  return ClaimResult(verdict, lines, f"log10 gap noiseless - noisy: {interval}")


CLAIMS = (
    ("1. The number of sampling steps K matters most; all other settings must be set around "
     "it.", claim_k_matters_most),
    ("2. With small K the learning rate must be low, and spectral normalisation further "
     "stabilises training.", claim_small_k_low_lr),
    ("3. With large K training is stable but slow.", claim_large_k_stable_slow),
    ("4. Proper MCMC is not needed: noiseless gradient descent gives comparable results.",
     claim_noiseless_comparable),
)


def anova_lines(rows, axes, metric) -> list[str]:
  """The ANOVA table of log10 quality (diverged cells as the grid's worst)."""
  score = _score(rows)
  table = study_stats.anova([dict(r, _score=s) for r, s in zip(rows, score)], axes, "_score")
  if not table:
    return ["Too few cells for an ANOVA."]
  imputed = int(sum(r["status"] == "diverged" for r in rows))
  lines = [f"ANOVA of log10 {metric} (ordinary least squares on every main effect and two-way "
           "interaction, type-II sums of squares; the seeds are the residual; a diverged cell "
           "scores as the grid's worst"
           + (f": {imputed} of {len(rows)} cells are such imputed values, so the design is "
              "balanced only through them and the shares of the factors that made cells "
              "diverge are inflated accordingly" if imputed else "") + "):", "",
           "| term | df | share of the sum of squares | F | p |", "|---|---|---|---|---|"]
  for t in sorted(table, key=lambda t: (t["term"] == "Residual", -t["sum_sq"])):
    f_text = f"{t['F']:.3g}" if np.isfinite(t["F"]) else "-"
    p_text = f"{t['p']:.2g}" if np.isfinite(t["p"]) else "-"
    lines.append(f"| {t['term']} | {t['df']:.0f} | {t['share']:.3f} | {f_text} | {p_text} |")
  return lines


def _value_at(curve: dict, axis: str, budget: float) -> float:
  """The quality last measured at or before ``budget`` on ``axis`` (nan: none yet)."""
  idx = np.flatnonzero(curve[axis] <= budget * (1 + 1e-9))
  return float(curve["quality"][idx[-1]]) if len(idx) else np.nan


VERDICTS = ("convergent", "non-mixing", "non-convergent")


def convergence_lines(rows, axes, metric) -> list[str]:
  """Per level of each factor: the fractions of checked cells with each long-run verdict."""
  checked = [r for r in rows if r.get("convergence", "not checked") in VERDICTS]
  if not checked:
    return ["No cell has a long-run check (`longrun.at_end`, or `python -m "
            "ebm_jax.eval.convergence --sweep=... --study=...` afterwards)."]
  lines = [f"ebm-anatomy's long-run check of {len(checked)} finished cells: chains of the "
           f"training sampler run {_longrun_steps(checked)} steps from data and from uniform "
           f"noise with the evaluation weights, scored by {metric} like the short-run samples. "
           f"*Convergent*: both within {convergence.FACTOR:g}x of the short-run {metric}; "
           "*non-mixing*: from data within it, from noise not; *non-convergent*: from data "
           "worse (a short-run sampler, not a density). Fraction of checked cells per level "
           "(convergent / non-mixing / non-convergent):", "",
           "| setting | level | cells | convergent | non-mixing | non-convergent | median "
           f"{metric} short-run / long-run from data / from noise |",
           "|---|---|---|---|---|---|---|"]
  for key in axes:
    for level in _levels(checked, key):
      sub = [r for r in checked if r[key] == level]
      fractions = [np.mean([r["convergence"] == v for r in sub]) for v in VERDICTS]
      medians = [np.median([r[k] for r in sub]) for k in ("quality", "longrun_from_data",
                                                         "longrun_from_noise")]
      lines.append(f"| {key} | {_fmt(level)} | {len(sub)} | " + " | ".join(
          f"{f:.2f}" for f in fractions) + " | " + " / ".join(f"{m:.3g}" for m in medians)
          + " |")
  return lines


def _longrun_steps(rows) -> str:
  steps = sorted({convergence.read(r["_workdir"])["num_steps"] for r in rows})
  return "/".join(f"{s:,}" for s in steps)


BUDGET_AXES = {"step": "equal updates", "wall_time": "equal wall-clock",
               "grad_evals": "equal gradient evaluations"}


def budget_lines(rows, axes, metric) -> list[str]:
  """Each factor's level means at the end of training and at equal updates, equal wall-clock
  and equal energy-gradient evaluations: for each, the budget every finished cell has spent."""
  finished = [r for r in rows if r["status"] == "finished" and len(r["_curve"]["step"])]
  if not finished:
    return ["No finished cell has a quality curve."]
  budgets = {axis: min(float(r["_curve"][axis][-1]) for r in finished) for axis in BUDGET_AXES}

  def per_update(r, axis) -> float:
    return {"step": 1.0, "wall_time": r["seconds_per_update"],
            "grad_evals": float(r.get("grad_evals_per_update", np.nan))}[axis]

  def quality_at(axis):
    def quality(r):      # the cell's last evaluation within the budget (nan: none yet)
      if axis is None:
        return r["quality"] if r["status"] == "finished" else np.nan
      return _value_at(r["_curve"], axis, budgets[axis]) if len(r["_curve"]["step"]) else np.nan
    return quality

  def diverged_within(r, axis) -> bool:   # a cell that diverged after the budget had not yet
    if r["status"] != "diverged":
      return False
    if axis is None:
      return True
    try:
      return float(r["diverged_at_step"]) * per_update(r, axis) <= budgets[axis] * (1 + 1e-9)
    except (TypeError, ValueError):
      return True

  def scores_at(axis) -> list[float]:
    """log10 quality at the budget; a cell diverged within it scores as the worst measured
    there over the whole grid (not its seed's); nan when it was not evaluated yet."""
    measured = [quality_at(axis)(r) if not diverged_within(r, axis) else np.nan for r in rows]
    logs = np.log10(np.where(np.asarray(measured) > 0, measured, np.nan))
    worst = np.nanmax(logs) if np.any(np.isfinite(logs)) else np.nan
    return [worst if diverged_within(r, axis) else v for r, v in zip(rows, logs)]

  unmeasured = {axis: sum(not np.isfinite(quality_at(axis)(r)) for r in finished)
                for axis in BUDGET_AXES}
  lines = [f"Each level's mean log10 {metric} [95 % interval over seeds] at the end of training "
           f"and at three budgets every finished cell has spent: {budgets['step']:.0f} updates, "
           f"{budgets['wall_time']:.3g} s of wall-clock (updates x the setting's measured cost "
           "per update, or a cell's share of its group's clock without costs.json) and "
           f"{budgets['grad_evals']:.3g} energy-gradient evaluations. A cell's quality at a "
           "budget is its last evaluation within it; a cell that diverged within the budget "
           "counts as the worst measured there, one that diverged later by its evaluations "
           "before; '-' = no cell of the level was evaluated within the budget ("
           + ", ".join(f"{n} of {len(finished)} cells unevaluated at {BUDGET_AXES[a]}"
                       for a, n in unmeasured.items()) + ").", "",
           "| setting | level | end of training | " + " | ".join(BUDGET_AXES.values()) + " |",
           "|---|---|---|---|---|---|"]
  scored = {axis: [dict(r, _s=s) for r, s in zip(rows, scores_at(axis))]
            for axis in (None, *BUDGET_AXES)}
  for key in axes:
    for level in _levels(rows, key):
      cells = []
      for axis in (None, *BUDGET_AXES):
        at_level = [r for r in scored[axis] if r[key] == level]
        if not any(np.isfinite(r["_s"]) and not diverged_within(r, axis) for r in at_level):
          cells.append("-")        # imputed divergences alone are no measurement of a level
          continue

        def level_mean(rs, level=level):
          return _level_means(rs, key).get(level, np.nan)

        cells.append(str(study_stats.by_replicate(scored[axis], level_mean)))
      lines.append(f"| {key} | {_fmt(level)} | " + " | ".join(cells) + " |")
  return lines


# ----------------------------------------------------------------------------- figures


def _facets(rows, axes, row_key, col_key):
  rest = [k for k in axes if k not in (row_key, col_key)]
  for values in itertools.product(*(_levels(rows, k) for k in rest)):
    yield dict(zip(rest, values))


def _facet_name(facet: dict) -> str:
  return sweep_lib.short_name(facet) or "all"


def write_figures(rows, grid: sweep_lib.Grid, roles, metric, plots_dir) -> list[str]:
  """Heat maps (row axis x column axis per facet of the other axes) and trace overlays."""
  axes = list(grid.axes)
  row_key = roles.get("K") if roles.get("K") in axes else axes[0]
  col_candidates = [k for k in ([roles.get("lr")] + axes) if k in axes and k != row_key]
  col_key = col_candidates[0] if col_candidates else None
  paths = []
  finite = [r["quality"] for r in rows if r["status"] == "finished" and r["quality"] > 0]
  value_range = (min(finite), max(finite)) if finite else None   # one scale for all facets
  for facet in _facets(rows, axes, row_key, col_key):
    sub = _subset(rows, **facet)
    row_levels = sorted(_levels(sub, row_key))
    col_levels = sorted(_levels(sub, col_key)) if col_key else [None]
    values = np.full((len(row_levels), len(col_levels)), np.nan)
    marks = [["" for _ in col_levels] for _ in row_levels]
    for i, rv in enumerate(row_levels):
      for j, cv in enumerate(col_levels):
        match = _subset(sub, **{row_key: rv, **({col_key: cv} if col_key else {})})
        if not match:
          continue
        # The geometric mean over the setting's finished replicates; the others are counted.
        q = [r["quality"] for r in match if r["status"] == "finished" and r["quality"] > 0]
        if q:
          values[i, j] = 10 ** float(np.mean(np.log10(q)))
        outcomes = [(f"diverged@{r['diverged_at_step']}" if len(match) == 1 else "diverged")
                    if r["status"] == "diverged" else
                    (r["dynamics"] if r["status"] == "finished" else r["status"])
                    for r in match]
        odd = {o: outcomes.count(o) for o in outcomes if o != "stable"}
        marks[i][j] = ", ".join(o if len(match) == 1 else f"{n}/{len(match)} {o}"
                                for o, n in odd.items())
    name = f"{grid.name}-{_facet_name(facet)}"
    path = os.path.join(plots_dir, f"heatmap-{name}.png")
    plotting.save_heatmap(path, values, row_levels, col_levels, marks, row_name=row_key,
                          col_name=col_key or "", value_name=metric,
                          title=f"{grid.name}, {_facet_name(facet)}: {metric} (lower is better)",
                          value_range=value_range)
    paths.append(path)
    for rv in row_levels:
      traces = {}
      for r in _subset(sub, **{row_key: rv}):
        trace = os.path.join(os.path.dirname(plots_dir), "cells", r["cell"], "diagnostics.npz")
        if os.path.exists(trace):
          with np.load(trace) as f:
            label = f"{col_key}={_fmt(r.get(col_key))}" if col_key else r["cell"]
            if sweep_lib.SEED_KEY in r:
              label += f" seed {r[sweep_lib.SEED_KEY]}"
            traces[label] = (f["step"], f["d_s_t"], f["r_t"])
      if traces:
        tname = f"traces-{name}-{sweep_lib.short_name({row_key: rv})}.png"
        plotting.save_trace_overlay(os.path.join(plots_dir, tname), traces,
                                    f"{grid.name}, {_facet_name(facet)}, {row_key}={_fmt(rv)}")
  curves = {f"{row_key}={_fmt(v)}": [r["_curve"] for r in rows if r[row_key] == v
                                     and r["status"] == "finished"]
            for v in sorted(_levels(rows, row_key))}
  if any(len(c["quality"]) for members in curves.values() for c in members):
    path = os.path.join(plots_dir, f"curves-{grid.name}.png")
    plotting.save_quality_curves(
        path, curves, {"wall_time": "wall-clock (s)",
                       "grad_evals": "energy-gradient evaluations", "step": "updates"},
        metric, f"{grid.name}: {metric} against budgets, every cell, coloured by {row_key}")
    paths.insert(0, path)
  return paths


# ----------------------------------------------------------------------------- report


def _base_name(grid: sweep_lib.Grid) -> str:
  if grid.base is None:
    return "--config"
  return grid.base if isinstance(grid.base, str) else "a config given in code"


def _replicates_note(sweep: sweep_lib.Sweep, rows) -> str:
  seeds = sorted({r[sweep_lib.SEED_KEY] for r in rows if sweep_lib.SEED_KEY in r})
  if len(seeds) < 2:
    return ("One seed per setting: the verdicts read point estimates and carry no interval; "
            "give the sweep seeds=(0, 1, 2) for replicates.")
  where = ("each seed's cells in vmapped groups of their own, so a seed replicates a whole "
           "group" if sweep.replicate_groups else
           "a setting's seeds in one vmapped group, so the seeds share their group's conditions "
           "and the intervals leave out the variance between groups")
  return (f"{len(seeds)} seeds per setting ({', '.join(map(str, seeds))}), trained with "
          f"{where}. Every figure in brackets is a contrast computed within each seed, its mean "
          "over seeds and its 95 % Student-t interval (at 3 seeds the t interval covers its "
          "nominal 95 % in simulation; a percentile bootstrap over 3 seeds covers about 73 %); "
          "the heat maps show each setting's geometric mean over its finished seeds.")


def _costs_note(costs: dict | None, rows: Sequence[dict] = ()) -> str:
  missing = [r["cell"] for r in rows if r["status"] != "not run"
             and not np.isfinite(r.get("_cost", np.nan))]
  if costs and missing:
    return (f"Equal wall-clock comparisons: `costs.json` lacks the setting of {len(missing)} "
            f"cells ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): measure "
            "again (`python -m ebm_jax.study.costs`); until then those cells read their "
            "group's clock and the two clocks are mixed.")
  if not costs:
    return ("Equal wall-clock comparisons read each cell's share of its group's own clock "
            "(no `costs.json`: `python -m ebm_jax.study.costs` measures each setting's cost "
            "per update in one interleaved run).")
  per = "; ".join(f"{e['cell']}'s setting {e['seconds_per_update']:.3g} s"
                  for e in costs["settings"].values())
  return (f"Equal wall-clock comparisons read time as updates x each setting's cost per update, "
          f"measured alone and interleaved in one run ({costs['repeats']} repeats of "
          f"{costs['updates_per_repeat']} updates, medians; `costs.json`) on {costs['machine']}: "
          f"{per}. The cells themselves trained by updates, so no group's clock enters.")


def write_report(sweep: sweep_lib.Sweep, cells: Sequence[sweep_lib.Cell], workdir: str,
                 title: str = "Study") -> str:
  """Writes results.csv, plots/ and report.md under ``workdir``; returns the report's path."""
  costs = study_costs.read(workdir)
  rows = [cell_row(c, costs) for c in cells]
  write_csv(os.path.join(workdir, "results.csv"), rows)
  plots_dir = os.path.join(workdir, "plots")
  lines = [f"# {title}", ""]
  if sweep.description:
    lines += [sweep.description, ""]
  n_done = sum(r["status"] != "not run" for r in rows)
  lines += [f"{len(rows)} cells ({n_done} run; {sum(r['status'] == 'diverged' for r in rows)} "
            f"diverged; {sum(bool(r['recoveries']) for r in rows)} recovered from a divergence "
            f"or runaway; {sum(r['stable'] for r in rows)} finished with stable dynamics). "
            "One row per cell in `results.csv`; every cell's run directory is "
            "`cells/<cell>/`.", "",
            "*Stable* means the run finished and ebm-anatomy's verdict on its d_s_t trace "
            "(last 500 steps) is \"oscillates around 0\" with r_t grown less than "
            f"{EXPLODING_R_T_GROWTH:.0f}x over the run (else *exploding*); *drift-* / *drift+* "
            "mean d_s_t settled below / above 0; a cell recovered automatically from a "
            "divergence or runaway (`recoveries` in `results.csv`) is judged by its dynamics "
            "after the recovery. Quality: toy densities KL(true * K || KDE_K of the "
            "short-run samples), a proper score with a fixed Gaussian kernel K; "
            "images classifier-feature FID of `samples.npz`. Lower is better.", "",
            _replicates_note(sweep, rows), "", _costs_note(costs, rows), ""]
  summary = []
  for grid in sweep.grids:
    grid_rows = [r for r in rows if r["grid"] == grid.name]
    ran = [r for r in grid_rows if r["status"] in ("finished", "diverged")]
    metric = quality_metric(next(c for c in cells if c.grid == grid.name).config)
    axes = list(grid.axes)
    lines += [f"## Grid `{grid.name}`", "",
              "Swept: " + "; ".join(f"`{k}` in {{{', '.join(_fmt(v) for v in vals)}}}"
                                    for k, vals in grid.axes.items()) + ".",
              "Fixed: " + (", ".join(f"`{k}={_fmt(v)}`" for k, v in grid.fixed.items())
                           or "none") + f"; base recipe `{_base_name(grid)}`.", ""]
    if not ran:
      lines += ["No cell of this grid has run yet.", ""]
      continue
    scored = with_scores(ran)        # divergences count as the grid's worst in every seed
    for claim, fn in CLAIMS:
      result = fn(scored, axes, sweep.roles, metric)
      summary.append((grid.name, claim.split(" ")[0], result.verdict, result.effect))
      lines += [f"### Claim {claim}", "", f"**Verdict on `{grid.name}`: {result.verdict}.**",
                "", *result.lines, ""]
    lines += ["### Main effects and interactions", "", *anova_lines(ran, axes, metric), "",
              "### Budget-matched comparison", "", *budget_lines(ran, axes, metric), "",
              "### Convergent or not", "", *convergence_lines(ran, axes, metric), ""]
    figures = write_figures(grid_rows, grid, sweep.roles, metric, plots_dir)
    if len(ran) < len(grid_rows):
      lines.insert(len(lines) - 1, f"(Verdicts above use the {len(ran)} of {len(grid_rows)} "
                   "cells that have run.)")
    lines += ["### Figures", ""] + [
        f"![{os.path.basename(p)}](plots/{os.path.basename(p)})" for p in figures] + [""]
    lines += ["### Cells", "", "| cell | outcome | d_s_t mean (2nd half) | r_t mean | "
              "steps/s (group) |", "|---|---|---|---|---|"]
    for r in grid_rows:
      sps = r["steps_per_sec"]
      lines.append(f"| {r['cell']} | {_outcome(r)} | {r['d_s_t_mean']:.3g} | "
                   f"{r['r_t_mean']:.3g} | {sps:.3g} |" if isinstance(sps, float) else
                   f"| {r['cell']} | {_outcome(r)} | {r['d_s_t_mean']:.3g} | "
                   f"{r['r_t_mean']:.3g} | - |")
    lines.append("")
  if summary:
    lines[2:2] = ["## Summary", "", "| grid | claim | verdict | effect [95 % interval] |",
                  "|---|---|---|---|"] + [
        f"| {g} | {c} | {v} | {e or '-'} |" for g, c, v, e in summary] + [""]
  path = os.path.join(workdir, "report.md")
  rundir.write_text(path, "\n".join(lines) + "\n")
  return path
