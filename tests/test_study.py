"""A tiny study end to end through the real CLI: train --study (with a killed run, a resumed run and a
rerun), eval --shift, report --heatmap; and study-file errors that stop everything before it starts.

The study is the issue's 2 algorithms (ppo, dqn) x 2 techniques x 1 env x 2 seeds, on tiny budgets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ALGOS = ["ppo", "dqn"]
TECHNIQUES = ["baseline", "reg"]
# the study's plan order: environment, then algorithm, then technique, then seed
RUNS = [f"{algo}-cartpole-{technique}-s{seed}" for algo in ALGOS for technique in TECHNIQUES for seed in (0, 1)]
STUDY = """
[study]
algorithms = ["ppo", "dqn"]
techniques = ["baseline", "reg"]
environments = ["cartpole"]
seeds = [0, 1]
runs_dir = "{runs_dir}"
workers = 2
shift = [0.0, 0.5, 1.0]
shift_episodes = 3

[config.all.run]
total_steps = 1024
eval_every = 512
eval_episodes = 3
checkpoint_every = 512

[config.dqn.dqn]
learning_starts = 256  # the default 1000 would leave a 1024-step run almost no updates
"""


def cli(*args: str, popen: bool = False):
    cmd = [sys.executable, "-m", "rlcli.cli.main", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def children(pid: int) -> dict[int, str]:
    """pid -> command line of each child process of ``pid``."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return out


def last_step(run_dir: Path) -> int:
    with h5py.File(run_dir / "checkpoints" / "last.h5", "r") as f:
        return int(f.attrs["step"])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    import rlcli
    from rlcli.study.spec import load_study

    root = tmp_path_factory.mktemp("study")
    runs_dir = root / "runs"
    path = root / "tiny.toml"
    path.write_text(STUDY.format(runs_dir=runs_dir))
    # an interrupted run: half its budget trained, to be resumed by the study
    partial = load_study(path).runs[0].cfg.copy()
    partial.run.total_steps = 512
    rlcli.train(partial)

    proc = cli("train", "--study", str(path), popen=True)
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        victim = next((pid for pid, cmd in children(proc.pid).items() if RUNS[1] in cmd), None)
        time.sleep(0.05)
    assert victim is not None, "the study never started the run to kill"
    os.kill(victim, signal.SIGKILL)  # a crash of one run's process
    out, err = proc.communicate(timeout=600)
    first = SimpleNamespace(returncode=proc.returncode, stdout=out, stderr=err)
    mtimes = {r: (runs_dir / r / "checkpoints" / "last.h5").stat().st_mtime_ns for r in RUNS if r != RUNS[1]}
    (runs_dir / RUNS[2] / "shift.h5").unlink()  # as if killed during its shift evaluation
    second = cli("train", "--study", str(path))
    return SimpleNamespace(path=path, runs_dir=runs_dir, first=first, second=second, mtimes=mtimes)


def test_a_killed_run_does_not_stop_the_others(study):
    assert study.first.returncode == 1, study.first.stderr
    assert f"{RUNS[1]} FAILED (exit -9)" in study.first.stdout
    assert f"1 of {len(RUNS)} runs failed" in study.first.stderr
    for name in RUNS[:1] + RUNS[2:]:
        assert f"{name} done" in study.first.stdout
        assert last_step(study.runs_dir / name) == 1024


def test_rerun_skips_complete_runs_and_finishes_the_others(study):
    assert study.second.returncode == 0, study.second.stdout + study.second.stderr
    plan = study.second.stdout.splitlines()[0]
    assert f"{len(RUNS) - 2} complete, 1 to evaluate" in plan  # and the killed run: restarted or new
    assert f"{RUNS[1]} done" in study.second.stdout
    assert f"{RUNS[2]} done" in study.second.stdout and "(evaluate)" in study.second.stdout
    for name, mtime in study.mtimes.items():
        assert (study.runs_dir / name / "checkpoints" / "last.h5").stat().st_mtime_ns == mtime, name
    for name in RUNS:
        assert (study.runs_dir / name / "shift.h5").is_file()
        assert last_step(study.runs_dir / name) == 1024
    assert f"{len(RUNS) - 2} skipped" in study.second.stdout


def test_an_incomplete_run_is_resumed_not_restarted(study):
    from rlcli.storage.metrics import read_metrics

    assert f"{RUNS[0]} done" in study.first.stdout and "(resume)" in study.first.stdout
    metrics = read_metrics(study.runs_dir / RUNS[0] / "metrics.h5")
    wall = metrics["wall_time"]
    assert wall[:, 0].tolist() == [512.0, 1024.0]  # the first half's rows were kept
    assert wall[1, 1] > wall[0, 1]  # wall time accumulates across the resume


def test_best_checkpoint_per_algorithm_and_env_is_kept_with_its_technique_and_seed(study):
    from rlcli.config.presets import read_toml

    records = read_toml(study.runs_dir / "best" / "best.toml")
    assert set(records) == {f"{algo}-cartpole" for algo in ALGOS}
    for algo in ALGOS:
        scores = []
        for i, name in enumerate(RUNS):
            if name.startswith(f"{algo}-"):
                with h5py.File(study.runs_dir / name / "checkpoints" / "best.h5", "r") as f:
                    scores.append((-float(f.attrs["eval_return"]), i, name))
        assert len(scores) == len(TECHNIQUES) * 2
        _, _, best = min(scores)  # ties go to the run planned first
        record = records[f"{algo}-cartpole"]
        assert record["run"] == best, algo
        assert record["eval_return"] == -min(scores)[0]
        with h5py.File(study.runs_dir / "best" / f"{algo}-cartpole.h5", "r") as f:
            assert f.attrs["study_technique"] == record["technique"] == best.split("-")[2]
            assert int(f.attrs["study_seed"]) == record["seed"] == int(best[-1])
            assert f.attrs["format"] == "rlcli-checkpoint"


def test_eval_shift_from_the_cli_reproduces_the_studys_curve(study):
    from rlcli.storage.shift import read_shift

    run = study.runs_dir / RUNS[3]
    before = read_shift(run / "shift.h5")
    res = cli("eval", str(run), "--shift", "0,0.5,1", "--episodes", "3")
    assert res.returncode == 0, res.stderr
    after = read_shift(run / "shift.h5")
    np.testing.assert_array_equal(after.returns, before.returns)
    assert f"GRS {before.grs:.3f}" in res.stdout
    for level, mean in zip(before.levels, before.mean_returns, strict=True):
        assert f"level {level:.2f}: return {mean:.2f}" in res.stdout


def test_report_heatmap_holds_the_runs_numbers(study, tmp_path):
    from rlcli.storage.shift import read_shift

    res = cli("report", str(study.runs_dir), "--heatmap", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    png = tmp_path / "grs_heatmap.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "report.md").read_text()
    grs = {name: read_shift(study.runs_dir / name / "shift.h5").grs for name in RUNS}
    for name, value in grs.items():
        assert f"{value:.3f}" in res.stdout and f"| {name} |" in md
    for algo in ALGOS:
        for technique in TECHNIQUES:
            cell = np.mean([v for n, v in grs.items() if n.startswith(f"{algo}-") and f"-{technique}-" in n])
            assert f"{cell:.3f}" in res.stdout  # the coloured terminal heatmap
            assert f"| {algo} + {technique} | {cell:.3f} [" in md
    assert "generalises best" in md


@pytest.mark.parametrize("edit, message", [
    ('algorithms = ["ppo", "dqn"]', "unknown algorithm 'nope'"),
    ('environments = ["cartpole"]', "unknown environment 'nope'"),
    ("total_steps = 1024", "unknown key 'run.total_step'"),
    ("seeds = [0, 1]", "names technique 'garr'"),
])
def test_study_file_errors_exit_2_before_anything_starts(tmp_path, edit, message):
    runs_dir = tmp_path / "runs"
    bad = {'algorithms = ["ppo", "dqn"]': 'algorithms = ["ppo", "dqn", "nope"]',
           'environments = ["cartpole"]': 'environments = ["cartpole", "nope"]',
           "total_steps = 1024": "total_step = 1024",
           "seeds = [0, 1]": 'seeds = [0, 1]\nexclude = [{technique = "garr"}]'}[edit]
    path = tmp_path / "bad.toml"
    path.write_text(STUDY.format(runs_dir=runs_dir).replace(edit, bad))
    res = cli("train", "--study", str(path))
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not runs_dir.exists()


def test_generalization_preset_lists_the_seeds_matrix():
    import itertools
    import tomllib

    study = tomllib.loads((REPO / "presets" / "generalization.toml").read_text())["study"]
    cells = list(itertools.product(study["algorithms"], study["techniques"], study["environments"], study["seeds"]))
    assert len(cells) == 108
    kept = [c for c in cells if not any(all(dict(zip(("algorithm", "technique", "environment", "seed"), c,
                                                     strict=True))[k] == v for k, v in rule.items())
                                        for rule in study["exclude"])]
    assert len(kept) == 90 and not any(a == "es" and "gar" in t for a, t, _, _ in kept)


def test_ctrl_c_saves_running_runs_starts_no_more_and_a_rerun_resumes(tmp_path):
    runs_dir = tmp_path / "runs"
    path = tmp_path / "long.toml"
    path.write_text(STUDY.format(runs_dir=runs_dir).replace("workers = 2", "workers = 1")
                    .replace('techniques = ["baseline", "reg"]', 'techniques = ["baseline"]')
                    .replace("total_steps = 1024", "total_steps = 1000000"))
    proc = subprocess.Popen([sys.executable, "-m", "rlcli.cli.main", "train", "--study", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    first = runs_dir / RUNS[0]
    deadline = time.monotonic() + 120
    while not (first / "config.toml").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # training has begun
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, out + err
    assert "1 interrupted, 3 not started" in out and "continue with: rlcli train --study" in err
    assert 0 < last_step(first) < 1_000_000
    for name in ("ppo-cartpole-baseline-s1", "dqn-cartpole-baseline-s0", "dqn-cartpole-baseline-s1"):
        assert not (runs_dir / name).exists()
    plan = cli("train", "--study", str(path), "--dry-run")
    assert plan.returncode == 0 and "(1 to resume, 3 new)" in plan.stdout


def _one_run_study(tmp_path: Path, total_steps: int) -> tuple[Path, Path]:
    runs_dir = tmp_path / "runs"
    path = tmp_path / "one.toml"
    path.write_text(STUDY.format(runs_dir=runs_dir).replace("workers = 2", "workers = 1")
                    .replace('algorithms = ["ppo", "dqn"]', 'algorithms = ["ppo"]')
                    .replace('techniques = ["baseline", "reg"]', 'techniques = ["baseline"]')
                    .replace("seeds = [0, 1]", "seeds = [0]")
                    .replace("total_steps = 1024", f"total_steps = {total_steps}")
                    .split("[config.dqn.dqn]")[0])
    return path, runs_dir / RUNS[0]


def test_a_run_held_by_another_process_is_neither_deleted_nor_run_twice(tmp_path):
    from rlcli.storage.runs import RunLock

    path, run = _one_run_study(tmp_path, 1024)
    run.mkdir(parents=True)
    (run / "config.toml").write_text("# what a run killed before its first checkpoint leaves\n")
    with RunLock(run):  # another process writing this run (here: this one)
        res = cli("train", "--study", str(path))
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"held by process {os.getpid()}" in res.stdout
    assert sorted(p.name for p in run.iterdir()) == [".lock", "config.toml"]  # not deleted, not trained
    assert (run / "config.toml").read_text().startswith("# what a run killed")


def test_kill_9_of_the_runner_stops_its_workers_after_a_checkpoint(tmp_path):
    from rlcli.storage.metrics import read_metrics
    from rlcli.storage.runs import lock_holder

    path, run = _one_run_study(tmp_path, 1_000_000)
    proc = cli("train", "--study", str(path), popen=True)
    deadline = time.monotonic() + 120
    worker = None
    while (worker is None or not (run / "metrics.h5").exists()) and time.monotonic() < deadline:
        worker = lock_holder(run)
        time.sleep(0.05)
    assert worker, "the worker never started training"
    proc.kill()  # kill -9: the runner cannot tell its workers anything
    proc.communicate(timeout=60)
    def alive(pid: int) -> bool:  # a zombie (exited, not reaped by whoever inherited it) counts as dead
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    deadline = time.monotonic() + 120
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker), "the worker outlived its runner"
    assert lock_holder(run) is None
    assert 0 < last_step(run) < 1_000_000  # it saved a checkpoint on its way out
    steps = read_metrics(run / "metrics.h5")["steps_per_second"][:, 0]
    assert len(np.unique(steps)) == len(steps)
