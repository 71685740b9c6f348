"""``rlcli.report(paths)``: read run folders, tabulate them, draw figures and write a markdown summary.

Runs are found under ``paths`` (run folders or folders of runs). From each, ``config.toml`` gives the
algorithm, environment, technique and seed; ``metrics.h5`` the steps, eval returns (final and best) and
the cumulative ``wall_time``; ``shift.h5`` (``rlcli eval RUN --shift``) the GRS. Runs are grouped by
algorithm + environment + technique over seeds. Figures (matplotlib, Agg backend) are optional:
``curves`` (learning curves), ``grs`` (degradation curves), ``heatmap`` (GRS heatmap); ``report.md``
is always written to ``out``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlcli.config.fields import ConfigError


@dataclass
class RunRecord:
    """What the report knows about one run folder."""

    path: Path
    algo: str
    env: str
    technique: str
    seed: int
    steps: int  # env steps logged
    final_eval: float | None  # the last eval_return
    best_eval: float | None  # the highest eval_return
    wall_time: float | None  # s, cumulative over resumes
    metrics: dict[str, np.ndarray] = field(repr=False)  # name -> (N, 2) [step, value]
    shift: object | None = None  # rlcli.evaluation.grs.ShiftResult when the run was evaluated under shift

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def group(self) -> tuple[str, str, str]:
        return (self.algo, self.env, self.technique)

    @property
    def grs(self) -> float | None:
        return None if self.shift is None else self.shift.grs


@dataclass
class Report:
    runs: list[RunRecord]
    groups: dict[tuple[str, str, str], list[RunRecord]]
    group_table: list[tuple[str, ...]]  # GROUP_COLUMNS per group
    files: list[Path]  # figures and report.md written
    markdown: str
    thresholds: dict[str, float]  # env -> return threshold of steps-to-threshold
    heatmap: object | None = None  # rlcli.report.heatmap.GRSTable when grs values exist


def load_run(path: Path) -> RunRecord:
    from rlcli.config.presets import read_toml
    from rlcli.storage.metrics import read_metrics
    from rlcli.storage.runs import CONFIG_FILE, METRICS_FILE
    from rlcli.storage.shift import SHIFT_FILE, read_shift

    cfg = read_toml(path / CONFIG_FILE)
    try:
        algo, env = cfg["algo"], cfg["env"]["id"]
        technique, seed = cfg["run"]["technique"], int(cfg["run"]["seed"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"'{path / CONFIG_FILE}' is not a run's config (needs algo, env.id, run.technique, "
                          f"run.seed)") from None
    metrics = read_metrics(path / METRICS_FILE)
    steps = int(max((m[-1, 0] for m in metrics.values() if len(m)), default=0))
    evals = metrics.get("eval_return")
    has_eval = evals is not None and len(evals) > 0
    wall = metrics.get("wall_time")
    return RunRecord(path, algo, env, technique, seed, steps,
                     float(evals[-1, 1]) if has_eval else None, float(evals[:, 1].max()) if has_eval else None,
                     float(wall[-1, 1]) if wall is not None and len(wall) else None, metrics,
                     read_shift(path / SHIFT_FILE))


def group_runs(runs: list[RunRecord]) -> dict[tuple[str, str, str], list[RunRecord]]:
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for run in sorted(runs, key=lambda r: (r.env, r.algo, r.technique, r.seed)):
        groups.setdefault(run.group, []).append(run)
    return groups


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


RUN_COLUMNS = ("run", "algorithm", "env", "technique", "seed", "steps", "final eval", "best eval", "wall time (s)",
               "GRS")


def run_rows(runs: list[RunRecord]) -> list[tuple[str, ...]]:
    """One row of strings per run, in RUN_COLUMNS order."""
    return [(r.name, r.algo, r.env, r.technique, str(r.seed), str(r.steps), fmt(r.final_eval), fmt(r.best_eval),
             fmt(r.wall_time), fmt(r.grs, 3)) for r in runs]


GROUP_COLUMNS = ("algorithm", "env", "technique", "seeds", "final eval mean [95% CI]", "final eval IQM",
                 "best eval mean", "steps to threshold", "GRS mean")


def group_rows(groups: dict[tuple[str, str, str], list[RunRecord]], thresholds: dict[str, float],
               reps: int) -> list[tuple[str, ...]]:
    """One row of strings per group, in GROUP_COLUMNS order."""
    from rlcli.evaluation.aggregate import summarize
    from rlcli.report.curves import steps_to_threshold

    rows = []
    for (algo, env, technique), runs in groups.items():
        finals = [r.final_eval for r in runs if r.final_eval is not None]
        bests = [r.best_eval for r in runs if r.best_eval is not None]
        est = summarize(finals, reps) if finals else None
        threshold = thresholds.get(env)
        if threshold is None:
            reach = "-"
        else:
            hits = [h for h in (steps_to_threshold(r, threshold) for r in runs) if h is not None]
            reach = (f"{np.mean(hits):.0f} ({len(hits)}/{len(runs)} reach {threshold:g})" if hits
                     else f"never (0/{len(runs)} reach {threshold:g})")
        grs = [r.grs for r in runs if r.grs is not None and not math.isnan(r.grs)]
        rows.append((algo, env, technique, str(len(runs)),
                     f"{est['mean'].value:.1f} [{est['mean'].low:.1f}, {est['mean'].high:.1f}]" if est else "-",
                     fmt(est["iqm"].value) if est else "-", fmt(float(np.mean(bests)) if bests else None), reach,
                     fmt(float(np.mean(grs)) if grs else None, 3)))
    return rows


def _markdown_table(columns: tuple[str, ...] | list[str], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(paths: list[str | Path] | None = None, *, curves: bool = False, grs: bool = False,
           heatmap: bool = False, out: str | Path = "report", thresholds: dict[str, float] | None = None,
           reps: int | None = None) -> Report:
    """Report on the runs under ``paths`` (default ``runs/``); see the module docstring.

    thresholds: env -> return for the steps-to-threshold column (default: 475 on cartpole, CartPole-v1's
    own reward threshold). reps: bootstrap replicates of the confidence intervals (rliable's 50,000).
    Raises ConfigError when a path does not exist or holds no runs.
    """
    from rlcli.evaluation.aggregate import DEFAULT_REPS
    from rlcli.report.curves import DEFAULT_THRESHOLDS, plot_grs_curves, plot_learning_curves
    from rlcli.report.heatmap import grs_table, plot_heatmap
    from rlcli.storage.runs import find_runs

    paths = list(paths or ["runs"])
    run_dirs = find_runs(paths)
    if not run_dirs:
        raise ConfigError(f"no run folders (with config.toml) under {', '.join(map(str, paths))}")
    runs = [load_run(p) for p in run_dirs]
    groups = group_runs(runs)
    thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if curves:
        files += plot_learning_curves(groups, out, thresholds)
    if grs:
        files += plot_grs_curves(groups, out)
    table = grs_table(groups, reps or DEFAULT_REPS)
    if heatmap:
        if table is None:
            raise ConfigError("no run has a shift evaluation; run `rlcli eval RUN --shift 0,0.25,0.5,0.75,1` "
                              "(a study does it after each run) before --heatmap")
        files.append(plot_heatmap(table, out / "grs_heatmap.png"))
    rows = group_rows(groups, thresholds, reps or DEFAULT_REPS)
    md = ["# rlcli report", "", f"{len(runs)} runs from {', '.join(map(str, paths))}.", ""]
    if table is not None:
        md += ["## Which combination generalises best", "", *table.summary_lines(), ""]
    md += ["## Groups (algorithm + environment + technique, over seeds)", "", _markdown_table(GROUP_COLUMNS, rows), "",
           "## Runs", "", _markdown_table(RUN_COLUMNS, run_rows(runs)), ""]
    if table is not None:
        md += ["## GRS (mean over seeds [95% stratified-bootstrap CI])", "", table.markdown(), ""]
    if files:
        md += ["## Figures", "", *[f"![{f.stem}]({f.name})" for f in files], ""]
    markdown = "\n".join(md)
    md_path = out / "report.md"
    md_path.write_text(markdown)
    files.append(md_path)
    return Report(runs, groups, rows, files, markdown, thresholds, table)
