"""AD collection time: ``rlcli.collect`` at reduced steps, storage on, projected to the preset's 2.5M steps.

    PYTHONPATH=. python benchmarks/ad_collect.py [--steps 40000] [--rounds 1] [--compare /work/main]

Two workloads, each the real ``rlcli.collect`` (batched A2C, DarkRoom rooms, the HDF5 histories file, the
run folder and its checkpoints) on ``presets/darkroom-ad.toml`` with ``collect.steps_per_agent`` cut to
``--steps`` (the preset's full figure is 2.5M):

- seed scale: 57 agents (the seed's 57 train tasks x 1 agent, no validation or test agents), one stored
  stream each: 142.5M env steps at full length (the issue's bar: a 9.2-minute prototype);
- full preset: every agent of the preset (train tasks x ``collect.histories_per_task`` + one per validation
  and test task: 49 x 4 + 8 + 23 = 227 agents), one stored stream each.

The projection is wall time x (2.5M / ``--steps``): fixed costs (opening the file, the run folder) are
scaled up with the rest, so it errs long. ``--compare DIR`` also runs another checkout's ``rlcli`` (e.g.
main) in the same rounds, alternating with this one, so that both see the same machine load; each
measurement runs in its own process with one torch thread. The load average is printed with each round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL_STEPS = 2_500_000
WORKLOADS = {
    "seed scale (57 agents)": ["collect.num_test_tasks=23", "collect.num_validation_tasks=0",
                               "collect.histories_per_task=1", "collect.test_histories_per_task=0"],
    "full preset": [],
}


def measure(overrides: list[str], steps: int) -> dict:
    """Collect once into a temporary file; wall time of the whole ``rlcli.collect`` call."""
    import torch

    import rlcli
    from rlcli.config.presets import resolve_config

    torch.set_num_threads(1)
    cfg = resolve_config("ad", preset="darkroom-ad", overrides=[*overrides, f"collect.steps_per_agent={steps}",
                                                                 "collect.streams_per_agent=1"])
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        result = rlcli.collect(cfg, Path(d) / "histories.h5")
        wall = time.perf_counter() - t0
    return {"agents": result.num_agents, "env_steps": result.env_steps, "wall": wall}


def run_in(checkout: str, overrides: list[str], steps: int) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"from ad_collect import measure; print(json.dumps(measure({overrides!r}, {steps})))")
    env = {**os.environ, "PYTHONPATH": checkout, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=checkout, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=40_000, help="env steps per agent of each measurement")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--compare", default="", help="another checkout to measure in the same rounds (e.g. main)")
    p.add_argument("--only", choices=sorted(WORKLOADS), default=None)
    args = p.parse_args()
    here = str(Path(__file__).resolve().parents[1])
    checkouts = {"this": here} | ({"compare": os.path.abspath(args.compare)} if args.compare else {})
    walls: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        for name, overrides in WORKLOADS.items():
            if args.only and name != args.only:
                continue
            for label, checkout in checkouts.items():
                m = run_in(checkout, overrides, args.steps)
                walls.setdefault((name, label), []).append(m["wall"])
                full = m["wall"] * FULL_STEPS / args.steps
                print(f"round {r + 1} {name:24s} {label:7s} {m['agents']:3d} agents x {args.steps:,} steps: "
                      f"{m['wall']:6.1f} s ({m['env_steps'] / m['wall']:,.0f} env steps/s) -> {full / 60:6.1f} min "
                      f"at 2.5M steps; load average {os.getloadavg()[0]:.2f}", flush=True)
    for name in WORKLOADS:
        if (name, "this") not in walls:
            continue
        best = min(walls[(name, "this")])
        line = f"{name}: projected {best * FULL_STEPS / args.steps / 60:.1f} min (best of {args.rounds})"
        if (name, "compare") in walls:
            ratios = [c / t for t, c in zip(walls[(name, "this")], walls[(name, "compare")], strict=True)]
            line += (f"; {args.compare} {min(walls[(name, 'compare')]) * FULL_STEPS / args.steps / 60:.1f} min; "
                     f"speed-up per round {', '.join(f'{x:.2f}x' for x in ratios)}")
        print(line)


if __name__ == "__main__":
    main()
