"""`rlcli report` on real small runs: the table holds config.toml's and metrics.h5's numbers, groups are
runs that differ only in the seed (other budgets and repeated seeds stay apart), intervals are CIs from 3
seeds on and labelled ranges below that, steps to a threshold, learning/GRS curve PNGs whose legends name
their bands, tables that fit 80 columns, report.md, and the errors a user can hit."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlcli.config.fields import ConfigError

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import rlcli
    from rlcli.evaluation.grs import evaluate_shift

    runs_dir = tmp_path_factory.mktemp("runs")
    for seed in (0, 1, 2):
        cfg = rlcli.resolve_config("ppo", env="cartpole", extra={"run": {
            "total_steps": 1536, "eval_every": 512, "eval_episodes": 3, "seed": seed, "runs_dir": str(runs_dir),
            "name": f"ppo-s{seed}"}})
        rlcli.train(cfg)
    evaluate_shift(runs_dir / "ppo-s0", [0.0, 0.5, 1.0], episodes=3)  # ppo-s1 has no shift curve
    return runs_dir


def test_table_holds_the_runs_config_and_metrics(runs, tmp_path):
    import rlcli
    from rlcli.report.runs import run_rows
    from rlcli.storage.metrics import read_metrics
    from rlcli.storage.shift import read_shift

    rep = rlcli.report([runs], out=tmp_path, reps=2000)
    assert [r.name for r in rep.runs] == ["ppo-s0", "ppo-s1", "ppo-s2"]
    finals = []
    for record, row in zip(rep.runs, run_rows(rep.runs, rep.groups), strict=True):
        m = read_metrics(runs / record.name / "metrics.h5")
        assert (record.algo, record.env, record.technique, record.seed) == ("ppo", "cartpole", "baseline",
                                                                            int(record.name[-1]))
        assert record.steps == 1536
        assert record.final_eval == m["eval_return"][-1, 1] and record.best_eval == m["eval_return"][:, 1].max()
        assert record.wall_time == m["wall_time"][-1, 1]
        assert row[1:7] == ("1", record.name[-1], "1536", f"{record.final_eval:.1f}", f"{record.best_eval:.1f}",
                            f"{record.wall_time:.1f}")
        finals.append(record.final_eval)
    assert rep.runs[0].grs == read_shift(runs / "ppo-s0" / "shift.h5").grs and rep.runs[1].grs is None
    (group,) = rep.group_table
    assert group[:4] == ("1", "ppo + baseline", "cartpole", "3")
    mean, low, high = (float(x) for x in re.fullmatch(r"(\S+)\n\[(\S+), (\S+)\] 95% CI", group[4]).groups())
    assert mean == pytest.approx(np.mean(finals), abs=0.051)  # three seeds: a bootstrap CI of the mean
    assert min(finals) - 0.05 <= low <= mean <= high <= max(finals) + 0.05
    assert group[6] == f"{rep.runs[0].grs:.3f}"  # the mean over the runs that have a GRS
    md = (tmp_path / "report.md").read_text()
    assert "| ppo-s0 | 1 | 0 | 1536 |" in md and "95% stratified-bootstrap CI" in md


def test_steps_to_threshold(runs, tmp_path):
    import rlcli
    from rlcli.report.curves import steps_to_threshold
    from rlcli.storage.metrics import read_metrics

    evals = read_metrics(runs / "ppo-s0" / "metrics.h5")["eval_return"]
    threshold = float(evals[1:, 1].max())  # reached at the first eval at or above it
    expected = evals[np.argmax(evals[:, 1] >= threshold), 0]
    rep = rlcli.report([runs], out=tmp_path, thresholds={"cartpole": threshold}, reps=500)
    assert steps_to_threshold(rep.runs[0], threshold) == expected
    assert steps_to_threshold(rep.runs[0], 1e9) is None
    assert rep.group_table[0][5].endswith("/3)") and f"cartpole {threshold:g})" in rep.markdown
    never = rlcli.report([runs], out=tmp_path, thresholds={"cartpole": 1e9}, reps=500)
    assert never.group_table[0][5] == "never (0/3)" and "(cartpole 1e+09)" in never.markdown


def test_curves_and_grs_figures(runs, tmp_path):
    import rlcli

    rep = rlcli.report([runs], curves=True, grs=True, out=tmp_path, reps=500)
    for name in ("curves-cartpole.png", "grs-cartpole.png", "report.md"):
        assert tmp_path / name in rep.files
    for name in ("curves-cartpole.png", "grs-cartpole.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
        assert f"({name})" in rep.markdown


@pytest.fixture(scope="module")
def budgets(runs, tmp_path_factory):
    """Seed-0 runs of two more budgets (512 and 1024 steps), and a rerun of ppo-s0 (a copy: same config,
    same seed, another folder name)."""
    import rlcli

    folder = tmp_path_factory.mktemp("budgets")
    for steps in (512, 1024):
        rlcli.train(rlcli.resolve_config("ppo", env="cartpole", extra={"run": {
            "total_steps": steps, "eval_every": 512, "eval_episodes": 3, "seed": 0, "runs_dir": str(folder),
            "name": f"ppo-{steps}-s0"}}))
    shutil.copytree(runs / "ppo-s0", folder / "ppo-s0-rerun")
    return folder


def test_groups_differ_only_in_the_seed(runs, budgets, tmp_path):
    import rlcli

    rep = rlcli.report([runs, budgets], out=tmp_path, reps=2000)
    members = {key.variant: sorted(r.name for r in group) for key, group in rep.groups.items()}
    assert members == {"total_steps=1536": ["ppo-s0", "ppo-s1", "ppo-s2"],
                       "total_steps=1536, repeat 2": ["ppo-s0-rerun"],
                       "total_steps=512": ["ppo-512-s0"], "total_steps=1024": ["ppo-1024-s0"]}
    rows = {row[1].replace("\n", " "): row for row in rep.group_table}
    three = rows["ppo + baseline total_steps=1536"]
    assert three[3] == "3" and three[4].endswith("] 95% CI")
    one = rows["ppo + baseline total_steps=512"]
    final = rep.groups[next(k for k in rep.groups if k.variant == "total_steps=512")][0].final_eval
    assert one[3] == "1" and one[4] == f"{final:.1f}\n[{final:.1f}, {final:.1f}] range"  # not a CI
    assert "CI" not in rows["ppo + baseline total_steps=1536, repeat 2"][4]


def test_tables_fit_80_columns(runs, budgets, tmp_path):
    from rich.console import Console

    import rlcli
    from rlcli.report.runs import GROUP_COLUMNS, RUN_COLUMNS, group_notes, rich_table, run_rows

    rep = rlcli.report([runs, budgets], out=tmp_path, reps=500)
    console = Console(width=80, file=io.StringIO(), record=True)
    console.print(rich_table("Groups", GROUP_COLUMNS, rep.group_table, group_notes(rep.thresholds)))
    console.print(rich_table("Runs", RUN_COLUMNS, run_rows(rep.runs, rep.groups)))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for row in rep.group_table:  # the numbers of an interval are never cut
        for number in re.findall(r"[\d.]+", row[4]):
            assert number in text
    for run in rep.runs:
        assert f"{run.final_eval:.1f}" in text


def test_figures_name_their_bands_and_axes():
    from matplotlib.figure import Figure

    from rlcli.evaluation.aggregate import band
    from rlcli.report.curves import _band, variation_label

    ax = Figure().subplots()
    x = np.linspace(0, 1, 5)
    _band(ax, x, np.stack([x, x + 1, x + 2]), "ppo + baseline")
    _band(ax, x, np.stack([x, x + 1]), "ppo + reg")
    _band(ax, x[:1], np.ones((1, 1)), "dqn + baseline")
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["ppo + baseline (3 seeds; band: 95% bootstrap CI of the mean)",
                      "ppo + reg (2 seeds; band: min-max range)", "dqn + baseline (1 seed, no band)"]
    assert all(line.get_marker() == "o" for line in ax.get_lines())  # few points, and the single one, show
    low, high, _ = band(np.stack([x, x + 1]))
    assert np.array_equal(low, x) and np.array_equal(high, x + 1)
    assert "pole half-length" in variation_label("cartpole") and "balls" in variation_label("minigrid")


def test_heatmap_needs_shift_evaluations(runs, tmp_path):
    import rlcli

    with pytest.raises(ConfigError, match="--shift"):
        rlcli.report([runs / "ppo-s1"], heatmap=True, out=tmp_path)


def test_cli_report(runs, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "rlcli.cli.main", "report"]
    res = subprocess.run(cmd + [str(runs), "--curves", "--out", str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "ppo-s0" in res.stdout and "ppo-s1" in res.stdout and (tmp_path / "curves-cartpole.png").is_file()
    assert "95% CI" in res.stdout and "min-max range" in res.stdout  # the interval and its note
    missing = subprocess.run(cmd + [str(tmp_path / "nope")], capture_output=True, text=True, env=env, timeout=300)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad = subprocess.run(cmd + [str(runs), "--threshold", "cartpole"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert bad.returncode == 2 and "ENV=RETURN" in bad.stderr


def test_heatmap_across_environments(tmp_path):
    """Rows algorithm + technique, columns environment; the all-environment IQM needs every column."""
    from rlcli.evaluation.aggregate import aggregate_iqm
    from rlcli.evaluation.grs import grs_score
    from rlcli.report.heatmap import grs_table, plot_heatmap
    from rlcli.report.runs import RunRecord, group_runs
    from rlcli.storage.shift import ShiftResult

    levels = np.array([0.0, 0.5, 1.0])
    curves = {("ppo", "baseline"): [[100, 50, 0], [100, 60, 20], [100, 40, 10]],
              ("ppo", "reg"): [[100, 90, 80], [100, 95, 90], [100, 85, 85]]}
    records = []
    for (algo, technique), per_seed in curves.items():
        for env in ("cartpole", "minigrid"):
            for seed, curve in enumerate(per_seed):
                returns = np.repeat(np.array(curve, dtype=float)[:, None], 2, axis=1)
                shift = ShiftResult(levels, returns, grs_score(levels, curve), "ckpt", 100)
                records.append(RunRecord(tmp_path / f"{algo}-{env}-{technique}-{seed}", algo, env, technique, seed,
                                         100, None, None, None, {}, shift))
    records.append(RunRecord(tmp_path / "dqn", "dqn", "cartpole", "baseline", 0, 100, None, None, None, {},
                             ShiftResult(levels, np.ones((3, 2)), 1.0, "ckpt", 100)))
    table = grs_table(group_runs(records), reps=2000)
    assert table.cols == ["cartpole", "minigrid"]
    assert table.rows == [("dqn", "baseline"), ("ppo", "baseline"), ("ppo", "reg")]
    reg = [grs_score(levels, c) for c in curves[("ppo", "reg")]]
    assert table.cells[(("ppo", "reg"), "minigrid")].mean.value == pytest.approx(np.mean(reg))
    assert table.cell_text(("dqn", "baseline"), "minigrid") == "-"
    assert ("dqn", "baseline") not in table.overall  # it lacks minigrid
    assert table.overall[("ppo", "reg")]["iqm"].value == pytest.approx(aggregate_iqm(np.array([reg, reg]).T))
    summary = "\n".join(table.summary_lines())
    assert "**cartpole**: **dqn + baseline** generalises best" in summary  # 1.0, one seed
    assert "**all environments**" in summary and "**ppo + reg**" in summary
    assert plot_heatmap(table, tmp_path / "h.png").read_bytes()[:8] == PNG
