"""The thesis's four claims, each judged on a study's seed-level rows by a stated rule.

Every figure is a statistic of seed-level rows: first a mean over each setting's replicates,
then a contrast between settings; its interval is the Student-t interval over seeds of the
contrast computed within each seed (:func:`ebm_jax.study.stats.by_replicate`). A verdict is
"supported" / "not supported" when the interval lies on one side of the rule's threshold,
"inconclusive" when it straddles it. :data:`CLAIMS` lists them for the report
(:mod:`ebm_jax.study.report`), which prints each verdict beside the table it was computed from.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple, Sequence

import numpy as np

from ebm_jax.study import stats as study_stats
from ebm_jax.study import sweep as sweep_lib

# Noiseless cells are "comparable" when their quality is at most this factor worse.
COMPARABLE_FACTOR = 1.5
# ebm-anatomy's long-run verdicts (ebm_jax.eval.convergence), best first.
VERDICTS = ("convergent", "non-mixing", "non-convergent")


# ----------------------------------------------------------------------------- analysis
#
# Every figure below is a statistic of seed-level rows: first a mean over each setting's
# replicates, then a contrast between settings; its interval is the Student-t interval over
# seeds of the contrast computed within each seed (study_stats.by_replicate). A verdict is
# "supported" / "not supported" when the interval lies on one side of the rule's threshold,
# "inconclusive" when it straddles it; a single-seed study judges by the point estimate and
# says so.


def log_quality(rows: Sequence[dict]) -> np.ndarray:
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
  return [dict(r, _s=s) for r, s in zip(rows, log_quality(rows))]


def _settings(rows: Sequence[dict], score: np.ndarray | None = None) -> list[tuple[dict, float]]:
  """(a representative row, mean score over its replicates) per setting, in first-seen order."""
  score = log_quality(rows) if score is None else score
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


def levels_of(rows, key) -> list:
  return list(dict.fromkeys(r[key] for r in rows))


def fmt(v) -> str:
  return sweep_lib.format_value(v) if not isinstance(v, float) or np.isfinite(v) else "-"


def level_means(rows, key, score=None) -> dict:
  """Each level of ``key``: the mean over settings at that level of their mean score."""
  settings = _settings(rows, score)
  out = {}
  for level in levels_of(rows, key):
    vals = [m for r, m in settings if r[key] == level and np.isfinite(m)]
    out[level] = float(np.mean(vals)) if vals else np.nan
  return out


def main_effects(rows: Sequence[dict], axes: Sequence[str]) -> dict:
  """Per axis: each level's mean log10 quality (over the settings at that level) and stable
  fraction, levels in value order, and the signed effect (:func:`_effect`, in orders of
  magnitude)."""
  out = {}
  for key in axes:
    means = level_means(rows, key)
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
  means = level_means(rows, key)
  levels = sorted(means if levels is None else levels, key=_order)
  if len(levels) < 2:
    return 0.0
  return float(means.get(levels[-1], np.nan) - means.get(levels[0], np.nan))


def _factor_effect(rows, key):
  """How much ``key`` matters: over every pair of its levels (a < b in value order), the
  contrast b minus a within each seed with its t interval at the Bonferroni-adjusted level
  (the pairs' intervals hold together at 95 %). Returns (the interval of the pair with the
  largest |estimate|, that pair, (the smallest, the largest) |contrast| the intervals allow)."""
  levels = sorted(levels_of(rows, key), key=_order)
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


def subset(rows, **where):
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


def outcome(r) -> str:
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
      rows, functools.partial(_effect, key=key, levels=levels_of(rows, key))) for key in axes}
  factor = {key: _factor_effect(rows, key) for key in axes}
  lines[-2] += " largest level contrast [simultaneous 95 %] |"
  lines[-1] = lines[-1] + "---|"
  for key, e in sorted(effects.items(), key=lambda kv: -abs(factor[kv[0]][0].estimate)):
    iv, (a, b), _ = factor[key]
    lines.append(f"| {key} | {', '.join(fmt(v) for v in e['levels'])} | "
                 f"{', '.join(f'{m:.2f}' for m in e['mean_log10'])} | "
                 f"{', '.join(f'{s:.2f}' for s in e['stable_fraction'])} | {intervals[key]} | "
                 f"{fmt(b)} minus {fmt(a)}: {iv} |")
  others = [a for a in axes if a != k]
  k_low, k_high = factor[k][2]
  rival = max(others, key=lambda a: abs(factor[a][0].estimate), default=None)
  largest = max(axes, key=lambda a: abs(factor[a][0].estimate))
  lr = roles.get("lr")
  if lr in axes:
    best = []
    for level in levels_of(rows, k):
      means = level_means(subset(rows, **{k: level}), lr)
      finite = {v: m for v, m in means.items() if np.isfinite(m)}
      best.append((level, min(finite, key=finite.get) if finite else None))
    lines += ["", "Best learning rate (lowest mean log10 " + metric + ") at each K: " +
              "; ".join(f"K={fmt(a)}: {fmt(b) if b is not None else '-'}"
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
    return f"{iv} ({fmt(b)} minus {fmt(a)})"

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
  ks = sorted(levels_of(rows, k))
  lrs = sorted(levels_of(rows, lr))
  lines = [f"Outcome by K and learning rate, pooled over the other settings and seeds: "
           f"fraction of stable cells / median {metric}.", "",
           "| K \\ lr | " + " | ".join(fmt(v) for v in lrs) + " |",
           "|---|" + "---|" * len(lrs)]
  highest_stable = {}
  for kv in ks:
    cells = []
    for v in lrs:
      sub = subset(rows, **{k: kv, lr: v})
      frac = np.mean([r["stable"] for r in sub]) if sub else np.nan
      q = [r["quality"] for r in sub if r["status"] == "finished" and np.isfinite(r["quality"])]
      cells.append(f"{frac:.2f} / {np.median(q):.3g}" if q else f"{frac:.2f} / -")
      if sub and frac >= 0.5:
        highest_stable[kv] = v
    lines.append(f"| {fmt(kv)} | " + " | ".join(cells) + " |")
  small, large, low, high = ks[0], ks[-1], lrs[0], lrs[-1]
  hs_small, hs_large = highest_stable.get(small), highest_stable.get(large)
  lines += ["", f"Highest learning rate with at least half of its cells stable: K={fmt(small)}:"
            f" {fmt(hs_small) if hs_small is not None else 'none'}; K={fmt(large)}: "
            f"{fmt(hs_large) if hs_large is not None else 'none'}."]

  def contrast(rs, value) -> float:
    """value(high lr) - value(low lr) at the smallest K, minus the same at the largest K."""
    def gap(kv):
      sub = subset(rs, **{k: kv})
      return value(subset(sub, **{lr: high})) - value(subset(sub, **{lr: low}))
    return gap(small) - gap(large)

  def failed(rs) -> float:       # fraction of cells that blew up (diverged or exploding)
    return float(np.mean([_blew_up(r) for r in rs])) if rs else np.nan

  def mean_score(rs) -> float:   # rows carry "_s": log10 quality, diverged = the grid's worst
    values = [r["_s"] for r in rs if np.isfinite(r["_s"])]
    return float(np.mean(values)) if values else np.nan

  def quality_contrast(rs) -> float:
    return contrast([dict(r, _s=v) for r, v in zip(rs, log_quality(rs))], mean_score)

  def blowups(kv) -> study_stats.PairedBinary:    # high vs low lr, matched cells at K = kv
    pairs = _matched_pairs(subset(rows, **{k: kv}), lr, high, low, axes)
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
  lines += ["", f"Blow-ups (diverged or exploding) at lr {fmt(high)} vs lr {fmt(low)}, matched "
            f"cells: at K={fmt(small)} {at_small}; at K={fmt(large)} {at_large}. Interaction "
            f"contrasts, (lr {fmt(high)} minus lr {fmt(low)}) at K={fmt(small)} minus the same "
            f"at K={fmt(large)}, per seed: blow-up fraction {unstable} (a t interval over "
            f"the seeds' fractions: descriptive); log10 {metric} {quality} "
            f"({_interval_note(quality)}). Positive = the high learning rate costs more at "
            "small K."]
  sn_verdict = None
  if sn in axes:
    small_rows = subset(rows, **{k: small})
    pairs = _matched_pairs(small_rows, sn, True, False, axes)
    if pairs:
      stab_on = np.mean([a["stable"] for a, _ in pairs])
      stab_off = np.mean([b["stable"] for _, b in pairs])

      def sn_gain(rs) -> float:     # log10 quality without minus with: positive = sn better
        score = log_quality(rs)
        matched = _matched_settings([r for r in rs if r[k] == small], sn, False, True, axes,
                                    score[[r[k] == small for r in rs]])
        return float(np.mean([a - b for a, b in matched])) if matched else np.nan

      gain = study_stats.by_replicate(rows, sn_gain)
      prevented = study_stats.paired_binary([(_blew_up(off), _blew_up(on))
                                             for on, off in pairs])
      lines += ["", f"Spectral norm at K={fmt(small)}: blow-ups without vs with, {prevented}; "
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
  return ClaimResult(verdict, lines, f"blow-ups, high vs low lr at K={fmt(small)}: {at_small}; "
                     f"at K={fmt(large)}: {at_large}")


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
  ks = sorted(levels_of(rows, k))
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
    sub = subset(rows, **{k: kv})
    stable = float(np.mean([r["stable"] for r in sub]))
    div = sum(r["status"] == "diverged" for r in sub)
    q = [r["quality"] for r in sub if r["status"] == "finished" and np.isfinite(r["quality"])]
    costs = [r["seconds_per_update"] for r in sub if np.isfinite(r["seconds_per_update"])]
    spu = float(np.median(costs)) if costs else np.nan
    times = [_first_time(r["_curve"], target) if r["status"] == "finished" else np.inf
             for r in sub]
    stats[kv] = (stable, spu)
    lines.append(f"| {fmt(kv)} | {len(sub)} | {stable:.2f} | {div} | "
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
  lines += ["", f"K={fmt(large)} vs K={fmt(small)}: stable fraction {stats[large][0]:.2f} vs "
            f"{stats[small][0]:.2f}; pairs unstable only at K={fmt(large)} vs only at "
            f"K={fmt(small)}: {stability}; one update takes {per_update:.1f}x as long; log10 "
            f"of the median time to target, K={fmt(large)} over K={fmt(small)}: {ratio} "
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
  levels = sorted(levels_of(rows, noise))
  if levels[0] != 0 or len(levels) < 2:
    return ClaimResult("not tested", ["The noise axis has no noiseless (0) level."])
  noiseless, noisy = levels[0], levels[-1]
  pairs = _matched_pairs(rows, noise, noiseless, noisy, axes)
  both = [(a, b) for a, b in pairs if a["status"] == "finished" and b["status"] == "finished"
          and np.isfinite(a["quality"]) and np.isfinite(b["quality"]) and b["quality"] > 0]
  ratios = np.asarray([a["quality"] / b["quality"] for a, b in both])
  stab0 = np.mean([a["stable"] for a, _ in pairs]) if pairs else np.nan
  stab1 = np.mean([b["stable"] for _, b in pairs]) if pairs else np.nan
  lines = [f"{len(pairs)} matched cells (noise 0 vs {fmt(noisy)}, all else equal, seeds "
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
  lines += likelihood_gap_lines(rows, noise, noiseless, noisy, axes)
  if not interval.replicated:
    verdict = "supported" if interval.estimate <= margin else "not supported"
  elif interval.high <= margin:
    verdict = "supported"
  elif interval.low > margin:
    verdict = "not supported"
  else:
    verdict = "inconclusive"
  return ClaimResult(verdict, lines, f"log10 gap noiseless - noisy: {interval}")


def likelihood_gap_lines(rows, noise, noiseless, noisy, axes) -> list[str]:
  """Claim 4 judged on densities: the test log-likelihood of matched pairs (both sides at the
  noisy side's temperature: see ``ebm_jax.study.likelihood.matched_temperature``), noiseless
  minus noisy, with its interval over replicates."""
  pairs = _matched_pairs(rows, noise, noiseless, noisy, axes)
  measured = {(a["cell"], b["cell"]) for a, b in pairs
              if np.isfinite(a.get("log_likelihood", np.nan))
              and np.isfinite(b.get("log_likelihood", np.nan))}
  # An energy with no finite Z (or an AIS that did not settle) defines no log-likelihood: its
  # count per side is part of the answer.
  unmeasurable = {side: sum(r.get("log_likelihood_method") in ("not normalisable",
                                                               "AIS not settled")
                            for r in members)
                  for side, members in (("noiseless", [a for a, _ in pairs]),
                                        ("noisy", [b for _, b in pairs]))}
  counts = (f"No finite density (not normalisable, or AIS not settled): noiseless "
            f"{unmeasurable['noiseless']} of {len(pairs)} cells, noisy {unmeasurable['noisy']} of "
            f"{len(pairs)}.")
  if not measured:
    return ["", "Log-likelihood: no matched pair has a finite one on both sides (measured by "
            "`python -m ebm_jax.likelihood --sweep=... --study=...`)."] + (
                [counts] if any(unmeasurable.values()) else [])

  def gap(rs) -> float:
    diffs = [a["log_likelihood"] - b["log_likelihood"]
             for a, b in _matched_pairs(rs, noise, noiseless, noisy, axes)
             if (a["cell"], b["cell"]) in measured]
    return float(np.mean(diffs)) if diffs else np.nan

  by_cell = {r["cell"]: r for r in rows}
  methods = sorted({by_cell[a]["log_likelihood_method"] for pair in measured for a in pair})
  interval = study_stats.by_replicate(rows, gap)
  return ["", f"Log-likelihood of the same pairs (the density each energy defines, both at the "
              f"noisy cells' temperature; {', '.join(methods)}; {len(measured)} pairs): "
              f"noiseless minus noisy {interval} nats per test example "
              f"({'noiseless higher' if interval.estimate > 0 else 'noisy higher'} on "
              "average). " + counts]


CLAIMS = (
    ("1. The number of sampling steps K matters most; all other settings must be set around "
     "it.", claim_k_matters_most),
    ("2. With small K the learning rate must be low, and spectral normalisation further "
     "stabilises training.", claim_small_k_low_lr),
    ("3. With large K training is stable but slow.", claim_large_k_stable_slow),
    ("4. Proper MCMC is not needed: noiseless gradient descent gives comparable results.",
     claim_noiseless_comparable),
)
