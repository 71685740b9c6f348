"""Aggregate statistics across seeds, computed as rliable (Agarwal et al. 2021) computes them.

Scores are a matrix ``(num_runs, num_tasks)``: one row per seed, one column per task (environment).

- mean: the mean over tasks of the per-task mean over runs (``rliable.metrics.aggregate_mean``);
- IQM: the interquartile mean of all ``num_runs * num_tasks`` scores, i.e. scipy's
  ``trim_mean(scores, 0.25, axis=None)``: sort them, drop ``floor(0.25 * n)`` from each end, average the
  rest (``rliable.metrics.aggregate_iqm``);
- 95% confidence intervals by the stratified bootstrap (``rliable.library.get_interval_estimates`` with
  ``method="percentile"``): each replicate resamples runs with replacement *within each task* (column),
  the statistic is recomputed, and the interval is the 2.5th and 97.5th percentiles of the replicates.

Implemented in numpy (vectorised over replicates) so that reports need neither rliable nor its
dependencies; ``tests/test_grs.py`` checks these functions against rliable itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_REPS = 50_000  # rliable's default number of bootstrap replicates


def _as_matrix(scores) -> np.ndarray:
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]  # one task
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"scores must be a non-empty (num_runs, num_tasks) matrix, got shape {a.shape}")
    return a


def aggregate_mean(scores: np.ndarray) -> np.ndarray:
    """Mean over tasks of per-task means; scores (..., num_runs, num_tasks) -> (...)."""
    return scores.mean(axis=-2).mean(axis=-1)


def aggregate_iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean of all runs x tasks; scores (..., num_runs, num_tasks) -> (...)."""
    flat = np.sort(scores.reshape(*scores.shape[:-2], -1), axis=-1)
    n = flat.shape[-1]
    cut = int(0.25 * n)
    return flat[..., cut:n - cut].mean(axis=-1)


@dataclass
class Estimate:
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float


def stratified_bootstrap_ci(scores, statistic: Callable[[np.ndarray], np.ndarray], reps: int = DEFAULT_REPS,
                            size: float = 0.95, seed: int = 0) -> Estimate:
    """Point estimate and percentile confidence interval of ``statistic`` over stratified resamples.

    scores: (num_runs, num_tasks); statistic maps (..., num_runs, num_tasks) -> (...).
    """
    a = _as_matrix(scores)
    n_runs, n_tasks = a.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_runs, size=(reps, n_runs, n_tasks))  # runs resampled within each task
    replicates = statistic(a[idx, np.arange(n_tasks)])  # (reps,)
    alpha = 100.0 * (1.0 - size) / 2.0
    low, high = np.percentile(replicates, [alpha, 100.0 - alpha])
    return Estimate(float(statistic(a)), float(low), float(high))


def summarize(scores, reps: int = DEFAULT_REPS, seed: int = 0) -> dict[str, Estimate]:
    """``{"mean": Estimate, "iqm": Estimate}`` of a (num_runs, num_tasks) score matrix (or (num_runs,))."""
    a = _as_matrix(scores)
    return {"mean": stratified_bootstrap_ci(a, aggregate_mean, reps, seed=seed),
            "iqm": stratified_bootstrap_ci(a, aggregate_iqm, reps, seed=seed)}


MIN_SEEDS_FOR_CI = 3  # below this a bootstrap interval only restates the few values: show their range


@dataclass
class Spread:
    """A mean over seeds and its interval: the 95% stratified-bootstrap CI of the mean from
    ``MIN_SEEDS_FOR_CI`` seeds on, else the min-max range of the values (``kind`` says which)."""

    value: float
    low: float
    high: float
    kind: str  # "95% CI" or "range"
    seeds: int

    def text(self, digits: int = 1, sep: str = " ") -> str:
        """``"123.4 [100.2, 140.1] 95% CI"`` or ``"279.8 [279.8, 279.8] range"`` (``sep`` after the mean)."""
        return f"{self.value:.{digits}f}{sep}[{self.low:.{digits}f}, {self.high:.{digits}f}] {self.kind}"


def mean_spread(values, reps: int = DEFAULT_REPS, seed: int = 0) -> Spread:
    """The mean of ``values`` (one per seed) with the interval its number of seeds supports."""
    a = np.asarray(values, dtype=np.float64).ravel()
    if len(a) == 0:
        raise ValueError("mean_spread needs at least one value")
    if len(a) < MIN_SEEDS_FOR_CI:
        return Spread(float(a.mean()), float(a.min()), float(a.max()), "range", len(a))
    est = stratified_bootstrap_ci(a, aggregate_mean, reps, seed=seed)
    return Spread(est.value, est.low, est.high, "95% CI", len(a))


def band(curves: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(low (N,), high (N,), what they are) of a band around the mean of ``curves`` (S seeds, N points):
    the pointwise 95% bootstrap CI of the mean from ``MIN_SEEDS_FOR_CI`` seeds on, else the min-max range."""
    ys = np.asarray(curves, dtype=np.float64)
    if len(ys) < MIN_SEEDS_FOR_CI:
        return ys.min(axis=0), ys.max(axis=0), "min-max range"
    idx = np.random.default_rng(seed).integers(0, len(ys), size=(reps, len(ys)))
    means = ys[idx].mean(axis=1)  # (reps, N)
    low, high = np.percentile(means, [2.5, 97.5], axis=0)
    return low, high, "95% bootstrap CI of the mean"
