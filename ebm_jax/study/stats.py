"""Uncertainty of a study's figures: intervals over replicates and an ANOVA of the factors.

The report's contrasts are signed differences computed within each replicate (every setting of
one seed) and summarised by their mean and Student-t interval over replicates
(:func:`by_replicate`, :func:`t_interval`): at the 3 seeds a CPU study affords, the percentile
bootstrap below under-covers badly (about 73 % for a nominal 95 %), the t interval does not.

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
  method: str = "t"         # "t": Student-t over replicates; "range": their min and max

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


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
  """The mean of independent replicate values with its Student-t interval,
  ``mean +- t_{n-1} sd / sqrt(n)``. At n = 3 it covers the true mean at its nominal 95 %
  (the percentile bootstrap over the same 3 values covers about 73 %: it cannot be wider than
  the values themselves; ``tests/study/stats_test.py`` simulates both). Non-finite values (a
  replicate with no contrast) are dropped; with fewer than two left there is no interval."""
  from scipy import stats
  v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
  if len(v) == 0:
    return Interval(np.nan, np.nan, np.nan, False)
  mean = float(v.mean())
  if len(v) < 2:
    return Interval(mean, mean, mean, False)
  half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
  return Interval(mean, mean - half, mean + half, True)


def by_replicate(rows: Sequence[dict], statistic: Callable[[Sequence[dict]], float], *,
                 key: str = "seed", level: float = LEVEL) -> Interval:
  """A signed contrast with its t interval over replicates: ``statistic`` of each replicate's
  rows (every setting of one seed: a paired design, so between-setting variance cancels) is one
  value, and the values' mean and :func:`t_interval` are the figure. The replicate must be the
  unit that was replicated: with seeds in separate vmapped groups a seed's value carries its
  group's variance too. Without ``key`` in the rows (one replicate) there is no interval."""
  if not rows or key not in rows[0]:
    estimate = float(statistic(rows)) if rows else np.nan
    return Interval(estimate, estimate, estimate, False)
  by: dict = {}
  for r in rows:
    by.setdefault(r[key], []).append(r)
  values = [float(statistic(members)) for members in by.values()]
  infinite = [v for v in values if np.isinf(v)]
  if infinite:
    # A seed whose contrast is infinite (e.g. one K never reached the target): no mean or t
    # interval exists; the median and the range over the seeds say the same without one.
    kept = np.asarray([v for v in values if not np.isnan(v)], np.float64)
    return Interval(float(np.median(kept)), float(kept.min()), float(kept.max()),
                    len(kept) > 1, "range")
  return t_interval(values, level)


@dataclasses.dataclass(frozen=True)
class PairedBinary:
  """A yes/no outcome (blew up, unstable) compared over matched pairs of cells: how many pairs
  had it on the first side only and on the second only, and the exact McNemar test's two-sided
  p-value (a binomial test of the discordant pairs). A t interval over 3 seeds' fractions is no
  test here: equal fractions in every seed give an interval of width 0."""
  pairs: int
  first_only: int
  second_only: int
  p_value: float

  @property
  def difference(self) -> float:
    """The fraction of pairs with the outcome on the first side minus on the second."""
    return (self.first_only - self.second_only) / self.pairs if self.pairs else np.nan

  def verdict(self, level: float = LEVEL) -> str:
    """"supported" when the first side has the outcome more often at the test's level,
    "not supported" when no pair differs or the second side has it more often, "inconclusive"
    otherwise."""
    if not self.pairs:
      return "not tested"
    if self.first_only > self.second_only and self.p_value < 1 - level:
      return "supported"
    if self.first_only == self.second_only == 0 or (
        self.second_only > self.first_only and self.p_value < 1 - level):
      return "not supported"
    return "inconclusive"

  def __str__(self) -> str:
    return (f"{self.first_only} vs {self.second_only} of {self.pairs} pairs "
            f"(exact McNemar p = {self.p_value:.2g})")


def paired_binary(pairs: Sequence[tuple[bool, bool]]) -> PairedBinary:
  """:class:`PairedBinary` of ``(outcome on the first side, on the second)`` per matched pair."""
  from scipy import stats
  first = sum(bool(a) and not bool(b) for a, b in pairs)
  second = sum(bool(b) and not bool(a) for a, b in pairs)
  p = stats.binomtest(first, first + second, 0.5).pvalue if first + second else 1.0
  return PairedBinary(len(pairs), first, second, float(p))


def coverage(interval: Callable[[np.ndarray], Interval], n: int, simulations: int = 2000,
             seed: int = 0) -> float:
  """The fraction of ``simulations`` samples of ``n`` standard normal values whose
  ``interval`` contains the true mean 0: the achieved coverage of an interval method."""
  rng = np.random.default_rng(seed)
  hits = 0
  for _ in range(simulations):
    i = interval(rng.standard_normal(n))
    hits += bool(i.low <= 0.0 <= i.high)
  return hits / simulations


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
