"""GRS, the Generalization Robustness Score: how gracefully a policy degrades as its environment shifts.

A policy is evaluated at shift levels ``l_0 < l_1 < ... < l_K`` of ``env.variation_level`` (default
0, 0.25, 0.5, 0.75, 1), giving mean returns ``P(l_k)``. GRS is the area under the performance-vs-shift
curve, normalised by the performance at the lowest level (the training level, 0, by default) and by the
width of the level range, so that a flat curve scores exactly 1::

    GRS = 1 / (l_K - l_0) * sum_{k=0}^{K-1} (l_{k+1} - l_k) * (p_k + p_{k+1}) / 2,   p_k = P(l_k) / P(l_0)

(the trapezoid rule over the given levels). GRS = 1: no degradation; 0.5: a linear fall to zero at the
largest shift; above 1: the policy does better under shift than where it was trained. The normalised
curve is not clipped, so negative returns lower the score. GRS is undefined (NaN) when ``P(l_0) <= 0``:
there is no level-0 performance to keep.

``rlcli eval RUN --shift 0,0.25,0.5,0.75,1`` calls :func:`evaluate_shift`, which stores the curve with
the run in ``<run>/shift.h5`` (see :mod:`rlcli.storage.shift`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlcli.config.fields import ConfigError
from rlcli.engine.progress import CountReporter

if TYPE_CHECKING:
    from rlcli.storage.shift import ShiftResult

DEFAULT_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


def parse_levels(text: str | list[float] | tuple[float, ...]) -> list[float]:
    """``"0,0.25,0.5"`` (or a list) -> sorted, checked levels: at least two distinct values in [0, 1]."""
    if isinstance(text, str):
        try:
            levels = [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"--shift expects comma-separated levels such as 0,0.25,0.5,0.75,1, got '{text}'") from None
    else:
        levels = [float(x) for x in text]
    if any(not 0.0 <= x <= 1.0 for x in levels):
        raise ConfigError(f"shift levels must lie in [0, 1], got {levels}")
    levels = sorted(set(levels))
    if len(levels) < 2:
        raise ConfigError(f"GRS needs at least two distinct shift levels, got {levels}")
    return levels


def grs_score(levels: np.ndarray | list[float], performance: np.ndarray | list[float]) -> float:
    """The GRS of a performance curve (module docstring formula).

    levels: (K+1,) increasing shift levels; performance: (K+1,) mean return at each level.
    """
    x = np.asarray(levels, dtype=np.float64)
    y = np.asarray(performance, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"levels and performance must be 1-D of equal length >= 2, got {x.shape}, {y.shape}")
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"levels must be strictly increasing, got {x.tolist()}")
    if not y[0] > 0:
        return float("nan")
    p = y / y[0]
    area = float(np.sum(np.diff(x) * (p[1:] + p[:-1]) / 2.0))
    return area / float(x[-1] - x[0])


def shift_file_for(run_or_checkpoint: str | Path, checkpoint_path: Path) -> Path:
    """Where a shift curve is stored: ``<run>/shift.h5`` for a run folder or a checkpoint inside one,
    ``<file>.shift.h5`` beside a lone checkpoint file."""
    from rlcli.storage.runs import is_run_dir
    from rlcli.storage.shift import SHIFT_FILE

    p = Path(run_or_checkpoint)
    if p.is_dir():
        return p / SHIFT_FILE
    run = checkpoint_path.parent.parent
    if checkpoint_path.parent.name == "checkpoints" and is_run_dir(run):
        return run / SHIFT_FILE
    return checkpoint_path.with_suffix(".shift.h5")


def evaluate_shift(run_or_checkpoint: str | Path, levels: str | list[float] = DEFAULT_LEVELS,
                   episodes: int = 10, checkpoint: str = "last", deterministic: bool = True,
                   overrides: list[str] = (), save: bool = True,
                   reporter: CountReporter | None = None) -> ShiftResult:
    """Evaluate a saved policy at each shift level, compute its GRS and (``save``) store the curve.

    The weights are loaded once; every level plays ``episodes`` episodes from the same seeds (the run's
    evaluation seed), only ``env.variation_level`` changes. ``overrides`` (``--set`` lines) change the
    evaluation env otherwise, as in :func:`rlcli.evaluation.evaluate.evaluate`. ``reporter`` (a
    :class:`~rlcli.engine.progress.CountReporter`) follows the episodes of all levels as they finish.
    """
    grid = parse_levels(levels)  # bad levels fail before torch is imported

    from rlcli.engine.episodes import run_episodes
    from rlcli.engine.seeding import EVAL_SEED_OFFSET
    from rlcli.envs.registry import refuse_without_variation
    from rlcli.evaluation.evaluate import load_for_inference
    from rlcli.storage.shift import ShiftResult, write_shift

    reporter = reporter or CountReporter()
    algo, cfg, path, step = load_for_inference(run_or_checkpoint, checkpoint, overrides)
    reporter.start("shift episodes", episodes * len(grid))
    try:
        refuse_without_variation(cfg.env.id, "--shift evaluates at several variation levels")
        seed = cfg.run.seed + EVAL_SEED_OFFSET
        per_level = []
        for i, level in enumerate(grid):
            note = f"level {level:g} ({i + 1} of {len(grid)})"
            reporter.update(i * episodes, note)

            def finished(n: int, before: int = i * episodes, note: str = note) -> None:
                reporter.update(before + n, note)

            per_level.append(run_episodes(lambda obs: algo.act(obs, deterministic),
                                          dataclasses.replace(cfg.env, variation_level=level), episodes, seed,
                                          on_finished=finished)[0])
        returns = np.stack(per_level)
    finally:
        reporter.stop()
        algo.close()
    levels_arr = np.asarray(grid)
    result = ShiftResult(levels_arr, returns, grs_score(levels_arr, returns.mean(axis=1)), str(path), step,
                         deterministic)
    if save:
        result.path = shift_file_for(run_or_checkpoint, Path(path))
        write_shift(result.path, result)
    return result
