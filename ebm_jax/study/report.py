"""A study's results: ``results.csv``, heat maps, trace figures and ``report.md``.

Everything here reads the cells' own output files (``sweep_cell.json``, ``metrics.jsonl``,
``diagnostics.npz``, ``eval.json``), so a report can be rebuilt at any time, also for a study
that is still running (its unfinished cells show as "not run").

The report states the thesis's four claims (:mod:`ebm_jax.study.claims`) on the data: each
verdict is computed from the table it prints, with the rule it applies stated beside it.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from typing import Sequence

import numpy as np

from ebm_jax.eval import convergence
from ebm_jax.eval import likelihood
from ebm_jax import data as data_lib
from ebm_jax.eval import diagnostics
from ebm_jax.run import plotting
from ebm_jax.run import reporting
from ebm_jax.run import rundir
from ebm_jax.study import claims
from ebm_jax.study.claims import fmt
from ebm_jax.study import costs as study_costs
from ebm_jax.study import stats as study_stats
from ebm_jax.study import sweep as sweep_lib
from ebm_jax import _moved

IMAGE_METRICS = ("fid", "kid", "inception_score", "class_entropy", "class_coverage")
TOY_METRICS = ("kl_smoothed", "kl_true_kde", "kl_true_model")
# A run whose sample-gradient norm r_t grew more than this factor from its first tenth to its
# last quarter has energies running away, whatever d_s_t's sign changes say.
EXPLODING_R_T_GROWTH = 100.0
# Large K is "slow" when an update costs at least this factor more than at the smallest K.
SLOW_FACTOR = 1.5


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
  row.update(likelihood_columns(likelihood.read(cell.workdir) if row["status"] == "finished"
                                else None))
  row["grad_evals_per_update"] = grad_evals_per_update(cell.config)
  row["_curve"] = cell_curve(cell, row["models_in_group"], cost)
  row["_workdir"] = cell.workdir
  return row


def likelihood_columns(record: dict | None) -> dict:
  """A cell's ``likelihood.json`` as columns: the test log-likelihood in nats per example
  (toys: exact, from the grid's log Z; images: by AIS, with its repeats' spread), the
  temperature it was read at and, for images, bits per dimension."""
  if record is None:
    return {"log_likelihood": np.nan, "log_likelihood_sd": np.nan,
            "log_likelihood_temperature": np.nan, "log_likelihood_method": "not measured"}
  t = record["test"]
  if "log_likelihood_exact" in t:
    normalisable = record["grid"]["normalisable"]
    return {"log_likelihood": t["log_likelihood_exact"] if normalisable else np.nan,
            "log_likelihood_sd": 0.0 if normalisable else np.nan,
            "log_likelihood_temperature": record["temperature"],
            "log_likelihood_method": "grid" if normalisable else "not normalisable"}
  spread = record["ais"]["spread_sd"]
  if not t.get("settled", True):
    return {"log_likelihood": np.nan, "log_likelihood_sd": np.nan,
            "log_likelihood_temperature": record["temperature"],
            "log_likelihood_method": "AIS not settled", "bits_per_dim": t["bits_per_dim"]}
  return {"log_likelihood": t["log_likelihood"],
          "log_likelihood_sd": spread if spread is not None else np.nan,
          "log_likelihood_temperature": record["temperature"],
          "log_likelihood_method": "AIS", "bits_per_dim": t["bits_per_dim"]}


def write_csv(path: str, rows: Sequence[dict]) -> None:
  keys = list(dict.fromkeys(k for r in rows for k in r if not k.startswith("_")))
  with rundir.atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
      writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def anova_lines(rows, axes, metric) -> list[str]:
  """The ANOVA table of log10 quality (diverged cells as the grid's worst)."""
  score = claims.log_quality(rows)
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




def convergence_lines(rows, axes, metric) -> list[str]:
  """Per level of each factor: the fractions of checked cells with each long-run verdict."""
  checked = [r for r in rows if r.get("convergence", "not checked") in claims.VERDICTS]
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
    for level in claims.levels_of(checked, key):
      sub = [r for r in checked if r[key] == level]
      fractions = [np.mean([r["convergence"] == v for r in sub]) for v in claims.VERDICTS]
      medians = [np.median([r[k] for r in sub]) for k in ("quality", "longrun_from_data",
                                                         "longrun_from_noise")]
      lines.append(f"| {key} | {fmt(level)} | {len(sub)} | " + " | ".join(
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
    for level in claims.levels_of(rows, key):
      cells = []
      for axis in (None, *BUDGET_AXES):
        at_level = [r for r in scored[axis] if r[key] == level]
        if not any(np.isfinite(r["_s"]) and not diverged_within(r, axis) for r in at_level):
          cells.append("-")        # imputed divergences alone are no measurement of a level
          continue

        def level_mean(rs, level=level):
          return claims.level_means(rs, key).get(level, np.nan)

        cells.append(str(study_stats.by_replicate(scored[axis], level_mean)))
      lines.append(f"| {key} | {fmt(level)} | " + " | ".join(cells) + " |")
  return lines


# ----------------------------------------------------------------------------- figures


def _facets(rows, axes, row_key, col_key):
  rest = [k for k in axes if k not in (row_key, col_key)]
  for values in itertools.product(*(claims.levels_of(rows, k) for k in rest)):
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
    sub = claims.subset(rows, **facet)
    row_levels = sorted(claims.levels_of(sub, row_key))
    col_levels = sorted(claims.levels_of(sub, col_key)) if col_key else [None]
    values = np.full((len(row_levels), len(col_levels)), np.nan)
    marks = [["" for _ in col_levels] for _ in row_levels]
    for i, rv in enumerate(row_levels):
      for j, cv in enumerate(col_levels):
        match = claims.subset(sub, **{row_key: rv, **({col_key: cv} if col_key else {})})
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
      for r in claims.subset(sub, **{row_key: rv}):
        trace = os.path.join(os.path.dirname(plots_dir), "cells", r["cell"], "diagnostics.npz")
        if os.path.exists(trace):
          with np.load(trace) as f:
            label = f"{col_key}={fmt(r.get(col_key))}" if col_key else r["cell"]
            if sweep_lib.SEED_KEY in r:
              label += f" seed {r[sweep_lib.SEED_KEY]}"
            traces[label] = (f["step"], f["d_s_t"], f["r_t"])
      if traces:
        tname = f"traces-{name}-{sweep_lib.short_name({row_key: rv})}.png"
        plotting.save_trace_overlay(os.path.join(plots_dir, tname), traces,
                                    f"{grid.name}, {_facet_name(facet)}, {row_key}={fmt(rv)}")
  curves = {f"{row_key}={fmt(v)}": [r["_curve"] for r in rows if r[row_key] == v
                                     and r["status"] == "finished"]
            for v in sorted(claims.levels_of(rows, row_key))}
  if any(len(c["quality"]) for members in curves.values() for c in members):
    path = os.path.join(plots_dir, f"curves-{grid.name}.png")
    plotting.save_quality_curves(
        path, curves, {"wall_time": "wall-clock (s)",
                       "grad_evals": "energy-gradient evaluations", "step": "updates"},
        metric, f"{grid.name}: {metric} against budgets, every cell, coloured by {row_key}")
    paths.insert(0, path)
  return paths


# ----------------------------------------------------------------------------- report


def _likelihood_cell(r: dict) -> str:
  method = r.get("log_likelihood_method", "not measured")
  if method in ("not measured",):
    return "-"
  if method in ("not normalisable", "AIS not settled"):
    return method
  sd = r["log_likelihood_sd"]
  spread = f" +- {sd:.2g}" if method == "AIS" and np.isfinite(sd) else ""
  return f"{r['log_likelihood']:.4g}{spread} ({r['log_likelihood_temperature']:.3g})"


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
              "Swept: " + "; ".join(f"`{k}` in {{{', '.join(fmt(v) for v in vals)}}}"
                                    for k, vals in grid.axes.items()) + ".",
              "Fixed: " + (", ".join(f"`{k}={fmt(v)}`" for k, v in grid.fixed.items())
                           or "none") + f"; base recipe `{_base_name(grid)}`.", ""]
    if not ran:
      lines += ["No cell of this grid has run yet.", ""]
      continue
    scored = claims.with_scores(ran)        # divergences count as the grid's worst in every seed
    for claim, fn in claims.CLAIMS:
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
    lines += ["### Cells", "", "Log-likelihood: nats per test example of exp(-c E) at the "
              "temperature c given (toys: exact, from a grid's log Z; images: AIS, +- the sd "
              "of its repeats; `likelihood.json` in the cell holds the protocol); - = not "
              "measured (`python -m ebm_jax.likelihood --sweep=... --study=...`).", "",
              "| cell | outcome | d_s_t mean (2nd half) | r_t mean | steps/s (group) | "
              "log-likelihood (c) |", "|---|---|---|---|---|---|"]
    for r in grid_rows:
      sps = r["steps_per_sec"]
      sps = f"{sps:.3g}" if isinstance(sps, float) else "-"
      lines.append(f"| {r['cell']} | {claims.outcome(r)} | {r['d_s_t_mean']:.3g} | "
                   f"{r['r_t_mean']:.3g} | {sps} | {_likelihood_cell(r)} |")
    lines.append("")
  if summary:
    lines[2:2] = ["## Summary", "", "| grid | claim | verdict | effect [95 % interval] |",
                  "|---|---|---|---|"] + [
        f"| {g} | {c} | {v} | {e or '-'} |" for g, c, v, e in summary] + [""]
  path = os.path.join(workdir, "report.md")
  rundir.write_text(path, "\n".join(lines) + "\n")
  return path


def __getattr__(name: str):
  return _moved.attribute(__name__, name)     # a name that moved away, named in one line
