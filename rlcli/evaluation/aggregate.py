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
