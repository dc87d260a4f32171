"""Uncertainty of a study's figures: bootstrap intervals over seeds and an ANOVA of the factors.

A study's cells are *settings* (the swept values) times *replicates* (seeds). Every figure the
report states is a statistic of the cells' rows; its interval comes from the stratified
bootstrap over seeds: each resample replaces every setting's replicates by as many drawn with
replacement from its own, the statistic is recomputed, and the 2.5 / 97.5 percentiles of the
resamples bound the 95 % interval (percentile bootstrap). Settings are never mixed, so the
interval measures seed-to-seed noise alone, the thing a single-seed study cannot see. With one
seed per setting there is nothing to resample and the interval is the point itself.

The ANOVA (statsmodels' ordinary least squares, type-II sums of squares) fits the response on
every factor's main effect and every two-way interaction, with the replicates as the residual.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

NUM_RESAMPLES = 2000
LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class Interval:
  """A statistic and its bootstrap interval (``low == high == estimate`` without replicates)."""
  estimate: float
  low: float
  high: float
  replicated: bool

  def excludes(self, value: float = 0.0) -> bool:
    """Whether the whole interval lies on one side of ``value`` (replicated studies only)."""
    return self.replicated and (self.low > value or self.high < value)

  def __str__(self) -> str:
    if np.isnan(self.estimate):
      return "-"
    if not self.replicated:
      return f"{self.estimate:.3g} (one seed: no interval)"
    return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}]"


def resample(rows: Sequence[dict], rng: np.random.Generator, key: str = "setting") -> list[dict]:
  """Every setting's replicates replaced by as many drawn with replacement from its own."""
  by_setting: dict = {}
  for r in rows:
    by_setting.setdefault(r[key], []).append(r)
  out = []
  for members in by_setting.values():
    out += [members[i] for i in rng.integers(0, len(members), len(members))]
  return out


def replicated(rows: Sequence[dict], key: str = "setting") -> bool:
  """Whether any setting has more than one replicate."""
  names = [r[key] for r in rows]
  return len(set(names)) < len(names)


def bootstrap(rows: Sequence[dict], statistic: Callable[[Sequence[dict]], float], *,
              key: str = "setting", num_resamples: int | None = None, level: float = LEVEL,
              seed: int = 0) -> Interval:
  """``statistic(rows)`` with its stratified percentile-bootstrap interval over replicates.

  Resamples whose statistic is nan (e.g. a contrast whose cells all diverged) are dropped;
  infinite values (a target never reached) are kept, and the percentiles are read as order
  statistics, so an interval may end at +-inf but is never nan because of one."""
  estimate = float(statistic(rows))
  if not replicated(rows, key):
    return Interval(estimate, estimate, estimate, False)
  rng = np.random.default_rng(seed)
  if num_resamples is None:
    num_resamples = NUM_RESAMPLES                     # read at call time (tests lower it)
  values = np.asarray([statistic(resample(rows, rng, key)) for _ in range(num_resamples)],
                      np.float64)
  values = values[~np.isnan(values)]
  if not len(values):
    return Interval(estimate, np.nan, np.nan, True)
  tail = (1 - level) / 2
  low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
  return Interval(estimate, float(low), float(high), True)


def anova(rows: Sequence[dict], factors: Sequence[str], response: str) -> list[dict]:
  """Type-II ANOVA of ``response`` on the factors' main effects and two-way interactions.

  Returns one dict per term (``term``, ``df``, ``sum_sq``, ``share`` of the total sum of
  squares, ``F``, ``p``) and a ``Residual`` row; an empty list when there are fewer
  observations than parameters (``F`` and ``p`` are nan without residual degrees of freedom).
  """
  import pandas as pd                       # lazy: only the study report needs them
  import statsmodels.formula.api as smf
  from statsmodels.stats.anova import anova_lm
  data = {f"f{i}": [str(r[key]) for r in rows] for i, key in enumerate(factors)}
  data["y"] = [float(r[response]) for r in rows]
  frame = pd.DataFrame(data)
  frame = frame[np.isfinite(frame["y"])]
  varying = [f"f{i}" for i in range(len(factors)) if frame[f"f{i}"].nunique() > 1]
  if not varying or len(frame) < 3:
    return []
  terms = " + ".join(f"C({f})" for f in varying)
  formula = f"y ~ ({terms})**2" if len(varying) > 1 else f"y ~ {terms}"
  fit = smf.ols(formula, data=frame).fit()
  if fit.df_resid < 1:
    formula = f"y ~ {terms}"               # saturated: main effects only
    fit = smf.ols(formula, data=frame).fit()
    if fit.df_resid < 1:
      return []
  table = anova_lm(fit, typ=2)
  names = {f"f{i}": key for i, key in enumerate(factors)}
  total = float(table["sum_sq"].sum())
  out = []
  for term, row in table.iterrows():
    label = "Residual" if term == "Residual" else " x ".join(
        names[part[2:-1]] for part in term.split(":"))
    out.append({"term": label, "df": float(row["df"]), "sum_sq": float(row["sum_sq"]),
                "share": float(row["sum_sq"]) / total if total > 0 else np.nan,
                "F": float(row.get("F", np.nan)), "p": float(row.get("PR(>F)", np.nan))})
  return out
