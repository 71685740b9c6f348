"""Learning curves and GRS degradation curves (matplotlib, Agg), and steps-to-threshold.

Figures are drawn on a bare ``matplotlib.figure.Figure`` (the Agg canvas), never through pyplot's global
state, so reports work headless and inside notebooks alike. One PNG per environment; one line per group
(runs whose configs differ only in the seed): the mean over seeds, with a band that the legend names --
the pointwise 95% bootstrap CI of the mean from 3 seeds on, the min-max range over the seeds below that,
none for a single run. Lines of few points, and single points, get markers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# the return at which an environment counts as solved (CartPole-v1's own reward_threshold)
DEFAULT_THRESHOLDS = {"cartpole": 475.0}

# what env.variation_level changes, from 0 to 1, per environment (the env modules' docstrings say how)
VARIATION_AXES = {
    "cartpole": "gravity 9.8-14.7, pole half-length 0.5-1.0, cart mass 1-2",
    "minigrid": "grid size 6-12, moving balls 2-8",
    "starpilot": "levels 200-unlimited, easy -> hard from 0.5",
}


def variation_label(env: str) -> str:
    """The x axis of a degradation curve: variation level and what it changes on ``env``."""
    what = VARIATION_AXES.get(env)
    return f"variation level ({what})" if what else "variation level (env.variation_level)"


def learning_curve(run) -> tuple[np.ndarray, np.ndarray, str]:
    """(steps (N,), returns (N,), metric name): the periodic ``eval_return`` when the run logged at least
    two evaluations, else the training ``episode_return``."""
    evals = run.metrics.get("eval_return")
    name = "eval_return" if evals is not None and len(evals) >= 2 else "episode_return"
    data = run.metrics.get(name)
    if data is None or not len(data):
        return np.zeros(0), np.zeros(0), name
    return data[:, 0], data[:, 1], name


def steps_to_threshold(run, threshold: float) -> float | None:
    """The first env step at which the run's learning curve reaches ``threshold``; None if it never does."""
    steps, values, _ = learning_curve(run)
    hit = np.nonzero(values >= threshold)[0]
    return float(steps[hit[0]]) if len(hit) else None


def _figure(width: float = 7.0, height: float = 4.5):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.subplots()


def _band(ax, x: np.ndarray, ys: np.ndarray, label: str) -> None:
    """Mean of ys (S, N) over its S seeds, with the band :func:`rlcli.evaluation.aggregate.band` gives;
    the legend says the number of seeds and what the band is."""
    from rlcli.evaluation.aggregate import band

    mean = ys.mean(axis=0)
    seeds = f"{len(ys)} seed{'s' if len(ys) > 1 else ''}"
    marker = "o" if len(x) <= 20 else None
    if len(ys) > 1:
        low, high, what = band(ys)
        (line,) = ax.plot(x, mean, label=f"{label} ({seeds}; band: {what})", linewidth=1.6, marker=marker,
                          markersize=4)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    else:
        ax.plot(x, mean, label=f"{label} ({seeds}, no band)", linewidth=1.6, marker=marker, markersize=4)


def _by_env(groups: dict) -> dict[str, list[tuple[object, list]]]:
    out: dict[str, list] = {}
    for key, runs in groups.items():
        out.setdefault(key.env, []).append((key, runs))
    return out


def _slug(env: str) -> str:
    return env.replace(":", "-").lower()


def plot_learning_curves(groups: dict, out: Path, thresholds: dict[str, float] | None = None) -> list[Path]:
    """``curves-<env>.png`` per environment; returns the files written."""
    files = []
    for env, entries in _by_env(groups).items():
        fig, ax = _figure()
        drawn, algos = [], set()
        for key, runs in entries:
            curves = [learning_curve(r) for r in runs]
            curves = [c for c in curves if len(c[0])]
            if not curves:
                continue
            algos.add(key.algo)
            lo, hi = max(c[0][0] for c in curves), min(c[0][-1] for c in curves)
            points = max(len(c[0]) for c in curves)
            grid = np.linspace(lo, hi, min(200, points)) if hi > lo else np.array([lo])
            ys = np.stack([np.interp(grid, s, v) for s, v, _ in curves])
            drawn.append((key, grid, ys, "/".join(sorted({c[2] for c in curves}))))
        metrics = {metric for *_, metric in drawn}
        kinds = {"eval_return": "evaluation episodes", "episode_return": "training episodes"}
        for key, grid, ys, metric in drawn:
            # one y label when every line shows the same return; else each line says which
            label = key.label if len(metrics) == 1 else f"{key.label}, {kinds.get(metric, 'mixed returns')}"
            _band(ax, grid, ys, label)
        threshold = (thresholds or DEFAULT_THRESHOLDS).get(env)
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ylabel = f"return ({kinds.get(next(iter(metrics)), 'mixed')})" if len(metrics) == 1 else "return"
        xlabel = "gradient steps" if algos == {"ad"} else "env steps"
        ax.set(title=f"Learning curves on {env}: mean over seeds", xlabel=xlabel, ylabel=ylabel)
        files.append(_save(fig, ax, out / f"curves-{_slug(env)}.png"))
    return files


def _save(fig, ax, path: Path) -> Path:
    """Grid, legend, write the PNG."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.14))  # below the axes: never over a curve
    fig.savefig(path, bbox_inches="tight")
    return path


def plot_grs_curves(groups: dict, out: Path) -> list[Path]:
    """``grs-<env>.png``: performance normalised by level-0 performance vs shift level; returns the files."""
    files = []
    for env, entries in _by_env(groups).items():
        fig, ax = _figure()
        drawn = False
        for key, runs in entries:
            shifts = [r.shift for r in runs if r.shift is not None and r.shift.mean_returns[0] > 0]
            if not shifts:
                continue
            levels = shifts[0].levels
            shifts = [s for s in shifts if np.array_equal(s.levels, levels)]
            ys = np.stack([s.mean_returns / s.mean_returns[0] for s in shifts])
            grs = np.mean([s.grs for s in shifts])
            _band(ax, levels, ys, f"{key.label}, GRS {grs:.2f}")
            drawn = True
        if not drawn:
            continue
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set(title=f"Degradation under shift on {env}: mean over seeds", xlabel=variation_label(env),
               ylabel="return / return at the lowest level")
        files.append(_save(fig, ax, out / f"grs-{_slug(env)}.png"))
    return files
