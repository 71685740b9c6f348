"""The study runner's overhead per run, and a PPO-only CartPole mini matrix timed with --workers N.

    PYTHONPATH=. python benchmarks/study_overhead.py [--seeds 0 1 2] [--workers 2] [--runs-dir DIR]

Runs ppo x {baseline, reg} x cartpole x seeds at the generalization study's CartPole budget and PPO
settings (the [config.all], [config.cartpole], [config.ppo] and [config."ppo-cartpole"] tables of
presets/generalization.toml), through the same runner as ``rlcli train --study``. Prints per run the
wall time of its process beside the training wall time it logged (metrics ``wall_time``); the rest is the
runner's overhead: process start and imports, the shift evaluation (GRS), saving and the best-checkpoint
copy. Then the study's wall time beside the ideal (sum of process times / workers).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs-dir", default=None, help="default: a temporary folder")
    args = parser.parse_args()

    from rlcli.evaluation.grs import evaluate_shift
    from rlcli.storage.metrics import read_metrics
    from rlcli.study.runner import run_study

    preset = tomllib.loads((REPO / "presets" / "generalization.toml").read_text())
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="study-bench-"))
    study = {"study": {**{k: v for k, v in preset["study"].items() if k in ("shift", "shift_episodes")},
                       "algorithms": ["ppo"], "techniques": ["baseline", "reg"], "environments": ["cartpole"],
                       "seeds": args.seeds, "runs_dir": str(runs_dir / "runs"), "workers": args.workers},
             "config": {k: v for k, v in preset["config"].items() if k in ("all", "cartpole", "ppo", "ppo-cartpole")}}
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / "ppo-cartpole.toml"
    path.write_text(tomli_w.dumps(study))

    t0 = time.perf_counter()
    result = run_study(path)
    study_wall = time.perf_counter() - t0

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import rlcli.study.worker, rlcli.engine.train, rlcli.evaluation.grs"],
                   check=True)
    startup = time.perf_counter() - t0
    first = result.outcomes[0].run
    t0 = time.perf_counter()
    evaluate_shift(first.run_dir, result.study.shift, episodes=result.study.shift_episodes, save=False)
    shift_eval = time.perf_counter() - t0

    print(f"\n{'run':32s} {'process s':>10s} {'train s':>8s} {'other s':>8s} {'final eval':>10s}")
    rest = []
    for o in result.outcomes:
        m = read_metrics(o.run.run_dir / "metrics.h5")
        train = m["wall_time"][-1, 1]
        rest.append(o.seconds - train)
        print(f"{o.run.name:32s} {o.seconds:10.1f} {train:8.1f} {o.seconds - train:8.1f} "
              f"{m['eval_return'][-1, 1]:10.1f}")
    ideal = sum(o.seconds for o in result.outcomes) / result.study.workers
    n = len(result.outcomes)
    print(f"\noverhead per run (process wall - training wall): mean {sum(rest) / n:.1f} s, of which "
          f"~{startup:.1f} s process start + imports and ~{shift_eval:.1f} s shift evaluation "
          f"({len(result.study.shift)} levels x {result.study.shift_episodes} episodes)")
    print(f"study of {n} runs with --workers {result.study.workers}: {study_wall:.1f} s wall; "
          f"sum of run processes / workers = {ideal:.1f} s; ratio {study_wall / ideal:.2f}; "
          f"{len(result.failed)} failed")


if __name__ == "__main__":
    main()
