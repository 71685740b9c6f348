"""Learning curves and GRS degradation curves (matplotlib, Agg), and steps-to-threshold.

Figures are drawn on a bare ``matplotlib.figure.Figure`` (the Agg canvas), never through pyplot's global
state, so reports work headless and inside notebooks alike. One PNG per environment; one line per
algorithm + technique: the mean over seeds, with a band of ± one standard deviation across seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# the return at which an environment counts as solved (CartPole-v1's own reward_threshold)
DEFAULT_THRESHOLDS = {"cartpole": 475.0}


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
    """Mean of ys (S, N) over its S seeds with a ± std band."""
    mean, std = ys.mean(axis=0), ys.std(axis=0)
    (line,) = ax.plot(x, mean, label=label, linewidth=1.6)
    if len(ys) > 1:
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def _by_env(groups: dict) -> dict[str, list[tuple[tuple[str, str, str], list]]]:
    out: dict[str, list] = {}
    for key, runs in groups.items():
        out.setdefault(key[1], []).append((key, runs))
    return out


def _slug(env: str) -> str:
    return env.replace(":", "-").lower()


def plot_learning_curves(groups: dict, out: Path, thresholds: dict[str, float] | None = None) -> list[Path]:
    """``curves-<env>.png`` per environment; returns the files written."""
    files = []
    for env, entries in _by_env(groups).items():
        fig, ax = _figure()
        metrics = set()
        for (algo, _, technique), runs in entries:
            curves = [learning_curve(r) for r in runs]
            curves = [c for c in curves if len(c[0])]
            if not curves:
                continue
            metrics.update(c[2] for c in curves)
            lo, hi = max(c[0][0] for c in curves), min(c[0][-1] for c in curves)
            grid = np.linspace(lo, hi, 200) if hi > lo else np.array([lo])
            ys = np.stack([np.interp(grid, s, v) for s, v, _ in curves])
            _band(ax, grid, ys, f"{algo} {technique} ({len(curves)} seeds)")
        threshold = (thresholds or DEFAULT_THRESHOLDS).get(env)
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ax.set(title=f"Learning curves on {env}", xlabel="env steps", ylabel=" / ".join(sorted(metrics)) or "return")
        files.append(_save(fig, ax, out / f"curves-{_slug(env)}.png"))
    return files


def _save(fig, ax, path: Path) -> Path:
    """Grid, legend, write the PNG."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, bbox_inches="tight")
    return path


def plot_grs_curves(groups: dict, out: Path) -> list[Path]:
    """``grs-<env>.png``: performance normalised by level-0 performance vs shift level; returns the files."""
    files = []
    for env, entries in _by_env(groups).items():
        fig, ax = _figure()
        drawn = False
        for (algo, _, technique), runs in entries:
            shifts = [r.shift for r in runs if r.shift is not None and r.shift.mean_returns[0] > 0]
            if not shifts:
                continue
            levels = shifts[0].levels
            shifts = [s for s in shifts if np.array_equal(s.levels, levels)]
            ys = np.stack([s.mean_returns / s.mean_returns[0] for s in shifts])
            grs = np.mean([s.grs for s in shifts])
            _band(ax, levels, ys, f"{algo} {technique} (GRS {grs:.2f}, {len(shifts)} seeds)")
            drawn = True
        if not drawn:
            continue
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set(title=f"Degradation under shift on {env}", xlabel="env.variation_level",
               ylabel="return / return at the lowest level")
        files.append(_save(fig, ax, out / f"grs-{_slug(env)}.png"))
    return files
