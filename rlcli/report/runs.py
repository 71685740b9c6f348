"""``rlcli.report(paths)``: read run folders, tabulate them, draw figures and write a markdown summary.

Runs are found under ``paths`` (run folders or folders of runs). From each, ``config.toml`` gives the
algorithm, environment, technique and seed; ``metrics.h5`` the steps, eval returns (final and best) and
the cumulative ``wall_time``; ``shift.h5`` (``rlcli eval RUN --shift``) the GRS.

A group is the runs whose resolved configs differ only in ``run.seed`` (and ``run.name``, ``run.runs_dir``):
runs of another budget or any other hyperparameter form their own group, labelled by what differs, and a
seed that repeats within a group starts another group (a rerun is not a new seed). A group's mean comes
with a 95% stratified-bootstrap CI from 3 seeds on, with the min-max range below that (and says so).
Figures (matplotlib, Agg backend) are optional:
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
    shift: object | None = None  # rlcli.storage.shift.ShiftResult when the run was evaluated under shift
    config: dict[str, object] = field(default_factory=dict, repr=False)  # config.toml as dotted key -> value

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def grs(self) -> float | None:
        return None if self.shift is None else self.shift.grs


# what may differ between the runs of one group: the seed, and where the run was written
SEED_KEYS = ("run.seed", "run.name", "run.runs_dir")


@dataclass(frozen=True)
class GroupKey:
    """A group of runs: algorithm, environment, technique, and ``variant``, what sets its config apart from
    other groups of the same three ("" when nothing does)."""

    algo: str
    env: str
    technique: str
    variant: str = ""

    @property
    def label(self) -> str:
        """``"ppo + baseline"``, with the variant in parentheses when there is one."""
        return f"{self.algo} + {self.technique}" + (f" ({self.variant})" if self.variant else "")


@dataclass
class Report:
    runs: list[RunRecord]
    groups: dict[GroupKey, list[RunRecord]]
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
                     read_shift(path / SHIFT_FILE), flatten(cfg))


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """``{"run": {"seed": 0}}`` -> ``{"run.seed": 0}``; lists become tuples (hashable, comparable)."""
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _setting(run: RunRecord) -> tuple:
    """Everything of the run's config but its seed and where it was written; runs without a config.toml
    dict (built in code) fall back to algorithm, environment and technique."""
    base = (("algo", run.algo), ("env.id", run.env), ("run.technique", run.technique))
    rest = tuple(sorted((k, repr(v)) for k, v in run.config.items() if k not in SEED_KEYS and k not in dict(base)))
    return base + rest


def _variant(setting: tuple, others: list[tuple], most: int = 3) -> str:
    """The keys whose values differ among ``setting`` and ``others`` (all of one algorithm, environment and
    technique), as ``key=value`` of ``setting``; at most ``most`` of them, then a count."""
    mine = dict(setting)
    keys = sorted({k for other in others for k, v in other if mine.get(k) != v}
                  | {k for k in mine if any(k not in dict(o) for o in others)})
    short = [k.rsplit(".", 1)[-1] for k in keys]  # "total_steps" for "run.total_steps", when unambiguous
    names = [s if short.count(s) == 1 else k for s, k in zip(short, keys, strict=True)]
    parts = [f"{n}={mine.get(k, '-')}" for n, k in zip(names, keys, strict=True)]
    return ", ".join(parts[:most]) + (f" +{len(parts) - most} more" if len(parts) > most else "")


def group_runs(runs: list[RunRecord]) -> dict[GroupKey, list[RunRecord]]:
    """Runs grouped over seeds (module docstring), in the order environment, algorithm, technique, variant."""
    by_setting: dict[tuple, list[list[RunRecord]]] = {}
    for run in sorted(runs, key=lambda r: (r.env, r.algo, r.technique, r.seed, r.name)):
        batches = by_setting.setdefault(_setting(run), [])
        free = next((b for b in batches if all(r.seed != run.seed for r in b)), None)
        if free is None:  # the seed repeats: the rerun goes to a group of its own
            batches.append(free := [])
        free.append(run)
    groups: dict[GroupKey, list[RunRecord]] = {}
    for setting, batches in by_setting.items():
        first = batches[0][0]
        siblings = [s for s in by_setting if s[:3] == setting[:3] and s != setting]
        variant = _variant(setting, siblings) if siblings else ""
        for i, batch in enumerate(batches):
            repeat = f"repeat {i + 1}" if i else ""
            key = GroupKey(first.algo, first.env, first.technique, ", ".join(p for p in (variant, repeat) if p))
            groups[key] = batch
    return dict(sorted(groups.items(), key=lambda kv: (kv[0].env, kv[0].algo, kv[0].technique, kv[0].variant)))


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


RUN_COLUMNS = ("run", "group", "seed", "steps", "final", "best", "time s", "GRS")
RUN_NOTES = ("group: the row of the group table; final, best: the last and the highest evaluation return; "
             "time s: wall seconds over all resumes; GRS: from `rlcli eval RUN --shift`.")


def run_rows(runs: list[RunRecord], groups: dict[GroupKey, list[RunRecord]] | None = None) -> list[tuple[str, ...]]:
    """One row of strings per run, in RUN_COLUMNS order; ``group`` is the number of its row in the group
    table (``groups`` in table order)."""
    number = {id(r): str(i) for i, members in enumerate((groups or {}).values(), 1) for r in members}
    return [(r.name, number.get(id(r), "-"), str(r.seed), str(r.steps), fmt(r.final_eval), fmt(r.best_eval),
             fmt(r.wall_time), fmt(r.grs, 3)) for r in runs]


# headers in short lines, so that the table's natural width stays within 80 columns
GROUP_COLUMNS = ("#", "algorithm +\ntechnique", "env", "seeds", "final eval\n(interval)", "steps to\nthreshold", "GRS")

GROUP_NOTES_TEMPLATE = ("interval: the 95% stratified-bootstrap CI of the mean from 3 seeds on; with fewer seeds, "
               "the min-max range over them (too few seeds for a CI). Steps to threshold: the mean env step at "
               "which the learning curve first reaches the threshold ({thresholds}), over the seeds that reach it (k of n). "
               "GRS: the mean over the seeds evaluated under shift.")


def group_notes(thresholds: dict[str, float]) -> str:
    """What the group table's columns hold, with the thresholds used."""
    listed = ", ".join(f"{env} {value:g}" for env, value in sorted(thresholds.items())) or "none given"
    return GROUP_NOTES_TEMPLATE.format(thresholds=listed)


def group_rows(groups: dict[GroupKey, list[RunRecord]], thresholds: dict[str, float],
               reps: int) -> list[tuple[str, ...]]:
    """One row of strings per group, in GROUP_COLUMNS order."""
    from rlcli.evaluation.aggregate import mean_spread
    from rlcli.report.curves import steps_to_threshold

    rows = []
    for number, (key, runs) in enumerate(groups.items(), 1):
        finals = [r.final_eval for r in runs if r.final_eval is not None]
        threshold = thresholds.get(key.env)
        if threshold is None:
            reach = "-"
        else:
            hits = [h for h in (steps_to_threshold(r, threshold) for r in runs) if h is not None]
            reach = f"{np.mean(hits):.0f} ({len(hits)}/{len(runs)})" if hits else f"never (0/{len(runs)})"
        grs = [r.grs for r in runs if r.grs is not None and not math.isnan(r.grs)]
        label = f"{key.algo} + {key.technique}" + (f"\n{key.variant}" if key.variant else "")
        rows.append((str(number), label, key.env, str(len(runs)),
                     mean_spread(finals, reps).text(sep="\n") if finals else "-", reach,
                     fmt(float(np.mean(grs)) if grs else None, 3)))
    return rows


def rich_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]], caption: str | None = None):
    """A rich Table that fits 80 columns: no vertical rules, one space of padding, cells wrap at spaces and
    only the first two columns (names) fold within words."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), caption=escape(caption) if caption else None, box=box.SIMPLE_HEAD,
                  padding=(0, 1, 0, 0), show_edge=False, pad_edge=False, caption_justify="left")
    for i, col in enumerate(columns):
        table.add_column(escape(col), overflow="fold" if i < 2 else "ellipsis")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


def _markdown_table(columns: tuple[str, ...] | list[str], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(c.replace("\n", " ") for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell.replace("\n", " ") for cell in row) + " |" for row in rows]
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
    from rlcli.report.heatmap import GRS_NOTES, grs_table, plot_heatmap
    from rlcli.storage.files import make_dirs
    from rlcli.storage.runs import find_runs

    paths = list(paths or ["runs"])
    run_dirs = find_runs(paths)
    if not run_dirs:
        raise ConfigError(f"no run folders (with config.toml) under {', '.join(map(str, paths))}")
    runs = [load_run(p) for p in run_dirs]
    groups = group_runs(runs)
    thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    out = Path(out)
    make_dirs(out)  # ConfigError when --out names a file
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
    md += ["## Groups (runs whose configs differ only in the seed)", "", _markdown_table(GROUP_COLUMNS, rows), "",
           group_notes(thresholds), "", "## Runs", "", _markdown_table(RUN_COLUMNS, run_rows(runs, groups)), ""]
    if table is not None:
        md += ["## GRS (mean over seeds [interval])", "", table.markdown(), "", GRS_NOTES, ""]
    if files:
        md += ["## Figures", "", *[f"![{f.stem}]({f.name})" for f in files], ""]
    markdown = "\n".join(md)
    md_path = out / "report.md"
    md_path.write_text(markdown)
    files.append(md_path)
    return Report(runs, groups, rows, files, markdown, thresholds, table)
