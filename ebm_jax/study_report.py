"""A study's results: ``results.csv``, heat maps, trace figures and ``report.md``.

Everything here reads the cells' own output files (``sweep_cell.json``, ``metrics.jsonl``,
``diagnostics.npz``, ``eval.json``), so a report can be rebuilt at any time, also for a study
that is still running (its unfinished cells show as "not run").

The report tests the thesis's four claims on the data: each verdict is computed from the table
it prints, with the rule it applies stated beside it.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from typing import Sequence

import numpy as np

from ebm_jax import data as data_lib
from ebm_jax import diagnostics
from ebm_jax import plotting
from ebm_jax import reporting
from ebm_jax import rundir
from ebm_jax import sweep as sweep_lib

TOY_QUALITY = "kl_true_kde"        # KL(true || KDE of the samples): comparable across samplers
IMAGE_QUALITY = "fid"              # classifier-feature FID of samples.npz
IMAGE_METRICS = ("fid", "kid", "inception_score", "class_entropy", "class_coverage")
TOY_METRICS = ("kl_true_kde", "kl_true_model")
# A run whose sample-gradient norm r_t grew more than this factor from its first tenth to its
# last quarter has energies running away, whatever d_s_t's sign changes say.
EXPLODING_R_T_GROWTH = 100.0
# Large K is "slow" when an update costs at least this factor more than at the smallest K.
SLOW_FACTOR = 1.5
# Noiseless cells are "comparable" when their quality is at most this factor worse.
COMPARABLE_FACTOR = 1.5


def quality_metric(config) -> str:
  return TOY_QUALITY if data_lib.is_toy(config.data.name) else IMAGE_QUALITY


def _verdict_class(verdict: str) -> str:
  for prefix, name in (("stable", "stable"), ("drifting below", "drift-"),
                       ("drifting above", "drift+"), ("non-finite", "diverged")):
    if verdict.startswith(prefix):
      return name
  return "short"


def _r_t_growth(r_t: np.ndarray) -> float:
  """Mean r_t over the last quarter of the run / over its first tenth."""
  r_t = np.asarray(r_t, np.float64)
  if len(r_t) < 20 or not np.all(np.isfinite(r_t)):
    return np.nan
  first = np.mean(np.abs(r_t[:max(1, len(r_t) // 10)]))
  return float(np.mean(np.abs(r_t[-(len(r_t) // 4):])) / first) if first > 0 else np.inf


def cell_row(cell: sweep_lib.Cell) -> dict:
  """One row of results.csv: the swept values, the outcome, the dynamics and the quality."""
  status = sweep_lib.read_status(cell) or {"status": "not run"}
  row = {"cell": cell.name, "grid": cell.grid, **cell.overrides,
         "status": status["status"], "diverged_at_step": status.get("diverged_at_step", ""),
         "models_in_group": status.get("models_in_group", ""),
         "wall_time_s": status.get("group_wall_time_s", "")}
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
  row.update({
      "d_s_t_final": last.get("d_s_t", np.nan),
      "d_s_t_mean": float(np.mean(half)) if len(half) else np.nan,
      "d_s_t_sd": float(np.std(half)) if len(half) else np.nan,
      "r_t_final": last.get("r_t", np.nan),
      "r_t_mean": float(np.mean(r_t[len(r_t) // 2:])) if len(r_t) else np.nan,
  })
  verdict = diagnostics.learning_verdict(d_s_t, r_t) if len(d_s_t) else "not run"
  dynamics = "diverged" if row["status"] == "diverged" else _verdict_class(verdict)
  if dynamics == "stable" and _r_t_growth(r_t) > EXPLODING_R_T_GROWTH:
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
  return row


def write_csv(path: str, rows: Sequence[dict]) -> None:
  keys = list(dict.fromkeys(k for r in rows for k in r))
  with rundir.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=keys)
    writer.writeheader()
    for r in rows:
      writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


# ----------------------------------------------------------------------------- analysis


def _score(rows: Sequence[dict]) -> np.ndarray:
  """log10 quality per row (lower = better); a diverged cell scores as the grid's worst
  finished cell, so main effects count divergence as failure rather than dropping it."""
  q = np.asarray([r["quality"] if r["status"] == "finished" else np.nan for r in rows],
                 np.float64)
  s = np.log10(np.where(q > 0, q, np.nan))
  worst = np.nanmax(s) if np.any(np.isfinite(s)) else np.nan
  diverged = np.asarray([r["status"] == "diverged" for r in rows])
  s[diverged] = worst
  return s


def _levels(rows, key) -> list:
  return list(dict.fromkeys(r[key] for r in rows))


def _fmt(v) -> str:
  return sweep_lib.format_value(v) if not isinstance(v, float) or np.isfinite(v) else "-"


def main_effects(rows: Sequence[dict], axes: Sequence[str]) -> dict:
  """Per axis: each level's median log10 quality and stable fraction, and the effect size
  (range of the level medians, in orders of magnitude)."""
  score = _score(rows)
  out = {}
  for key in axes:
    levels = _levels(rows, key)
    medians, stable = [], []
    for level in levels:
      idx = [i for i, r in enumerate(rows) if r[key] == level]
      vals = score[idx]
      medians.append(float(np.nanmedian(vals)) if np.any(np.isfinite(vals)) else np.nan)
      stable.append(float(np.mean([rows[i]["stable"] for i in idx])))
    finite = [m for m in medians if np.isfinite(m)]
    out[key] = {"levels": levels, "median_log10": medians, "stable_fraction": stable,
                "effect": (max(finite) - min(finite)) if len(finite) > 1 else 0.0}
  return out


def _subset(rows, **where):
  return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def _matched_pairs(rows, key, a, b, axes):
  """Pairs of rows with ``key`` = a and = b and every other swept value equal."""
  others = [k for k in axes if k != key]
  index = {tuple(r[k] for k in others): r for r in rows if r[key] == b}
  return [(r, index[tuple(r[k] for k in others)]) for r in rows
          if r[key] == a and tuple(r[k] for k in others) in index]


def _outcome(r) -> str:
  if r["status"] == "diverged":
    return f"diverged@{r['diverged_at_step']}"
  if r["status"] != "finished":
    return r["status"]
  return f"{r['quality']:.3g} ({r['dynamics']})"


def _untested(roles, axes, *needed) -> tuple[str, list[str]] | None:
  """("not tested", why) when the sweep does not vary a setting a claim needs."""
  missing = [n for n in needed if roles.get(n) not in axes]
  if missing:
    return "not tested", [f"This sweep does not vary {', '.join(missing)} (roles "
                          f"{', '.join(repr(n) for n in missing)})."]
  return None


def _blew_up(row) -> bool:
  return row["status"] == "diverged" or row.get("dynamics") == "exploding"


def claim_k_matters_most(rows, axes, roles, metric) -> tuple[str, list[str]]:
  if _untested(roles, axes, "K"):
    return _untested(roles, axes, "K")
  k = roles["K"]
  effects = main_effects(rows, axes)
  lines = [f"Main effect of each swept setting on log10 {metric} (range of the per-level "
           "medians over all other settings; a diverged cell counts as the grid's worst):", "",
           "| setting | levels | median log10 " + metric + " per level | stable fraction "
           "per level | effect |", "|---|---|---|---|---|"]
  for key, e in sorted(effects.items(), key=lambda kv: -kv[1]["effect"]):
    lines.append(f"| {key} | {', '.join(_fmt(v) for v in e['levels'])} | "
                 f"{', '.join(f'{m:.2f}' for m in e['median_log10'])} | "
                 f"{', '.join(f'{s:.2f}' for s in e['stable_fraction'])} | "
                 f"{e['effect']:.2f} |")
  largest = max(effects, key=lambda key: effects[key]["effect"])
  lr = roles.get("lr")
  if lr in axes:
    score = _score(rows)
    best = []
    for level in _levels(rows, k):
      by_lr = {}
      for v in _levels(rows, lr):
        idx = [i for i, r in enumerate(rows) if r[k] == level and r[lr] == v]
        by_lr[v] = np.nanmedian(score[idx]) if np.any(np.isfinite(score[idx])) else np.inf
      best.append((level, min(by_lr, key=by_lr.get)))
    lines += ["", "Best learning rate (lowest median log10 " + metric + ") at each K: " +
              "; ".join(f"K={_fmt(a)}: {_fmt(b)}" for a, b in best) + "."]
  verdict = "supported" if largest == k else "not supported"
  lines += ["", f"Rule: supported when K has the largest main effect. Largest here: "
            f"**{largest}** ({effects[largest]['effect']:.2f} orders of magnitude; K: "
            f"{effects[k]['effect']:.2f})."]
  return verdict, lines


def claim_small_k_low_lr(rows, axes, roles, metric) -> tuple[str, list[str]]:
  if _untested(roles, axes, "K", "lr"):
    return _untested(roles, axes, "K", "lr")
  k, lr, sn = roles["K"], roles["lr"], roles.get("sn")
  ks = sorted(_levels(rows, k))
  lrs = sorted(_levels(rows, lr))
  lines = [f"Outcome ({metric}, dynamics) by K and learning rate, pooled over the other "
           "settings: fraction of stable cells / median " + metric + ".", "",
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
  small, large = ks[0], ks[-1]
  hs_small, hs_large = highest_stable.get(small), highest_stable.get(large)
  lines += ["", f"Highest learning rate with at least half of its cells stable: K={_fmt(small)}:"
            f" {_fmt(hs_small) if hs_small is not None else 'none'}; K={_fmt(large)}: "
            f"{_fmt(hs_large) if hs_large is not None else 'none'}."]
  if hs_small is None and hs_large is None:
    lr_verdict = "not supported"
  elif hs_small is None or (hs_large is not None and hs_small < hs_large):
    lr_verdict = "supported"
  else:
    lr_verdict = "not supported"
  sn_verdict = None
  if sn in axes:
    pairs = _matched_pairs(_subset(rows, **{k: small}), sn, True, False, axes)
    if pairs:
      div_on = sum(_blew_up(a) for a, _ in pairs)
      div_off = sum(_blew_up(b) for _, b in pairs)
      stab_on = np.mean([a["stable"] for a, _ in pairs])
      stab_off = np.mean([b["stable"] for _, b in pairs])
      sa, sb = _score([a for a, _ in pairs]), _score([b for _, b in pairs])
      better = int(np.sum(sa < sb))
      lines += ["", f"Spectral norm at K={_fmt(small)} ({len(pairs)} matched pairs): diverged "
                f"or exploding {div_on} with vs {div_off} without; stable fraction "
                f"{stab_on:.2f} with vs {stab_off:.2f} without; better {metric} in "
                f"{better}/{len(pairs)} pairs; "
                f"median log10 {metric} {np.nanmedian(sa):.2f} with vs "
                f"{np.nanmedian(sb):.2f} without."]
      sn_verdict = "supported" if div_on < div_off or (
          div_on == div_off and better > len(pairs) / 2) else "not supported"
  lines += ["", "Rule: the learning-rate part is supported when the highest mostly-stable "
            "learning rate is lower at the smallest K than at the largest (or none is stable "
            "at the smallest K); the spectral-norm part when it prevents blow-ups (diverged or "
            "exploding runs) at the smallest K, or, with as many blow-ups, wins most matched "
            "pairs on quality."]
  verdict = lr_verdict if sn_verdict is None else (
      lr_verdict if lr_verdict == sn_verdict else "mixed")
  lines.append(f"Learning rate: {lr_verdict}" + (f"; spectral norm: {sn_verdict}."
                                                 if sn_verdict else "."))
  return verdict, lines


def claim_large_k_stable_slow(rows, axes, roles, metric) -> tuple[str, list[str]]:
  if _untested(roles, axes, "K"):
    return _untested(roles, axes, "K")
  k = roles["K"]
  ks = sorted(_levels(rows, k))
  lines = ["| K | cells | stable fraction | diverged | median " + metric +
           " | median seconds per update (group) | models per group |",
           "|---|---|---|---|---|---|---|"]
  stats = {}
  for kv in ks:
    sub = _subset(rows, **{k: kv})
    stable = float(np.mean([r["stable"] for r in sub]))
    div = sum(r["status"] == "diverged" for r in sub)
    q = [r["quality"] for r in sub if r["status"] == "finished" and np.isfinite(r["quality"])]
    sps = [r["steps_per_sec"] for r in sub if isinstance(r["steps_per_sec"], float)
           and r["steps_per_sec"] > 0]
    spu = float(np.median([1 / s for s in sps])) if sps else np.nan
    stats[kv] = (stable, spu)
    models = sorted({r["models_in_group"] for r in sub if r["models_in_group"] != ""})
    lines.append(f"| {_fmt(kv)} | {len(sub)} | {stable:.2f} | {div} | "
                 f"{np.median(q) if q else np.nan:.3g} | {spu:.3g} | "
                 f"{', '.join(str(m) for m in models)} |")
  small, large = ks[0], ks[-1]
  stable_ok = stats[large][0] >= stats[small][0]
  slow = stats[large][1] / stats[small][1] if stats[small][1] > 0 else np.nan
  lines += ["", f"K={_fmt(large)} vs K={_fmt(small)}: stable fraction {stats[large][0]:.2f} vs "
            f"{stats[small][0]:.2f}; one update takes {slow:.1f}x as long.",
            "", "Rule: supported when the largest K is at least as often stable as the "
            f"smallest and an update costs at least {SLOW_FACTOR}x as much (groups of equal "
            "size; seconds per update from the cells' log windows, compilation and figure "
            "writing left out)."]
  verdict = "supported" if stable_ok and slow >= SLOW_FACTOR else "not supported"
  return verdict, lines


def claim_noiseless_comparable(rows, axes, roles, metric) -> tuple[str, list[str]]:
  if _untested(roles, axes, "noise"):
    return _untested(roles, axes, "noise")
  noise = roles["noise"]
  levels = sorted(_levels(rows, noise))
  if levels[0] != 0 or len(levels) < 2:
    return "not tested", ["The noise axis has no noiseless (0) level."]
  noisy = levels[-1]
  pairs = _matched_pairs(rows, noise, 0.0, noisy, axes) or _matched_pairs(rows, noise, 0, noisy,
                                                                            axes)
  both = [(a, b) for a, b in pairs if a["status"] == "finished" and b["status"] == "finished"
          and np.isfinite(a["quality"]) and np.isfinite(b["quality"]) and b["quality"] > 0]
  ratios = np.asarray([a["quality"] / b["quality"] for a, b in both])
  stab0 = np.mean([a["stable"] for a, _ in pairs]) if pairs else np.nan
  stab1 = np.mean([b["stable"] for _, b in pairs]) if pairs else np.nan
  lines = [f"{len(pairs)} matched pairs (noise 0 vs {_fmt(noisy)}, all else equal); "
           f"{len(both)} with both finished. Stable fraction: noiseless {stab0:.2f}, "
           f"noisy {stab1:.2f}."]
  if not len(ratios):
    return "not tested", lines + ["No pair finished on both sides."]
  within = float(np.mean((ratios <= COMPARABLE_FACTOR) & (ratios >= 1 / COMPARABLE_FACTOR)))
  med = float(np.median(ratios))
  lines += [f"{metric}(noiseless) / {metric}(noisy): median {med:.3g}, range "
            f"{ratios.min():.3g}-{ratios.max():.3g}; within a factor {COMPARABLE_FACTOR} in "
            f"{within:.0%} of pairs; noiseless better in {int(np.sum(ratios < 1))}/{len(ratios)}.",
            "", f"Rule: supported when noiseless cells are no worse: the median ratio is at "
            f"most {COMPARABLE_FACTOR} (below 1 they are better)."]
  verdict = "supported" if med <= COMPARABLE_FACTOR else "not supported"
  return verdict, lines


CLAIMS = (
    ("1. The number of sampling steps K matters most; all other settings must be set around "
     "it.", claim_k_matters_most),
    ("2. With small K the learning rate must be low, and spectral normalisation further "
     "stabilises training.", claim_small_k_low_lr),
    ("3. With large K training is stable but slow.", claim_large_k_stable_slow),
    ("4. Proper MCMC is not needed: noiseless gradient descent gives comparable results.",
     claim_noiseless_comparable),
)


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
    traces = {}
    for i, rv in enumerate(row_levels):
      for j, cv in enumerate(col_levels):
        match = _subset(sub, **{row_key: rv, **({col_key: cv} if col_key else {})})
        if not match:
          continue
        r = match[0]
        if r["status"] == "finished":
          values[i, j] = r["quality"]
          marks[i][j] = "" if r["dynamics"] == "stable" else r["dynamics"]
        else:
          marks[i][j] = (f"diverged@{r['diverged_at_step']}" if r["status"] == "diverged"
                         else r["status"])
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
            traces[f"{col_key}={_fmt(r.get(col_key))}" if col_key else r["cell"]] = (
                f["step"], f["d_s_t"], f["r_t"])
      if traces:
        tname = f"traces-{name}-{sweep_lib.short_name({row_key: rv})}.png"
        plotting.save_trace_overlay(os.path.join(plots_dir, tname), traces,
                                    f"{grid.name}, {_facet_name(facet)}, {row_key}={_fmt(rv)}")
  return paths


# ----------------------------------------------------------------------------- report


def _base_name(grid: sweep_lib.Grid) -> str:
  if grid.base is None:
    return "--config"
  return grid.base if isinstance(grid.base, str) else "a config given in code"


def write_report(sweep: sweep_lib.Sweep, cells: Sequence[sweep_lib.Cell], workdir: str,
                 title: str = "Study") -> str:
  """Writes results.csv, plots/ and report.md under ``workdir``; returns the report's path."""
  rows = [cell_row(c) for c in cells]
  write_csv(os.path.join(workdir, "results.csv"), rows)
  plots_dir = os.path.join(workdir, "plots")
  lines = [f"# {title}", ""]
  if sweep.description:
    lines += [sweep.description, ""]
  n_done = sum(r["status"] != "not run" for r in rows)
  lines += [f"{len(rows)} cells ({n_done} run; {sum(r['status'] == 'diverged' for r in rows)} "
            f"diverged; {sum(r['stable'] for r in rows)} finished with stable dynamics). "
            "One row per cell in `results.csv`; every cell's run directory is "
            "`cells/<cell>/`.", "",
            "*Stable* means the run finished and ebm-anatomy's verdict on its d_s_t trace "
            "(last 500 steps) is \"oscillates around 0\" with r_t grown less than "
            f"{EXPLODING_R_T_GROWTH:.0f}x over the run (else *exploding*); *drift-* / *drift+* "
            "mean d_s_t settled below / above 0. Quality: toy densities KL(true || KDE of 2,000 "
            "short-run samples); images classifier-feature FID of `samples.npz`. Lower is "
            "better.", ""]
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
    for claim, fn in CLAIMS:
      verdict, body = fn(ran, axes, sweep.roles, metric)
      summary.append((grid.name, claim.split(" ")[0], verdict))
      lines += [f"### Claim {claim}", "", f"**Verdict on `{grid.name}`: {verdict}.**", "",
                *body, ""]
    figures = write_figures(grid_rows, grid, sweep.roles, metric, plots_dir)
    if len(ran) < len(grid_rows):
      lines.insert(len(lines) - 1, f"(Verdicts above use the {len(ran)} of {len(grid_rows)} "
                   "cells that have run.)")
    lines += ["### Heat maps", ""] + [
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
    lines[2:2] = ["## Summary", "", "| grid | claim | verdict |", "|---|---|---|"] + [
        f"| {g} | {c} | {v} |" for g, c, v in summary] + [""]
  path = os.path.join(workdir, "report.md")
  rundir.write_text(path, "\n".join(lines) + "\n")
  return path
